//! A ship's inventory (`tender-ship inventory`): what its store holds, for
//! the shore to pack a delta against. Written aboard, read on shore: the
//! format both sides meet in.

use serde::{Deserialize, Serialize};

use crate::{Digest, StackName, Version};

/// The inventory format `tender-ship inventory` writes.
pub const INVENTORY_FORMAT: &str = "tender-inventory/1";

/// A ship's inventory: every blob it holds, and its versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Always [`INVENTORY_FORMAT`].
    pub format: String,
    /// When it was taken, RFC 3339.
    pub created: String,
    /// Every blob in the store.
    pub blobs: Vec<Digest>,
    /// Versions held.
    pub versions: Vec<InventoryVersion>,
    /// Signatures by the ship's own key (`tender-ship keygen`) over
    /// [`Inventory::signing_message`], so the shore can tell which ship it
    /// came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<tender_keys::Signature>,
}

impl Inventory {
    /// The signed bytes: a context line and the inventory without its
    /// signatures, as serde writes it (field order fixed by this struct).
    pub fn signing_message(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signatures.clear();
        let mut m = b"tender-inventory/1\n".to_vec();
        m.extend(serde_json::to_vec(&unsigned).expect("inventory serializes"));
        m
    }
}

/// One version in an inventory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryVersion {
    /// Stack.
    pub stack: StackName,
    /// Version.
    pub version: Version,
    /// Sequence.
    pub sequence: u64,
    /// Whether every blob is held.
    pub complete: bool,
    /// Whether it is the version in force.
    pub applied: bool,
}
