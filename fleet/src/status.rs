//! `fleet status`: one row per ship from its latest receipt.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tender_bundle::receipt::{FsckSummary, HealthState, ShipName};
use tender_bundle::{Digest, StackName, Version};
use tender_keys::KeyId;

use crate::{Ship, Ships};

/// One ship's row.
#[derive(Clone, Debug, Serialize)]
pub struct ShipStatus {
    /// The ship.
    pub ship: ShipName,
    /// Its file-name form.
    pub slug: String,
    /// Its key.
    pub keyid: KeyId,
    /// When its latest receipt was written (none yet: null).
    pub last_receipt: Option<String>,
    /// That receipt's sequence.
    pub receipt_sequence: Option<u64>,
    /// Seconds since then (since it was added, without a receipt).
    pub age_seconds: u64,
    /// Not heard of for longer than the stale limit.
    pub stale: bool,
    /// Bytes free in its store.
    pub free_bytes: Option<u64>,
    /// Its last fsck.
    pub fsck: Option<FsckSummary>,
    /// Per stack.
    pub stacks: Vec<StackRow>,
}

/// One stack aboard one ship.
#[derive(Clone, Debug, Serialize)]
pub struct StackRow {
    /// The stack.
    pub stack: StackName,
    /// The version in force.
    pub in_force: Option<Version>,
    /// Its descriptor digest.
    pub in_force_digest: Option<Digest>,
    /// Its health.
    pub health: HealthState,
    /// Why unknown or not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_reason: Option<String>,
    /// Versions held newer than the one in force (waiting to be applied).
    pub waiting: Vec<Waiting>,
    /// Failed applies since the receipt before.
    pub failed_applies: usize,
    /// Settings versions held need that the ship has not set.
    pub settings_not_set: Vec<String>,
}

/// A version waiting aboard.
#[derive(Clone, Debug, Serialize)]
pub struct Waiting {
    /// Version.
    pub version: Version,
    /// Sequence.
    pub sequence: u64,
    /// Every blob held.
    pub complete: bool,
    /// Bytes still missing.
    pub bytes_missing: u64,
    /// Parts still missing.
    pub parts_missing: Vec<u32>,
}

impl Ships {
    /// Each ship's row as of `now`; `stale` marks ships not heard of for
    /// longer.
    pub fn status(&self, now: SystemTime, stale: Duration) -> Vec<ShipStatus> {
        self.ships.iter().map(|s| row(s, now, stale)).collect()
    }
}

fn row(s: &Ship, now: SystemTime, stale: Duration) -> ShipStatus {
    let r = s.receipt.as_ref();
    let since = r
        .map(|r| r.created_time())
        .unwrap_or_else(|| humantime::parse_rfc3339(&s.added).unwrap_or(SystemTime::UNIX_EPOCH));
    let age = now.duration_since(since).unwrap_or_default();
    let stacks = r.map_or(vec![], |r| {
        r.stacks
            .iter()
            .map(|st| {
                let floor = st.in_force.as_ref().map_or(0, |f| f.sequence);
                StackRow {
                    stack: st.stack.clone(),
                    in_force: st.in_force.as_ref().map(|f| f.version.clone()),
                    in_force_digest: st.in_force.as_ref().map(|f| f.digest.clone()),
                    health: st.health.state,
                    health_reason: st.health.reason.clone(),
                    waiting: st
                        .versions
                        .iter()
                        .filter(|v| v.sequence > floor)
                        .map(|v| Waiting {
                            version: v.version.clone(),
                            sequence: v.sequence,
                            complete: v.complete,
                            bytes_missing: v.bytes_missing,
                            parts_missing: v.parts_missing.clone(),
                        })
                        .collect(),
                    failed_applies: st.history.iter().filter(|e| e.outcome.failed()).count(),
                    settings_not_set: st
                        .settings_not_set
                        .iter()
                        .map(|g| format!("{} ({} {})", g.name, g.version, g.state))
                        .collect(),
                }
            })
            .collect()
    });
    ShipStatus {
        ship: s.name.clone(),
        slug: s.name.slug(),
        keyid: s.key.key_id(),
        last_receipt: r.map(|r| r.created.clone()),
        receipt_sequence: r.map(|r| r.sequence),
        age_seconds: age.as_secs(),
        stale: age > stale,
        free_bytes: r.map(|r| r.free_bytes),
        fsck: r.and_then(|r| r.fsck.clone()),
        stacks,
    }
}
