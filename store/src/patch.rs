//! Rebuilding a layer that travelled as a sub-layer patch (`docs/deltas.md`).

use std::fs::File;
use std::path::Path;

use tender_bundle::patch::{apply_patch, decompress, layer_kind};
use tender_bundle::{BlobRecord, BundleError, Progress, read_ahead};

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
        // Two stages on two cores: one thread decompresses the base and
        // decodes the patch (one window of the base and one segment of the
        // layer in memory), this one writes what it decoded while
        // `copy_hashed` hashes it on a third.
        let (frames, geometry, base_digest) = (&p.frames, p.geometry(), &p.base);
        let layer = move || {
            let base = decompress(
                std::io::BufReader::with_capacity(tender_bundle::READ_BUFFER, base_file),
                compression,
            )
            .map_err(|e| std::io::Error::new(e.kind(), format!("base layer {base_digest}: {e}")))?;
            apply_patch(base, std::io::BufReader::new(patch), frames, geometry)
        };
        // At most one byte more than the layer: a patch that decodes to
        // more is refused without writing it all.
        let copied = read_ahead(layer, |layer| {
            tender_bundle::copy_hashed(layer, tmp.as_file_mut(), blob.size + 1, progress)
        });
        let (actual, n) = copied.map_err(|e| match e {
            tender_bundle::CopyError::Read(e) => refuse(format!("cannot apply: {e}")),
            tender_bundle::CopyError::Write(source) => {
                StoreError::Io { path: tmp_path.clone(), source }
            }
        })?;
        if n != blob.size || actual != blob.digest {
            return Err(refuse(format!(
                "it rebuilds {actual} ({n} bytes), not the layer's DiffID ({} bytes)",
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
