//! Shore side: images read from their registries over the OCI distribution
//! API, for references no `sources` entry covers.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};
use tender_bundle::{Digest, Progress, limits::MAX_JSON_BLOB_BYTES};
use tender_stack::StackError;
use tender_stack::image::{
    DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, sniff_media_type,
};
use tender_stack::source::{BlobReader, ImageSource, Resolved};

use crate::{RegistryError, Transport, auth_from_file, is_loopback};

/// Attempts per request before giving up; waits double from 500 ms.
pub const ATTEMPTS: u32 = 4;

/// Reads images from registries; blobs are fetched concurrently into a
/// cache directory, verified while they stream, and only then read.
pub struct RegistrySource {
    rt: tokio::runtime::Runtime,
    transport: Transport,
    authfile: Option<PathBuf>,
    clients: Mutex<HashMap<String, (Client, RegistryAuth)>>,
    /// Per host: the client for manifests (read with a cap) and its scheme.
    bounded: Mutex<HashMap<String, (reqwest::Client, &'static str)>>,
    cache: tempfile::TempDir,
    concurrency: usize,
}

fn stack_err(reference: &str, e: impl std::fmt::Display) -> StackError {
    StackError::BadImage { reference: reference.into(), reason: e.to_string() }
}

impl RegistrySource {
    /// A source using `transport` and the auth file (default
    /// `~/.docker/config.json`), caching blobs under `cache_in`.
    pub fn new(
        transport: Transport,
        authfile: Option<PathBuf>,
        cache_in: &Path,
    ) -> Result<Self, RegistryError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(RegistryError::Runtime)?;
        let cache = tempfile::Builder::new()
            .prefix(".tender-fetch-")
            .tempdir_in(cache_in)
            .map_err(|e| RegistryError::Io { path: cache_in.into(), source: e })?;
        Ok(RegistrySource {
            rt,
            transport,
            authfile,
            clients: Mutex::new(HashMap::new()),
            bounded: Mutex::new(HashMap::new()),
            cache,
            concurrency: 4,
        })
    }

    fn client(&self, host: &str) -> Result<(Client, RegistryAuth), RegistryError> {
        let mut clients = self.clients.lock().expect("client map");
        if let Some(c) = clients.get(host) {
            return Ok(c.clone());
        }
        let mut plain = match &self.transport {
            Transport::TlsExceptLoopback => vec![],
            Transport::PlainHttpFor(v) => v.clone(),
        };
        if is_loopback(host) {
            plain.push(host.to_owned());
        }
        let http = crate::bounded::client(None).map_err(|reason| RegistryError::Registry {
            registry: host.to_owned(),
            what: "setting up the HTTP client".into(),
            reason,
        })?;
        let scheme = crate::bounded::scheme(host, &plain);
        self.bounded.lock().expect("client map").insert(host.to_owned(), (http, scheme));
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            ..Default::default()
        });
        let authfile = match &self.authfile {
            Some(p) => Some(p.clone()),
            None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json")),
        };
        let auth = match authfile {
            Some(p) => auth_from_file(&p, host)?,
            None => RegistryAuth::Anonymous,
        };
        clients.insert(host.to_owned(), (client.clone(), auth.clone()));
        Ok((client, auth))
    }

    fn parse(reference: &str) -> Result<Reference, StackError> {
        reference.parse().map_err(|e: oci_client::ParseError| stack_err(reference, e))
    }

    fn cached(&self, digest: &Digest) -> PathBuf {
        self.cache.path().join(digest.hex())
    }

    /// Fetch a manifest (by tag or digest) with retries; returns its bytes,
    /// refused as soon as they pass [`MAX_JSON_BLOB_BYTES`].
    fn fetch_manifest(&self, reference: &str, r: &Reference) -> Result<Vec<u8>, StackError> {
        let host = r.resolve_registry();
        let (client, auth) = self.client(host).map_err(|e| stack_err(reference, e))?;
        let (http, scheme) = self.bounded.lock().expect("client map")[host].clone();
        let url = format!(
            "{scheme}://{host}/v2/{}/manifests/{}",
            r.repository(),
            r.digest().or(r.tag()).unwrap_or("latest")
        );
        let accept = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(", ");
        self.rt.block_on(retry(reference, || async {
            let authorization = crate::bounded::authorization(&client, r, &auth)
                .await
                .map_err(|e| e.to_string())?;
            crate::bounded::get_bounded(
                &http,
                &url,
                &accept,
                authorization.as_ref(),
                MAX_JSON_BLOB_BYTES,
            )
            .await
            .map_err(|e| e.to_string())
        }))
    }

    async fn fetch_blob(
        &self,
        client: &Client,
        r: &Reference,
        digest: &Digest,
        size: u64,
    ) -> Result<(), String> {
        let target = self.cached(digest);
        if target.exists() {
            return Ok(());
        }
        let mut tmp =
            tempfile::NamedTempFile::new_in(self.cache.path()).map_err(|e| e.to_string())?;
        let mut s = client.pull_blob_stream(r, digest.as_str()).await.map_err(|e| e.to_string())?;
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            n += chunk.len() as u64;
            if n > size {
                return Err(format!("blob {digest} is longer than its {size} bytes"));
            }
            hasher.update(&chunk);
            tmp.as_file_mut()
                .write_all(&chunk)
                .map_err(|e| format!("{}: {e}", tmp.path().display()))?;
        }
        let actual = Digest::from_hasher(hasher);
        if n != size || actual != *digest {
            // Not retried as a network fault would be: the registry served other bytes.
            return Err(format!(
                "blob {digest}: got {n} bytes hashing to {actual}, expected {size} bytes"
            ));
        }
        tmp.persist(&target).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Run `f` up to [`ATTEMPTS`] times, backing off; the last error wins.
async fn retry<T, F, Fut>(reference: &str, f: F) -> Result<T, StackError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut wait = Duration::from_millis(500);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Err(stack_err(reference, format!("after {ATTEMPTS} attempts: {last}")))
}

impl ImageSource for RegistrySource {
    fn covers(&self, _reference: &str) -> bool {
        true
    }

    fn resolve(&self, reference: &str) -> Result<Resolved, StackError> {
        let r = Self::parse(reference)?;
        let bytes = self.fetch_manifest(reference, &r)?;
        let digest = Digest::of(&bytes);
        if let Some(pinned) = r.digest()
            && pinned != digest.as_str()
        {
            return Err(tender_bundle::BundleError::DigestMismatch {
                entry: reference.into(),
                expected: pinned.parse().map_err(|e| stack_err(reference, e))?,
                actual: digest,
            }
            .into());
        }
        std::fs::write(self.cached(&digest), &bytes)
            .map_err(|e| StackError::Io { path: self.cached(&digest), source: e })?;
        Ok(Resolved { media_type: sniff_media_type(&bytes), size: bytes.len() as u64, digest })
    }

    fn read_manifest(
        &self,
        reference: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<Vec<u8>, StackError> {
        if !self.cached(digest).exists() {
            let r = Self::parse(reference)?;
            let by_digest = Reference::with_digest(
                r.registry().into(),
                r.repository().into(),
                digest.to_string(),
            );
            let bytes = self.fetch_manifest(reference, &by_digest)?;
            std::fs::write(self.cached(digest), &bytes)
                .map_err(|e| StackError::Io { path: self.cached(digest), source: e })?;
        }
        // Verified against digest and size here, whatever the cache holds.
        self.read_small(reference, digest, size)
    }

    fn prefetch(
        &self,
        blobs: &[(String, Digest, u64)],
        progress: &dyn Progress,
    ) -> Result<(), StackError> {
        progress.start("fetch", blobs.iter().map(|(_, _, s)| s).sum());
        self.rt.block_on(
            stream::iter(blobs.iter().map(Ok::<_, StackError>)).try_for_each_concurrent(
                self.concurrency,
                |(reference, digest, size)| async move {
                    let r = Self::parse(reference)?;
                    let (client, auth) =
                        self.client(r.resolve_registry()).map_err(|e| stack_err(reference, e))?;
                    client
                        .auth(&r, &auth, oci_client::RegistryOperation::Pull)
                        .await
                        .map_err(|e| stack_err(reference, e))?;
                    retry(reference, || self.fetch_blob(&client, &r, digest, *size)).await?;
                    progress.advance(*size);
                    Ok(())
                },
            ),
        )?;
        progress.finish();
        Ok(())
    }

    fn open(&self, reference: &str, digest: &Digest, size: u64) -> Result<BlobReader, StackError> {
        let path = self.cached(digest);
        if !path.exists() {
            let r = Self::parse(reference)?;
            let (client, _) =
                self.client(r.resolve_registry()).map_err(|e| stack_err(reference, e))?;
            self.rt.block_on(retry(reference, || self.fetch_blob(&client, &r, digest, size)))?;
        }
        let f = std::fs::File::open(&path)
            .map_err(|e| StackError::Io { path: path.clone(), source: e })?;
        Ok(BlobReader {
            reader: Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
            location: path,
        })
    }
}
