//! Shore side: images read from their registries over the OCI distribution
//! API, for references no `sources` entry covers.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::{StreamExt, TryStreamExt, stream};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};
use tender_bundle::{BundleError, Digest, ErrorKind, Progress, limits::MAX_JSON_BLOB_BYTES};
use tender_stack::StackError;
use tender_stack::image::{
    DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, sniff_media_type,
};
use tender_stack::source::{BlobReader, ImageSource, Resolved};

use crate::policy::{NetworkPolicy, Spent, retry};
use crate::{RegistryError, Transport, auth_from_file, registry_error, runtime};

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
    policy: NetworkPolicy,
}

fn stack_err(reference: &str, e: impl std::fmt::Display) -> StackError {
    StackError::BadImage { reference: reference.into(), reason: e.to_string() }
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
        let rt = runtime()?;
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
            policy,
        })
    }

    fn client(&self, host: &str) -> Result<(Client, RegistryAuth), RegistryError> {
        let mut clients = self.clients.lock().expect("client map");
        if let Some(c) = clients.get(host) {
            return Ok(c.clone());
        }
        let plain = self.transport.plain_hosts(host);
        let http = self.policy.http_client(host)?;
        let scheme = crate::bounded::scheme(host, &plain);
        self.bounded.lock().expect("client map").insert(host.to_owned(), (http, scheme));
        let client = Client::new(self.policy.oci_config(plain));
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
        // The error names the image already (`stack_err`).
        let what = || "fetching the manifest".to_string();
        let fetched = self.rt.block_on(retry(&self.policy, || async {
            let authorization = crate::bounded::authorization(&client, r, &auth)
                .await
                .map_err(|e| registry_error(host, what(), &e))?;
            crate::bounded::get_bounded(
                &http,
                &url,
                &accept,
                authorization.as_ref(),
                MAX_JSON_BLOB_BYTES,
            )
            .await
            .map_err(|e| RegistryError::Registry {
                registry: host.to_owned(),
                what: what(),
                reason: e.to_string(),
                kind: e.kind(),
            })
        }));
        fetched.map_err(|spent| failed(reference, spent))
    }

    /// Fetch one blob into the cache, verified as it streams.
    async fn fetch_blob(
        &self,
        client: &Client,
        r: &Reference,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        let target = self.cached(digest);
        if target.exists() {
            return Ok(());
        }
        let host = r.resolve_registry();
        let what = || format!("fetching blob {digest}");
        let cache_io = |path: &Path, e| RegistryError::Io { path: path.into(), source: e };
        let mut tmp = tempfile::NamedTempFile::new_in(self.cache.path())
            .map_err(|e| cache_io(self.cache.path(), e))?;
        let mut s = client
            .pull_blob_stream(r, digest.as_str())
            .await
            .map_err(|e| registry_error(host, what(), &e))?;
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        let entry = || format!("{} blob", r.whole());
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| RegistryError::Registry {
                registry: host.to_owned(),
                what: what(),
                reason: e.to_string(),
                kind: ErrorKind::Network,
            })?;
            n += chunk.len() as u64;
            if n > size {
                let e = BundleError::TooLarge { entry: entry(), size: n, limit: size };
                return Err(e.into());
            }
            hasher.update(&chunk);
            // The file itself: NamedTempFile's own Write adds "at path" to errors.
            tmp.as_file_mut().write_all(&chunk).map_err(|e| cache_io(tmp.path(), e))?;
        }
        // The registry served other bytes: of a kind not tried again.
        if n != size {
            let e = BundleError::SizeMismatch { entry: entry(), expected: size, actual: n };
            return Err(e.into());
        }
        let actual = Digest::from_hasher(hasher);
        if actual != *digest {
            let e =
                BundleError::DigestMismatch { entry: entry(), expected: digest.clone(), actual };
            return Err(e.into());
        }
        tmp.persist(&target).map_err(|e| cache_io(&target, e.error))?;
        Ok(())
    }
}

/// A request that failed for good, as the shore reports it: naming the
/// image, and the attempts when more than one was made.
fn failed(reference: &str, spent: Spent) -> StackError {
    match spent.attempts {
        1 => stack_err(reference, spent.error),
        n => stack_err(reference, format!("after {n} attempts: {}", spent.error)),
    }
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
                self.policy.concurrency,
                |(reference, digest, size)| async move {
                    let r = Self::parse(reference)?;
                    let (client, auth) =
                        self.client(r.resolve_registry()).map_err(|e| stack_err(reference, e))?;
                    client
                        .auth(&r, &auth, oci_client::RegistryOperation::Pull)
                        .await
                        .map_err(|e| stack_err(reference, e))?;
                    retry(&self.policy, || self.fetch_blob(&client, &r, digest, *size))
                        .await
                        .map_err(|spent| failed(reference, spent))?;
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
            self.rt
                .block_on(retry(&self.policy, || self.fetch_blob(&client, &r, digest, size)))
                .map_err(|spent| failed(reference, spent))?;
        }
        let f = std::fs::File::open(&path)
            .map_err(|e| StackError::Io { path: path.clone(), source: e })?;
        Ok(BlobReader {
            reader: Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
            location: path,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    /// A registry on 127.0.0.1 that answers `/v2/` with 200 and the n-th
    /// manifest request (from 1) with `answer(n)`'s status; counts them.
    fn stub(answer: fn(u32) -> u16) -> (String, Arc<AtomicU32>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let count = Arc::new(AtomicU32::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or("");
                let status = if path.contains("/manifests/") {
                    answer(seen.fetch_add(1, Ordering::SeqCst) + 1)
                } else {
                    200
                };
                let body = if status == 200 { "{}" } else { r#"{"errors":[]}"# };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (host, count)
    }

    fn source(dir: &Path) -> RegistrySource {
        let policy = NetworkPolicy {
            tries: 4,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            ..NetworkPolicy::default()
        };
        let no_auth = Some(dir.join("no-auth.json"));
        RegistrySource::with_policy(Transport::TlsExceptLoopback, no_auth, dir, policy).unwrap()
    }

    #[test]
    fn a_refused_or_missing_manifest_is_asked_for_once() {
        let dir = tempfile::tempdir().unwrap();
        for (status, answer) in [(401, (|_| 401) as fn(u32) -> u16), (403, |_| 403), (404, |_| 404)]
        {
            let (host, count) = stub(answer);
            let e = source(dir.path()).resolve(&format!("{host}/fleet/a:1")).unwrap_err();
            assert_eq!(count.load(Ordering::SeqCst), 1, "{status}: {e}");
            assert!(e.to_string().contains(&format!("HTTP {status}")), "{e}");
            assert!(!e.to_string().contains("attempts"), "{e}");
        }
    }

    #[test]
    fn a_busy_registry_is_asked_again_until_the_tries_are_spent() {
        let dir = tempfile::tempdir().unwrap();
        // 503 twice, then the manifest.
        let (host, count) = stub(|n| if n < 3 { 503 } else { 200 });
        let r = source(dir.path()).resolve(&format!("{host}/fleet/a:1")).unwrap();
        assert_eq!((count.load(Ordering::SeqCst), r.size), (3, 2));
        // 429 every time: the policy's 4 tries, then the last answer.
        let (host, count) = stub(|_| 429);
        let e = source(dir.path()).resolve(&format!("{host}/fleet/a:1")).unwrap_err();
        assert_eq!(count.load(Ordering::SeqCst), 4, "{e}");
        assert!(e.to_string().contains("after 4 attempts") && e.to_string().contains("HTTP 429"));
    }
}
