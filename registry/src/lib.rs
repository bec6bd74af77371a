//! A thin layer over `oci-client` for what tender does with registries:
//! push a verified image from the ship's store into the ship's registry,
//! skipping blobs it already holds.
//!
//! Plain HTTP is used only for loopback registries and those the operator
//! lists as insecure ([`Transport`]); everything else is TLS. Every client
//! follows one [`NetworkPolicy`] (timeouts, retries, concurrency), and a
//! request is tried again only when its error's kind says the link failed.
#![deny(missing_docs)]

mod bounded;
mod link;
mod policy;
mod source;
pub use link::{PublishReport, PullOptions, PullPlan, PullReport, Target};
pub use policy::NetworkPolicy;
pub use source::RegistrySource;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures::{TryStreamExt, stream};
pub use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use oci_spec::image::ImageManifest;
use serde::Serialize;
use tender_bundle::{Digest, ErrorKind, ImageRecord, Progress};

/// Registry errors.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A reference that cannot be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    BadReference {
        /// The reference.
        reference: String,
        /// Why.
        reason: String,
    },
    /// The registry answered with an error or could not be reached.
    #[error("registry {registry}: {what}: {reason}")]
    Registry {
        /// host:port.
        registry: String,
        /// What was being done.
        what: String,
        /// The client's error.
        reason: String,
        /// What kind of failure it is, from the answer's status or the
        /// client's error (it decides whether to try again).
        kind: ErrorKind,
    },
    /// A local file could not be read.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A registry auth file that cannot be used (its content is never quoted).
    #[error("auth file {}: {reason}", path.display())]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// A stored manifest that cannot be parsed.
    #[error("manifest {digest}: {reason}")]
    BadManifest {
        /// Its digest.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// The ship's store refused or failed.
    #[error(transparent)]
    Store(#[from] tender_store::StoreError),
    /// A bundle check failed.
    #[error(transparent)]
    Bundle(#[from] tender_bundle::BundleError),
    /// What was given or found is not a publishable or pullable bundle.
    #[error("{what}: {reason}")]
    NotABundle {
        /// The file or reference.
        what: String,
        /// Why.
        reason: String,
    },
    /// Too many failed attempts in a row; what arrived is kept.
    #[error(
        "registry {registry}: gave up {what} after {attempts} failed attempts in a row ({kept} bytes of it kept in staging, blobs already fetched kept in the store; a rerun resumes): {reason}"
    )]
    GaveUp {
        /// host:port.
        registry: String,
        /// What was being done.
        what: String,
        /// Attempts made without progress.
        attempts: u32,
        /// Bytes kept for the next run.
        kept: u64,
        /// The last error.
        reason: String,
    },
    /// A registry's answer larger than tender reads (a manifest, a
    /// descriptor): refused as it streamed, before it filled memory.
    #[error("registry {registry}: {what}: larger than {limit} bytes (refused as it came)")]
    TooLarge {
        /// host:port.
        registry: String,
        /// What was being read.
        what: String,
        /// The cap.
        limit: u64,
    },
    /// The async runtime could not start.
    #[error("cannot start the network runtime: {0}")]
    Runtime(std::io::Error),
}

impl RegistryError {
    /// What kind of failure this is: a registry's answer or a failed
    /// request is of the kind found when it happened; what the store or a
    /// bundle check refused keeps its own kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Registry { kind, .. } => *kind,
            RegistryError::Store(e) => e.kind(),
            RegistryError::Bundle(e) => e.kind(),
            // A rerun resumes: the link failed, tries and all.
            RegistryError::GaveUp { .. } => ErrorKind::Network,
            RegistryError::BadReference { .. }
            | RegistryError::AuthFile { .. }
            | RegistryError::BadManifest { .. }
            | RegistryError::NotABundle { .. }
            | RegistryError::TooLarge { .. } => ErrorKind::Invalid,
            RegistryError::Io { .. } | RegistryError::Runtime(_) => ErrorKind::Local,
        }
    }
}

/// How to reach a registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// TLS for every registry but loopback ones (the default).
    #[default]
    TlsExceptLoopback,
    /// Also plain HTTP for these `host:port`s, named by the operator.
    PlainHttpFor(Vec<String>),
}

impl Transport {
    /// The hosts reached over plain HTTP when talking to `host`: those the
    /// operator named, and `host` itself if it is a loopback address.
    fn plain_hosts(&self, host: &str) -> Vec<String> {
        let mut plain = match self {
            Transport::TlsExceptLoopback => vec![],
            Transport::PlainHttpFor(v) => v.clone(),
        };
        if is_loopback(host) {
            plain.push(host.to_owned());
        }
        plain
    }
}

/// The runtime each client runs its requests on.
fn runtime() -> Result<tokio::runtime::Runtime, RegistryError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RegistryError::Runtime)
}

/// An oci-client error while talking to `host`, of the kind it is.
fn registry_error(
    host: &str,
    what: String,
    e: &oci_client::errors::OciDistributionError,
) -> RegistryError {
    RegistryError::Registry {
        registry: host.to_owned(),
        what,
        reason: e.to_string(),
        kind: policy::oci_kind(e),
    }
}

/// Whether `host[:port]` is a loopback address.
pub fn is_loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) { h } else { registry }
    });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Strip the registry host from a reference: `shore.example/fleet/a:1` ->
/// (`fleet/a`, Some(`1`)). Docker Hub short names keep their `library/`.
pub fn repository_and_tag(reference: &str) -> Result<(String, Option<String>), RegistryError> {
    let r: Reference = reference.parse().map_err(|e: oci_client::ParseError| {
        RegistryError::BadReference { reference: reference.into(), reason: e.to_string() }
    })?;
    Ok((r.repository().to_owned(), r.tag().map(String::from)))
}

/// The repository of `reference` with its registry host, as a container
/// runtime names it: `nginx:1` is in `docker.io/library/nginx`.
pub fn qualified_repository(reference: &str) -> Result<String, RegistryError> {
    let r: Reference = reference.parse().map_err(|e: oci_client::ParseError| {
        RegistryError::BadReference { reference: reference.into(), reason: e.to_string() }
    })?;
    Ok(format!("{}/{}", r.registry(), r.repository()))
}

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

/// One blob to upload: its bytes are `size` bytes of `path` from `offset`.
struct Upload {
    digest: Digest,
    path: PathBuf,
    offset: u64,
    size: u64,
    /// A repository of the same registry that may hold it already.
    mount_from: Option<String>,
}

/// What [`Registry::upload_missing`] did.
#[derive(Default)]
struct UploadCounts {
    pushed: AtomicUsize,
    pushed_bytes: AtomicU64,
    present: AtomicUsize,
    present_bytes: AtomicU64,
    mounted: AtomicUsize,
}

/// A registry client with its own runtime; every call blocks.
pub struct Registry {
    rt: tokio::runtime::Runtime,
    client: Client,
    /// For the documents read with a byte cap (see `bounded`).
    http: reqwest::Client,
    /// `http` or `https`, as `client` reaches `host`.
    scheme: &'static str,
    host: String,
    auth: RegistryAuth,
    policy: NetworkPolicy,
}

/// Read `auths` from a Docker config file (`~/.docker/config.json` or
/// `--authfile`): Basic credentials for `host`, if any. Errors say what is
/// wrong and where, never quoting the file: it holds credentials.
pub fn auth_from_file(path: &Path, host: &str) -> Result<RegistryAuth, RegistryError> {
    use base64::Engine as _;
    let bad = |reason: String| RegistryError::AuthFile { path: path.into(), reason };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(bad("is not UTF-8 text".into()));
        }
        Err(e) => return Err(RegistryError::Io { path: path.into(), source: e }),
    };
    // serde_json's messages quote no input, but the position is all that
    // is needed, so only it is shown.
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "is not valid JSON: the error is at line {}, column {} (content not shown)",
            e.line(),
            e.column()
        ))
    })?;
    let Some(entry) = v["auths"].get(host).or_else(|| v["auths"].get(format!("https://{host}")))
    else {
        return Ok(RegistryAuth::Anonymous);
    };
    if let Some(token) = entry["registrytoken"].as_str() {
        return Ok(RegistryAuth::Bearer(token.into()));
    }
    let Some(b64) = entry["auth"].as_str() else { return Ok(RegistryAuth::Anonymous) };
    // The decoder's message names the offending byte: not shown.
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| {
        bad(format!("the \"auth\" of {host} is not valid base64 (content not shown)"))
    })?;
    let raw = String::from_utf8_lossy(&raw);
    let (user, pass) = raw.split_once(':').unwrap_or((&raw, ""));
    Ok(RegistryAuth::Basic(user.into(), pass.into()))
}

impl Registry {
    /// A client for the registry at `host` (`host:port`), under the
    /// default [`NetworkPolicy`].
    pub fn new(
        host: &str,
        transport: &Transport,
        auth: RegistryAuth,
    ) -> Result<Registry, RegistryError> {
        Registry::with_policy(host, transport, auth, NetworkPolicy::default())
    }

    /// A client for the registry at `host` under `policy`.
    pub fn with_policy(
        host: &str,
        transport: &Transport,
        auth: RegistryAuth,
        policy: NetworkPolicy,
    ) -> Result<Registry, RegistryError> {
        let plain = transport.plain_hosts(host);
        let http = policy.http_client(host)?;
        let scheme = bounded::scheme(host, &plain);
        Ok(Registry {
            rt: runtime()?,
            client: Client::new(policy.oci_config(plain)),
            http,
            scheme,
            host: host.to_owned(),
            auth,
            policy,
        })
    }

    fn err(
        &self,
        what: String,
    ) -> impl FnOnce(oci_client::errors::OciDistributionError) -> RegistryError + '_ {
        move |e| registry_error(&self.host, what, &e)
    }

    fn reference(&self, repo: &str, tag: Option<&str>, digest: Option<&Digest>) -> Reference {
        match (tag, digest) {
            (_, Some(d)) => Reference::with_digest(self.host.clone(), repo.into(), d.to_string()),
            (Some(t), None) => Reference::with_tag(self.host.clone(), repo.into(), t.into()),
            (None, None) => Reference::with_tag(self.host.clone(), repo.into(), "latest".into()),
        }
    }

    /// Upload, [`NetworkPolicy::concurrency`] at a time, each blob the
    /// repository of `r` lacks (one HEAD each); a blob with a `mount_from`
    /// repository in this registry is mounted from there when the registry
    /// will. Adds to `counts`.
    async fn upload_missing(
        &self,
        r: &Reference,
        blobs: &[Upload],
        progress: &dyn Progress,
        counts: &UploadCounts,
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
        let read = |d: &Digest| {
            tender_store::read_bounded(&blob_path(d), tender_bundle::limits::MAX_JSON_BLOB_BYTES)
        };
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
                .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
            manifests.push((p.manifest.clone(), mt, bytes));
        }
        let counts = UploadCounts::default();
        let uploads: Vec<Upload> = blobs
            .iter()
            .map(|(d, size)| Upload {
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
        report.blobs_pushed += counts.pushed.into_inner();
        report.bytes_pushed += counts.pushed_bytes.into_inner();
        report.blobs_present += counts.present.into_inner();
        report.bytes_present += counts.present_bytes.into_inner();
        let pinned = format!("{}/{}@{}", self.host, repo, image.digest);
        report.images.push((image.reference.clone(), pinned.clone()));
        Ok(pinned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for yes in ["localhost:32000", "127.0.0.1:5000", "[::1]:5000", "localhost"] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["registry.example:443", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn strips_the_registry_host() {
        assert_eq!(
            repository_and_tag("shore.example/fleet/sensor-fusion:1.1.0").unwrap(),
            ("fleet/sensor-fusion".into(), Some("1.1.0".into()))
        );
        assert_eq!(
            repository_and_tag("127.0.0.1:5000/a/b:2").unwrap(),
            ("a/b".into(), Some("2".into()))
        );
        let (repo, tag) =
            repository_and_tag(&format!("r.example/a@sha256:{}", "0".repeat(64))).unwrap();
        assert_eq!((repo.as_str(), tag), ("a", None));
    }
}
