//! The trust gate: the one place where a bundle's keyring, signatures,
//! signers' scope, thresholds, expiry and its admission into the store
//! (replays, downgrades, missing bases, room on disk) are judged. Import,
//! verify, pull and `apply PATH` all go through it, so a rule added here
//! holds on every way in.

use std::collections::BTreeSet;

use tender_bundle::{BlobRecord, Descriptor, Digest, Sink, StackName, VerifiedDescriptor};
use tender_keys::keyring::{Keyring, SignedKeyring};
use tender_keys::{KeyError, KeyId, Trust};

use crate::{
    Admission, Downgrade, Freshness, ImportPolicy, Install, KeyringChange, Store, StoreError,
};

/// What the gate is judging for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `verify`: trust only (keyring, signatures, signers, expiry); writes
    /// nothing and leaves the store's state (sequences, bases) aside.
    Verify,
    /// `pull --estimate`: everything an import checks, writing nothing.
    Estimate,
    /// `import`, `pull`, `apply PATH`: everything, and a newer keyring the
    /// bundle carries is installed.
    Import,
}

/// One judgement of one bundle (see the module docs).
pub struct Gate<'s> {
    store: &'s Store,
    purpose: Purpose,
    policy: ImportPolicy,
    /// A keyring the bundle offered that may follow the one in force (for
    /// [`Purpose::Import`] it is installed by then).
    offered: Option<SignedKeyring>,
    warnings: Vec<String>,
}

impl<'s> Gate<'s> {
    /// A gate over `store`.
    pub fn new(store: &'s Store, purpose: Purpose, policy: ImportPolicy) -> Gate<'s> {
        Gate { store, purpose, policy, offered: None, warnings: vec![] }
    }

    /// The keys whose signatures count now (before any keyring the bundle
    /// carries is judged).
    pub fn trust(&self) -> Result<Trust, StoreError> {
        self.store.trust_with(self.offered.as_ref().map(|k| &k.signed))
    }

    /// Judge a keyring the bundle carries, before its descriptor: it stands
    /// on its own root signatures (as TUF updates root metadata first).
    /// Returns the trust to check the descriptor with, or `None` to keep
    /// [`Gate::trust`] (an older keyring, ignored with a warning).
    pub fn keyring(&mut self, bytes: &[u8]) -> Result<Option<Trust>, StoreError> {
        let install = if self.purpose == Purpose::Import { Install::Yes } else { Install::No };
        let (change, k) = self.store.consider_keyring(bytes, install)?;
        if let KeyringChange::Older { offered, held } = change {
            self.warnings.push(format!(
                "the bundle carries keyring version {offered}, older than version {held} in force: ignored"
            ));
            return Ok(None);
        }
        self.offered = Some(k);
        Ok(Some(self.trust()?))
    }

    /// Warnings gathered so far (older keyring, expiry, the clock).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Judge a descriptor whose signatures verified: its signers may sign
    /// its stack and meet the threshold; then expiry; then (unless only
    /// verifying) the store's state: the downgrade floor (also for a
    /// version already held), replays with other content, a delta's base,
    /// and room on disk for every byte it will write.
    pub fn admit(&mut self, v: &VerifiedDescriptor) -> Result<Admission, StoreError> {
        let d = &v.descriptor;
        let keyring = self.store.keyring_in_force(self.offered.as_ref())?;
        check_signers(self.store, &d.stack.name, &v.signed_by, keyring.as_ref())?;
        let mut warnings = self.take_warnings();
        warnings.extend(self.store.check_freshness(d, self.policy.freshness)?);
        if self.purpose == Purpose::Verify {
            return Ok(Admission { warnings, ..Admission::default() });
        }
        let name = &d.stack.name;
        let floor = self.store.sequence_floor(name, keyring.as_ref())?;
        let below = d.sequence < floor && self.policy.downgrade == Downgrade::Refuse;
        // One pass over the stack's records: this exact version held whole,
        // or another one holding its sequence.
        let mut exact_whole = false;
        let mut held_as = None;
        let mut same_sequence = Vec::new();
        for (_, rec, held) in self.store.versions()? {
            if held.stack.name != *name {
                continue;
            }
            // The same release packed another way (whole, as a delta, split)
            // is this version: held once its blobs are.
            if rec.digest == v.digest || held.same_release(d) {
                if held.blobs.iter().all(|b| self.store.has_blob(&b.digest)) {
                    if rec.digest == v.digest {
                        exact_whole = true;
                    } else if self.store.authority(&rec, &held).is_ok() {
                        held_as.get_or_insert(rec.digest);
                    }
                }
            } else if held.sequence == d.sequence {
                same_sequence.push((rec, held));
            }
        }
        let held_whole = exact_whole || held_as.is_some();
        if exact_whole {
            held_as = None;
        }
        if below && !held_whole {
            return Err(StoreError::Downgrade { stack: name.clone(), sequence: d.sequence, floor });
        }
        if held_whole {
            // Nothing to write. Below the floor it is kept as it was and
            // marked, so `apply PATH` never applies it from this bundle.
            let below_floor = below.then_some(floor);
            if let Some(floor) = below_floor {
                warnings.push(format!(
                    "{name} {} (sequence {}) is held and older than sequence {floor}: kept as it was, not applied",
                    d.stack.version, d.sequence
                ));
            }
            return Ok(Admission { already_held: true, held_as, below_floor, warnings });
        }
        // A version only revoked keys signed does not block its sequence.
        if self.policy.downgrade == Downgrade::Refuse
            && let Some((rec, _)) = same_sequence
                .into_iter()
                .find(|(rec, held)| self.store.authority(rec, held).is_ok())
        {
            return Err(StoreError::SequenceConflict {
                stack: name.clone(),
                sequence: d.sequence,
                held: rec.digest,
            });
        }
        // A delta: every blob it leaves out, and every layer a patch
        // rebuilds from, must be here before anything is written.
        let missing: Vec<&Digest> = d
            .expected_blobs()
            .map(|b| &b.digest)
            .chain(d.patch_bases())
            .filter(|dg| !self.store.has_blob(dg))
            .collect();
        if let Some(first) = missing.first() {
            let bases: Vec<String> = d.bases.iter().map(|b| b.to_string()).collect();
            return Err(StoreError::BaseMissing {
                missing: missing.len(),
                first: (*first).clone(),
                bases: if bases.is_empty() { "(not named)".into() } else { bases.join(", ") },
            });
        }
        self.store.check_room(d)?;
        Ok(Admission { warnings, ..Admission::default() })
    }
}

/// Refuse unless enough of `signed_by` may sign `stack`: pinned signing
/// keys may sign any stack (unless the keyring revokes them); keyring keys
/// the stacks their role names. The threshold is the higher of the ship's
/// (`trust threshold`) and the keyring's for the stack.
fn check_signers(
    store: &Store,
    name: &StackName,
    signed_by: &[KeyId],
    keyring: Option<&Keyring>,
) -> Result<Vec<KeyId>, StoreError> {
    let stack = name.as_str();
    let pinned: Vec<KeyId> = store.trusted_keys()?.iter().map(|k| k.key_id()).collect();
    let allowed: BTreeSet<&KeyId> =
        signed_by.iter().filter(|k| has_say(&pinned, keyring, k, stack)).collect();
    if allowed.is_empty() {
        return Err(StoreError::NotAllowed {
            stack: name.clone(),
            signed_by: signed_by.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", "),
        });
    }
    let required = store
        .thresholds()?
        .get(stack)
        .copied()
        .unwrap_or(1)
        .max(keyring.and_then(|r| r.thresholds.get(stack).copied()).unwrap_or(1));
    if allowed.len() < required {
        return Err(KeyError::BelowThreshold { valid: allowed.len(), required }.into());
    }
    Ok(allowed.into_iter().cloned().collect())
}

/// Whether `key` has a say over `stack`: pinned by hand (any stack) and
/// not revoked by `keyring`, or allowed for the stack by `keyring` (expiry
/// aside: it ends new bundles, which the trust given to the reader judges).
pub(crate) fn has_say(
    pinned: &[KeyId],
    keyring: Option<&Keyring>,
    key: &KeyId,
    stack: &str,
) -> bool {
    match keyring {
        Some(r) => r.allows(key, stack) || (pinned.contains(key) && !r.is_revoked(key)),
        None => pinned.contains(key),
    }
}

/// What the signers of a stored version may do now (judged against the
/// keyring in force, so a revocation reaches versions already held).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Authority {
    /// The keys whose signatures still count for this version's stack.
    pub signed_by: Vec<KeyId>,
    /// Whether the version may apply cluster-scoped objects other than its
    /// own Namespaces: a key pinned by hand, or a keyring signer granted it.
    pub cluster_scope: bool,
}

impl Store {
    /// The keyring `offered` (judged, perhaps not installed) or the one in
    /// force.
    fn keyring_in_force(
        &self,
        offered: Option<&SignedKeyring>,
    ) -> Result<Option<Keyring>, StoreError> {
        Ok(match offered {
            Some(k) => Some(k.signed.clone()),
            None => self.keyring()?.map(|k| k.signed),
        })
    }

    /// The authority of a stored version's signatures now: they are checked
    /// again against the keys pinned and listed in the keyring in force
    /// (a signer's expiry ends new bundles, not the versions it signed
    /// before; a revocation ends both), and must still meet the stack's
    /// scope and threshold. A version that fails is not applied or rolled
    /// back to until it is signed again.
    pub fn authority(
        &self,
        rec: &crate::VersionRecord,
        d: &Descriptor,
    ) -> Result<Authority, StoreError> {
        let keyring = self.keyring()?.map(|k| k.signed);
        let keys = self.signing_keys(keyring.as_ref(), crate::keyring::Expiry::Ignored)?;
        let pinned: Vec<KeyId> = self.trusted_keys()?.iter().map(|k| k.key_id()).collect();
        let no_longer = |e: &dyn std::fmt::Display| StoreError::NoLongerTrusted {
            stack: d.stack.name.clone(),
            version: d.stack.version.clone(),
            reason: e.to_string(),
        };
        let message = tender_bundle::signing_message(rec.descriptor.as_bytes());
        let verified =
            Trust::new(keys).verify(&message, &rec.signatures).map_err(|e| no_longer(&e))?;
        let stack = d.stack.name.as_str();
        let signed_by = check_signers(self, &d.stack.name, &verified, keyring.as_ref())
            .map_err(|e| no_longer(&e))?;
        let cluster_scope = signed_by.iter().any(|k| {
            pinned.contains(k) || keyring.as_ref().is_some_and(|r| r.grants_cluster_scope(k, stack))
        });
        Ok(Authority { signed_by, cluster_scope })
    }

    /// Refuse a version the store's filesystem has no room for: every blob
    /// it lacks, at its signed size (a patched layer is rebuilt whole; its
    /// patch is staged beside it), before anything is written.
    pub(crate) fn check_room(&self, d: &Descriptor) -> Result<(), StoreError> {
        let needed: u64 = d
            .blobs
            .iter()
            .filter(|b| !self.has_blob(&b.digest))
            .map(|b: &BlobRecord| b.size.saturating_add(b.patch.as_ref().map_or(0, |p| p.size)))
            .fold(0u64, u64::saturating_add);
        let available = crate::fsutil::available(&self.root)?;
        if needed > available {
            return Err(StoreError::NoRoom {
                path: self.root.clone(),
                needed,
                available,
                stack: d.stack.name.clone(),
                version: d.stack.version.clone(),
            });
        }
        Ok(())
    }
}

/// `verify`'s sink: the gate judges, nothing is kept.
pub(crate) struct VerifySink<'g, 's> {
    pub(crate) gate: &'g mut Gate<'s>,
    pub(crate) admission: Option<Admission>,
}

impl Sink for VerifySink<'_, '_> {
    type Error = StoreError;
    type Staged = std::io::Sink;
    fn keyring(&mut self, bytes: &[u8]) -> Result<Option<Trust>, StoreError> {
        self.gate.keyring(bytes)
    }
    fn accept(&mut self, v: &VerifiedDescriptor) -> Result<tender_bundle::Accept, StoreError> {
        self.admission = Some(self.gate.admit(v)?);
        Ok(tender_bundle::Accept::Read)
    }
    fn wants(&mut self, _: &BlobRecord) -> bool {
        false
    }
    fn stage(&mut self, _: &BlobRecord) -> Result<std::io::Sink, StoreError> {
        Ok(std::io::sink())
    }
    fn write_failed(&self, _: &std::io::Sink, err: std::io::Error) -> StoreError {
        tender_bundle::BundleError::Write { path: "(nowhere)".into(), source: err }.into()
    }
    fn commit(&mut self, _: &BlobRecord, _: std::io::Sink) -> Result<(), StoreError> {
        Ok(())
    }
}

/// What `verify` found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyReport {
    /// Stack name.
    pub stack: StackName,
    /// Version.
    pub version: tender_bundle::Version,
    /// Sequence.
    pub sequence: u64,
    /// Descriptor digest.
    pub digest: Digest,
    /// Keys whose signatures verified.
    pub signed_by: Vec<KeyId>,
    /// Blobs verified.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Things the operator should know.
    pub warnings: Vec<String>,
}

impl Store {
    /// Verify a bundle (`source` names it in errors) through the trust gate
    /// and every blob against its digest, in one streaming pass; writes
    /// nothing (a keyring it carries is judged, not installed).
    pub fn verify(
        &self,
        input: impl std::io::Read,
        source: &std::path::Path,
        detached: &[tender_keys::Signature],
        freshness: Freshness,
        progress: &dyn tender_bundle::Progress,
    ) -> Result<VerifyReport, StoreError> {
        let mut gate =
            Gate::new(self, Purpose::Verify, ImportPolicy { freshness, ..Default::default() });
        let trust = gate.trust()?;
        let mut sink = VerifySink { gate: &mut gate, admission: None };
        let (v, summary) =
            tender_bundle::read_bundle_with(input, source, &trust, detached, &mut sink, progress)?;
        let mut warnings = sink.admission.take().map(|a| a.warnings).unwrap_or_default();
        warnings.extend(gate.take_warnings());
        let d = v.descriptor;
        Ok(VerifyReport {
            stack: d.stack.name,
            version: d.stack.version,
            sequence: d.sequence,
            digest: v.digest,
            signed_by: v.signed_by,
            blobs: summary.blobs,
            bytes: summary.bytes,
            warnings,
        })
    }
}
