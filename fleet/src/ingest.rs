//! `fleet ingest`: verify a receipt against the key the fleet holds for the
//! ship it names, refuse replays, keep it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tender_bundle::receipt::{MAX_RECEIPT_BYTES, Receipt, ShipName};

use crate::{Fleet, FleetError, read_bounded, write_atomic};

/// How far ahead of the shore's clock a receipt may be dated without a
/// warning (clocks drift; a ship's is set by hand).
const FUTURE_SLACK: Duration = Duration::from_secs(300);

/// A receipt kept (or found kept already).
#[derive(Clone, Debug, Serialize)]
pub struct Ingested {
    /// Where it came from.
    pub path: PathBuf,
    /// The ship.
    pub ship: ShipName,
    /// Its sequence.
    pub sequence: u64,
    /// When the ship wrote it.
    pub created: String,
    /// It was the receipt kept already (nothing changed).
    pub already_kept: bool,
    /// What to tell the operator (a receipt dated in the future).
    pub warnings: Vec<String>,
}

impl Fleet {
    /// Ingest the receipt in `path` (read with the receipt bound).
    pub fn ingest(&self, path: &Path, now: SystemTime) -> Result<Ingested, FleetError> {
        let bytes = read_bounded(path, MAX_RECEIPT_BYTES)?;
        self.ingest_bytes(path, &bytes, now)
    }

    /// Ingest a receipt's `bytes` (from `origin`, named in every error):
    /// parsed with its bounds, verified against the key the fleet holds
    /// for the ship it names, refused unless its sequence is higher than
    /// the kept one's (the same receipt again changes nothing), then kept
    /// whole or not at all. Other ships' entries are not touched.
    pub fn ingest_bytes(
        &self,
        origin: &Path,
        bytes: &[u8],
        now: SystemTime,
    ) -> Result<Ingested, FleetError> {
        let path = origin.to_owned();
        let r = Receipt::parse(bytes)
            .map_err(|source| FleetError::BadReceipt { path: path.clone(), source })?;
        let _lock = self.lock()?;
        let ships = self.ships()?;
        let entry_dir = self.ships_dir().join(r.ship.slug());
        let Some(ship) = ships.ships.iter().find(|s| s.name == r.ship) else {
            if let Some(e) =
                ships.damaged.iter().find(|e| e.path().is_some_and(|p| p.starts_with(&entry_dir)))
            {
                return Err(FleetError::Damaged {
                    path: e.path().map(Path::to_owned).unwrap_or_default(),
                    reason: format!(
                        "the fleet's entry for {}, which receipt {} names, cannot be read: {e}",
                        r.ship,
                        path.display()
                    ),
                });
            }
            return Err(FleetError::UnknownShip {
                path,
                reason: format!("ship {:?} is not in the fleet", r.ship.as_str()),
            });
        };
        if r.keyid != ship.key.key_id() {
            return Err(FleetError::UnknownShip {
                path,
                reason: format!(
                    "it is signed by key {}, which is not the key the fleet holds for {} ({})",
                    r.keyid,
                    ship.name,
                    ship.key.key_id()
                ),
            });
        }
        r.verify(&ship.key).map_err(|source| FleetError::NotSigned {
            path: path.clone(),
            ship: ship.name.clone(),
            source,
        })?;
        let mut out = Ingested {
            path: path.clone(),
            ship: r.ship.clone(),
            sequence: r.sequence,
            created: r.created.clone(),
            already_kept: false,
            warnings: vec![],
        };
        if let Some(kept) = &ship.receipt {
            if *kept == r {
                out.already_kept = true;
                return Ok(out);
            }
            // Ordered by the ship's own counter, not its clock: a receipt
            // dated years ahead by a wrong clock must not lock out the
            // next ones.
            if r.sequence <= kept.sequence {
                return Err(FleetError::Replay {
                    path,
                    ship: r.ship,
                    sequence: r.sequence,
                    created: r.created,
                    kept_sequence: kept.sequence,
                    kept_created: kept.created.clone(),
                });
            }
        }
        if let Ok(ahead) = r.created_time().duration_since(now)
            && ahead > FUTURE_SLACK
        {
            out.warnings.push(format!(
                "receipt {} of {} is dated {}, {} ahead of this shore's clock: kept; the ship's clock may be wrong",
                path.display(),
                r.ship,
                r.created,
                humantime::format_duration(Duration::from_secs(ahead.as_secs()))
            ));
        }
        write_atomic(&ship.dir, "receipt.json", bytes)?;
        Ok(out)
    }
}

impl FleetError {
    /// The file an error is about, where it is one of the fleet's.
    pub fn path(&self) -> Option<&Path> {
        match self {
            FleetError::Io { path, .. }
            | FleetError::BadReceipt { path, .. }
            | FleetError::NotSigned { path, .. }
            | FleetError::UnknownShip { path, .. }
            | FleetError::Replay { path, .. }
            | FleetError::Damaged { path, .. }
            | FleetError::BadKey { path, .. } => Some(path),
            FleetError::Exists(_) | FleetError::NoSuchShip(_) | FleetError::NoRoom(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use tender_bundle::inventory::{INVENTORY_FORMAT, Inventory};
    use tender_bundle::receipt::{RECEIPT_FORMAT, Receipt};
    use tender_keys::SigningKey;

    use super::*;

    fn receipt(key: &SigningKey, sequence: u64, created: &str) -> Vec<u8> {
        let mut r = Receipt {
            format: RECEIPT_FORMAT.into(),
            ship: "MV Aurora".parse().unwrap(),
            keyid: key.public().key_id(),
            sequence,
            created: created.into(),
            previous: None,
            free_bytes: 1 << 30,
            fsck: None,
            stacks: vec![],
            inventory: Inventory {
                format: INVENTORY_FORMAT.into(),
                created: created.into(),
                blobs: vec![],
                versions: vec![],
                signatures: vec![],
            },
            signatures: vec![],
        };
        r.sign(key);
        r.to_bytes()
    }

    #[test]
    fn ingest_keeps_newer_refuses_replays_and_strangers() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        let pub_path = dir.path().join("ship.pub");
        std::fs::write(&pub_path, key.public().to_pem().unwrap()).unwrap();
        let fleet = Fleet::new(dir.path().join("fleet"));
        fleet.add(&pub_path, &"MV Aurora".parse().unwrap()).unwrap();
        let now = humantime::parse_rfc3339("2026-11-02T00:00:00Z").unwrap();
        let p = Path::new("r.json");
        let r2 = receipt(&key, 2, "2026-11-01T00:00:00Z");
        assert!(!fleet.ingest_bytes(p, &r2, now).unwrap().already_kept);
        assert!(fleet.ingest_bytes(p, &r2, now).unwrap().already_kept);
        // Older by sequence, even if dated later: a replay.
        let r1 = receipt(&key, 1, "2026-11-01T12:00:00Z");
        assert!(matches!(fleet.ingest_bytes(p, &r1, now), Err(FleetError::Replay { .. })));
        // Dated ahead: kept, with a warning.
        let r3 = receipt(&key, 3, "2027-01-01T00:00:00Z");
        assert_eq!(fleet.ingest_bytes(p, &r3, now).unwrap().warnings.len(), 1);
        // Another key under the ship's name.
        let other = SigningKey::generate().unwrap();
        let r4 = receipt(&other, 4, "2026-11-01T00:00:00Z");
        assert!(matches!(fleet.ingest_bytes(p, &r4, now), Err(FleetError::UnknownShip { .. })));
        let kept = fleet.ships().unwrap().ships[0].receipt.clone().unwrap();
        assert_eq!(kept.sequence, 3);
    }
}
