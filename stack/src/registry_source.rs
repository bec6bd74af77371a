//! Images read from their registries for references no `sources` entry
//! covers: [`ImageSource`] over `tender-registry`'s [`ImageReader`], which
//! caps manifests, verifies blobs as they stream and caches them.

use std::path::{Path, PathBuf};

use tender_bundle::{Digest, Progress};
use tender_registry::{ImageReader, NetworkPolicy, RegistryError, Transport};

use crate::StackError;
use crate::image::sniff_media_type;
use crate::source::{BlobReader, ImageSource, Resolved};

/// Reads images from registries (the shore's fallback source).
pub struct RegistrySource {
    reader: ImageReader,
}

fn failed(reference: &str) -> impl FnOnce(RegistryError) -> StackError + '_ {
    move |source| StackError::Registry { reference: reference.into(), source }
}

impl RegistrySource {
    /// A source using `transport` and the auth file (default
    /// `~/.docker/config.json`), caching blobs under `cache_in`, under the
    /// default [`NetworkPolicy`].
    pub fn new(
        transport: Transport,
        authfile: Option<PathBuf>,
        cache_in: &Path,
    ) -> Result<Self, RegistryError> {
        Self::with_policy(transport, authfile, cache_in, NetworkPolicy::default())
    }

    /// A source as [`RegistrySource::new`] makes, under `policy`.
    pub fn with_policy(
        transport: Transport,
        authfile: Option<PathBuf>,
        cache_in: &Path,
        policy: NetworkPolicy,
    ) -> Result<Self, RegistryError> {
        Ok(RegistrySource {
            reader: ImageReader::with_policy(transport, authfile, cache_in, policy)?,
        })
    }
}

impl ImageSource for RegistrySource {
    fn covers(&self, _reference: &str) -> bool {
        true
    }

    fn resolve(&self, reference: &str) -> Result<Resolved, StackError> {
        let bytes = self.reader.fetch_manifest(reference, None).map_err(failed(reference))?;
        Ok(Resolved {
            media_type: sniff_media_type(&bytes),
            size: bytes.len() as u64,
            digest: Digest::of(&bytes),
        })
    }

    fn read_manifest(
        &self,
        reference: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<Vec<u8>, StackError> {
        if !self.reader.cached(digest).exists() {
            self.reader.fetch_manifest(reference, Some(digest)).map_err(failed(reference))?;
        }
        // Verified against digest and size here, whatever the cache holds.
        self.read_small(reference, digest, size)
    }

    fn prefetch(
        &self,
        blobs: &[(String, Digest, u64)],
        progress: &dyn Progress,
    ) -> Result<(), StackError> {
        self.reader.prefetch(blobs, progress).map_err(|e| match e {
            RegistryError::ForImage { reference, source } => {
                StackError::Registry { reference, source: *source }
            }
            e => StackError::Registry { reference: "(fetching blobs)".into(), source: e },
        })
    }

    fn open(&self, reference: &str, digest: &Digest, size: u64) -> Result<BlobReader, StackError> {
        let path = self.reader.blob(reference, digest, size).map_err(failed(reference))?;
        let f = std::fs::File::open(&path)
            .map_err(|e| StackError::Io { path: path.clone(), source: e })?;
        Ok(BlobReader {
            reader: Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
            location: path,
        })
    }
}
