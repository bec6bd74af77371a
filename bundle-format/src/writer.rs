//! Writing a bundle: metadata first, then blobs, each verified as it streams.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use tender_keys::Signature;

use crate::entry::{EntryName, OCI_LAYOUT_CONTENT};
use crate::hashing::{CopyError, copy_hashed};
use crate::{BlobRecord, BundleError, Progress, Signatures};

/// Descriptor bytes and the signatures over them.
#[derive(Clone, Debug)]
pub struct SignedDescriptor {
    /// The exact descriptor bytes that were signed.
    pub raw: Vec<u8>,
    /// The signatures.
    pub signatures: Vec<Signature>,
    /// A keyring file to carry (`tender/keyring.json`), if any.
    pub keyring: Option<Vec<u8>>,
}

/// The archive's `index.json`: one entry per image, named by the reference
/// exactly as the manifests write it, so `oci-archive:BUNDLE:REF` works.
pub fn oci_archive_index<'a>(images: impl IntoIterator<Item = &'a crate::ImageRecord>) -> Vec<u8> {
    let manifests: Vec<_> = images
        .into_iter()
        .map(|i| {
            json!({
                // OCI tools (containers/image) only look at OCI types in a
                // layout's index.json, so Docker schema 2 types are listed
                // as their OCI equivalents; they read the blob itself, whose
                // bytes (and so digest) stay as the source wrote them.
                "mediaType": crate::media::oci_equivalent(&i.media_type),
                "digest": i.digest,
                "size": i.size,
                "annotations": {"org.opencontainers.image.ref.name": i.reference},
            })
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": crate::media::MediaType::ImageIndex,
        "manifests": manifests,
    });
    serde_json::to_vec(&index).expect("json values serialize")
}

/// Streams a bundle into `W`.
pub struct BundleWriter<W: Write> {
    tar: tar::Builder<W>,
    path: PathBuf,
    mtime: u64,
}

impl<W: Write> BundleWriter<W> {
    /// Start a bundle at `path` (named in errors): writes the descriptor, its
    /// signatures, the part marker of a split bundle, `oci-layout` and
    /// `index.json`.
    pub fn new(
        out: W,
        path: &Path,
        signed: &SignedDescriptor,
        oci_index: &[u8],
        mtime: u64,
        part: Option<u32>,
    ) -> Result<Self, BundleError> {
        let mut w = BundleWriter { tar: tar::Builder::new(out), path: path.to_owned(), mtime };
        let sigs = Signatures { signatures: signed.signatures.clone() };
        let sigs = serde_json::to_vec_pretty(&sigs).expect("signatures serialize");
        w.small(EntryName::Descriptor, &signed.raw)?;
        w.small(EntryName::Signatures, &sigs)?;
        if let Some(k) = &signed.keyring {
            w.small(EntryName::Keyring, k)?;
        }
        if let Some(part) = part {
            w.small(EntryName::Part, serde_json::json!({ "part": part }).to_string().as_bytes())?;
        }
        w.small(EntryName::OciLayout, OCI_LAYOUT_CONTENT)?;
        w.small(EntryName::Index, oci_index)?;
        Ok(w)
    }

    fn header(&self, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h.set_size(size);
        h
    }

    fn small(&mut self, name: EntryName, bytes: &[u8]) -> Result<(), BundleError> {
        let mut h = self.header(bytes.len() as u64);
        self.tar
            .append_data(&mut h, name.path(), bytes)
            .map_err(|source| BundleError::Write { path: self.path.clone(), source })
    }

    /// Append one blob, read from `data` (at `src`, named in errors). The bytes
    /// are hashed as they stream; a wrong size or digest is an error, and the
    /// caller must then discard the output.
    pub fn append_blob(
        &mut self,
        blob: &BlobRecord,
        data: impl Read,
        src: &Path,
        progress: &dyn Progress,
    ) -> Result<(), BundleError> {
        self.append_entry(
            EntryName::Blob(blob.digest.clone()),
            &blob.digest,
            blob.size,
            data,
            src,
            progress,
        )
    }

    /// Append one chunk of a blob split across parts: `data` must start at
    /// the chunk's offset.
    pub fn append_chunk(
        &mut self,
        blob: &BlobRecord,
        chunk: &crate::ChunkRecord,
        data: impl Read,
        src: &Path,
        progress: &dyn Progress,
    ) -> Result<(), BundleError> {
        self.append_entry(
            EntryName::Chunk(blob.digest.clone(), chunk.offset),
            &chunk.digest,
            chunk.size,
            data,
            src,
            progress,
        )
    }

    /// Append the patch a patched layer travels as (`data`: the patch bytes).
    pub fn append_patch(
        &mut self,
        blob: &BlobRecord,
        data: impl Read,
        src: &Path,
        progress: &dyn Progress,
    ) -> Result<(), BundleError> {
        let p = blob.patch.as_ref().ok_or_else(|| {
            BundleError::BadDescriptor(format!("blob {} has no patch", blob.digest))
        })?;
        self.append_entry(
            EntryName::Patch(p.digest.clone()),
            &p.digest,
            p.size,
            data,
            src,
            progress,
        )
    }

    fn append_entry(
        &mut self,
        name: EntryName,
        digest: &crate::Digest,
        size: u64,
        data: impl Read,
        src: &Path,
        progress: &dyn Progress,
    ) -> Result<(), BundleError> {
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| BundleError::Write { path, source }
        };
        let mut h = self.header(size);
        h.set_path(name.path()).map_err(write_err(&self.path))?;
        h.set_cksum();
        // The header goes through the builder's writer and the data streams
        // straight behind it in large chunks, hashed on the side (tar's own
        // copy loop moves 8 KiB at a time and cannot hash).
        let out = self.tar.get_mut();
        out.write_all(h.as_bytes()).map_err(write_err(&self.path))?;
        let (actual, n) = copy_hashed(data, &mut *out, size, progress).map_err(|e| match e {
            CopyError::Read(source) => BundleError::Read { path: src.to_owned(), source },
            CopyError::Write(source) => BundleError::Write { path: self.path.clone(), source },
        })?;
        let entry = src.display().to_string();
        if n != size {
            return Err(BundleError::SizeMismatch { entry, expected: size, actual: n });
        }
        if actual != *digest {
            return Err(BundleError::DigestMismatch { entry, expected: digest.clone(), actual });
        }
        let out = self.tar.get_mut();
        let pad = (512 - size % 512) % 512;
        out.write_all(&[0u8; 512][..pad as usize]).map_err(write_err(&self.path))?;
        Ok(())
    }

    /// Write the end-of-archive marker and flush; returns the output.
    pub fn finish(self) -> Result<W, BundleError> {
        let path = self.path;
        let mut out = self
            .tar
            .into_inner()
            .map_err(|source| BundleError::Write { path: path.clone(), source })?;
        out.flush().map_err(|source| BundleError::Write { path, source })?;
        Ok(out)
    }
}
