//! What the ship already holds, from an earlier bundle, a descriptor, or the
//! ship's inventory: the base a delta leaves out.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use tender_bundle::{BaseRef, Descriptor, Digest, EntryName, ImageRecord};

use crate::StackError;

pub use tender_bundle::inventory::{INVENTORY_FORMAT, Inventory, InventoryVersion};

/// Where each whole blob lies in a bundle file: digest -> (offset, size).
pub(crate) type BlobOffsets = HashMap<Digest, (u64, u64)>;

/// Blobs the ship holds, and the versions they come from.
#[derive(Clone, Debug, Default)]
pub struct Base {
    /// The blobs.
    pub blobs: HashSet<Digest>,
    /// Where they come from (named when a ship lacks one).
    pub refs: Vec<BaseRef>,
    /// The images of base bundles and descriptors, latest last: where a
    /// changed layer's predecessor is looked for (sub-layer patches).
    pub images: Vec<ImageRecord>,
    /// Base bundle files and where each blob lies in them, to read
    /// predecessors from.
    pub(crate) files: Vec<(PathBuf, BlobOffsets)>,
}

/// Index a bundle file's blobs (headers only).
fn blob_offsets(path: &Path) -> Result<BlobOffsets, StackError> {
    Ok(tender_bundle::index::entry_offsets(path)?
        .into_iter()
        .filter_map(|at| match at.name {
            EntryName::Blob(d) => Some((d, (at.offset, at.size))),
            _ => None,
        })
        .collect())
}

/// Largest base file read whole (a descriptor or an inventory).
const MAX_BASE_BYTES: u64 = 64 << 20;

impl Base {
    /// Add a base: an earlier bundle (or part), a descriptor, or an inventory.
    /// With `ship_keys`, an inventory must be signed by one of them; without,
    /// an unsigned inventory is taken and a signed one refused (its key is
    /// unknown).
    pub fn add(
        &mut self,
        path: &Path,
        ship_keys: &[tender_keys::PublicKey],
    ) -> Result<(), StackError> {
        let bad = |reason: String| StackError::BadBase { path: path.to_owned(), reason };
        let io = |e| StackError::Io { path: path.to_owned(), source: e };
        let mut f = File::open(path).map_err(io)?;
        let mut head = [0u8; 512];
        let n = f.read(&mut head).map_err(io)?;
        let is_bundle = n == 512 && head.starts_with(b"tender/descriptor.json\0");
        let bytes = if is_bundle {
            // A bundle (or part): its first entry is the descriptor.
            tender_bundle::read_descriptor_bytes(File::open(path).map_err(io)?, path)?
        } else {
            let mut v = head[..n].to_vec();
            f.take(MAX_BASE_BYTES).read_to_end(&mut v).map_err(io)?;
            v
        };
        let probe: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        match probe["format"].as_str() {
            Some(INVENTORY_FORMAT) => {
                let inv: Inventory =
                    serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
                if !ship_keys.is_empty() || !inv.signatures.is_empty() {
                    tender_keys::Trust::new(ship_keys.to_vec())
                        .verify(&inv.signing_message(), &inv.signatures)
                        .map_err(|e| {
                            bad(format!(
                                "inventory signature: {e} (ship keys are given with --ship-key)"
                            ))
                        })?;
                }
                self.add_inventory(&inv);
            }
            Some(tender_bundle::FORMAT) => {
                let d = Descriptor::parse(&bytes)?;
                if is_bundle {
                    self.files.push((path.to_owned(), blob_offsets(path)?));
                }
                self.images.extend(d.images.iter().cloned());
                // Only what the ship will hold once it has that version whole.
                self.blobs.extend(d.blobs.iter().map(|b| b.digest.clone()));
                self.refs.push(BaseRef {
                    stack: d.stack.name,
                    version: d.stack.version,
                    sequence: d.sequence,
                });
            }
            other => {
                return Err(bad(format!(
                    "not a bundle, descriptor or inventory (format {other:?})"
                )));
            }
        }
        Ok(())
    }

    /// Add what a ship's inventory (verified by the caller) says it holds:
    /// every blob, and its complete versions as the delta's bases.
    pub fn add_inventory(&mut self, inv: &Inventory) {
        self.blobs.extend(inv.blobs.iter().cloned());
        self.refs.extend(inv.versions.iter().filter(|v| v.complete).map(|v| BaseRef {
            stack: v.stack.clone(),
            version: v.version.clone(),
            sequence: v.sequence,
        }));
    }

    /// The base for one ship: what its inventory says it holds, with the
    /// images and bundle files of `predecessors` (earlier bundles given as
    /// `--base`) only as places to read a changed layer's predecessor from
    /// (a patch is made only against a layer the ship holds).
    pub fn for_ship(inv: &Inventory, predecessors: Option<&Base>) -> Base {
        let mut b = Base::default();
        b.add_inventory(inv);
        if let Some(p) = predecessors {
            b.images = p.images.clone();
            b.files = p.files.clone();
        }
        b
    }
}
