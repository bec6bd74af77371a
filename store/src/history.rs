//! What was applied when, per stack; choosing versions; garbage collection.

use std::collections::HashSet;
use std::fs;

use serde::{Deserialize, Serialize};
use tender_bundle::{Descriptor, Digest, StackName, Version};

use crate::fsutil::{io_err, sync_dir, write_atomic};
use crate::{Store, StoreError, VersionInfo, VersionRecord, now_rfc3339};

/// How an apply ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Images loaded and manifests applied.
    Applied,
    /// Images loaded into the registry only (`load`).
    Loaded,
    /// Something failed; `detail` says what.
    Failed,
    /// Applying failed and the version in force before was put back;
    /// `detail` says why and what was restored.
    RolledBack,
}

/// One entry of a stack's history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The version.
    pub version: Version,
    /// Its sequence.
    pub sequence: u64,
    /// Its descriptor digest.
    pub digest: Digest,
    /// When, RFC 3339.
    pub at: String,
    /// How it ended.
    pub outcome: Outcome,
    /// What failed, or what was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The settings and local patches it rendered with (names and a hash,
    /// never values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<crate::SettingsUsed>,
}

/// A stack's apply history; `current` is the version last applied successfully.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    /// The version in force.
    pub current: Option<HistoryEntry>,
    /// Every attempt, oldest first.
    pub entries: Vec<HistoryEntry>,
}

/// Which stored version of a stack an apply, a load or a rollback takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick {
    /// `VERSION`, or (None) the newest complete one still trusted.
    Named(Option<Version>),
    /// Exactly this descriptor (what an import just brought).
    Digest(Digest),
    /// The version applied before the current one (a rollback).
    Previous,
}

impl History {
    /// The version applied successfully before the current one.
    pub fn previous(&self) -> Option<&HistoryEntry> {
        let current = self.current.as_ref()?;
        let mut applied = self.entries.iter().rev().filter(|e| e.outcome == Outcome::Applied);
        // Skip the current one's latest application, then anything equal to it.
        applied.find(|e| e.digest != current.digest)
    }
}

/// One stack's standing, for `status`: what is applied, what is held, and
/// how applying went.
#[derive(Clone, Debug, Serialize)]
pub struct StackStatus {
    // Fields in name order: the JSON `status` printed before this type
    // existed had its keys sorted, and scripts may read it as text.
    /// The version in force.
    pub applied: Option<Version>,
    /// Every apply attempt, oldest first.
    pub history: Vec<HistoryEntry>,
    /// The settings the newest version held declares, and their state
    /// aboard (secret values shown as `***`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<crate::SettingState>,
    /// The stack.
    pub stack: StackName,
    /// Bytes free for tender on the store's filesystem (the same in every
    /// stack's entry: the JSON is a list of stacks, kept as it was).
    pub store_free_bytes: u64,
    /// The versions of it held.
    pub versions: Vec<VersionInfo>,
}

/// What `gc` does with the version `rollback` would return to (the one
/// applied successfully before the version in force).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RollbackTarget {
    /// Keep it whatever `keep` says, so `rollback` still works with no
    /// connection (the default).
    #[default]
    Keep,
    /// Count it like any other version: `gc --keep 1` may remove it, and
    /// `rollback` then has nothing to return to.
    Drop,
}

/// What `gc` removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    /// Versions removed: (stack, version).
    pub versions_removed: Vec<(String, String)>,
    /// Versions kept aside because their signatures no longer count (not
    /// counted among the newest kept): (stack, version).
    pub untrusted_kept: Vec<(String, String)>,
    /// Versions kept beyond the newest because `rollback` would return to
    /// them: (stack, version).
    pub rollback_kept: Vec<(String, String)>,
    /// Blobs removed.
    pub blobs_removed: usize,
    /// Their bytes.
    pub bytes_removed: u64,
}

impl Store {
    fn history_path(&self, name: &StackName) -> std::path::PathBuf {
        self.stack_dir(name).join("history.json")
    }

    /// A stack's history (empty if never applied).
    pub fn history(&self, name: &StackName) -> Result<History, StoreError> {
        let path = self.history_path(name);
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StoreError::BadRecord { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(History::default()),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Record an attempt; a successful apply becomes the current version.
    pub fn record(
        &self,
        d: &Descriptor,
        digest: &Digest,
        outcome: Outcome,
        detail: Option<String>,
        settings: Option<crate::SettingsUsed>,
    ) -> Result<HistoryEntry, StoreError> {
        let _lock = self.lock()?;
        let name = &d.stack.name;
        let mut h = self.history(name)?;
        let entry = HistoryEntry {
            version: d.stack.version.clone(),
            sequence: d.sequence,
            digest: digest.clone(),
            at: now_rfc3339(),
            outcome,
            detail,
            settings,
        };
        h.entries.push(entry.clone());
        if outcome == Outcome::Applied {
            h.current = Some(entry.clone());
        }
        let dir = self.stack_dir(name);
        crate::create_dirs(&dir)?;
        write_atomic(
            &dir,
            "history.json",
            &serde_json::to_vec_pretty(&h).expect("history serializes"),
        )?;
        Ok(entry)
    }

    /// Per stack held: the version applied, the versions held and the
    /// apply history.
    pub fn status(&self) -> Result<Vec<StackStatus>, StoreError> {
        let versions = self.list()?;
        let store_free_bytes = self.free_space()?;
        self.stacks()?
            .into_iter()
            .map(|stack| {
                let h = self.history(&stack)?;
                let settings = match self.version(&stack, None) {
                    Ok((_, d)) => self.setting_states(&stack, &d.settings)?,
                    Err(_) => vec![],
                };
                Ok(StackStatus {
                    settings,
                    applied: h.current.map(|c| c.version),
                    history: h.entries,
                    versions: versions.iter().filter(|v| v.stack == stack).cloned().collect(),
                    stack,
                    store_free_bytes,
                })
            })
            .collect()
    }

    /// Bytes free for an unprivileged writer on the store's filesystem
    /// (what an import may fill).
    pub fn free_space(&self) -> Result<u64, StoreError> {
        crate::fsutil::available(&self.root)
    }

    /// Stack names held.
    pub fn stacks(&self) -> Result<Vec<StackName>, StoreError> {
        let mut names: Vec<StackName> =
            self.versions()?.into_iter().map(|(_, _, d)| d.stack.name).collect();
        names.dedup();
        Ok(names)
    }

    /// A stored version of `name`: `version`, or the newest complete one
    /// (highest sequence) whose signatures still count (see
    /// [`Store::authority`]: a revoked key's version is never picked).
    pub fn version(
        &self,
        name: &StackName,
        version: Option<&Version>,
    ) -> Result<(VersionRecord, Descriptor), StoreError> {
        let mut candidates: Vec<_> = self
            .versions()?
            .into_iter()
            .filter(|(_, _, d)| {
                d.stack.name == *name && version.is_none_or(|v| d.stack.version == *v)
            })
            .collect();
        if version.is_none() {
            candidates.retain(|(_, rec, d)| {
                d.blobs.iter().all(|b| self.has_blob(&b.digest)) && self.authority(rec, d).is_ok()
            });
        }
        candidates.sort_by_key(|(_, _, d)| d.sequence);
        match candidates.pop() {
            Some((_, rec, d)) => Ok((rec, d)),
            None => Err(StoreError::NoSuchVersion {
                stack: name.clone(),
                version: version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "(newest complete)".into()),
            }),
        }
    }

    /// The stored version `pick` names (see [`Pick`]).
    pub fn pick(
        &self,
        name: &StackName,
        pick: &Pick,
    ) -> Result<(VersionRecord, Descriptor), StoreError> {
        let by_digest = |digest: &Digest, what: String| {
            self.version_by_digest(name, digest)?.ok_or(StoreError::VersionGone {
                stack: name.clone(),
                version: what,
                digest: digest.clone(),
            })
        };
        match pick {
            Pick::Named(v) => self.version(name, v.as_ref()),
            Pick::Digest(d) => by_digest(d, "the version".into()),
            Pick::Previous => {
                let history = self.history(name)?;
                let Some(previous) = history.previous() else {
                    return Err(StoreError::NoSuchVersion {
                        stack: name.clone(),
                        version: "applied before the current one: there is none to roll back to"
                            .into(),
                    });
                };
                // A version name may have been re-issued since: by digest.
                by_digest(
                    &previous.digest,
                    format!("{}, the version applied before the current one,", previous.version),
                )
            }
        }
    }

    /// Refuse to apply `stack` `version` (of `sequence`) from media when the
    /// version in force has a higher sequence, unless `policy` allows a
    /// downgrade: an old bundle on a stick must not move the cluster back.
    pub fn check_not_older_than_applied(
        &self,
        stack: &StackName,
        version: &Version,
        sequence: u64,
        policy: crate::ImportPolicy,
    ) -> Result<(), StoreError> {
        let Some(current) = self.history(stack)?.current else { return Ok(()) };
        if sequence < current.sequence && policy.downgrade == crate::Downgrade::Refuse {
            return Err(StoreError::OlderThanApplied {
                stack: stack.clone(),
                version: version.clone(),
                sequence,
                applied: current.version,
                applied_sequence: current.sequence,
            });
        }
        Ok(())
    }

    /// The stored version of `name` whose descriptor has `digest`, if the
    /// store still holds it. A version name may be re-issued with other
    /// content (both records are kept), so what was applied is found by
    /// digest, never by name.
    pub fn version_by_digest(
        &self,
        name: &StackName,
        digest: &Digest,
    ) -> Result<Option<(VersionRecord, Descriptor)>, StoreError> {
        Ok(self
            .versions()?
            .into_iter()
            .find(|(_, rec, d)| d.stack.name == *name && rec.digest == *digest)
            .map(|(_, rec, d)| (rec, d)))
    }

    /// Blobs of a version that the store lacks.
    pub fn missing_blobs(&self, d: &Descriptor) -> Vec<Digest> {
        d.blobs.iter().filter(|b| !self.has_blob(&b.digest)).map(|b| b.digest.clone()).collect()
    }

    /// Keep the newest `keep` versions of each stack, the applied one and
    /// (unless `rollback` says [`RollbackTarget::Drop`]) the one applied
    /// before it; remove the other version records, then every blob no kept
    /// version uses.
    pub fn gc(&self, keep: usize, rollback: RollbackTarget) -> Result<GcReport, StoreError> {
        let _lock = self.lock()?;
        let mut report = GcReport::default();
        let mut versions = self.versions()?;
        // Newest first within each stack.
        versions.sort_by(|a, b| {
            (a.2.stack.name.as_str(), std::cmp::Reverse(a.2.sequence))
                .cmp(&(b.2.stack.name.as_str(), std::cmp::Reverse(b.2.sequence)))
        });
        let mut kept_blobs: HashSet<Digest> = HashSet::new();
        let mut seen_per_stack: std::collections::HashMap<String, usize> = Default::default();
        for (path, rec, d) in versions {
            let history = self.history(&d.stack.name)?;
            let applied = history.current.as_ref().is_some_and(|c| c.digest == rec.digest);
            let rollback_target = rollback == RollbackTarget::Keep
                && history.previous().is_some_and(|p| p.digest == rec.digest);
            // A version whose signatures no longer count (a revoked key's
            // `u64::MAX`, say) must not take a trusted one's place among the
            // newest kept; it is kept aside rather than removed, since a trust
            // store set up wrong would otherwise empty the store.
            if !applied && self.authority(&rec, &d).is_err() {
                kept_blobs.extend(d.blobs.iter().map(|b| b.digest.clone()));
                report.untrusted_kept.push((d.stack.name.to_string(), d.stack.version.to_string()));
                continue;
            }
            let n = seen_per_stack.entry(d.stack.name.to_string()).or_default();
            *n += 1;
            if *n <= keep || applied || rollback_target {
                if *n > keep && !applied {
                    report
                        .rollback_kept
                        .push((d.stack.name.to_string(), d.stack.version.to_string()));
                }
                kept_blobs.extend(d.blobs.iter().map(|b| b.digest.clone()));
                continue;
            }
            fs::remove_file(&path).map_err(io_err(&path))?;
            report.versions_removed.push((d.stack.name.to_string(), d.stack.version.to_string()));
        }
        for dir in crate::read_dir_sorted(&self.root.join("stacks"))? {
            if dir.join("versions").is_dir() {
                sync_dir(&dir.join("versions"))?;
            }
        }
        for path in crate::read_dir_sorted(&self.blobs_dir())? {
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let Ok(d) = Digest::from_hex(&name) else { continue };
            if !kept_blobs.contains(&d) {
                let len = path.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(&path).map_err(io_err(&path))?;
                report.blobs_removed += 1;
                report.bytes_removed += len;
            }
        }
        sync_dir(&self.blobs_dir())?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: &str, digest: &[u8], outcome: Outcome) -> HistoryEntry {
        HistoryEntry {
            version: version.parse().unwrap(),
            sequence: 1,
            digest: Digest::of(digest),
            at: "2026-01-01T00:00:00Z".into(),
            outcome,
            detail: None,
            settings: None,
        }
    }

    #[test]
    fn previous_is_the_last_other_successful_apply() {
        let mut h = History::default();
        assert!(h.previous().is_none());
        for e in [
            entry("1", b"1", Outcome::Applied),
            entry("2", b"2", Outcome::Failed),
            entry("3", b"3", Outcome::Loaded),
            entry("4", b"4", Outcome::Applied),
            entry("4", b"4", Outcome::Applied),
        ] {
            if e.outcome == Outcome::Applied {
                h.current = Some(e.clone());
            }
            h.entries.push(e);
        }
        assert_eq!(h.previous().unwrap().version.as_str(), "1");
    }
}
