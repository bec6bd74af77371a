//! The ship's receipt (`tender-ship report`): its inventory, per stack the
//! versions held, the version in force and its health, the history since
//! the last receipt, the last fsck, the free space and the settings still
//! to set; signed with the ship's key. The shore's fleet reads it.

use std::path::Path;
use std::time::SystemTime;

use tender_bundle::receipt::{
    Event, EventOutcome, Health, HealthState, HeldVersion, InForce, MAX_RECEIPT_ITEMS,
    RECEIPT_FORMAT, Receipt, ReceiptStack, SettingGap, truncate,
};
use tender_bundle::{StackName, error_chain};
use tender_store::{Outcome, Store, StoreError};

use crate::DeployError;

/// Build and sign the ship's receipt as of `now`. The cluster is read only
/// when `kubeconfig` is given; a cluster that does not answer makes the
/// health "unknown", not an error. Nothing is kept: once the receipt is
/// written, [`Store::mark_reported`] makes the next one start after it.
pub fn receipt(
    store: &Store,
    kubeconfig: Option<&Path>,
    now: SystemTime,
) -> Result<Receipt, DeployError> {
    let missing = |what| StoreError::NoShipIdentity { path: store.root().to_owned(), what };
    let key = store.ship_key()?.ok_or_else(|| missing("key"))?;
    let ship = store.ship_name()?.ok_or_else(|| missing("name"))?;
    let last = store.last_report()?;
    let mut inventory = crate::inventory(store)?;
    let created = humantime::format_rfc3339_seconds(now).to_string();
    inventory.created = created.clone();
    let mut stacks = Vec::new();
    for stack in store.stacks()?.into_iter().take(MAX_RECEIPT_ITEMS) {
        let seen = last.as_ref().and_then(|m| m.events.get(&stack).copied()).unwrap_or(0);
        stacks.push(stack_receipt(store, stack, seen, kubeconfig)?);
    }
    let mut r = Receipt {
        format: RECEIPT_FORMAT.into(),
        ship,
        keyid: key.public().key_id(),
        sequence: last.as_ref().map_or(1, |m| m.sequence + 1),
        created,
        previous: last.map(|m| m.created),
        free_bytes: store.free_space()?,
        fsck: store.last_fsck()?,
        stacks,
        inventory,
        signatures: vec![],
    };
    r.sign(&key);
    Ok(r)
}

/// One stack's part of the receipt; `seen` history entries were in the
/// receipt before.
fn stack_receipt(
    store: &Store,
    stack: StackName,
    seen: usize,
    kubeconfig: Option<&Path>,
) -> Result<ReceiptStack, DeployError> {
    let history = store.history(&stack)?;
    let in_force = history.current.as_ref().map(|c| InForce {
        version: c.version.clone(),
        sequence: c.sequence,
        digest: c.digest.clone(),
    });
    let mut versions = Vec::new();
    for v in store.list()?.into_iter().filter(|v| v.stack == stack) {
        versions.push(HeldVersion {
            version: v.version,
            sequence: v.sequence,
            digest: v.digest,
            complete: v.complete,
            size: v.size,
            bytes_missing: v.bytes_missing,
            parts: v.parts,
            parts_missing: v.parts_missing,
        });
    }
    let mut settings_not_set = Vec::new();
    for (_, _, d) in store.versions()?.into_iter().filter(|(_, _, d)| d.stack.name == stack) {
        for s in store.setting_states(&stack, &d.settings)? {
            if matches!(s.state, "missing" | "invalid") {
                settings_not_set.push(SettingGap {
                    version: d.stack.version.clone(),
                    name: s.name.to_string(),
                    state: s.state.to_string(),
                });
            }
        }
    }
    // The entries since the last receipt; a history shorter than what was
    // seen (a store rebuilt) is reported whole.
    let from = if seen <= history.entries.len() { seen } else { 0 };
    let new = &history.entries[from..];
    let history = new[new.len().saturating_sub(MAX_RECEIPT_ITEMS)..]
        .iter()
        .map(|e| Event {
            version: e.version.clone(),
            sequence: e.sequence,
            at: e.at.clone(),
            outcome: match e.outcome {
                Outcome::Applied => EventOutcome::Applied,
                Outcome::Loaded => EventOutcome::Loaded,
                Outcome::Failed => EventOutcome::Failed,
                Outcome::RolledBack => EventOutcome::RolledBack,
            },
            detail: e.detail.clone().map(|mut d| {
                truncate(&mut d);
                d
            }),
        })
        .collect();
    let health = health(store, &stack, in_force.is_some(), kubeconfig);
    settings_not_set.truncate(MAX_RECEIPT_ITEMS);
    versions.truncate(MAX_RECEIPT_ITEMS);
    Ok(ReceiptStack { stack, in_force, health, versions, history, settings_not_set })
}

/// The health of the version in force, or why it is unknown.
fn health(store: &Store, stack: &StackName, in_force: bool, kubeconfig: Option<&Path>) -> Health {
    if !in_force {
        return Health { state: HealthState::NothingInForce, ready: 0, total: 0, reason: None };
    }
    let Some(kubeconfig) = kubeconfig else {
        return Health::unknown("no kubeconfig");
    };
    match crate::cluster_health(store, stack, kubeconfig) {
        Ok(Some((_, objects))) => {
            let ready = objects.iter().filter(|o| o.health.is_ready()).count() as u64;
            let total = objects.len() as u64;
            let not_ready: Vec<String> = objects
                .iter()
                .filter(|o| !o.health.is_ready())
                .take(5)
                .map(|o| format!("{}: {}", o.object, o.health))
                .collect();
            let state = if ready == total { HealthState::Healthy } else { HealthState::Unhealthy };
            let mut reason = (!not_ready.is_empty()).then(|| not_ready.join("; "));
            if let Some(r) = &mut reason {
                truncate(r);
            }
            Health { state, ready, total, reason }
        }
        Ok(None) => Health { state: HealthState::NothingInForce, ready: 0, total: 0, reason: None },
        Err(e) => Health::unknown(format!("the cluster could not be read: {}", error_chain(&e))),
    }
}
