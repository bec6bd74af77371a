//! The ship's own identity (`tender-ship keygen`: its key and its name,
//! kept in the store) and the marks its receipts are built from: the last
//! `fsck` and how it ended, and what the last receipt covered.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tender_bundle::StackName;
use tender_bundle::receipt::{FsckSummary, Receipt, ShipName};
use tender_keys::{PublicKey, SigningKey};

use crate::fsutil::{io_err, read_private, sync_dir, write_atomic};
use crate::{FsckReport, Store, StoreError};

const SHIP_KEY: &str = "ship.key";
const SHIP_PUB: &str = "ship.pub";
const SHIP_NAME: &str = "ship.json";
const FSCK_MARK: &str = "fsck.json";
const REPORT_MARK: &str = "report.json";
/// Largest identity or mark file read.
const MAX_MARK_BYTES: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NameFile {
    name: ShipName,
}

/// What the last receipt covered, so the next one says what happened since.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReportMark {
    /// The last receipt's sequence.
    pub sequence: u64,
    /// When it was written, RFC 3339.
    pub created: String,
    /// Per stack, how many history entries it had seen.
    pub events: BTreeMap<StackName, usize>,
}

/// What `keygen` did.
#[derive(Clone, Debug)]
pub struct Keygen {
    /// The ship's public key.
    pub public: PublicKey,
    /// Where it is, for the shore (`tender-shore fleet add`).
    pub public_path: PathBuf,
    /// False when the key existed and only the name was given to it.
    pub created: bool,
}

impl Store {
    /// The ship's public key file (`STORE/ship.pub`).
    pub fn ship_pub_path(&self) -> PathBuf {
        self.root().join(SHIP_PUB)
    }

    /// The ship's own key, if `keygen` made one.
    pub fn ship_key(&self) -> Result<Option<SigningKey>, StoreError> {
        let path = self.root().join(SHIP_KEY);
        let Some(bytes) = read_private(&path, MAX_MARK_BYTES)? else { return Ok(None) };
        let pem = String::from_utf8(bytes).map_err(|_| StoreError::BadRecord {
            path: path.clone(),
            reason: "not UTF-8".into(),
        })?;
        Ok(Some(SigningKey::from_pem(&pem)?))
    }

    /// The ship's name, if `keygen --name` gave one.
    pub fn ship_name(&self) -> Result<Option<ShipName>, StoreError> {
        let path = self.root().join(SHIP_NAME);
        let Some(bytes) = read_private(&path, MAX_MARK_BYTES)? else { return Ok(None) };
        let f: NameFile = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::BadRecord { path, reason: e.to_string() })?;
        Ok(Some(f.name))
    }

    /// Make the ship's key (`ship.key` 0600, `ship.pub` 0644) and keep its
    /// name beside it. A key already there is never replaced: it may only
    /// be given a name, when it has none.
    pub fn keygen(&self, name: Option<&ShipName>) -> Result<Keygen, StoreError> {
        let _lock = self.lock()?;
        let key_path = self.root().join(SHIP_KEY);
        let public_path = self.ship_pub_path();
        if let Some(key) = self.ship_key()? {
            let named = self.ship_name()?;
            return match (name, named) {
                (Some(n), None) => {
                    self.write_name(n)?;
                    Ok(Keygen { public: key.public(), public_path, created: false })
                }
                (_, named) => Err(StoreError::ShipKeyExists {
                    path: key_path,
                    name: named.map(|n| n.to_string()),
                }),
            };
        }
        let key = SigningKey::generate()?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(io_err(&key_path))?;
        f.write_all(key.to_pem()?.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io_err(&key_path))?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::write(&public_path, key.public().to_pem()?)
                .and_then(|_| fs::set_permissions(&public_path, fs::Permissions::from_mode(0o644)))
                .map_err(io_err(&public_path))?;
        }
        if let Some(n) = name {
            self.write_name(n)?;
        }
        sync_dir(self.root())?;
        Ok(Keygen { public: key.public(), public_path, created: true })
    }

    fn write_name(&self, name: &ShipName) -> Result<(), StoreError> {
        let body =
            serde_json::to_vec_pretty(&NameFile { name: name.clone() }).expect("a name serializes");
        write_atomic(self.root(), SHIP_NAME, &body)
    }

    /// Keep how an `fsck` ended, for the next receipt.
    pub fn record_fsck(&self, r: &FsckReport) -> Result<(), StoreError> {
        let s = FsckSummary {
            at: crate::now_rfc3339(),
            clean: r.is_clean(),
            blobs_checked: r.blobs_checked as u64,
            corrupt: r.corrupt.len() as u64,
            stray: r.stray.len() as u64,
        };
        write_atomic(self.root(), FSCK_MARK, &serde_json::to_vec_pretty(&s).expect("serializes"))
    }

    /// How the last `fsck` ended, if one ran since this was kept.
    pub fn last_fsck(&self) -> Result<Option<FsckSummary>, StoreError> {
        self.read_mark(FSCK_MARK)
    }

    /// What the last receipt covered, if the ship wrote one.
    pub fn last_report(&self) -> Result<Option<ReportMark>, StoreError> {
        self.read_mark(REPORT_MARK)
    }

    /// Keep what `receipt` covered (once it is written): the next receipt
    /// carries the history after it, and a higher sequence.
    pub fn mark_reported(&self, receipt: &Receipt) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let mut events = BTreeMap::new();
        for stack in self.stacks()? {
            events.insert(stack.clone(), self.history(&stack)?.entries.len());
        }
        let mark =
            ReportMark { sequence: receipt.sequence, created: receipt.created.clone(), events };
        write_atomic(
            self.root(),
            REPORT_MARK,
            &serde_json::to_vec_pretty(&mark).expect("serializes"),
        )
    }

    fn read_mark<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        let path = self.root().join(name);
        let Some(bytes) = read_private(&path, MAX_MARK_BYTES)? else { return Ok(None) };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::BadRecord { path, reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_names_once_and_never_replaces_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("s")).unwrap();
        let first = store.keygen(None).unwrap();
        assert!(first.created);
        let name: ShipName = "MV Aurora".parse().unwrap();
        let named = store.keygen(Some(&name)).unwrap();
        assert!(!named.created);
        assert_eq!(named.public.key_id(), first.public.key_id());
        assert_eq!(store.ship_name().unwrap(), Some(name.clone()));
        let again = store.keygen(Some(&"Other".parse().unwrap())).unwrap_err();
        assert!(matches!(again, StoreError::ShipKeyExists { .. }), "{again}");
        assert_eq!(store.ship_key().unwrap().unwrap().public().key_id(), first.public.key_id());
    }
}
