//! Thin links: a bundle published to an OCI registry as an artifact, and
//! pulled from there into the ship's store blob by blob. A pull fetches
//! only what the store lacks, resumes inside a blob (HTTP Range) after a
//! dropped connection or a killed process, and can be held under a rate cap.
//!
//! The artifact is an OCI image manifest (`docs/links.md`): its config is
//! the signed descriptor, its first layer the signatures, and the other
//! layers every blob the bundle carries (listed so the registry keeps them).
//! A pull trusts nothing of it but the descriptor's signature: the blob list
//! it fetches is the signed one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use oci_client::RegistryOperation;
use oci_client::client::BlobResponse;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tender_bundle::artifact::{artifact_manifest, parse_artifact};
use tender_bundle::index::{EntryAt, entry_offsets, read_entry};
use tender_bundle::limits::{MAX_DESCRIPTOR_BYTES, MAX_JSON_BLOB_BYTES, MAX_SIGNATURES_BYTES};
use tender_bundle::{
    BlobRecord, Descriptor, Digest, EntryName, ErrorKind, Progress, Signatures, VerifiedDescriptor,
};
use tender_keys::Signature;
use tender_keys::keyring::MAX_KEYRING_BYTES;
use tender_store::{Gate, ImportPolicy, ImportReport, Purpose, Store};

use crate::bounded::{self, GetError};
use crate::policy::{Backoff, retry};
use crate::{Registry, RegistryError, Upload, UploadCounts};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
// Accepted so that an image index is refused as "not a tender bundle"
// rather than by the registry's content negotiation.
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// `REGISTRY/REPO:TAG`, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `host[:port]`.
    pub host: String,
    /// Repository path.
    pub repo: String,
    /// Tag.
    pub tag: String,
}

impl Target {
    /// Parse `REGISTRY/REPO:TAG` (the registry part is required: a bundle
    /// never goes to Docker Hub by default).
    pub fn parse(s: &str) -> Result<Target, RegistryError> {
        let bad = |reason: &str| RegistryError::BadReference {
            reference: s.into(),
            reason: reason.into(),
        };
        let (host, _) = s.split_once('/').ok_or_else(|| bad("expected REGISTRY/REPO:TAG"))?;
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad("the first part must be a registry host (HOST or HOST:PORT)"));
        }
        let r: oci_client::Reference =
            s.parse().map_err(|e: oci_client::ParseError| bad(&e.to_string()))?;
        if r.digest().is_some() {
            return Err(bad("name a tag, not a digest"));
        }
        Ok(Target {
            host: host.into(),
            repo: r.repository().into(),
            tag: r.tag().unwrap_or("latest").into(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.host, self.repo, self.tag)
    }
}

/// What `publish` did.
#[derive(Clone, Debug, Serialize)]
pub struct PublishReport {
    /// Where it went.
    pub reference: String,
    /// Digest of the artifact manifest.
    pub manifest: Digest,
    /// Digest of the descriptor (the bundle version's identity).
    pub descriptor: Digest,
    /// Stack.
    pub stack: String,
    /// Version.
    pub version: String,
    /// Sequence.
    pub sequence: u64,
    /// Blobs uploaded.
    pub blobs_pushed: usize,
    /// Their bytes.
    pub bytes_pushed: u64,
    /// Blobs the registry already held (not uploaded again), in the target
    /// repository or mounted from another.
    pub blobs_present: usize,
    /// Of those, blobs mounted from the repository of an image the stack
    /// names in this same registry.
    pub blobs_mounted: usize,
    /// Their bytes.
    pub bytes_present: u64,
}

/// Where each blob's bytes lie in a bundle file.
struct BundleIndex {
    raw: Vec<u8>,
    keyring: Option<Vec<u8>>,
    signatures: Vec<Signature>,
    descriptor: Descriptor,
    /// (digest, offset of its data, size).
    blobs: Vec<(Digest, u64, u64)>,
}

fn index_bundle(path: &Path) -> Result<BundleIndex, RegistryError> {
    let not =
        |reason: String| RegistryError::NotABundle { what: path.display().to_string(), reason };
    let (mut raw, mut sigs, mut keyring) = (None, None, None);
    let mut blobs = Vec::new();
    for at in entry_offsets(path)? {
        match &at.name {
            EntryName::Descriptor => raw = Some(read_entry(path, &at, MAX_DESCRIPTOR_BYTES)?),
            EntryName::Signatures => sigs = Some(read_entry(path, &at, MAX_SIGNATURES_BYTES)?),
            EntryName::Keyring => keyring = Some(read_entry(path, &at, MAX_KEYRING_BYTES)?),
            EntryName::Blob(d) | EntryName::Patch(d) => blobs.push((d.clone(), at.offset, at.size)),
            EntryName::Part | EntryName::Chunk(..) => {
                return Err(not(
                    "this is one part of a split bundle; publish the whole bundle (pack without --split)"
                        .into(),
                ));
            }
            _ => {}
        }
    }
    let raw = raw.ok_or_else(|| not("no tender/descriptor.json".into()))?;
    let sigs = sigs.ok_or_else(|| not("no tender/signatures.json".into()))?;
    let descriptor = Descriptor::parse(&raw)?;
    let signatures = Signatures::parse(&sigs)?.signatures;
    Ok(BundleIndex { raw, keyring, signatures, descriptor, blobs })
}

/// Where in this registry (`host`) a blob of the bundle may already be: the
/// repository of each image the stack names there, for the image's index,
/// manifests, configs and layers (read from the bundle's manifests).
fn mount_sources(
    b: &BundleIndex,
    host: &str,
    target_repo: &str,
    bundle: &Path,
) -> std::collections::HashMap<Digest, String> {
    let mut out = std::collections::HashMap::new();
    let read = |d: &Digest| -> Option<serde_json::Value> {
        let &(_, offset, size) = b.blobs.iter().find(|(x, ..)| x == d)?;
        let at = EntryAt { name: EntryName::Blob(d.clone()), offset, size };
        serde_json::from_slice(&read_entry(bundle, &at, MAX_JSON_BLOB_BYTES).ok()?).ok()
    };
    for image in &b.descriptor.images {
        let Some(rest) = image.reference.strip_prefix(host).and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        let Ok((repo, _)) = crate::repository_and_tag(&format!("{host}/{rest}")) else { continue };
        if repo == target_repo {
            continue;
        }
        let mut digests = vec![image.digest.clone()];
        for p in &image.platforms {
            digests.push(p.manifest.clone());
            digests.push(p.config.clone());
            if let Some(m) = read(&p.manifest) {
                digests.extend(
                    m["layers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|l| l["digest"].as_str()?.parse().ok()),
                );
            }
        }
        for d in digests {
            out.entry(d).or_insert_with(|| repo.clone());
        }
    }
    out
}

impl Registry {
    /// Publish the bundle file `bundle` (with extra detached signatures) as
    /// an OCI artifact at `repo:tag`. Blobs the registry already holds in
    /// that repository are not uploaded again (one HEAD each).
    pub fn publish(
        &self,
        bundle: &Path,
        detached: &[Signature],
        repo: &str,
        tag: &str,
        progress: &dyn Progress,
    ) -> Result<PublishReport, RegistryError> {
        let mut b = index_bundle(bundle)?;
        b.signatures.extend(detached.iter().cloned());
        let d = &b.descriptor;
        let carried: Vec<&BlobRecord> = d.blobs.iter().filter(|x| x.part != 0).collect();
        let mut located = Vec::with_capacity(carried.len());
        for blob in &carried {
            // A patched layer is published as its patch.
            let (digest, listed) = Store::fetched_as(blob);
            let Some((_, offset, size)) = b.blobs.iter().find(|(dg, ..)| dg == digest) else {
                return Err(RegistryError::NotABundle {
                    what: bundle.display().to_string(),
                    reason: format!("blob {digest} is listed but not carried"),
                });
            };
            if *size != listed {
                return Err(RegistryError::NotABundle {
                    what: bundle.display().to_string(),
                    reason: format!("blob {digest} is {size} bytes, listed as {listed}"),
                });
            }
            located.push((digest.clone(), *offset, *size));
        }
        let sig_bytes = serde_json::to_vec_pretty(&Signatures { signatures: b.signatures.clone() })
            .expect("signatures serialize");
        let descriptor_digest = Digest::of(&b.raw);
        let sig_digest = Digest::of(&sig_bytes);
        let listed: Vec<(Digest, u64)> =
            located.iter().map(|(dg, _, size)| (dg.clone(), *size)).collect();
        let manifest = artifact_manifest(d, &b.raw, &sig_bytes, b.keyring.as_deref(), &listed);
        let manifest_digest = Digest::of(&manifest);

        let sources = mount_sources(&b, &self.host, repo, bundle);
        let counts = UploadCounts::default();
        let uploads: Vec<Upload> = located
            .iter()
            .map(|(digest, offset, size)| Upload {
                digest: digest.clone(),
                path: bundle.to_owned(),
                offset: *offset,
                size: *size,
                mount_from: sources.get(digest).cloned(),
            })
            .collect();
        progress.start("publish", located.iter().map(|(_, _, s)| s).sum());
        let tagged = self.reference(repo, Some(tag), None);
        self.rt.block_on(async {
            self.client
                .auth(&tagged, &self.auth, RegistryOperation::Push)
                .await
                .map_err(self.err(format!("authenticating for {repo}")))?;
            let keyring = b.keyring.as_ref().map(|k| (Digest::of(k), k.clone()));
            let mut small =
                vec![(descriptor_digest.clone(), b.raw.clone()), (sig_digest, sig_bytes)];
            small.extend(keyring);
            for (dg, bytes) in small {
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
            self.upload_missing(&tagged, &uploads, progress, &counts).await?;
            self.client
                .push_manifest_raw(&tagged, manifest, OCI_MANIFEST.parse().expect("valid header"))
                .await
                .map_err(self.err(format!("pushing the artifact manifest as {repo}:{tag}")))?;
            Ok::<_, RegistryError>(())
        })?;
        progress.finish();
        Ok(PublishReport {
            reference: format!("{}/{repo}:{tag}", self.host),
            manifest: manifest_digest,
            descriptor: descriptor_digest,
            stack: d.stack.name.to_string(),
            version: d.stack.version.to_string(),
            sequence: d.sequence,
            blobs_pushed: counts.pushed.into_inner(),
            bytes_pushed: counts.pushed_bytes.into_inner(),
            blobs_present: counts.present.into_inner(),
            blobs_mounted: counts.mounted.into_inner(),
            bytes_present: counts.present_bytes.into_inner(),
        })
    }
}

/// How a pull treats the store and the link.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Downgrade and freshness rules, as for an import.
    pub policy: ImportPolicy,
    /// Average bytes per second not to exceed (None: as fast as the link goes).
    pub limit_rate: Option<u64>,
}

/// What a pull would fetch (`--estimate`), or did.
#[derive(Clone, Debug, Serialize)]
pub struct PullPlan {
    /// Stack.
    pub stack: String,
    /// Version.
    pub version: String,
    /// Sequence.
    pub sequence: u64,
    /// Descriptor digest.
    pub descriptor: Digest,
    /// The store already holds this version whole.
    pub already_held: bool,
    /// Blobs to fetch.
    pub blobs_needed: usize,
    /// Bytes still to fetch (partial blobs kept from an earlier run count
    /// only for what they lack).
    pub bytes_needed: u64,
    /// Bytes of partial blobs already in staging.
    pub bytes_partial: u64,
    /// Blobs the store holds already (including a delta's base).
    pub blobs_held: usize,
    /// Their bytes.
    pub bytes_held: u64,
    /// Warnings (an expired bundle, a clock set back).
    pub warnings: Vec<String>,
}

/// What a pull did.
#[derive(Clone, Debug, Serialize)]
pub struct PullReport {
    /// The merge, as an import reports it.
    #[serde(flatten)]
    pub import: ImportReport,
    /// Where it came from.
    pub reference: String,
    /// Blob bytes received over the link in this run.
    pub bytes_fetched: u64,
    /// Bytes of partial blobs this run started from.
    pub bytes_resumed: u64,
    /// Requests that resumed a blob from an offset (after a drop or a kill).
    pub resumed_requests: u32,
    /// Seconds spent.
    pub seconds: f64,
}

/// Keeps the average rate at or under a cap (a token bucket): a pause (a
/// request's round trip, a retry's wait) may be made up for by a burst of
/// at most [`PACE_CREDIT`] of the cap, never more.
struct Pace {
    rate: Option<u64>,
    start: tokio::time::Instant,
    bytes: u64,
}

/// How much time at the cap a pause may bank.
const PACE_CREDIT: Duration = Duration::from_millis(250);

impl Pace {
    async fn take(&mut self, n: u64) {
        let Some(rate) = self.rate else { return };
        self.bytes += n;
        let due = self.start + Duration::from_secs_f64(self.bytes as f64 / rate as f64);
        let now = tokio::time::Instant::now();
        if due > now {
            tokio::time::sleep_until(due).await;
        } else if now - due > PACE_CREDIT {
            // Long behind schedule: the past beyond the credit does not count.
            self.start += (now - due) - PACE_CREDIT;
        }
    }
}

struct Fetched {
    raw: Vec<u8>,
    keyring: Option<Vec<u8>>,
    signatures: Vec<Signature>,
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
    async fn fetch_artifact(
        &self,
        t: &Target,
        authorization: Option<&http::HeaderValue>,
    ) -> Result<Fetched, RegistryError> {
        let not = |reason: String| RegistryError::NotABundle { what: t.to_string(), reason };
        // Any manifest is smaller than a descriptor: it lists the blobs
        // the descriptor lists, and little else.
        let bytes = self
            .fetch_bounded(
                t,
                &format!("manifests/{}", t.tag),
                &[OCI_MANIFEST, OCI_INDEX].join(", "),
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
        Ok(Fetched { raw, keyring, signatures: Signatures::parse(&sigs)?.signatures })
    }

    /// Fetch the descriptor at `t`, verify it against the store's trust,
    /// and check it may be merged; returns it and the plan of what to fetch.
    fn prepare_pull(
        &self,
        store: &Store,
        t: &Target,
        policy: ImportPolicy,
        purpose: Purpose,
    ) -> Result<(VerifiedDescriptor, PullPlan), RegistryError> {
        let fetched = self.rt.block_on(async {
            let tagged = self.reference(&t.repo, Some(&t.tag), None);
            // Tried again only while the link fails: the last error as it is.
            retry(&self.policy, || async {
                let authorization = bounded::authorization(&self.client, &tagged, &self.auth)
                    .await
                    .map_err(self.err(format!("authenticating for {}", t.repo)))?;
                self.fetch_artifact(t, authorization.as_ref()).await
            })
            .await
            .map_err(|spent| spent.error)
        })?;
        // The trust gate judges the keyring first (it stands on its root
        // signatures, as on media), then the descriptor's signers.
        let mut gate = Gate::new(store, purpose, policy);
        let mut trust = gate.trust()?;
        if let Some(bytes) = &fetched.keyring
            && let Some(t) = gate.keyring(bytes)?
        {
            trust = t;
        }
        let v = VerifiedDescriptor::verify(fetched.raw, fetched.signatures, &trust)?;
        let admission = gate.admit(&v)?;
        let d = &v.descriptor;
        let partials = store.partials()?;
        let mut plan = PullPlan {
            stack: d.stack.name.to_string(),
            version: d.stack.version.to_string(),
            sequence: d.sequence,
            descriptor: v.digest.clone(),
            already_held: admission.already_held,
            blobs_needed: 0,
            bytes_needed: 0,
            bytes_partial: 0,
            blobs_held: 0,
            bytes_held: 0,
            warnings: admission.warnings,
        };
        for b in &d.blobs {
            if store.has_blob(&b.digest) {
                plan.blobs_held += 1;
                plan.bytes_held += b.size;
            } else {
                let (digest, size) = Store::fetched_as(b);
                let have =
                    partials.iter().find(|(p, _)| p == digest).map_or(0, |(_, n)| (*n).min(size));
                plan.blobs_needed += 1;
                plan.bytes_needed += size - have;
                plan.bytes_partial += have;
            }
        }
        Ok((v, plan))
    }

    /// What pulling `t` into `store` would fetch, without fetching it.
    pub fn pull_estimate(
        &self,
        store: &Store,
        t: &Target,
        policy: ImportPolicy,
    ) -> Result<PullPlan, RegistryError> {
        Ok(self.prepare_pull(store, t, policy, Purpose::Estimate)?.1)
    }

    /// Pull the bundle at `t` into `store`: verify the descriptor, then
    /// fetch, verify and merge each blob the store lacks.
    pub fn pull(
        &self,
        store: &Store,
        t: &Target,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<(PullPlan, PullReport), RegistryError> {
        let started = Instant::now();
        let _lock = store.lock()?;
        let (v, plan) = self.prepare_pull(store, t, options.policy, Purpose::Import)?;
        let d = &v.descriptor;
        let mut report = PullReport {
            import: ImportReport {
                already_imported: plan.already_held,
                blobs_held: plan.blobs_held,
                bytes_held: plan.bytes_held,
                parts_complete: d.parts,
                complete: plan.already_held,
                warnings: plan.warnings.clone(),
                ..ImportReport::begin(&v)
            },
            reference: t.to_string(),
            bytes_fetched: 0,
            bytes_resumed: plan.bytes_partial,
            resumed_requests: 0,
            seconds: 0.0,
        };
        if plan.already_held {
            report.seconds = started.elapsed().as_secs_f64();
            return Ok((plan, report));
        }
        progress.start("pull", plan.bytes_needed + plan.bytes_partial);
        progress.advance(plan.bytes_partial);
        let mut pace =
            Pace { rate: options.limit_rate, start: tokio::time::Instant::now(), bytes: 0 };
        let result = self.rt.block_on(async {
            for blob in d.blobs.iter().filter(|b| !store.has_blob(&b.digest)) {
                progress.item(blob.digest.as_str());
                self.fetch_blob(store, t, blob, &mut pace, &mut report, progress).await?;
                report.import.blobs_new += 1;
                report.import.bytes_new += blob.size;
            }
            Ok::<_, RegistryError>(())
        });
        progress.finish();
        result?;
        store.record_pulled(&v, Path::new(&t.to_string()), &mut report.import)?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok((plan, report))
    }

    /// Fetch one blob into its partial file, resuming from what it holds,
    /// then have the store check and adopt it.
    async fn fetch_blob(
        &self,
        store: &Store,
        t: &Target,
        blob: &BlobRecord,
        pace: &mut Pace,
        report: &mut PullReport,
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        let (digest, size) = Store::fetched_as(blob);
        let r = self.blob_ref(t, digest.as_str());
        let partial: PathBuf = store.partial_path(digest);
        let what = || format!("fetching blob {digest}");
        let dropped = |reason: String| RegistryError::Registry {
            registry: self.host.clone(),
            what: what(),
            reason,
            kind: ErrorKind::Network,
        };
        let mut backoff = Backoff::new(&self.policy);
        let mut refetched = false;
        loop {
            let (mut file, mut have) = store.open_partial(blob)?;
            if have == size {
                match store.adopt_partial(blob) {
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
                            report.resumed_requests += 1;
                        }
                        s.stream
                    }
                    BlobResponse::Full(s) => {
                        if have > 0 {
                            // The server ignored the range: start over.
                            store.restart_partial(&mut file, blob)?;
                            have = 0;
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
                    have += n;
                    report.bytes_fetched += n;
                    progress.advance(n);
                    pace.take(n).await;
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
                let _ = std::fs::remove_file(&partial);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("127.0.0.1:5000/fleet/awareness:1.1.0").unwrap();
        assert_eq!(
            t,
            Target {
                host: "127.0.0.1:5000".into(),
                repo: "fleet/awareness".into(),
                tag: "1.1.0".into()
            }
        );
        assert_eq!(Target::parse("shore.example/a").unwrap().tag, "latest");
        assert!(Target::parse("fleet/awareness:1").is_err(), "no registry host");
        assert!(Target::parse(&format!("r.example/a@sha256:{}", "0".repeat(64))).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn pace_holds_the_average_and_banks_little_credit() {
        let mut p = Pace { rate: Some(1000), start: tokio::time::Instant::now(), bytes: 0 };
        let t0 = tokio::time::Instant::now();
        for _ in 0..10 {
            p.take(500).await;
        }
        let secs = t0.elapsed().as_secs_f64();
        assert!((4.9..=5.1).contains(&secs), "{secs}");
        // After a long pause, only PACE_CREDIT is made up for.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t1 = tokio::time::Instant::now();
        for _ in 0..10 {
            p.take(500).await;
        }
        let secs = t1.elapsed().as_secs_f64();
        // (the first take after the pause is already received: 9 x 0.5 s - 0.25 s)
        assert!((4.2..=4.3).contains(&secs), "{secs}");
    }
}
