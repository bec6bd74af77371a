//! Pushing into a registry: an image from blob files (the ship's `load`),
//! or any artifact from small documents and ranges of files (`publish`,
//! receipts). Blobs the registry holds are not uploaded again.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures::{TryStreamExt, stream};
use oci_client::{Reference, RegistryOperation};
use oci_spec::image::{ImageManifest, MediaType};
use serde::Serialize;
use tender_bundle::limits::MAX_JSON_BLOB_BYTES;
use tender_bundle::{Digest, ImageRecord, Progress};

use crate::{Registry, RegistryError, repository_and_tag};

/// What a push did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PushReport {
    /// Images pushed: (source reference, reference in the target registry pinned by digest).
    pub images: Vec<(String, String)>,
    /// Blobs uploaded.
    pub blobs_pushed: usize,
    /// Their bytes.
    pub bytes_pushed: u64,
    /// Blobs the registry already had.
    pub blobs_present: usize,
    /// Their bytes.
    pub bytes_present: u64,
}

/// A media type as a Content-Type header; one that cannot be (control
/// characters from a hostile descriptor) is an error, not a panic.
fn header_value(media_type: &str, digest: &Digest) -> Result<http::HeaderValue, RegistryError> {
    media_type.parse().map_err(|_| RegistryError::BadManifest {
        digest: digest.clone(),
        reason: format!("media type {media_type:?} cannot be sent as a header"),
    })
}

/// One blob to upload: its bytes are `size` bytes of `path` from `offset`
/// (a blob file, or an entry inside a bundle file).
#[derive(Clone, Debug)]
pub struct BlobUpload {
    /// What the registry checks the bytes against.
    pub digest: Digest,
    /// The file holding them.
    pub path: PathBuf,
    /// Where they start in it.
    pub offset: u64,
    /// How many.
    pub size: u64,
    /// A repository of the same registry that may hold it already.
    pub mount_from: Option<String>,
}

/// What an upload did (each blob counted once).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadCounts {
    /// Blobs uploaded.
    pub pushed: usize,
    /// Their bytes.
    pub pushed_bytes: u64,
    /// Blobs the registry held already (in the repository, or mounted).
    pub present: usize,
    /// Their bytes.
    pub present_bytes: u64,
    /// Of `present`, those mounted from another repository.
    pub mounted: usize,
}

/// [`UploadCounts`], counted from concurrent uploads.
#[derive(Default)]
struct Counting {
    pushed: AtomicUsize,
    pushed_bytes: AtomicU64,
    present: AtomicUsize,
    present_bytes: AtomicU64,
    mounted: AtomicUsize,
}

impl Counting {
    fn into_counts(self) -> UploadCounts {
        UploadCounts {
            pushed: self.pushed.into_inner(),
            pushed_bytes: self.pushed_bytes.into_inner(),
            present: self.present.into_inner(),
            present_bytes: self.present_bytes.into_inner(),
            mounted: self.mounted.into_inner(),
        }
    }
}

/// A file of at most `limit` bytes, whole: a manifest named by a stored
/// descriptor cannot exhaust memory by being a layer.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, RegistryError> {
    let io = |e| RegistryError::Io { path: path.into(), source: e };
    let mut buf = Vec::new();
    std::fs::File::open(path).map_err(io)?.take(limit + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(RegistryError::TooLarge {
            registry: "(local)".into(),
            what: format!("reading {}", path.display()),
            limit,
        });
    }
    Ok(buf)
}

impl Registry {
    /// Upload, [`NetworkPolicy::concurrency`] at a time, each blob the
    /// repository of `r` lacks (one HEAD each); a blob with a `mount_from`
    /// repository in this registry is mounted from there when the registry
    /// will. Adds to `counts`.
    async fn upload_missing(
        &self,
        r: &Reference,
        blobs: &[BlobUpload],
        progress: &dyn Progress,
        counts: &Counting,
    ) -> Result<(), RegistryError> {
        stream::iter(blobs.iter().map(Ok::<_, RegistryError>))
            .try_for_each_concurrent(self.policy.concurrency, |b| async move {
                let mut held = self
                    .client
                    .blob_exists(r, b.digest.as_str())
                    .await
                    .map_err(self.err(format!("checking blob {}", b.digest)))?;
                if !held && let Some(from) = &b.mount_from {
                    let source = self.reference(from, None, Some(&b.digest));
                    held = self.client.mount_blob(r, &source, b.digest.as_str()).await.is_ok();
                    if held {
                        counts.mounted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if held {
                    counts.present.fetch_add(1, Ordering::Relaxed);
                    counts.present_bytes.fetch_add(b.size, Ordering::Relaxed);
                } else {
                    self.push_file_range(r, &b.digest, &b.path, b.offset, b.size).await?;
                    counts.pushed.fetch_add(1, Ordering::Relaxed);
                    counts.pushed_bytes.fetch_add(b.size, Ordering::Relaxed);
                }
                progress.advance(b.size);
                Ok(())
            })
            .await
    }

    /// Upload `size` bytes of `path` from `offset` as blob `digest` (the
    /// registry checks the digest of what arrives).
    async fn push_file_range(
        &self,
        r: &Reference,
        digest: &Digest,
        path: &Path,
        offset: u64,
        size: u64,
    ) -> Result<(), RegistryError> {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        let io = |e| RegistryError::Io { path: path.into(), source: e };
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(io)?;
        let body = tokio_util::io::ReaderStream::with_capacity(file.take(size), 1 << 20)
            .map_err(oci_client::errors::OciDistributionError::from);
        self.client
            .push_blob_stream(r, body, digest.as_str(), Some(size))
            .await
            .map_err(self.err(format!("pushing blob {digest} from {}", path.display())))?;
        Ok(())
    }

    /// Push one image from the store into this registry under the same
    /// repository path and tag. `blob_path` gives where a stored blob lives.
    /// Blobs the registry holds are skipped (one HEAD each). Returns the
    /// reference pinned by digest.
    pub fn push_image(
        &self,
        image: &ImageRecord,
        blob_path: &(dyn Fn(&Digest) -> PathBuf + Sync),
        progress: &dyn Progress,
        report: &mut PushReport,
    ) -> Result<String, RegistryError> {
        let (repo, tag) = repository_and_tag(&image.reference)?;
        // Manifests are read into memory: with the import's bound, so a
        // descriptor naming a layer as a manifest cannot exhaust memory.
        let read = |d: &Digest| read_bounded(&blob_path(d), MAX_JSON_BLOB_BYTES);
        // Config and layers of every platform, once.
        let mut blobs: Vec<(Digest, u64)> = Vec::new();
        let mut manifests = Vec::new();
        for p in &image.platforms {
            let bytes = read(&p.manifest)?;
            let m = ImageManifest::from_reader(&bytes[..]).map_err(|e| {
                RegistryError::BadManifest { digest: p.manifest.clone(), reason: e.to_string() }
            })?;
            for d in std::iter::once(m.config()).chain(m.layers()) {
                let digest: Digest =
                    d.digest().to_string().parse().map_err(|e: tender_bundle::BundleError| {
                        RegistryError::BadManifest {
                            digest: p.manifest.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                if !blobs.iter().any(|(b, _)| *b == digest) {
                    blobs.push((digest, d.size()));
                }
            }
            let mt = m
                .media_type()
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| MediaType::ImageManifest.to_string());
            manifests.push((p.manifest.clone(), mt, bytes));
        }
        let counts = Counting::default();
        let uploads: Vec<BlobUpload> = blobs
            .iter()
            .map(|(d, size)| BlobUpload {
                digest: d.clone(),
                path: blob_path(d),
                offset: 0,
                size: *size,
                mount_from: None,
            })
            .collect();
        progress.start("push", blobs.iter().map(|(_, s)| s).sum());
        let by_digest = self.reference(&repo, None, Some(&image.digest));
        self.rt.block_on(async {
            self.client
                .auth(&by_digest, &self.auth, RegistryOperation::Push)
                .await
                .map_err(self.err(format!("authenticating for {repo}")))?;
            self.upload_missing(&by_digest, &uploads, progress, &counts).await?;
            for (digest, mt, bytes) in &manifests {
                let r = self.reference(&repo, None, Some(digest));
                self.client
                    .push_manifest_raw(&r, bytes.clone(), header_value(mt, digest)?)
                    .await
                    .map_err(self.err(format!("pushing manifest {digest}")))?;
            }
            // The top object under the tag: an index over the platforms, or
            // the single manifest.
            let top = read(&image.digest)?;
            let target =
                self.reference(&repo, tag.as_deref(), tag.is_none().then_some(&image.digest));
            self.client
                .push_manifest_raw(&target, top, header_value(&image.media_type, &image.digest)?)
                .await
                .map_err(self.err(format!("pushing {} as {target}", image.digest)))?;
            Ok::<_, RegistryError>(())
        })?;
        progress.finish();
        let counts = counts.into_counts();
        report.blobs_pushed += counts.pushed;
        report.bytes_pushed += counts.pushed_bytes;
        report.blobs_present += counts.present;
        report.bytes_present += counts.present_bytes;
        let pinned = format!("{}/{}@{}", self.host, repo, image.digest);
        report.images.push((image.reference.clone(), pinned.clone()));
        Ok(pinned)
    }

    /// Push an artifact as `repo:tag`: the small documents `documents`
    /// (config, signatures, ...; each skipped if held), then `blobs` (as
    /// [`Registry::push_image`] does: missing ones only, mounted where
    /// they may be), then `manifest` (of `media_type`) under the tag.
    pub fn push_artifact(
        &self,
        repo: &str,
        tag: &str,
        documents: Vec<(Digest, Vec<u8>)>,
        blobs: &[BlobUpload],
        manifest: (Vec<u8>, &MediaType),
        progress: &dyn Progress,
    ) -> Result<UploadCounts, RegistryError> {
        let counts = Counting::default();
        let tagged = self.reference(repo, Some(tag), None);
        let (manifest, media_type) = manifest;
        let content_type = header_value(media_type.as_ref(), &Digest::of(&manifest))?;
        progress.start("publish", blobs.iter().map(|b| b.size).sum());
        self.rt.block_on(async {
            self.client
                .auth(&tagged, &self.auth, RegistryOperation::Push)
                .await
                .map_err(self.err(format!("authenticating for {repo}")))?;
            for (dg, bytes) in documents {
                if !self
                    .client
                    .blob_exists(&tagged, dg.as_str())
                    .await
                    .map_err(self.err(format!("checking blob {dg}")))?
                {
                    self.client
                        .push_blob(&tagged, bytes, dg.as_str())
                        .await
                        .map_err(self.err(format!("pushing blob {dg}")))?;
                }
            }
            self.upload_missing(&tagged, blobs, progress, &counts).await?;
            self.client
                .push_manifest_raw(&tagged, manifest, content_type)
                .await
                .map_err(self.err(format!("pushing the manifest as {repo}:{tag}")))?;
            Ok::<_, RegistryError>(())
        })?;
        progress.finish();
        Ok(counts.into_counts())
    }
}
