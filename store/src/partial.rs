//! Blobs that arrive over a link in pieces: a partial file per blob in
//! `staging/partial/`, kept across runs so a pull resumes where it stopped,
//! and moved under its digest only after the whole is hashed and checked.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use tender_bundle::{BlobRecord, BundleError, Digest, NoProgress, VerifiedDescriptor};

use crate::fsutil::{io_err, sync_dir};
use crate::{ImportReport, Store, StoreError};

impl Store {
    fn partial_dir(&self) -> PathBuf {
        self.root.join("staging/partial")
    }

    /// Where a blob being fetched grows until it is whole. Its bytes are
    /// unverified until [`Store::adopt_partial`] compares their digest (the
    /// fetcher hashes them as it writes them) with the signed one.
    pub fn partial_path(&self, d: &Digest) -> PathBuf {
        self.partial_dir().join(d.hex())
    }

    /// Open the partial file of what a pull fetches for `blob` (see
    /// [`BlobRecord::carried_as`]) for appending; returns it and how many bytes
    /// it already holds (a file longer than expected is started over).
    /// Anything at its path that is not a regular file of its own (a
    /// symlink, a directory, a FIFO) is removed first: never followed, so
    /// a pull writes nothing outside the store and never moves a link into
    /// `blobs/`.
    pub fn open_partial(&self, blob: &BlobRecord) -> Result<(File, u64), StoreError> {
        let dir = self.partial_dir();
        crate::create_dirs(&dir)?;
        let (digest, size) = blob.carried_as();
        let path = self.partial_path(digest);
        match fs::symlink_metadata(&path) {
            Ok(m) if !m.file_type().is_file() => {
                let removed =
                    if m.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
                removed.map_err(io_err(&path))?;
            }
            _ => {}
        }
        // O_NOFOLLOW: a link planted after the check above is refused, not
        // followed; O_NONBLOCK: a FIFO planted there cannot hang the open.
        let mut f = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(io_err(&path))?;
        let meta = f.metadata().map_err(io_err(&path))?;
        if !meta.is_file() {
            return Err(StoreError::Io {
                path,
                source: std::io::Error::other(
                    "not a regular file (changed while the store was locked?)",
                ),
            });
        }
        let mut len = meta.len();
        if len > size {
            f.set_len(0).map_err(io_err(&path))?;
            len = 0;
        }
        f.seek(SeekFrom::Start(len)).map_err(io_err(&path))?;
        Ok((f, len))
    }

    /// Start `blob`'s partial file over (the server ignored a range request).
    pub fn restart_partial(&self, file: &mut File, blob: &BlobRecord) -> Result<(), StoreError> {
        let path = self.partial_path(blob.carried_as().0);
        file.set_len(0).map_err(io_err(&path))?;
        file.seek(SeekFrom::Start(0)).map_err(io_err(&path))?;
        Ok(())
    }

    /// `blob`'s partial file is whole and its bytes hash to `written` (the
    /// fetcher hashed them as it wrote them): if that is the digest signed
    /// for it, make it durable and move it under its digest (a patch:
    /// rebuild the layer from it, which is checked in turn). If not, it is
    /// removed (so a rerun fetches it afresh) and the mismatch is the error.
    pub fn adopt_partial(&self, blob: &BlobRecord, written: &Digest) -> Result<(), StoreError> {
        let (digest, size) = blob.carried_as();
        let path = self.partial_path(digest);
        let f = File::open(&path).map_err(io_err(&path))?;
        let n = f.metadata().map_err(io_err(&path))?.len();
        if n != size || written != digest {
            let _ = fs::remove_file(&path);
            return Err(BundleError::DigestMismatch {
                entry: format!("{digest} ({n} bytes fetched)"),
                expected: digest.clone(),
                actual: written.clone(),
            }
            .into());
        }
        if blob.patch.is_some() {
            let rebuilt = self.rebuild_patched(blob, &path, &NoProgress);
            let _ = fs::remove_file(&path);
            rebuilt?;
            return sync_dir(&self.blobs_dir());
        }
        f.sync_all().map_err(io_err(&path))?;
        let target = self.blob_path(&blob.digest);
        fs::rename(&path, &target).map_err(io_err(&target))?;
        sync_dir(&self.blobs_dir())?;
        Ok(())
    }

    /// Partial files held: (digest, bytes so far).
    pub fn partials(&self) -> Result<Vec<(Digest, u64)>, StoreError> {
        let dir = self.partial_dir();
        if !dir.is_dir() {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        for p in crate::read_dir_sorted(&dir)? {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let meta = p.symlink_metadata().map_err(io_err(&p))?;
            // Only a regular file is resumed from (see `open_partial`).
            if let (Ok(d), true) = (Digest::from_hex(&name), meta.is_file()) {
                out.push((d, meta.len()));
            }
        }
        Ok(out)
    }

    /// Record a version whose blobs arrived over a link (the caller holds
    /// the lock, admitted `v` through the [`Gate`](crate::Gate) and adopted its blobs).
    pub fn record_pulled(
        &self,
        v: &VerifiedDescriptor,
        source: &Path,
        report: &mut ImportReport,
    ) -> Result<(), StoreError> {
        self.note_seen()?;
        sync_dir(&self.blobs_dir())?;
        // Gone once no blob is partly fetched (fails, harmlessly, while one is).
        let _ = fs::remove_dir(self.partial_dir());
        self.record_version(v, source, report)
    }
}
