//! `pull`: a bundle published to an OCI registry (`tender-shore publish`),
//! brought into the ship's store through the same trust gate as an import
//! from media. The descriptor is fetched with a cap and verified first;
//! then only the blobs the store lacks are fetched, each into a partial
//! file in the store's staging that a later run resumes (HTTP Range), and
//! checked against its signed digest before it is kept. The version record
//! is written last. The registry's artifact manifest is trusted for
//! nothing: the blob list fetched is the signed one.
#![deny(missing_docs)]

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tender_bundle::{BlobRecord, Digest, ErrorKind, Progress, VerifiedDescriptor};
use tender_registry::{BlobSink, Registry, RegistryError, SinkError, Target, WantedBlob};
use tender_store::{Gate, ImportPolicy, ImportReport, Purpose, Store, StoreError};

/// What can stop a pull.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The registry or the link.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store: the trust gate refused, or a write failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The descriptor's signatures.
    #[error(transparent)]
    Bundle(#[from] tender_bundle::BundleError),
}

impl PullError {
    /// What kind of failure it is (retries and exit codes are decided from it).
    pub fn kind(&self) -> ErrorKind {
        match self {
            PullError::Registry(e) => e.kind(),
            PullError::Store(e) => e.kind(),
            PullError::Bundle(e) => e.kind(),
        }
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

/// Fetch the descriptor at `t`, verify it against the store's trust, and
/// check it may be merged; returns it and the plan of what to fetch.
fn prepare(
    registry: &Registry,
    store: &Store,
    t: &Target,
    policy: ImportPolicy,
    purpose: Purpose,
) -> Result<(VerifiedDescriptor, PullPlan), PullError> {
    let fetched = registry.fetch_artifact(t)?;
    // The trust gate judges the keyring first (it stands on its root
    // signatures, as on media), then the descriptor's signers.
    let mut gate = Gate::new(store, purpose, policy);
    let mut trust = gate.trust()?;
    if let Some(bytes) = &fetched.keyring
        && let Some(t) = gate.keyring(bytes)?
    {
        trust = t;
    }
    let v = VerifiedDescriptor::verify(fetched.descriptor, fetched.signatures, &trust)?;
    let admission = gate.admit(&v)?;
    let d = &v.descriptor;
    let partials = store.partials()?;
    let mut plan = PullPlan {
        stack: d.stack.name.to_string(),
        version: d.stack.version.to_string(),
        sequence: d.sequence,
        // Another packing of the same release may be what is held.
        descriptor: admission.held_as.clone().unwrap_or_else(|| v.digest.clone()),
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
            let (digest, size) = b.carried_as();
            // A partial longer than the blob is started over: nothing kept.
            let have = partials
                .iter()
                .find(|(p, _)| p == digest)
                .map_or(0, |(_, n)| if *n <= size { *n } else { 0 });
            plan.blobs_needed += 1;
            plan.bytes_needed += size - have;
            plan.bytes_partial += have;
        }
    }
    Ok((v, plan))
}

/// What pulling `t` into `store` would fetch, without fetching it.
pub fn estimate(
    registry: &Registry,
    store: &Store,
    t: &Target,
    policy: ImportPolicy,
) -> Result<PullPlan, PullError> {
    Ok(prepare(registry, store, t, policy, Purpose::Estimate)?.1)
}

/// Pull the bundle at `t` into `store`: verify the descriptor, then fetch,
/// verify and merge each blob the store lacks.
pub fn pull(
    registry: &Registry,
    store: &Store,
    t: &Target,
    options: &PullOptions,
    progress: &dyn Progress,
) -> Result<(PullPlan, PullReport), PullError> {
    let started = Instant::now();
    let _lock = store.lock()?;
    let (v, plan) = prepare(registry, store, t, options.policy, Purpose::Import)?;
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
        report.import.digest = plan.descriptor.clone();
        report.seconds = started.elapsed().as_secs_f64();
        return Ok((plan, report));
    }
    let missing: Vec<&BlobRecord> = d.blobs.iter().filter(|b| !store.has_blob(&b.digest)).collect();
    let sink =
        Staging { store, blobs: missing.iter().map(|b| (b.carried_as().0.clone(), *b)).collect() };
    let wanted: Vec<WantedBlob> = missing
        .iter()
        .map(|b| {
            let (digest, size) = b.carried_as();
            WantedBlob { digest: digest.clone(), size }
        })
        .collect();
    progress.start("pull", plan.bytes_needed + plan.bytes_partial);
    progress.skip(plan.bytes_partial);
    let fetched = registry.fetch_blobs(t, &wanted, &sink, options.limit_rate, progress);
    progress.finish();
    let fetched = fetched.map_err(|e| match e {
        // The store's own error, as the store gave it.
        RegistryError::Sink(s) => {
            let kind = s.kind();
            match s.into_inner().downcast::<StoreError>() {
                Ok(e) => PullError::Store(*e),
                Err(other) => PullError::Registry(SinkError::boxed(kind, other).into()),
            }
        }
        e => PullError::Registry(e),
    })?;
    report.bytes_fetched = fetched.bytes_fetched;
    report.resumed_requests = fetched.resumed_requests;
    report.import.blobs_new += missing.len();
    report.import.bytes_new += missing.iter().map(|b| b.size).sum::<u64>();
    store.record_pulled(&v, Path::new(&t.to_string()), &mut report.import)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok((plan, report))
}

/// The store's staging as the registry client's [`BlobSink`]: a partial
/// file per blob (or patch), checked by the store when whole.
struct Staging<'a> {
    store: &'a Store,
    blobs: HashMap<Digest, &'a BlobRecord>,
}

impl Staging<'_> {
    fn record(&self, w: &WantedBlob) -> &BlobRecord {
        self.blobs[&w.digest]
    }
}

fn sink_err(e: StoreError) -> SinkError {
    SinkError::new(e.kind(), e)
}

impl BlobSink for Staging<'_> {
    fn open(&self, blob: &WantedBlob) -> Result<(File, u64), SinkError> {
        self.store.open_partial(self.record(blob)).map_err(sink_err)
    }

    fn restart(&self, blob: &WantedBlob, file: &mut File) -> Result<(), SinkError> {
        self.store.restart_partial(file, self.record(blob)).map_err(sink_err)
    }

    fn complete(&self, blob: &WantedBlob, written: &Digest) -> Result<(), SinkError> {
        self.store.adopt_partial(self.record(blob), written).map_err(sink_err)
    }

    fn discard(&self, blob: &WantedBlob) {
        let _ = std::fs::remove_file(self.path(blob));
    }

    fn path(&self, blob: &WantedBlob) -> PathBuf {
        self.store.partial_path(&blob.digest)
    }
}
