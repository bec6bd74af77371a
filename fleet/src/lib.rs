//! The shore's fleet directory (`tender-shore fleet`): one entry per ship,
//! with its public key, its name and the latest receipt it sent
//! (`tender-ship report`), verified against that key before it is kept.
//! From the receipts: the fleet's status, and per ship the base a bundle
//! is packed against (`pack --for`).
//!
//! ```text
//! FLEET/ships/<slug>/ship.json     name, key id, when added
//! FLEET/ships/<slug>/ship.pub      the ship's public key
//! FLEET/ships/<slug>/receipt.json  the latest receipt kept
//! ```
//!
//! Every write is a temp file, fsync, rename, fsync of the directory;
//! directories 0700, files 0600. A shore-side crate: it reads receipts
//! through `tender-bundle` and never knows the ship's store.

#![warn(missing_docs)]

use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tender_bundle::receipt::{MAX_RECEIPT_BYTES, Receipt, ShipName};
use tender_bundle::{BundleError, ErrorKind};
use tender_keys::{KeyError, KeyId, PublicKey};

mod ingest;
mod plan;
mod status;

pub use ingest::Ingested;
pub use plan::{ShipPlan, plan_for};
pub use status::{ShipStatus, StackRow};

/// Largest `ship.json` or `ship.pub` read.
const MAX_ENTRY_FILE: u64 = 64 << 10;

/// Errors of the fleet directory.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A file operation failed.
    #[error("{}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A receipt that cannot be read, or does not hold together.
    #[error("receipt {}", path.display())]
    BadReceipt {
        /// The receipt.
        path: PathBuf,
        /// Why.
        source: BundleError,
    },
    /// A receipt whose signature does not verify against the key the fleet
    /// holds for the ship it names: forged or altered.
    #[error("receipt {}: not signed by the key of {ship} the fleet holds (forged or altered)", path.display())]
    NotSigned {
        /// The receipt.
        path: PathBuf,
        /// The ship it names.
        ship: ShipName,
        /// What failed.
        source: BundleError,
    },
    /// A receipt naming a ship the fleet does not know, or a key the fleet
    /// does not hold for that ship.
    #[error("receipt {}: {reason} (add the ship with `tender-shore fleet add SHIP.pub --name NAME`)", path.display())]
    UnknownShip {
        /// The receipt.
        path: PathBuf,
        /// What is unknown.
        reason: String,
    },
    /// A receipt not newer than the one kept for its ship.
    #[error(
        "receipt {}: {ship}'s receipt {sequence} of {created} is not newer than the one kept ({kept_sequence} of {kept_created}): a replay, refused",
        path.display()
    )]
    Replay {
        /// The receipt.
        path: PathBuf,
        /// The ship.
        ship: ShipName,
        /// Its sequence.
        sequence: u64,
        /// Its time.
        created: String,
        /// The sequence of the receipt kept.
        kept_sequence: u64,
        /// Its time.
        kept_created: String,
    },
    /// A fleet entry that cannot be read.
    #[error("{}: damaged fleet entry: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A public key file that cannot be read.
    #[error("{}: not a public key", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: KeyError,
    },
    /// `fleet add` of a name or key the fleet has.
    #[error("{0}")]
    Exists(String),
    /// A ship the fleet does not have.
    #[error("no ship {0:?} in the fleet")]
    NoSuchShip(String),
    /// A ship whose receipt shows too little room for what it would get.
    #[error("{0}")]
    NoRoom(String),
}

impl FleetError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FleetError::Io { .. } => ErrorKind::Local,
            FleetError::BadReceipt { source, .. } => source.kind(),
            FleetError::NotSigned { .. }
            | FleetError::UnknownShip { .. }
            | FleetError::Replay { .. } => ErrorKind::Verification,
            FleetError::Damaged { .. } | FleetError::BadKey { .. } => ErrorKind::Invalid,
            FleetError::Exists(_) | FleetError::NoRoom(_) => ErrorKind::Refused,
            FleetError::NoSuchShip(_) => ErrorKind::NotFound,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FleetError + '_ {
    move |source| FleetError::Io { path: path.to_owned(), source }
}

/// A fleet directory.
#[derive(Clone, Debug)]
pub struct Fleet {
    root: PathBuf,
}

/// One ship of the fleet.
#[derive(Clone, Debug)]
pub struct Ship {
    /// Its name.
    pub name: ShipName,
    /// Its key.
    pub key: PublicKey,
    /// When it was added, RFC 3339.
    pub added: String,
    /// The latest receipt kept (verified against `key` when read).
    pub receipt: Option<Receipt>,
    /// Its entry's directory.
    pub dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipFile {
    name: ShipName,
    keyid: KeyId,
    added: String,
}

/// The ships whose entries read, and the errors of those that did not.
#[derive(Debug, Default)]
pub struct Ships {
    /// Entries that read, by slug.
    pub ships: Vec<Ship>,
    /// Damaged entries (each error names its file).
    pub damaged: Vec<FleetError>,
}

impl Ships {
    /// The ship `name` names (its name or its slug, any case).
    pub fn find(&self, name: &str) -> Option<&Ship> {
        let slug = name.to_ascii_lowercase().replace(' ', "-");
        self.ships.iter().find(|s| s.name.slug() == slug)
    }
}

impl Fleet {
    /// The fleet directory at `root` (read when used; created by `add`).
    pub fn new(root: impl Into<PathBuf>) -> Fleet {
        Fleet { root: root.into() }
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn ships_dir(&self) -> PathBuf {
        self.root.join("ships")
    }

    /// Held while the fleet changes, so two ingests never race.
    fn lock(&self) -> Result<fs::File, FleetError> {
        create_dirs(&self.root)?;
        let path = self.root.join("lock");
        let f = fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        f.lock().map_err(io_err(&path))?;
        Ok(f)
    }

    /// Add a ship: its public key file (`STORE/ship.pub`) and its name.
    pub fn add(&self, pub_path: &Path, name: &ShipName) -> Result<Ship, FleetError> {
        let pem = read_bounded(pub_path, MAX_ENTRY_FILE)?;
        let key = std::str::from_utf8(&pem)
            .map_err(|_| KeyError::BadPublicKey { reason: "not UTF-8".into() })
            .and_then(PublicKey::from_pem)
            .map_err(|source| FleetError::BadKey { path: pub_path.to_owned(), source })?;
        let _lock = self.lock()?;
        let have = self.ships()?;
        if let Some(s) = have.find(name.as_str()) {
            return Err(FleetError::Exists(format!("the fleet has a ship named {}", s.name)));
        }
        if let Some(s) = have.ships.iter().find(|s| s.key.key_id() == key.key_id()) {
            return Err(FleetError::Exists(format!(
                "key {} is {}'s already",
                key.key_id(),
                s.name
            )));
        }
        let dir = self.ships_dir().join(name.slug());
        if dir.exists() {
            return Err(FleetError::Exists(format!(
                "{} exists (a damaged entry?); remove it first",
                dir.display()
            )));
        }
        // Written beside, then renamed into place whole.
        create_dirs(&self.ships_dir())?;
        let tmp = tempfile::Builder::new()
            .prefix(".add-")
            .tempdir_in(self.ships_dir())
            .map_err(io_err(&self.ships_dir()))?;
        let added = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let file = ShipFile { name: name.clone(), keyid: key.key_id(), added: added.clone() };
        write_atomic(
            tmp.path(),
            "ship.json",
            &serde_json::to_vec_pretty(&file).expect("serializes"),
        )?;
        let pem =
            key.to_pem().map_err(|source| FleetError::BadKey { path: pub_path.into(), source })?;
        write_atomic(tmp.path(), "ship.pub", pem.as_bytes())?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700))
                .map_err(io_err(tmp.path()))?;
        }
        let kept = tmp.keep();
        fs::rename(&kept, &dir).map_err(io_err(&dir))?;
        sync_dir(&self.ships_dir())?;
        Ok(Ship { name: name.clone(), key, added, receipt: None, dir })
    }

    /// Remove a ship (by name or slug) and all it sent.
    pub fn remove(&self, name: &str) -> Result<ShipName, FleetError> {
        let _lock = self.lock()?;
        let have = self.ships()?;
        let slug = name.to_ascii_lowercase().replace(' ', "-");
        let dir = self.ships_dir().join(&slug);
        // A damaged entry can be removed too, by its slug.
        let named = match have.find(name) {
            Some(s) => s.name.clone(),
            None if ShipName::try_from(name.to_owned()).is_ok() && dir.is_dir() => {
                ShipName::try_from(name.to_owned()).expect("checked")
            }
            None => return Err(FleetError::NoSuchShip(name.to_owned())),
        };
        let gone = self.ships_dir().join(format!(".removed-{slug}"));
        fs::rename(&dir, &gone).map_err(io_err(&dir))?;
        sync_dir(&self.ships_dir())?;
        fs::remove_dir_all(&gone).map_err(io_err(&gone))?;
        Ok(named)
    }

    /// Every ship whose entry reads (by slug), and an error naming the file
    /// for each that does not. A missing fleet directory has no ships.
    pub fn ships(&self) -> Result<Ships, FleetError> {
        let dir = self.ships_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ships::default()),
            Err(e) => return Err(FleetError::Io { path: dir, source: e }),
        };
        let mut entries = Vec::new();
        for e in rd {
            let e = e.map_err(io_err(&dir))?;
            if !e.file_name().to_string_lossy().starts_with('.') {
                entries.push(e.path());
            }
        }
        entries.sort();
        let mut out = Ships::default();
        for path in entries {
            match read_ship(&path) {
                Ok(s) => out.ships.push(s),
                Err(e) => out.damaged.push(e),
            }
        }
        Ok(out)
    }
}

/// Read one entry; every failure names its file.
fn read_ship(dir: &Path) -> Result<Ship, FleetError> {
    let damaged = |path: PathBuf, reason: String| FleetError::Damaged { path, reason };
    if !fs::symlink_metadata(dir).map_err(io_err(dir))?.is_dir() {
        return Err(damaged(dir.to_owned(), "not a directory".into()));
    }
    let json = dir.join("ship.json");
    let f: ShipFile = serde_json::from_slice(&read_bounded(&json, MAX_ENTRY_FILE)?)
        .map_err(|e| damaged(json.clone(), e.to_string()))?;
    let slug = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if f.name.slug() != slug {
        return Err(damaged(json, format!("names {}, not the entry {slug}", f.name)));
    }
    let pub_path = dir.join("ship.pub");
    let key = String::from_utf8(read_bounded(&pub_path, MAX_ENTRY_FILE)?)
        .map_err(|_| damaged(pub_path.clone(), "not UTF-8".into()))
        .and_then(|pem| {
            PublicKey::from_pem(&pem).map_err(|e| damaged(pub_path.clone(), e.to_string()))
        })?;
    if key.key_id() != f.keyid {
        return Err(damaged(
            pub_path,
            format!("key {} is not {} as ship.json says", key.key_id(), f.keyid),
        ));
    }
    let rpath = dir.join("receipt.json");
    let receipt = match fs::metadata(&rpath) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        _ => {
            let bytes = read_bounded(&rpath, MAX_RECEIPT_BYTES)?;
            let r = Receipt::parse(&bytes)
                .and_then(|r| r.verify(&key).map(|_| r))
                .map_err(|e| damaged(rpath.clone(), tender_bundle::error_chain(&e)))?;
            if r.ship != f.name {
                return Err(damaged(rpath, format!("a receipt of {}, not {}", r.ship, f.name)));
            }
            Some(r)
        }
    };
    Ok(Ship { name: f.name, key, added: f.added, receipt, dir: dir.to_owned() })
}

/// Read `path` whole if it holds at most `limit` bytes, having read no more
/// than `limit + 1`.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FleetError> {
    use std::io::Read as _;
    let f = fs::File::open(path).map_err(io_err(path))?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).map_err(io_err(path))?;
    if buf.len() as u64 > limit {
        return Err(FleetError::BadReceipt {
            path: path.to_owned(),
            source: BundleError::TooLarge {
                entry: path.display().to_string(),
                size: buf.len() as u64,
                limit,
            },
        });
    }
    Ok(buf)
}

fn create_dirs(path: &Path) -> Result<(), FleetError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io_err(path))
}

fn sync_dir(dir: &Path) -> Result<(), FleetError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Replace `dir/name` with `bytes`, mode 0600
/// ([`tender_bundle::write_replacing`]).
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), FleetError> {
    tender_bundle::write_replacing(dir, name, bytes, 0o600)
        .map_err(|(path, source)| FleetError::Io { path, source })
}
