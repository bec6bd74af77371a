//! Rebuilding a layer that travelled as a sub-layer patch (`docs/deltas.md`).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tender_bundle::patch::{RebuildError, decompress, layer_kind, rebuild_ahead};
use tender_bundle::{BlobRecord, BundleError, Digest, Progress};

use crate::fsutil::io_err;
use crate::{Store, StoreError};

impl Store {
    /// Rebuild `blob` from its patch (verified bytes in `patch_file`) and
    /// the base layer in the store; check the result against the blob's
    /// digest (the layer's DiffID) and size, and only then move it in.
    /// `progress` advances by the layer's bytes as they are written.
    pub fn rebuild_patched(
        &self,
        blob: &BlobRecord,
        patch_file: &Path,
        progress: &dyn Progress,
    ) -> Result<(), StoreError> {
        let refuse = |reason: String| -> StoreError {
            BundleError::Patch { blob: blob.digest.clone(), reason }.into()
        };
        let Some(p) = &blob.patch else {
            return Err(refuse("the descriptor gives no patch".into()));
        };
        let base_path = self.blob_path(&p.base);
        let (compression, _) = layer_kind(&p.base_media_type).ok_or_else(|| {
            refuse(format!("base media type {:?} is not a layer", p.base_media_type))
        })?;
        let base_file = match File::open(&base_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(format!("its base layer {} is not in the store", p.base)));
            }
            Err(e) => return Err(StoreError::Io { path: base_path, source: e }),
        };
        let patch = File::open(patch_file).map_err(io_err(patch_file))?;
        let staging = self.root.join("staging");
        let mut tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&staging)
            .map_err(io_err(&staging))?;
        let tmp_path = tmp.path().to_owned();
        // Three chains of work on two threads (`rebuild_ahead`): one
        // decompresses the base and decodes the patch a segment at a time;
        // either hashes and writes what is decoded, in order.
        let (frames, geometry) = (&p.frames, p.geometry());
        let base_read = FileRead { file: base_file, path: base_path.clone() };
        let base =
            move || decompress(base_read, compression).map(BaseStream).map_err(mark_base_error);
        let patch = BufReader::new(FileRead { file: patch, path: patch_file.to_owned() });
        let (mut hasher, mut written) = (Sha256::new(), 0u64);
        let file = tmp.as_file_mut();
        let rebuilt = rebuild_ahead(
            base,
            patch,
            frames,
            geometry,
            &p.windows,
            |seg| hasher.update(seg),
            |seg| {
                // A patch that decodes to more than the layer is refused
                // before the excess is written.
                if written + seg.len() as u64 > blob.size {
                    return Err(Stop::TooLong);
                }
                write_segment(file, seg, written, progress).map_err(Stop::Write)?;
                written += seg.len() as u64;
                Ok(())
            },
        );
        match rebuilt {
            Ok(()) => {}
            Err(RebuildError::Decode(e)) => {
                return Err(match FileReadError::take(e) {
                    // The disk, not the patch: named as any I/O error is.
                    Ok(FileReadError { path, source }) => StoreError::Io { path, source },
                    // A frame's checksum fails on a wrong base byte too.
                    Err(e) => base_damage_or(&base_path, &p.base, || {
                        refuse(if e.get_ref().is_some_and(|i| i.is::<BaseStreamError>()) {
                            format!("its base layer {} does not decompress: {e}", p.base)
                        } else {
                            format!("cannot apply: {e}")
                        })
                    }),
                });
            }
            Err(RebuildError::Write(Stop::Write(source))) => {
                return Err(StoreError::Io { path: tmp_path, source });
            }
            Err(RebuildError::Write(Stop::TooLong)) => {
                return Err(refuse(format!(
                    "it rebuilds more than the layer's {} bytes",
                    blob.size
                )));
            }
        }
        let actual = Digest::from_hasher(hasher);
        if written != blob.size || actual != blob.digest {
            return Err(base_damage_or(&base_path, &p.base, || {
                refuse(format!(
                    "it rebuilds {actual} ({written} bytes), not the layer's DiffID ({} bytes)",
                    blob.size
                ))
            }));
        }
        tmp.as_file().sync_all().map_err(io_err(&tmp_path))?;
        let target = self.blob_path(&blob.digest);
        tmp.persist(&target)
            .map_err(|e| StoreError::Io { path: target.clone(), source: e.error })?;
        Ok(())
    }
}

/// On a rebuild that failed, what to report: the base layer's copy in the
/// store if it no longer hashes to its digest (the store is damaged, and a
/// wrong base byte is what made the rebuild fail: nothing checks a base's
/// bytes again as it is read, not even gzip's CRC, see
/// `tender_bundle::gunzip`), else `refusal`. Costs a read of the base, on
/// failure only.
fn base_damage_or(
    base_path: &Path,
    base: &Digest,
    refusal: impl FnOnce() -> StoreError,
) -> StoreError {
    let hashed = File::open(base_path).ok().and_then(|f| {
        tender_bundle::copy_hashed(f, std::io::sink(), u64::MAX, &tender_bundle::NoProgress).ok()
    });
    match hashed {
        Some((actual, _)) if actual != *base => BundleError::DigestMismatch {
            entry: format!(
                "base layer {} in the store is damaged (`tender-ship fsck` finds what else is)",
                base_path.display()
            ),
            expected: base.clone(),
            actual,
        }
        .into(),
        _ => refusal(),
    }
}

/// A file the rebuild reads (the base layer, the patch). Its read errors
/// carry its path, so that a failing disk is reported as an I/O error
/// naming the file, not as a patch that does not apply.
struct FileRead {
    file: File,
    path: PathBuf,
}

/// A read error of a [`FileRead`].
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
struct FileReadError {
    path: PathBuf,
    source: std::io::Error,
}

impl FileReadError {
    /// The file's own error, if `e` is one.
    fn take(e: std::io::Error) -> Result<Self, std::io::Error> {
        if !e.get_ref().is_some_and(|i| i.is::<Self>()) {
            return Err(e);
        }
        let inner = e.into_inner().expect("checked above");
        Ok(*inner.downcast::<Self>().expect("checked above"))
    }
}

impl std::io::Read for FileRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::Interrupted => e,
            kind => std::io::Error::new(kind, FileReadError { path: self.path.clone(), source: e }),
        })
    }
}

/// The base layer uncompressed. Its errors are marked as the base's (a
/// file's error stays marked as the file's): a base that does not
/// decompress is a damaged store copy, or a signed base that never was a
/// valid layer, not a patch that does not apply.
struct BaseStream<R>(R);

/// A decompression error of [`BaseStream`].
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct BaseStreamError(std::io::Error);

/// `e` marked as the base's, unless it is marked already (a file's error
/// stays the file's) or is only an interruption.
fn mark_base_error(e: std::io::Error) -> std::io::Error {
    let marked = e.get_ref().is_some_and(|i| i.is::<FileReadError>() || i.is::<BaseStreamError>());
    if marked || e.kind() == std::io::ErrorKind::Interrupted {
        return e;
    }
    std::io::Error::new(e.kind(), BaseStreamError(e))
}

impl<R: std::io::Read> std::io::Read for BaseStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(mark_base_error)
    }
}

/// Bytes per write: what `cat` and the import's copy write. Much larger
/// writes fill the page cache with large folios, which on a virtual machine
/// that hands free memory back to its host cost their first touch all over
/// (measured with `dd` of a 257 MiB layer after the host took memory back:
/// 4 MiB writes 1.2 s, 256 KiB 0.17-0.33 s, 64 KiB 0.26 s).
const WRITE_PIECE: usize = 256 << 10;

/// Why writing a rebuilt layer stopped.
enum Stop {
    /// It decodes to more than the layer's signed size.
    TooLong,
    Write(std::io::Error),
}

/// Write one rebuilt segment at `offset` of `file`, in pieces that
/// progress counts, and start its writeback: the fsync at the end then
/// waits for the last segment only, not for the whole layer.
fn write_segment(
    file: &mut File,
    seg: &[u8],
    offset: u64,
    progress: &dyn Progress,
) -> std::io::Result<()> {
    for piece in seg.chunks(WRITE_PIECE) {
        file.write_all(piece)?;
        progress.advance(piece.len() as u64);
    }
    tender_bundle::start_writeback(file, offset, seg.len() as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tender_bundle::PatchRecord;
    use tender_bundle::patch::{Geometry, make_patch};

    /// A layer of many segments rebuilt through the store (more than are
    /// decoded ahead, windows placed), each written at its offset; one that decodes to
    /// more than its signed size is refused with nothing kept, and so is
    /// one whose base cannot be read or decompressed.
    #[test]
    fn a_layer_of_many_segments_is_rebuilt_whole_and_what_cannot_be_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("store")).unwrap();
        let g = Geometry { segment: 64 << 10, margin: 32 << 10 };
        let base: Vec<u8> = (0..400_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut layer = base.clone();
        layer.splice(100_000..100_000, b"a file added in release 2\n".repeat(400));
        let base_digest = Digest::of(&base);
        std::fs::write(store.blob_path(&base_digest), &base).unwrap();
        let mut patch = Vec::new();
        // Windows placed by the shore (here where a margin puts them).
        let n = g.frames(layer.len() as u64);
        let windows: Vec<u64> = (0..n).map(|i| (i * g.segment).saturating_sub(g.margin)).collect();
        let made = make_patch(&base[..], &layer[..], &mut patch, g, &windows).unwrap();
        assert!(made.frames.len() > 4, "{} frames", made.frames.len());
        let patch_file = dir.path().join("patch");
        std::fs::write(&patch_file, &patch).unwrap();
        let record = |size: u64| BlobRecord {
            digest: Digest::of(&layer),
            size,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            part: 1,
            chunks: vec![],
            patch: Some(PatchRecord {
                digest: Digest::of(&patch),
                size: patch.len() as u64,
                base: base_digest.clone(),
                base_media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                base_size: base.len() as u64,
                segment: g.segment,
                margin: g.margin,
                frames: made.frames.clone(),
                windows: windows.clone(),
            }),
        };

        let short = record(layer.len() as u64 - 1);
        let e = store.rebuild_patched(&short, &patch_file, &tender_bundle::NoProgress).unwrap_err();
        assert!(e.to_string().contains("more than the layer"), "{e}");
        assert!(!store.has_blob(&short.digest));
        assert_eq!(std::fs::read_dir(dir.path().join("store/staging")).unwrap().count(), 0);

        let whole = record(layer.len() as u64);
        store.rebuild_patched(&whole, &patch_file, &tender_bundle::NoProgress).unwrap();
        assert_eq!(std::fs::read(store.blob_path(&whole.digest)).unwrap(), layer);

        // A base or patch that cannot be read is the disk's error, naming
        // the file; a base whose copy in the store changed is named as the
        // store's damage; a signed base that does not decompress is refused
        // as such. Nothing of the layer is kept.
        std::fs::remove_file(store.blob_path(&whole.digest)).unwrap();
        let base_path = store.blob_path(&base_digest);
        std::fs::remove_file(&base_path).unwrap();
        std::fs::create_dir(&base_path).unwrap();
        match store.rebuild_patched(&whole, &patch_file, &tender_bundle::NoProgress) {
            Err(StoreError::Io { path, .. }) => assert_eq!(path, base_path),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir(&base_path).unwrap();
        // Every byte changed: a patch may find a lone byte elsewhere.
        let damaged: Vec<u8> = base.iter().map(|b| b.wrapping_add(1)).collect();
        std::fs::write(&base_path, &damaged).unwrap();
        let e = store.rebuild_patched(&whole, &patch_file, &tender_bundle::NoProgress).unwrap_err();
        assert!(e.to_string().contains("in the store is damaged"), "{e}");
        assert_eq!(e.kind(), tender_bundle::ErrorKind::DigestMismatch);
        std::fs::write(&base_path, &base).unwrap();
        let dir_patch = dir.path().join("patch-dir");
        std::fs::create_dir(&dir_patch).unwrap();
        match store.rebuild_patched(&whole, &dir_patch, &tender_bundle::NoProgress) {
            Err(StoreError::Io { path, .. }) => assert_eq!(path, dir_patch),
            other => panic!("{other:?}"),
        }
        let not_gzip = b"not gzip at all";
        std::fs::write(store.blob_path(&Digest::of(not_gzip)), not_gzip).unwrap();
        let mut gzip_base = record(layer.len() as u64);
        let pr = gzip_base.patch.as_mut().unwrap();
        pr.base = Digest::of(not_gzip);
        pr.base_media_type = "application/vnd.oci.image.layer.v1.tar+gzip".into();
        let e =
            store.rebuild_patched(&gzip_base, &patch_file, &tender_bundle::NoProgress).unwrap_err();
        assert!(e.to_string().contains("does not decompress"), "{e}");
        assert!(!store.has_blob(&whole.digest));
        assert_eq!(std::fs::read_dir(dir.path().join("store/staging")).unwrap().count(), 0);
    }
}
