//! Images from any registry, for the shore: manifests read with a cap and
//! checked against a pinned digest, blobs fetched concurrently into a
//! cache directory and verified as they stream. `tender-stack` reads
//! images for `pack` through it, for references no `sources` entry covers.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::{StreamExt, TryStreamExt, stream};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::{MediaType, ToDockerV2S2};
use sha2::{Digest as _, Sha256};
use tender_bundle::{BundleError, Digest, ErrorKind, Progress, limits::MAX_JSON_BLOB_BYTES};

use crate::policy::{NetworkPolicy, Spent, retry};
use crate::{RegistryError, Transport, auth_from_file, registry_error, runtime};

/// Reads images from registries (each host's client made on first use);
/// every call blocks.
pub struct ImageReader {
    rt: tokio::runtime::Runtime,
    transport: Transport,
    authfile: Option<PathBuf>,
    clients: Mutex<HashMap<String, (Client, RegistryAuth)>>,
    /// Per host: the client for manifests (read with a cap) and its scheme.
    bounded: Mutex<HashMap<String, (reqwest::Client, &'static str)>>,
    cache: tempfile::TempDir,
    policy: NetworkPolicy,
}

fn parse(reference: &str) -> Result<Reference, RegistryError> {
    reference.parse().map_err(|e: oci_client::ParseError| RegistryError::BadReference {
        reference: reference.into(),
        reason: e.to_string(),
    })
}

/// A request that failed for good: with the attempts when more than one
/// was made.
fn failed(spent: Spent) -> RegistryError {
    match spent.attempts {
        1 => spent.error,
        attempts => RegistryError::After { attempts, source: Box::new(spent.error) },
    }
}

impl ImageReader {
    /// A reader using `transport` and the auth file (default
    /// `~/.docker/config.json`), caching blobs in a new directory under
    /// `cache_in` (removed when the reader is dropped), under the default
    /// [`NetworkPolicy`].
    pub fn new(
        transport: Transport,
        authfile: Option<PathBuf>,
        cache_in: &Path,
    ) -> Result<Self, RegistryError> {
        Self::with_policy(transport, authfile, cache_in, NetworkPolicy::default())
    }

    /// A reader as [`ImageReader::new`] makes, under `policy`.
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
        Ok(ImageReader {
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

    /// Where the cache keeps the blob or manifest `digest` (present once
    /// fetched and verified).
    pub fn cached(&self, digest: &Digest) -> PathBuf {
        self.cache.path().join(digest.hex())
    }

    /// The manifest or index `reference` names (by tag or digest), read
    /// with a cap of [`MAX_JSON_BLOB_BYTES`] and tried again while the
    /// link fails; checked against `pinned` (or the reference's own
    /// digest) and kept in the cache under its digest.
    pub fn fetch_manifest(
        &self,
        reference: &str,
        pinned: Option<&Digest>,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut r = parse(reference)?;
        if let Some(d) = pinned {
            r = Reference::with_digest(r.registry().into(), r.repository().into(), d.to_string());
        }
        let host = r.resolve_registry();
        let (client, auth) = self.client(host)?;
        let (http, scheme) = self.bounded.lock().expect("client map")[host].clone();
        let url = format!(
            "{scheme}://{host}/v2/{}/manifests/{}",
            r.repository(),
            r.digest().or(r.tag()).unwrap_or("latest")
        );
        let accept = [MediaType::ImageIndex, MediaType::ImageManifest]
            .iter()
            .flat_map(|m| [m.to_string(), m.to_docker_v2s2().expect("has a Docker type").into()])
            .collect::<Vec<_>>()
            .join(", ");
        let what = || "fetching the manifest".to_string();
        let bytes = self
            .rt
            .block_on(retry(&self.policy, || async {
                let authorization = crate::bounded::authorization(&client, &r, &auth)
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
            }))
            .map_err(failed)?;
        let digest = Digest::of(&bytes);
        if let Some(want) = r.digest()
            && want != digest.as_str()
        {
            return Err(BundleError::DigestMismatch {
                entry: reference.into(),
                expected: want.parse()?,
                actual: digest,
            }
            .into());
        }
        let path = self.cached(&digest);
        std::fs::write(&path, &bytes).map_err(|e| RegistryError::Io { path, source: e })?;
        Ok(bytes)
    }

    /// Fetch each `(reference, digest, size)` blob the cache lacks,
    /// [`NetworkPolicy::concurrency`] at a time, verified as it streams.
    pub fn prefetch(
        &self,
        blobs: &[(String, Digest, u64)],
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        progress.start("fetch", blobs.iter().map(|(_, _, s)| s).sum());
        self.rt.block_on(
            stream::iter(blobs.iter().map(Ok::<_, RegistryError>)).try_for_each_concurrent(
                self.policy.concurrency,
                |(reference, digest, size)| async move {
                    let for_image = |e| RegistryError::ForImage {
                        reference: reference.clone(),
                        source: Box::new(e),
                    };
                    let r = parse(reference)?;
                    let (client, auth) = self.client(r.resolve_registry()).map_err(for_image)?;
                    client.auth(&r, &auth, oci_client::RegistryOperation::Pull).await.map_err(
                        |e| {
                            for_image(registry_error(
                                r.resolve_registry(),
                                "authenticating".into(),
                                &e,
                            ))
                        },
                    )?;
                    retry(&self.policy, || self.fetch_blob(&client, &r, digest, *size))
                        .await
                        .map_err(|spent| for_image(failed(spent)))?;
                    progress.advance(*size);
                    Ok(())
                },
            ),
        )?;
        progress.finish();
        Ok(())
    }

    /// The cached file of blob `digest` of `reference`'s repository,
    /// fetched and verified first if the cache lacks it.
    pub fn blob(
        &self,
        reference: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<PathBuf, RegistryError> {
        let path = self.cached(digest);
        if !path.exists() {
            let r = parse(reference)?;
            let (client, _) = self.client(r.resolve_registry())?;
            self.rt
                .block_on(retry(&self.policy, || self.fetch_blob(&client, &r, digest, size)))
                .map_err(failed)?;
        }
        Ok(path)
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

    fn reader(dir: &Path) -> ImageReader {
        let policy = NetworkPolicy {
            tries: 4,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            ..NetworkPolicy::default()
        };
        let no_auth = Some(dir.join("no-auth.json"));
        ImageReader::with_policy(Transport::TlsExceptLoopback, no_auth, dir, policy).unwrap()
    }

    #[test]
    fn a_refused_or_missing_manifest_is_asked_for_once() {
        let dir = tempfile::tempdir().unwrap();
        for (status, answer) in [(401, (|_| 401) as fn(u32) -> u16), (403, |_| 403), (404, |_| 404)]
        {
            let (host, count) = stub(answer);
            let e =
                reader(dir.path()).fetch_manifest(&format!("{host}/fleet/a:1"), None).unwrap_err();
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
        let r = reader(dir.path()).fetch_manifest(&format!("{host}/fleet/a:1"), None).unwrap();
        assert_eq!((count.load(Ordering::SeqCst), r.len()), (3, 2));
        // 429 every time: the policy's 4 tries, then the last answer.
        let (host, count) = stub(|_| 429);
        let e = reader(dir.path()).fetch_manifest(&format!("{host}/fleet/a:1"), None).unwrap_err();
        assert_eq!(count.load(Ordering::SeqCst), 4, "{e}");
        assert!(e.to_string().contains("after 4 attempts") && e.to_string().contains("HTTP 429"));
    }
}
