//! Reading a published bundle: its documents, read with caps, and its
//! blobs, fetched into a [`BlobSink`] (the ship's staging) that can be
//! resumed inside a blob (HTTP Range) after a dropped connection or a
//! killed process, optionally under a rate cap.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::future::{Either, select};
use oci_client::client::BlobResponse;
use oci_spec::image::MediaType;
use sha2::{Digest as _, Sha256};
use tender_bundle::artifact::parse_artifact;
use tender_bundle::limits::{MAX_DESCRIPTOR_BYTES, MAX_SIGNATURES_BYTES};
use tender_bundle::{Digest, ErrorKind, Progress, Signatures, Writeback};
use tender_keys::Signature;
use tokio_util::sync::CancellationToken;

use crate::bounded::{self, GetError};
use crate::policy::{Backoff, retry};
use crate::{Registry, RegistryError, Target};

/// A published bundle's documents, as fetched: not yet verified.
pub struct FetchedArtifact {
    /// The descriptor's bytes (the artifact's config).
    pub descriptor: Vec<u8>,
    /// The keyring it carries, if any.
    pub keyring: Option<Vec<u8>>,
    /// Its signatures.
    pub signatures: Vec<Signature>,
}

/// A blob to fetch: the digest and size a signed document gives for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size: more is refused as it arrives.
    pub size: u64,
}

/// Where fetched blobs go, a partial file each, kept across runs: the
/// ship's store implements it over its staging.
pub trait BlobSink: Sync {
    /// The partial file of `blob` opened for appending, and how many bytes
    /// it holds.
    fn open(&self, blob: &WantedBlob) -> Result<(File, u64), SinkError>;
    /// The registry ignored the range: empty the partial.
    fn restart(&self, blob: &WantedBlob, file: &mut File) -> Result<(), SinkError>;
    /// The partial holds `blob.size` bytes, whose SHA-256 is `written`
    /// (hashed as they were written, and read back for bytes an earlier run
    /// left): check and keep them. An error means they were bad and the
    /// partial is gone (fetched once more).
    fn complete(&self, blob: &WantedBlob, written: &Digest) -> Result<(), SinkError>;
    /// The registry sent more than signed: remove the partial.
    fn discard(&self, blob: &WantedBlob);
    /// Where the partial is (for errors).
    fn path(&self, blob: &WantedBlob) -> PathBuf;
}

/// A sink's failure, of the kind its own error says.
#[derive(Debug)]
pub struct SinkError {
    kind: ErrorKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl SinkError {
    /// `source`, of `kind`.
    pub fn new(kind: ErrorKind, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        SinkError { kind, source: Box::new(source) }
    }

    /// An error already boxed, of `kind`.
    pub fn boxed(kind: ErrorKind, source: Box<dyn std::error::Error + Send + Sync>) -> Self {
        SinkError { kind, source }
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The sink's own error (for a caller that wants its type back).
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync> {
        self.source
    }
}

// Transparent: shown and chained as the sink's own error.
impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

/// Given an artifact manifest's bytes, the one blob wanted from it
/// (digest, size), or why the manifest is refused.
pub type LayerOf<'a> = dyn Fn(&[u8]) -> Result<(Digest, u64), RegistryError> + 'a;

/// What [`Registry::fetch_blobs`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Blob bytes received.
    pub bytes_fetched: u64,
    /// Requests that resumed a blob from an offset (after a drop or a kill).
    pub resumed_requests: u32,
}

/// Keeps the average rate at or under a cap (a token bucket): a pause (a
/// request's round trip, a retry's wait) may be made up for by a burst of
/// at most [`PACE_CREDIT`] of the cap, never more. Shared by every stream
/// of a fetch, so the cap holds for their sum.
struct Pace {
    rate: Option<u64>,
    start: tokio::time::Instant,
    bytes: u64,
}

/// How much time at the cap a pause may bank.
const PACE_CREDIT: Duration = Duration::from_millis(250);

impl Pace {
    /// Count `n` bytes received: when the cap says to wait, until when.
    fn take(&mut self, n: u64) -> Option<tokio::time::Instant> {
        let rate = self.rate?;
        self.bytes += n;
        let due = self.start + Duration::from_secs_f64(self.bytes as f64 / rate as f64);
        let now = tokio::time::Instant::now();
        if due > now {
            return Some(due);
        }
        if now - due > PACE_CREDIT {
            // Long behind schedule: the past beyond the credit does not count.
            self.start += (now - due) - PACE_CREDIT;
        }
        None
    }
}

/// What the streams of one [`Registry::fetch_blobs`] share.
struct Shared<'a> {
    pace: Mutex<Pace>,
    bytes_fetched: AtomicU64,
    resumed_requests: AtomicU32,
    progress: &'a dyn Progress,
}

impl Shared<'_> {
    /// `n` more bytes arrived: count them, and wait as long as the cap says.
    async fn received(&self, n: u64) {
        self.bytes_fetched.fetch_add(n, Ordering::Relaxed);
        self.progress.advance(n);
        let due = self.pace.lock().expect("pace").take(n);
        if let Some(due) = due {
            tokio::time::sleep_until(due).await;
        }
    }
}

impl Registry {
    fn blob_ref(&self, t: &Target, d: &str) -> oci_client::Reference {
        oci_client::Reference::with_digest(self.host.clone(), t.repo.clone(), d.into())
    }

    /// A document of at most `limit` bytes at `path` (under `/v2/REPO/`),
    /// read with the cap applied as it streams.
    async fn fetch_bounded(
        &self,
        t: &Target,
        path: &str,
        accept: &str,
        authorization: Option<&http::HeaderValue>,
        what: String,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let url = format!("{}://{}/v2/{}/{path}", self.scheme, self.host, t.repo);
        bounded::get_bounded(&self.http, &url, accept, authorization, limit).await.map_err(|e| {
            match e {
                GetError::TooLarge { limit } => {
                    RegistryError::TooLarge { registry: self.host.clone(), what, limit }
                }
                e => RegistryError::Registry {
                    registry: self.host.clone(),
                    what,
                    reason: e.to_string(),
                    kind: e.kind(),
                },
            }
        })
    }

    /// A small blob, whole, checked against its digest.
    async fn fetch_small(
        &self,
        t: &Target,
        digest: &str,
        authorization: Option<&http::HeaderValue>,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let out = self
            .fetch_bounded(
                t,
                &format!("blobs/{digest}"),
                "*/*",
                authorization,
                format!("fetching blob {digest}"),
                limit,
            )
            .await?;
        let actual = Digest::from_hasher(Sha256::new_with_prefix(&out));
        if actual.as_str() != digest {
            return Err(tender_bundle::BundleError::DigestMismatch {
                entry: format!("{t} blob"),
                expected: digest.parse()?,
                actual,
            }
            .into());
        }
        Ok(out)
    }

    /// The artifact's descriptor and signatures (unverified: the caller
    /// verifies before parsing). Every answer is read with a cap.
    async fn fetch_artifact_once(
        &self,
        t: &Target,
        authorization: Option<&http::HeaderValue>,
    ) -> Result<FetchedArtifact, RegistryError> {
        let not = |reason: String| RegistryError::NotABundle { what: t.to_string(), reason };
        // Any manifest is smaller than a descriptor: it lists the blobs
        // the descriptor lists, and little else.
        let bytes = self
            .fetch_bounded(
                t,
                &format!("manifests/{}", t.tag),
                &format!("{}, {}", MediaType::ImageManifest, MediaType::ImageIndex),
                authorization,
                format!("fetching the manifest of {t}"),
                MAX_DESCRIPTOR_BYTES,
            )
            .await?;
        let refs = parse_artifact(&bytes).map_err(|e| not(e.to_string()))?;
        let (config, sigs) = (refs.descriptor.to_string(), refs.signatures.to_string());
        let raw = self.fetch_small(t, &config, authorization, MAX_DESCRIPTOR_BYTES).await?;
        let sigs = self.fetch_small(t, &sigs, authorization, MAX_SIGNATURES_BYTES).await?;
        let keyring = match &refs.keyring {
            Some((d, _)) => Some(
                self.fetch_small(
                    t,
                    d.as_str(),
                    authorization,
                    tender_keys::keyring::MAX_KEYRING_BYTES,
                )
                .await?,
            ),
            None => None,
        };
        Ok(FetchedArtifact {
            descriptor: raw,
            keyring,
            signatures: Signatures::parse(&sigs)?.signatures,
        })
    }

    /// The documents of the tender artifact at `t` (descriptor,
    /// signatures, keyring), each read with its cap and checked against
    /// the digest the artifact manifest names; unverified: the caller's
    /// trust gate judges them. Tried again while the link fails.
    pub fn fetch_artifact(&self, t: &Target) -> Result<FetchedArtifact, RegistryError> {
        self.rt.block_on(async {
            let tagged = self.reference(&t.repo, Some(&t.tag), None);
            // Tried again only while the link fails: the last error as it is.
            retry(&self.policy, || async {
                let authorization = bounded::authorization(&self.client, &tagged, &self.auth)
                    .await
                    .map_err(self.err(format!("authenticating for {}", t.repo)))?;
                self.fetch_artifact_once(t, authorization.as_ref()).await
            })
            .await
            .map_err(|spent| spent.error)
        })
    }

    /// A small artifact at `t`: its manifest (read with `manifest_cap`),
    /// handed to `layer` which names the one blob wanted (digest, size),
    /// then that blob, read with its size as the cap and checked against
    /// its digest. Unverified beyond the digest. Tried again while the
    /// link fails.
    pub fn fetch_small_artifact(
        &self,
        t: &Target,
        manifest_cap: u64,
        layer: &LayerOf<'_>,
    ) -> Result<Vec<u8>, RegistryError> {
        self.rt.block_on(async {
            let tagged = self.reference(&t.repo, Some(&t.tag), None);
            retry(&self.policy, || async {
                let authorization = bounded::authorization(&self.client, &tagged, &self.auth)
                    .await
                    .map_err(self.err(format!("authenticating for {}", t.repo)))?;
                let manifest = self
                    .fetch_bounded(
                        t,
                        &format!("manifests/{}", t.tag),
                        MediaType::ImageManifest.as_ref(),
                        authorization.as_ref(),
                        format!("fetching the manifest of {t}"),
                        manifest_cap,
                    )
                    .await?;
                let (digest, size) = layer(&manifest)?;
                self.fetch_small(t, digest.as_str(), authorization.as_ref(), size).await
            })
            .await
            .map_err(|spent| spent.error)
        })
    }

    /// The tags of `repo` (the registry's first answer, up to 1000).
    /// Tried again while the link fails.
    pub fn list_tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        self.rt.block_on(async {
            let r = self.reference(repo, None, None);
            retry(&self.policy, || async {
                self.client
                    .list_tags(&r, &self.auth, Some(1000), None)
                    .await
                    .map(|t| t.tags)
                    .map_err(self.err(format!("listing the tags of {repo}")))
            })
            .await
            .map_err(|spent| spent.error)
        })
    }

    /// Fetch each of `blobs` from the repository of `t` into `sink`: up to
    /// [`NetworkPolicy::concurrency`](crate::NetworkPolicy) at once, largest
    /// first; under a rate cap (`limit_rate`, bytes per second on average),
    /// one at a time. A blob resumes from what its partial holds (HTTP
    /// Range), after a dropped link, a killed process or a restart; the sink
    /// checks each when it is whole. The first failure stops the other
    /// streams (what they fetched stays in their partials).
    pub fn fetch_blobs(
        &self,
        t: &Target,
        blobs: &[WantedBlob],
        sink: &dyn BlobSink,
        limit_rate: Option<u64>,
        progress: &dyn Progress,
    ) -> Result<FetchReport, RegistryError> {
        // Under a cap, one stream: each more would fill its own socket
        // buffers past the cap, and a thin link gains nothing from them.
        let streams = match limit_rate {
            Some(_) => 1,
            None => self.policy.concurrency.max(1),
        };
        // Largest first: the longest blob starts at once, and the small
        // ones fill the other streams around it.
        let mut order: Vec<&WantedBlob> = blobs.iter().collect();
        order.sort_by_key(|b| std::cmp::Reverse(b.size));
        let shared = Shared {
            pace: Mutex::new(Pace {
                rate: limit_rate,
                start: tokio::time::Instant::now(),
                bytes: 0,
            }),
            bytes_fetched: AtomicU64::new(0),
            resumed_requests: AtomicU32::new(0),
            progress,
        };
        let next = AtomicUsize::new(0);
        let stop = CancellationToken::new();
        let failed: Mutex<Option<RegistryError>> = Mutex::new(None);
        // A thread per stream, each driving its fetches on the shared
        // runtime: writing and checking a blob (the sink's blocking work)
        // then holds up no other stream.
        std::thread::scope(|s| {
            for _ in 0..streams.min(order.len()) {
                s.spawn(|| {
                    while let Some(blob) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if stop.is_cancelled() {
                            break;
                        }
                        progress.item(blob.digest.as_str());
                        let one = self.rt.block_on(async {
                            let fetch = pin!(self.fetch_blob(t, blob, sink, &shared));
                            match select(fetch, pin!(stop.cancelled())).await {
                                Either::Left((result, _)) => result,
                                Either::Right(_) => Ok(()),
                            }
                        });
                        if let Err(e) = one {
                            failed.lock().expect("first failure").get_or_insert(e);
                            stop.cancel();
                            break;
                        }
                    }
                });
            }
        });
        if let Some(e) = failed.into_inner().expect("first failure") {
            return Err(e);
        }
        Ok(FetchReport {
            bytes_fetched: shared.bytes_fetched.into_inner(),
            resumed_requests: shared.resumed_requests.into_inner(),
        })
    }

    /// Fetch one blob into its partial file, resuming from what it holds,
    /// then have the sink check and keep it.
    async fn fetch_blob(
        &self,
        t: &Target,
        blob: &WantedBlob,
        sink: &dyn BlobSink,
        shared: &Shared<'_>,
    ) -> Result<(), RegistryError> {
        let (digest, size) = (&blob.digest, blob.size);
        let r = self.blob_ref(t, digest.as_str());
        let partial: PathBuf = sink.path(blob);
        let what = || format!("fetching blob {digest}");
        let dropped = |reason: String| RegistryError::Registry {
            registry: self.host.clone(),
            what: what(),
            reason,
            kind: ErrorKind::Network,
        };
        let mut backoff = Backoff::new(&self.policy);
        let mut refetched = false;
        // The partial's bytes, hashed as they are written: no second pass
        // over a large blob once it has arrived.
        let mut hashed = Hashed::new(size);
        loop {
            let (mut file, mut have) = sink.open(blob)?;
            hashed
                .catch_up(&partial, have)
                .map_err(|e| RegistryError::Io { path: partial.clone(), source: e })?;
            if have == size {
                let written = std::mem::replace(&mut hashed, Hashed::new(size)).digest();
                match sink.complete(blob, &written) {
                    Ok(()) => return Ok(()),
                    // Bad bytes (a torn write before a power cut, a lying
                    // server): the partial is gone; fetch once afresh.
                    Err(_) if !refetched => {
                        refetched = true;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let before = have;
            let attempt = async {
                let resp = self
                    .client
                    .pull_blob_stream_partial(&r, digest.as_str(), have, None)
                    .await
                    .map_err(self.err(what()))?;
                let mut body = match resp {
                    BlobResponse::Partial(s) => {
                        if have > 0 {
                            shared.resumed_requests.fetch_add(1, Ordering::Relaxed);
                        }
                        s.stream
                    }
                    BlobResponse::Full(s) => {
                        if have > 0 {
                            // The server ignored the range: start over.
                            sink.restart(blob, &mut file)?;
                            have = 0;
                            hashed = Hashed::new(size);
                        }
                        s.stream
                    }
                };
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| dropped(e.to_string()))?;
                    let n = chunk.len() as u64;
                    if have + n > size {
                        return Err(RegistryError::NotABundle {
                            what: t.to_string(),
                            reason: format!(
                                "blob {digest}: the registry sent more than the {size} bytes signed for it"
                            ),
                        });
                    }
                    file.write_all(&chunk)
                        .map_err(|e| RegistryError::Io { path: partial.clone(), source: e })?;
                    hashed.wrote(&file, &chunk);
                    have += n;
                    shared.received(n).await;
                }
                Ok(())
            };
            let error = match attempt.await {
                Ok(()) if have == size => continue, // adopted at the top of the loop
                Ok(()) => dropped("the body ended early".into()),
                Err(e) => e,
            };
            if matches!(error, RegistryError::NotABundle { .. }) {
                drop(file);
                sink.discard(blob);
                return Err(error);
            }
            // Resume from what arrived; a refusal (401, 404) ends the pull now.
            if have > before {
                backoff.progressed();
            }
            let kind = error.kind();
            match backoff.failed(kind) {
                Some(wait) => tokio::time::sleep(wait).await,
                None if kind.retry_may_help() => {
                    file.sync_all()
                        .map_err(|e| RegistryError::Io { path: partial.clone(), source: e })?;
                    let reason = match error {
                        RegistryError::Registry { reason, .. } => reason,
                        e => e.to_string(),
                    };
                    return Err(RegistryError::GaveUp {
                        registry: self.host.clone(),
                        what: what(),
                        attempts: backoff.failures(),
                        kept: have,
                        reason,
                    });
                }
                None => return Err(error),
            }
        }
    }
}

/// From this size on, a blob is hashed on a thread of its own as it
/// arrives (below, handing chunks over costs more than it saves).
const HASH_BESIDE_FROM: u64 = 4 << 20;
/// Chunks in flight to that thread (each as the connection gave it).
const HASH_DEPTH: usize = 64;

/// Where a partial's hash is computed.
enum Hasher {
    Inline(Sha256),
    /// On a thread fed chunks as they are written: the stream that writes
    /// them then only writes, and a large blob's hash is ready when its
    /// last byte is.
    Beside {
        chunks: std::sync::mpsc::SyncSender<bytes::Bytes>,
        thread: std::thread::JoinHandle<Sha256>,
    },
}

impl Hasher {
    /// Hand hashing on to a thread: worth it for `left` more bytes?
    fn beside(self, left: u64) -> Hasher {
        let state = match self {
            Hasher::Inline(state) if left >= HASH_BESIDE_FROM => state,
            other => return other,
        };
        let (chunks, arriving) = std::sync::mpsc::sync_channel::<bytes::Bytes>(HASH_DEPTH);
        let thread = std::thread::spawn(move || {
            let mut state = state;
            for chunk in arriving {
                state.update(&chunk);
            }
            state
        });
        Hasher::Beside { chunks, thread }
    }

    fn update(&mut self, chunk: &bytes::Bytes) {
        match self {
            Hasher::Inline(state) => state.update(chunk),
            Hasher::Beside { chunks, .. } => {
                chunks.send(chunk.clone()).expect("the hashing thread runs until its sender drops");
            }
        }
    }

    fn finish(self) -> Sha256 {
        match self {
            Hasher::Inline(state) => state,
            Hasher::Beside { chunks, thread } => {
                drop(chunks);
                thread.join().expect("hashing does not panic")
            }
        }
    }
}

/// The SHA-256 of a partial's first `len` bytes (of `size`), and its
/// writeback as it grows. The store compares the digest with the signed
/// one before the blob goes in (`BlobSink::complete`).
struct Hashed {
    hasher: Hasher,
    size: u64,
    len: u64,
    writeback: Writeback,
    /// Whether it was decided where hashing runs (at the first chunk).
    placed: bool,
}

impl Hashed {
    fn new(size: u64) -> Hashed {
        Hashed::resumed(Sha256::new(), size, 0)
    }

    /// `state` has hashed the first `len` bytes.
    fn resumed(state: Sha256, size: u64, len: u64) -> Hashed {
        let writeback = Writeback::at(len);
        Hashed { hasher: Hasher::Inline(state), size, len, writeback, placed: false }
    }

    /// `chunk` was appended to `file`.
    fn wrote(&mut self, file: &File, chunk: &bytes::Bytes) {
        if !self.placed {
            // The first chunk since (re)starting: a thread, if enough is left.
            self.placed = true;
            let inline = std::mem::replace(&mut self.hasher, Hasher::Inline(Sha256::new()));
            self.hasher = inline.beside(self.size.saturating_sub(self.len));
        }
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        self.writeback.wrote(file, chunk.len() as u64);
    }

    /// Hash the bytes of `path` up to `have` that are not hashed yet (an
    /// earlier run's, or an attempt's whose writes this did not see): read
    /// back from the start unless what is hashed is exactly their prefix.
    fn catch_up(&mut self, path: &std::path::Path, have: u64) -> std::io::Result<()> {
        if self.len == have {
            return Ok(());
        }
        let mut state = Sha256::new();
        let mut f = std::io::Read::take(File::open(path)?, have);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf)?;
            if n == 0 {
                break;
            }
            state.update(&buf[..n]);
        }
        // The old hasher's thread ends with its sender.
        *self = Hashed::resumed(state, self.size, have - f.limit());
        Ok(())
    }

    fn digest(self) -> Digest {
        Digest::from_hasher(self.hasher.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn take(p: &mut Pace, n: u64) {
        if let Some(due) = p.take(n) {
            tokio::time::sleep_until(due).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pace_holds_the_average_and_banks_little_credit() {
        let mut p = Pace { rate: Some(1000), start: tokio::time::Instant::now(), bytes: 0 };
        let t0 = tokio::time::Instant::now();
        for _ in 0..10 {
            take(&mut p, 500).await;
        }
        let secs = t0.elapsed().as_secs_f64();
        assert!((4.9..=5.1).contains(&secs), "{secs}");
        // After a long pause, only PACE_CREDIT is made up for.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t1 = tokio::time::Instant::now();
        for _ in 0..10 {
            take(&mut p, 500).await;
        }
        let secs = t1.elapsed().as_secs_f64();
        // (the first take after the pause is already received: 9 x 0.5 s - 0.25 s)
        assert!((4.2..=4.3).contains(&secs), "{secs}");
    }
}
