//! The ship's inventory: what its store holds, for the shore to pack a delta
//! against.

use tender_bundle::inventory::{INVENTORY_FORMAT, Inventory, InventoryVersion};
use tender_store::Store;

use crate::DeployError;

/// What `store` holds: every blob, and each version with whether it is the
/// one applied. Unsigned: the ship's own key, where it has one, signs it.
pub fn inventory(store: &Store) -> Result<Inventory, DeployError> {
    let blobs = store.blob_digests()?;
    let mut versions = Vec::new();
    for v in store.list()? {
        let applied = store.history(&v.stack)?.current.is_some_and(|c| c.digest == v.digest);
        versions.push(InventoryVersion {
            stack: v.stack,
            version: v.version,
            sequence: v.sequence,
            complete: v.complete,
            applied,
        });
    }
    Ok(Inventory {
        format: INVENTORY_FORMAT.into(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        blobs,
        versions,
        signatures: vec![],
    })
}
