//! tender's OCI distribution client, and nothing else: it knows images,
//! blobs and the tender artifact's documents (`tender-bundle`), never a
//! stack file or the ship's store. The shore's registry source and
//! `publish` (`tender-stack`) and the ship's `pull` (`tender-pull`) and
//! `load` (`tender-deploy`) are built on it.
//!
//! - [`Registry`]: one registry; push an image from files
//!   ([`Registry::push_image`]), push an artifact ([`Registry::push_artifact`]),
//!   read a published bundle's documents ([`Registry::fetch_artifact`]) and
//!   fetch blobs into a resumable [`BlobSink`] ([`Registry::fetch_blobs`]).
//! - [`ImageReader`]: images from any registry, for the shore: manifests
//!   read with a cap, blobs verified as they stream into a cache.
//!
//! Plain HTTP is used only for loopback registries and those the operator
//! lists as insecure ([`Transport`]); everything else is TLS. Every client
//! follows one [`NetworkPolicy`] (timeouts, retries, concurrency), and a
//! request is tried again only when its error's kind says the link failed.
#![deny(missing_docs)]

mod bounded;
mod fetch;
mod images;
mod policy;
mod push;
mod target;
pub use fetch::{BlobSink, FetchReport, FetchedArtifact, LayerOf, SinkError, WantedBlob};
pub use images::ImageReader;
pub use policy::NetworkPolicy;
pub use push::{BlobUpload, PushReport, UploadCounts};
pub use target::{Target, is_repository, is_tag};

use std::path::{Path, PathBuf};

pub use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tender_bundle::{Digest, ErrorKind};

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
    /// Where fetched bytes go (the ship's store) refused or failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Fetching a blob of an image failed (from a batch of many images).
    #[error("image {reference}: {source}")]
    ForImage {
        /// The image's reference.
        reference: String,
        /// The failure.
        source: Box<RegistryError>,
    },
    /// A request that failed for good after more than one attempt.
    #[error("after {attempts} attempts: {source}")]
    After {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        source: Box<RegistryError>,
    },
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
    /// A stored manifest larger than a manifest may be (read before it is
    /// pushed; a descriptor may name a layer as a manifest).
    #[error("{}: larger than {limit} bytes, the most a manifest may have; refused", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
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
            RegistryError::Sink(e) => e.kind(),
            RegistryError::After { source, .. } | RegistryError::ForImage { source, .. } => {
                source.kind()
            }
            RegistryError::Bundle(e) => e.kind(),
            // A rerun resumes: the link failed, tries and all.
            RegistryError::GaveUp { .. } => ErrorKind::Network,
            RegistryError::BadReference { .. }
            | RegistryError::AuthFile { .. }
            | RegistryError::BadManifest { .. }
            | RegistryError::NotABundle { .. }
            | RegistryError::TooLarge { .. }
            | RegistryError::FileTooLarge { .. } => ErrorKind::Invalid,
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
        let scheme = bounded::scheme(host, &plain);
        // Each HTTP client loads the system's trust store as it is built
        // (oci-client builds two): tens of milliseconds each, so ours is
        // built beside them rather than after.
        let (client, http) = std::thread::scope(|s| {
            let http = s.spawn(|| policy.http_client(host));
            let client = Client::new(policy.oci_config(plain));
            (client, http.join().expect("building a client does not panic"))
        });
        Ok(Registry {
            rt: runtime()?,
            client,
            http: http?,
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

    /// The registry's `host:port`.
    pub fn host(&self) -> &str {
        &self.host
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
