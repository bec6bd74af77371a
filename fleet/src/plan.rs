//! `pack --for`: which ships get a bundle, and each one's base.

use tender_bundle::receipt::ShipName;
use tender_bundle::{StackName, Version};
use tender_stack::delta::Base;

use crate::{FleetError, Ships};

/// What one ship gets.
#[derive(Clone, Debug)]
pub struct ShipPlan {
    /// The ship.
    pub ship: ShipName,
    /// What its latest receipt says it holds (None: no receipt; it gets
    /// the whole bundle).
    pub base: Option<Base>,
    /// It holds the version whole already: nothing to pack.
    pub holds_it: bool,
    /// Bytes free in its store, from its receipt.
    pub free_bytes: Option<u64>,
}

/// The ships `which` names (`all`, or a ship's name or slug) and, for
/// each, the base to pack `stack` `version` against. Refused, before
/// anything is packed, when an entry is damaged (for `all`) or the ship is
/// not in the fleet. `predecessors` (earlier bundles) only give changed
/// layers' predecessors to patch against.
pub fn plan_for(
    ships: &Ships,
    which: &str,
    stack: &StackName,
    version: &Version,
    predecessors: Option<&Base>,
) -> Result<Vec<ShipPlan>, FleetError> {
    let chosen: Vec<_> = if which == "all" {
        if let Some(e) = ships.damaged.first() {
            return Err(FleetError::Damaged {
                path: e.path().map(|p| p.to_owned()).unwrap_or_default(),
                reason: format!("the fleet has a damaged entry ({e}); nothing packed"),
            });
        }
        ships.ships.iter().collect()
    } else {
        match ships.find(which) {
            Some(s) => vec![s],
            None => return Err(FleetError::NoSuchShip(which.to_owned())),
        }
    };
    Ok(chosen
        .into_iter()
        .map(|s| {
            let r = s.receipt.as_ref();
            let holds_it = r.is_some_and(|r| {
                r.stacks.iter().any(|st| {
                    st.stack == *stack
                        && st.versions.iter().any(|v| v.version == *version && v.complete)
                })
            });
            ShipPlan {
                ship: s.name.clone(),
                base: r.map(|r| Base::for_ship(&r.inventory, predecessors)),
                holds_it,
                free_bytes: r.map(|r| r.free_bytes),
            }
        })
        .collect())
}
