//! Rebuilding a layer that travelled as a sub-layer patch (`docs/deltas.md`).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

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
        // Three stages on two cores: a thread decompresses the base and
        // decodes the patch a segment at a time (one base window and two
        // segments in memory); this one writes the segment before while a
        // third hashes it.
        let (frames, geometry, base_digest) = (&p.frames, p.geometry(), &p.base);
        let base = move || {
            decompress(
                std::io::BufReader::with_capacity(tender_bundle::READ_BUFFER, base_file),
                compression,
            )
            .map_err(|e| std::io::Error::new(e.kind(), format!("base layer {base_digest}: {e}")))
        };
        let (mut hasher, mut written) = (Sha256::new(), 0u64);
        let file = tmp.as_file_mut();
        let rebuilt = rebuild_ahead(base, BufReader::new(patch), frames, geometry, |seg| {
            // A patch that decodes to more than the layer is refused
            // before the excess is written.
            if written + seg.len() as u64 > blob.size {
                return Err(None);
            }
            std::thread::scope(|s| {
                let hashing = s.spawn(|| hasher.update(seg));
                let wrote = write_segment(file, seg, written, progress);
                hashing.join().expect("hashing does not panic");
                wrote
            })
            .map_err(Some)?;
            written += seg.len() as u64;
            Ok(())
        });
        match rebuilt {
            Ok(()) => {}
            Err(RebuildError::Decode(e)) => return Err(refuse(format!("cannot apply: {e}"))),
            Err(RebuildError::Consume(Some(source))) => {
                return Err(StoreError::Io { path: tmp_path, source });
            }
            Err(RebuildError::Consume(None)) => {
                return Err(refuse(format!(
                    "it rebuilds more than the layer's {} bytes",
                    blob.size
                )));
            }
        }
        let actual = Digest::from_hasher(hasher);
        if written != blob.size || actual != blob.digest {
            return Err(refuse(format!(
                "it rebuilds {actual} ({written} bytes), not the layer's DiffID ({} bytes)",
                blob.size
            )));
        }
        tmp.as_file().sync_all().map_err(io_err(&tmp_path))?;
        let target = self.blob_path(&blob.digest);
        tmp.persist(&target)
            .map_err(|e| StoreError::Io { path: target.clone(), source: e.error })?;
        Ok(())
    }
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
    for piece in seg.chunks(4 << 20) {
        file.write_all(piece)?;
        progress.advance(piece.len() as u64);
    }
    tender_bundle::start_writeback(file, offset, seg.len() as u64);
    Ok(())
}
