//! Import: verify a bundle in one streaming pass and merge it into the store.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tempfile::NamedTempFile;
use tender_bundle::{
    Accept, BlobRecord, ChunkRecord, Digest, Progress, Sink, StackName, VerifiedDescriptor,
    Version, Writeback, read_bundle_with,
};
use tender_keys::KeyId;

use crate::commit::Committer;
use crate::fsutil::{io_err, sync_dir, write_atomic};
use crate::{Gate, Purpose, Store, StoreError, VersionRecord, now_rfc3339};

/// Whether an import may lower a stack's sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Downgrade {
    /// Refuse a bundle older than one already imported (the default).
    #[default]
    Refuse,
    /// Import it anyway (an operator's explicit choice).
    Allow,
}

/// Whether an expired bundle may be imported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Freshness {
    /// Import it with a warning (the default: a ship months at sea must
    /// still install the newest bundle it was given).
    #[default]
    WarnIfExpired,
    /// Refuse it.
    RequireFresh,
}

/// How an import treats old and stale bundles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportPolicy {
    /// Sequence lower than one imported.
    pub downgrade: Downgrade,
    /// Past its expiry.
    pub freshness: Freshness,
}

/// What an import did.
#[derive(Clone, Debug, Serialize)]
pub struct ImportReport {
    /// Stack name.
    pub stack: StackName,
    /// Version.
    pub version: Version,
    /// Sequence.
    pub sequence: u64,
    /// Descriptor digest.
    pub digest: Digest,
    /// Keys whose signatures verified.
    pub signed_by: Vec<KeyId>,
    /// True when this exact bundle was already imported: nothing was done.
    pub already_imported: bool,
    /// Blobs written.
    pub blobs_new: usize,
    /// Their bytes.
    pub bytes_new: u64,
    /// Blobs the store already held.
    pub blobs_held: usize,
    /// Their bytes.
    pub bytes_held: u64,
    /// Which media part this was (1 for a whole bundle).
    pub part: u32,
    /// How many parts the version has.
    pub parts: u32,
    /// How many of them the store now holds completely.
    pub parts_complete: u32,
    /// Bytes of the version the store still lacks.
    pub bytes_missing: u64,
    /// Whether every blob of the version is now in the store.
    pub complete: bool,
    /// The bundle was held already and is older than the stack's floor
    /// (this sequence): kept as it was, and never applied from this import.
    pub below_floor: Option<u64>,
    /// Things the operator should know (an expired bundle, a clock set back).
    pub warnings: Vec<String>,
}

impl ImportReport {
    /// A report on `v` with nothing done yet (part 1; the counts and
    /// completeness are filled in as the merge goes).
    pub fn begin(v: &VerifiedDescriptor) -> ImportReport {
        let d = &v.descriptor;
        ImportReport {
            stack: d.stack.name.clone(),
            version: d.stack.version.clone(),
            sequence: d.sequence,
            digest: v.digest.clone(),
            signed_by: v.signed_by.clone(),
            already_imported: false,
            blobs_new: 0,
            bytes_new: 0,
            blobs_held: 0,
            bytes_held: 0,
            part: 1,
            parts: d.parts,
            parts_complete: 0,
            bytes_missing: 0,
            complete: false,
            below_floor: None,
            warnings: vec![],
        }
    }
}

struct ImportSink<'g, 's> {
    store: &'s Store,
    staging: PathBuf,
    committer: Committer,
    gate: &'g mut Gate<'s>,
    warnings: Vec<String>,
    below_floor: Option<u64>,
    held_as: Option<Digest>,
}

/// A verified descriptor the store agreed to take.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    /// This version is already held whole: nothing to do.
    pub already_held: bool,
    /// The descriptor it is held as, when that is another packing of the
    /// same release (a whole bundle and its delta, or its split parts).
    pub held_as: Option<Digest>,
    /// Held already, and older than the stack's floor (this sequence):
    /// kept as it was, never to be applied from this bundle.
    pub below_floor: Option<u64>,
    /// Things the operator should know (an expired bundle, a clock set back).
    pub warnings: Vec<String>,
}

/// A blob being written to `staging/`. Writes go to the file itself:
/// `NamedTempFile`'s own append "at path P" to an error that
/// [`StoreError::Io`] already names P for. Its writeback is started as it
/// grows, so the fsync before it is committed waits for the last stretch
/// only, not for a whole large layer.
pub(crate) struct Staged {
    file: NamedTempFile,
    writeback: Writeback,
}

impl Staged {
    fn into_file(self) -> NamedTempFile {
        self.file
    }
}

impl io::Write for Staged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.as_file_mut().write(buf)?;
        self.writeback.wrote(self.file.as_file(), n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_file_mut().flush()
    }
}

impl Sink for ImportSink<'_, '_> {
    type Error = StoreError;
    type Staged = Staged;

    fn keyring(&mut self, bytes: &[u8]) -> Result<Option<tender_keys::Trust>, StoreError> {
        self.gate.keyring(bytes)
    }

    fn accept(&mut self, v: &VerifiedDescriptor) -> Result<Accept, StoreError> {
        let admission = self.gate.admit(v)?;
        self.warnings.extend(admission.warnings);
        self.below_floor = admission.below_floor;
        self.held_as = admission.held_as;
        Ok(if admission.already_held { Accept::Stop } else { Accept::Read })
    }

    fn phase(&self) -> &'static str {
        "import"
    }

    fn wants(&mut self, blob: &BlobRecord) -> bool {
        !self.store.has_blob(&blob.digest)
    }

    fn stage(&mut self, _blob: &BlobRecord) -> Result<Staged, StoreError> {
        tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.staging)
            .map(|file| Staged { file, writeback: Writeback::default() })
            .map_err(io_err(&self.staging))
    }

    fn write_failed(&self, staged: &Staged, err: io::Error) -> StoreError {
        StoreError::Io { path: staged.file.path().to_owned(), source: err }
    }

    fn wants_chunk(&mut self, blob: &BlobRecord, chunk: &ChunkRecord) -> bool {
        !self.store.has_blob(&blob.digest) && !self.store.chunk_path(&blob.digest, chunk).is_file()
    }

    fn commit_chunk(
        &mut self,
        blob: &BlobRecord,
        chunk: &ChunkRecord,
        staged: Staged,
    ) -> Result<(), StoreError> {
        let staged = staged.into_file();
        staged.as_file().sync_all().map_err(io_err(staged.path()))?;
        let target = self.store.chunk_path(&blob.digest, chunk);
        let dir = target.parent().expect("chunk paths have a directory").to_owned();
        crate::create_dirs(&dir)?;
        staged
            .persist(&target)
            .map_err(|e| StoreError::Io { path: target.clone(), source: e.error })?;
        sync_dir(&dir)?;
        if blob.chunks.iter().all(|c| self.store.chunk_path(&blob.digest, c).is_file()) {
            self.store.assemble(blob)?;
        }
        Ok(())
    }

    fn commit_patch(
        &mut self,
        blob: &BlobRecord,
        staged: Staged,
        progress: &dyn Progress,
    ) -> Result<(), StoreError> {
        // The patch's digest checked; the rebuilt layer is checked against
        // its own before it is kept. The patch itself is dropped with `staged`.
        self.store.rebuild_patched(blob, staged.file.path(), progress)
    }

    fn commit(&mut self, blob: &BlobRecord, staged: Staged) -> Result<(), StoreError> {
        let staged = staged.into_file();
        // Durable before it is visible under its digest: fsynced, then
        // renamed, on a thread of the committer while the next blob streams.
        self.committer.commit(staged, self.store.blob_path(&blob.digest))
    }
}

impl Store {
    /// Verify `input` (a bundle, `source` names it in errors) and merge it.
    ///
    /// Nothing is written before the signature verifies and the trust gate
    /// admits the bundle (but a newer keyring it carries, which stands on its
    /// own root signatures, is installed first); each blob is written to
    /// `staging/` and renamed into `blobs/` only after its digest checks; the
    /// version is recorded only when every blob is present.
    ///
    /// `detached`: signatures from a `BUNDLE.sig` beside the bundle, counted
    /// with those it carries.
    pub fn import_with(
        &self,
        input: impl Read,
        source: &Path,
        detached: &[tender_keys::Signature],
        policy: ImportPolicy,
        progress: &dyn Progress,
    ) -> Result<ImportReport, StoreError> {
        let _lock = self.lock()?;
        let mut gate = Gate::new(self, Purpose::Import, policy);
        let trust = gate.trust()?;
        let staging = self.root.join("staging");
        // We hold the lock: anything in staging is left from a killed run.
        for stale in crate::read_dir_sorted(&staging)? {
            let _ = fs::remove_file(&stale);
        }
        let mut sink = ImportSink {
            store: self,
            staging,
            committer: Committer::start(),
            gate: &mut gate,
            warnings: vec![],
            below_floor: None,
            held_as: None,
        };
        let read = read_bundle_with(input, source, &trust, detached, &mut sink, progress);
        // Every blob handed to the committer is in place (or failed) from here.
        let (v, summary) = match (read, sink.committer.finish()) {
            (Ok(r), Ok(())) => r,
            (Err(e), _) | (Ok(_), Err(e)) => {
                // Blobs committed so far are complete and verified: keep them,
                // and make their renames durable, so a rerun skips them.
                let _ = sync_dir(&self.blobs_dir());
                return Err(e);
            }
        };
        let d = &v.descriptor;
        let mut report = ImportReport {
            already_imported: summary.stopped,
            blobs_new: summary.blobs_committed,
            bytes_new: summary.bytes_committed,
            blobs_held: summary.blobs - summary.blobs_committed,
            bytes_held: summary.bytes - summary.bytes_committed,
            part: summary.part,
            warnings: std::mem::take(&mut sink.warnings),
            below_floor: sink.below_floor,
            ..ImportReport::begin(&v)
        };
        self.note_seen()?;
        report.warnings.extend(self.settings_not_set(d)?);
        if summary.stopped {
            // Another packing of this release is held: that is the version.
            if let Some(held) = sink.held_as.take() {
                report.digest = held;
            }
            report.parts_complete = d.parts;
            report.complete = true;
            report.blobs_held = d.blobs.len();
            report.bytes_held = d.total_blob_bytes();
            return Ok(report);
        }
        sync_dir(&self.blobs_dir())?;
        let missing: Vec<&BlobRecord> =
            d.blobs.iter().filter(|b| !self.has_blob(&b.digest)).collect();
        // A whole bundle brings every blob; a part leaves the others' to them.
        if let Some(first) = missing.iter().find(|b| b.part == summary.part && b.chunks.is_empty())
        {
            return Err(tender_bundle::BundleError::Incomplete {
                missing: missing.len(),
                first: first.digest.clone(),
            }
            .into());
        }
        self.record_version(&v, source, &mut report)?;
        Ok(report)
    }

    /// Record `v` as held (complete or not), fill in what `report` says of
    /// its completeness, and note it for the stack's downgrade floor. The caller
    /// holds the lock and has made its blobs durable.
    pub(crate) fn record_version(
        &self,
        v: &VerifiedDescriptor,
        source: &Path,
        report: &mut ImportReport,
    ) -> Result<(), StoreError> {
        let d = &v.descriptor;
        let missing: Vec<&BlobRecord> =
            d.blobs.iter().filter(|b| !self.has_blob(&b.digest)).collect();
        report.bytes_missing = missing.iter().map(|b| b.size).sum();
        // A part is complete when its blobs, and its chunks of blobs not yet
        // whole, are here.
        let lacks = |p: u32| {
            missing.iter().any(|b| {
                if b.chunks.is_empty() {
                    b.part == p
                } else {
                    b.chunks.iter().any(|c| c.part == p && !self.chunk_path(&b.digest, c).is_file())
                }
            })
        };
        report.parts_complete = (1..=d.parts).filter(|p| !lacks(*p)).count() as u32;
        report.complete = missing.is_empty();
        let record = VersionRecord {
            descriptor: String::from_utf8(v.raw.clone()).map_err(|e| StoreError::BadRecord {
                path: source.to_owned(),
                reason: format!("descriptor is not UTF-8: {e}"),
            })?,
            signatures: v.signatures.clone(),
            digest: v.digest.clone(),
            imported: now_rfc3339(),
        };
        let dir = self.stack_dir(&d.stack.name);
        let versions = dir.join("versions");
        crate::create_dirs(&versions)?;
        let mut bytes = serde_json::to_vec_pretty(&record).expect("record serializes");
        bytes.push(b'\n');
        // Named by version and content: a version name re-issued with other
        // content (a higher sequence) must not replace the record of the one
        // that may be in force, which rollback and prune go back to.
        let name = format!("{}@{}.json", d.stack.version, &v.digest.hex()[..16]);
        write_atomic(&versions, &name, &bytes)?;
        // A record of this same descriptor under the name earlier releases
        // used (`<version>.json`) would list it twice.
        let legacy = versions.join(format!("{}.json", d.stack.version));
        if let Ok(old) = fs::read(&legacy)
            && serde_json::from_slice::<VersionRecord>(&old).is_ok_and(|r| r.digest == v.digest)
        {
            fs::remove_file(&legacy).map_err(io_err(&legacy))?;
            sync_dir(&versions)?;
        }
        self.note_accepted(v)
    }
}
