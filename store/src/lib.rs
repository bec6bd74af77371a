//! The ship's content store.
//!
//! ```text
//! STORE/
//!   lock                      held exclusively while the store changes (0600: only the owner can lock)
//!   blobs/sha256/<hex>        verified blobs, named by digest
//!   staging/                  blobs being written; moved into blobs/ once verified
//!   staging/chunks/<hex>/<chunk hex>  verified chunks of a blob split across media parts,
//!                             named by their own digests
//!   staging/partial/<hex>     a blob being pulled over a link, unverified until whole
//!   trust/<keyid>.pub         pinned signing keys (SPKI PEM): may sign any stack
//!   trust/roots/<keyid>.pub   pinned root keys: sign keyrings
//!   trust/keyring.json        the keyring in force (signing keys, roles, revocations)
//!   trust/thresholds.json     signatures required per stack (`trust threshold`)
//!   trust/root-threshold.json pinned roots required on the first keyring (default: a majority)
//!   stacks/<name>/versions/<version>@<digest prefix>.json   one record per stack version held
//!   stacks/<name>/state.json  every version accepted with its signers (the downgrade floor)
//!   stacks/<name>/history.json  what was applied when, and the version in force
//!   owners.json               which stack owns which namespaces and registry repositories
//!   time.json                 the latest clock reading (only to warn of a clock set back)
//!   ship.key, ship.pub        the ship's own key (`tender-ship keygen`)
//! ```
//!
//! Every file is written to a temporary name in its directory, fsynced, and
//! renamed, so a crash leaves the old state or the new one. Directories are
//! 0700 and files 0600 (but `ship.pub`, 0644: it is given away); a store,
//! `trust/` or trust file another user could write is refused. Bundles enter only through the trust gate ([`Gate`]).
#![deny(missing_docs)]

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tender_bundle::{BundleError, Descriptor, Digest, ErrorKind, Progress, StackName, Version};
use tender_keys::{KeyError, KeyId, PublicKey, Signature};

mod commit;
mod fsutil;
mod gate;
mod history;
mod import;
mod keyring;
mod owners;
mod partial;
mod patch;
mod paths;
mod settings;
mod ship;

pub use fsutil::read_bounded;
use fsutil::{check_private_dir, create_dirs, io_err, read_private, write_atomic};
pub use gate::{Authority, Gate, Purpose, VerifyReport};
pub use history::{GcReport, History, HistoryEntry, Outcome, Pick, RollbackTarget, StackStatus};
pub use import::{Admission, Downgrade, Freshness, ImportPolicy, ImportReport};
pub use keyring::{Install, KeyringChange};
pub use owners::{Claim, Owners};
pub use paths::{IMPORT_MAX_DEPTH, ImportPathsReport, ImportedFile};
pub use settings::{SettingState, SettingsUsed, StackSettings};
pub use ship::{Keygen, ReportMark};

/// Errors of the ship store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed. The message names the path only; the cause
    /// is the `source`, so a chain (`{:#}`) names it once.
    #[error("{}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The bundle failed verification.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A bundle or part could not be opened.
    #[error("opening bundle {}", path.display())]
    OpenBundle {
        /// The bundle.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A directory of bundles could not be read.
    #[error("reading {}", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A directory holds no bundle or part.
    #[error("no *.tender bundle or *.tender.NNN part in {}", path.display())]
    NoBundles {
        /// The directory.
        path: PathBuf,
    },
    /// A key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// There is no store at the path.
    #[error("no tender store at {} (run `tender-ship trust add` to create one)", path.display())]
    NotAStore {
        /// The path given.
        path: PathBuf,
    },
    /// Another process holds the store's lock.
    #[error("store {} is busy: another tender-ship is changing it", path.display())]
    Busy {
        /// The store.
        path: PathBuf,
    },
    /// No key is trusted, so no bundle can be.
    #[error("no trusted keys in {}: add one with `tender-ship trust add KEY.pub`", path.display())]
    NoTrustedKeys {
        /// The trust directory.
        path: PathBuf,
    },
    /// `trust remove` of a key that is not trusted.
    #[error("key {0} is not in the trust store")]
    UnknownKey(KeyId),
    /// The bundle is older than the stack's floor: the highest sequence
    /// accepted that a signer who still has a say over the stack signed.
    #[error(
        "refusing downgrade of stack {stack}: bundle sequence {sequence} is lower than {floor}, already accepted \
         (use --allow-downgrade to take it anyway)"
    )]
    Downgrade {
        /// The stack.
        stack: StackName,
        /// The bundle's sequence.
        sequence: u64,
        /// The floor.
        floor: u64,
    },
    /// A version from media older than the one in force.
    #[error(
        "refusing to apply {stack} {version} (sequence {sequence}): {applied} (sequence {applied_sequence}) is in force and newer; `tender-ship rollback {stack} {version}` goes back on purpose, or pass --allow-downgrade"
    )]
    OlderThanApplied {
        /// The stack.
        stack: StackName,
        /// The version offered.
        version: Version,
        /// Its sequence.
        sequence: u64,
        /// The version in force.
        applied: Version,
        /// Its sequence.
        applied_sequence: u64,
    },
    /// Same stack and sequence, different content: a replay or a mistake.
    #[error(
        "stack {stack} sequence {sequence} was already imported with different content ({held})"
    )]
    SequenceConflict {
        /// The stack.
        stack: StackName,
        /// The sequence.
        sequence: u64,
        /// The descriptor digest held.
        held: Digest,
    },
    /// A delta whose base the store does not hold.
    #[error(
        "this delta expects {missing} blob(s) the store does not hold (first: {first}); import first the version(s) it was made against: {bases}"
    )]
    BaseMissing {
        /// How many expected blobs are missing.
        missing: usize,
        /// One of them.
        first: Digest,
        /// The versions the delta was made against.
        bases: String,
    },
    /// An expired bundle under `--require-fresh`.
    #[error(
        "{stack} {version} expired at {expires} (the clock reads {now}); refused because fresh bundles are required"
    )]
    Expired {
        /// Stack.
        stack: StackName,
        /// Version.
        version: Version,
        /// Its expiry.
        expires: String,
        /// The time it was compared with.
        now: String,
    },
    /// Signed only by keys the keyring does not let sign this stack.
    #[error(
        "no signer of this bundle may sign stack {stack} (signed by: {signed_by}); see `tender-ship trust list`"
    )]
    NotAllowed {
        /// The stack.
        stack: StackName,
        /// The keys that signed.
        signed_by: String,
    },
    /// No such stack version in the store.
    #[error("stack {stack} has no stored version {version}")]
    NoSuchVersion {
        /// The stack.
        stack: StackName,
        /// The version asked for.
        version: String,
    },
    /// A version named by its descriptor (the one applied before) that the
    /// store no longer holds.
    #[error("stack {stack}: the store no longer holds {version} with descriptor {digest}")]
    VersionGone {
        /// The stack.
        stack: StackName,
        /// Which version, in words.
        version: String,
        /// Its descriptor's digest.
        digest: Digest,
    },
    /// A stored version whose signatures no longer count (a signer revoked,
    /// a key removed, a stack its signers may no longer sign).
    #[error(
        "{stack} {version} is no longer trusted: {reason}; it is not applied until it is signed again"
    )]
    NoLongerTrusted {
        /// Stack.
        stack: StackName,
        /// Version.
        version: Version,
        /// Why.
        reason: String,
    },
    /// Settings a version needs that this ship has not set, or set to
    /// values its declaration refuses (values are never shown).
    #[error(
        "{stack} {version} cannot be applied: {}; set them with `tender-ship settings set {stack} NAME=VALUE`",
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Settings {
        /// Stack.
        stack: StackName,
        /// Version.
        version: Version,
        /// Each problem, naming its setting.
        problems: Vec<tender_bundle::settings::SettingProblem>,
    },
    /// The store's filesystem lacks room for what a bundle would write.
    #[error(
        "not enough space for {stack} {version}: it needs {needed} bytes, {} has {available} available; free space (`tender-ship gc --keep N`) and run again",
        path.display()
    )]
    NoRoom {
        /// The store.
        path: PathBuf,
        /// Bytes the version would write.
        needed: u64,
        /// Bytes available.
        available: u64,
        /// Stack.
        stack: StackName,
        /// Version.
        version: Version,
    },
    /// A part of the store that another user could write.
    #[error(
        "{}: mode {mode:04o}, owner uid {uid}: another user could change it; refusing to use it (it must be owned by this user or root and not writable by group or others: chmod go-w)",
        path.display()
    )]
    NotPrivate {
        /// The file or directory.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
        /// Its owner.
        uid: u32,
    },
    /// A root threshold that no keyring could meet.
    #[error(
        "a root threshold of {k} needs between 1 and {pinned}, the root keys pinned (pin them first: `tender-ship trust add ROOT.pub --root`)"
    )]
    BadThreshold {
        /// Asked for.
        k: usize,
        /// Roots pinned.
        pinned: usize,
    },
    /// A blob read into memory (a manifest) that is larger than it may be.
    #[error("{}: larger than {limit} bytes, the most a manifest may have; refused", path.display())]
    TooLarge {
        /// The blob.
        path: PathBuf,
        /// The bound.
        limit: u64,
    },
    /// A namespace or repository another stack owns.
    #[error("{claim} belongs to stack {owner}; stack {stack} may not touch it")]
    Owned {
        /// What (`namespace awareness`, `repository fleet/a`).
        claim: String,
        /// The stack that owns it.
        owner: StackName,
        /// The stack that tried.
        stack: StackName,
    },
    /// `keygen` where the ship already has a key (never replaced).
    #[error("{} exists; refusing to overwrite the ship's key{}", path.display(), name.as_ref().map(|n| format!(" (the ship is named {n:?})")).unwrap_or_default())]
    ShipKeyExists {
        /// The key file.
        path: PathBuf,
        /// The name it has, if any.
        name: Option<String>,
    },
    /// `report` on a ship without its key or name.
    #[error("the ship has no {what} in {}: run `tender-ship keygen --name \"NAME\"`", path.display())]
    NoShipIdentity {
        /// The store.
        path: PathBuf,
        /// "key" or "name".
        what: &'static str,
    },
    /// A store record that cannot be read.
    #[error("{}: invalid record: {reason}", path.display())]
    BadRecord {
        /// The record.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl StoreError {
    /// What kind of failure this is. Every refusal of the trust gate
    /// (signers, thresholds, expiry, the floor, replays, a version no
    /// longer trusted, a key that cannot be used) is a verification
    /// failure; what the store lacks is not found; the rest is this
    /// machine, bad input, or a rule.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Bundle(e) => e.kind(),
            StoreError::Key(_)
            | StoreError::NoTrustedKeys { .. }
            | StoreError::Expired { .. }
            | StoreError::Downgrade { .. }
            | StoreError::SequenceConflict { .. }
            | StoreError::OlderThanApplied { .. }
            | StoreError::NoLongerTrusted { .. }
            | StoreError::NotAllowed { .. } => ErrorKind::Verification,
            StoreError::NoBundles { .. }
            | StoreError::NotAStore { .. }
            | StoreError::UnknownKey(_)
            | StoreError::BaseMissing { .. }
            | StoreError::NoShipIdentity { .. }
            | StoreError::NoSuchVersion { .. }
            | StoreError::VersionGone { .. } => ErrorKind::NotFound,
            StoreError::Io { .. }
            | StoreError::OpenBundle { .. }
            | StoreError::ReadDir { .. }
            | StoreError::Busy { .. }
            | StoreError::NoRoom { .. } => ErrorKind::Local,
            StoreError::BadThreshold { .. }
            | StoreError::TooLarge { .. }
            | StoreError::BadRecord { .. }
            | StoreError::Settings { .. } => ErrorKind::Invalid,
            StoreError::NotPrivate { .. }
            | StoreError::Owned { .. }
            | StoreError::ShipKeyExists { .. } => ErrorKind::Refused,
        }
    }
}

/// A stack version as the store records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The signed descriptor bytes, verbatim.
    pub descriptor: String,
    /// The signatures that came with it.
    pub signatures: Vec<Signature>,
    /// The digest of `descriptor`.
    pub digest: Digest,
    /// When it was imported, RFC 3339.
    pub imported: String,
}

impl VersionRecord {
    /// The parsed descriptor.
    pub fn parse(&self, path: &Path) -> Result<Descriptor, StoreError> {
        Descriptor::parse(self.descriptor.as_bytes())
            .map_err(|e| StoreError::BadRecord { path: path.to_owned(), reason: e.to_string() })
    }
}

/// A stack's rollback protection (`state.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct StackState {
    /// The highest sequence accepted before signers were recorded (stores
    /// made by earlier releases); kept as a floor.
    #[serde(default, skip_serializing_if = "is_zero")]
    highest_sequence: u64,
    /// Every version accepted, with the keys that signed it: the floor
    /// counts only those a key not since revoked signed, so a stolen key's
    /// `u64::MAX` cannot lock out the legitimate next bundle.
    #[serde(default)]
    accepted: Vec<Accepted>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Accepted {
    sequence: u64,
    digest: Digest,
    signed_by: Vec<KeyId>,
}

/// One version held, for `list`.
#[derive(Clone, Debug, Serialize)]
pub struct VersionInfo {
    /// Stack name.
    pub stack: StackName,
    /// Version.
    pub version: Version,
    /// Sequence.
    pub sequence: u64,
    /// Packed at.
    pub created: String,
    /// Imported at.
    pub imported: String,
    /// Bytes of all its blobs.
    pub size: u64,
    /// Number of blobs.
    pub blobs: usize,
    /// Number of images.
    pub images: usize,
    /// Whether every blob is in the store.
    pub complete: bool,
    /// Media parts the version was split into.
    pub parts: u32,
    /// Parts whose blobs are not all in the store.
    pub parts_missing: Vec<u32>,
    /// Bytes not yet in the store.
    pub bytes_missing: u64,
    /// Descriptor digest.
    pub digest: Digest,
}

/// What `fsck` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FsckReport {
    /// Blobs re-hashed.
    pub blobs_checked: usize,
    /// Their bytes.
    pub bytes_checked: u64,
    /// Blobs whose content does not match their name: (path, actual digest).
    pub corrupt: Vec<(PathBuf, Digest)>,
    /// Files in blobs/ that are not named by a digest.
    pub stray: Vec<PathBuf>,
    /// Leftovers in staging/ (from a crash or a kill).
    pub staging_leftovers: Vec<PathBuf>,
    /// Versions whose blobs are not all present yet: (stack, version, missing).
    pub incomplete_versions: Vec<(String, String, usize)>,
}

impl FsckReport {
    /// True when nothing is damaged. Incomplete versions are not damage: a
    /// split bundle's version waits for its other parts.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.stray.is_empty()
    }
}

/// The ship's store.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
}

/// Held while the store changes; released on drop.
pub struct StoreLock {
    _file: File,
}

impl Store {
    /// Open the store at `root`, creating it if needed (directories 0700).
    pub fn init(root: &Path) -> Result<Store, StoreError> {
        for d in ["blobs/sha256", "staging", "trust", "stacks"] {
            create_dirs(&root.join(d))?;
        }
        Store::open(root)
    }

    /// Open an existing store (never creates anything: `verify` and `list`
    /// must not write). Refuses a store whose directory or trust another
    /// user could write: they could plant a key.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        if !root.join("blobs/sha256").is_dir() {
            return Err(StoreError::NotAStore { path: root.to_owned() });
        }
        for d in [root.to_owned(), root.join("trust"), root.join("trust/roots")] {
            check_private_dir(&d)?;
        }
        Ok(Store { root: root.to_owned() })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Take the store's exclusive lock, or fail at once if it is held.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let path = self.root.join("lock");
        // Only the owner may open it: anyone who can open a file can hold
        // a shared flock on it and so block every import.
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io_err(&path))?;
        match f.try_lock() {
            Ok(()) => Ok(StoreLock { _file: f }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(StoreError::Busy { path: self.root.clone() })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Io { path, source: e }),
        }
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    /// Where a blob lives.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.hex())
    }

    /// Every blob held, sorted.
    pub fn blob_digests(&self) -> Result<Vec<Digest>, StoreError> {
        let mut v: Vec<Digest> = read_dir_sorted(&self.blobs_dir())?
            .iter()
            .filter_map(|p| Digest::from_hex(&p.file_name()?.to_string_lossy()).ok())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Where the chunks of `blob` wait for the rest.
    fn chunk_dir(&self, blob: &Digest) -> PathBuf {
        self.root.join("staging/chunks").join(blob.hex())
    }

    /// Where a verified chunk of a blob split across parts waits for the
    /// rest: named by its own digest, so that chunks of the same blob split
    /// at other sizes (another pack of the same stack) never stand in for
    /// it, and one damaged chunk costs only itself.
    pub fn chunk_path(&self, blob: &Digest, chunk: &tender_bundle::ChunkRecord) -> PathBuf {
        self.chunk_dir(blob).join(chunk.digest.hex())
    }

    /// Whether the chunk at `path` still holds `size` bytes hashing to `digest`.
    fn chunk_intact(&self, path: &Path, digest: &Digest, size: u64) -> bool {
        File::open(path).is_ok_and(|f| {
            tender_bundle::copy_hashed(f, std::io::sink(), size + 1, &tender_bundle::NoProgress)
                .is_ok_and(|(d, n)| d == *digest && n == size)
        })
    }

    /// Join a blob's verified chunks, check the whole against its digest,
    /// and move it into place; the chunk directory is then removed (with
    /// any chunks of other splits of the blob, of no more use).
    pub(crate) fn assemble(&self, blob: &tender_bundle::BlobRecord) -> Result<(), StoreError> {
        let staging = self.root.join("staging");
        let mut tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&staging)
            .map_err(io_err(&staging))?;
        let mut parts: Vec<Box<dyn Read>> = Vec::new();
        for c in &blob.chunks {
            let p = self.chunk_path(&blob.digest, c);
            parts.push(Box::new(File::open(&p).map_err(io_err(&p))?));
        }
        let chained = parts
            .into_iter()
            .fold(Box::new(std::io::empty()) as Box<dyn Read>, |a, b| Box::new(a.chain(b)));
        let path = tmp.path().to_owned();
        let (actual, n) = tender_bundle::copy_hashed(
            chained,
            tmp.as_file_mut(),
            blob.size + 1,
            &tender_bundle::NoProgress,
        )
        .map_err(|e| match e {
            tender_bundle::CopyError::Read(source) | tender_bundle::CopyError::Write(source) => {
                StoreError::Io { path: path.clone(), source }
            }
        })?;
        let chunk_dir = self.chunk_dir(&blob.digest);
        if n != blob.size || actual != blob.digest {
            // Each chunk was verified as it arrived, so one changed since:
            // drop those that no longer match their digests, keep the rest.
            let bad: Vec<PathBuf> = blob
                .chunks
                .iter()
                .map(|c| (self.chunk_path(&blob.digest, c), c))
                .filter(|(p, c)| !self.chunk_intact(p, &c.digest, c.size))
                .map(|(p, _)| p)
                .collect();
            for p in &bad {
                let _ = fs::remove_file(p);
            }
            let entry = match bad.first() {
                Some(p) => format!("{} (removed; a part brings it again)", p.display()),
                None => format!("the chunks in {}", chunk_dir.display()),
            };
            return Err(BundleError::DigestMismatch {
                entry,
                expected: blob.digest.clone(),
                actual,
            }
            .into());
        }
        tmp.as_file().sync_all().map_err(io_err(&path))?;
        let target = self.blob_path(&blob.digest);
        tmp.persist(&target)
            .map_err(|e| StoreError::Io { path: target.clone(), source: e.error })?;
        fsutil::sync_dir(&self.blobs_dir())?;
        fs::remove_dir_all(&chunk_dir).map_err(io_err(&chunk_dir))?;
        // Gone once no blob waits for chunks (fails, harmlessly, while one does).
        let _ = fs::remove_dir(self.root.join("staging/chunks"));
        Ok(())
    }

    /// Whether the store holds a blob.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub(crate) fn trust_dir(&self) -> PathBuf {
        self.root.join("trust")
    }

    /// Trust a public key (SPKI PEM). Returns its id.
    pub fn trust_add(&self, pem: &str) -> Result<KeyId, StoreError> {
        let key = PublicKey::from_pem(pem)?;
        let id = key.key_id();
        let _lock = self.lock()?;
        write_atomic(&self.trust_dir(), &format!("{id}.pub"), key.to_pem()?.as_bytes())?;
        Ok(id)
    }

    /// Stop trusting a key.
    pub fn trust_remove(&self, id: &KeyId) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let path = self.trust_dir().join(format!("{id}.pub"));
        if !path.exists() {
            return Err(StoreError::UnknownKey(id.clone()));
        }
        fs::remove_file(&path).map_err(io_err(&path))?;
        fsutil::sync_dir(&self.trust_dir())
    }

    /// The trusted keys.
    pub fn trusted_keys(&self) -> Result<Vec<PublicKey>, StoreError> {
        let dir = self.trust_dir();
        let mut keys = Vec::new();
        for entry in read_dir_sorted(&dir)? {
            if entry.extension().is_some_and(|e| e == "pub") {
                let pem = read_private(&entry, MAX_KEY_FILE)?.unwrap_or_default();
                let pem = String::from_utf8_lossy(&pem);
                let key = PublicKey::from_pem(&pem).map_err(|e| StoreError::BadRecord {
                    path: entry.clone(),
                    reason: e.to_string(),
                })?;
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// Require `k` distinct trusted signatures on bundles of `stack` (1: the default).
    pub fn set_threshold(&self, stack: &StackName, k: usize) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let mut t = self.thresholds()?;
        if k <= 1 {
            t.remove(stack.as_str());
        } else {
            t.insert(stack.to_string(), k);
        }
        write_atomic(
            &self.trust_dir(),
            "thresholds.json",
            &serde_json::to_vec_pretty(&t).expect("map serializes"),
        )
    }

    /// Per-stack signature thresholds above one.
    pub fn thresholds(&self) -> Result<std::collections::BTreeMap<String, usize>, StoreError> {
        let path = self.trust_dir().join("thresholds.json");
        match read_private(&path, MAX_KEY_FILE)? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| StoreError::BadRecord { path, reason: e.to_string() }),
            None => Ok(Default::default()),
        }
    }

    fn stack_dir(&self, name: &StackName) -> PathBuf {
        self.root.join("stacks").join(name.as_str())
    }

    fn stack_state(&self, name: &StackName) -> Result<StackState, StoreError> {
        let path = self.stack_dir(name).join("state.json");
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StoreError::BadRecord { path: path.clone(), reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StackState::default()),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// The lowest sequence a new bundle of `name` may have: the highest
    /// accepted that a signer who still has a say over the stack signed.
    pub(crate) fn sequence_floor(
        &self,
        name: &StackName,
        keyring: Option<&tender_keys::keyring::Keyring>,
    ) -> Result<u64, StoreError> {
        let state = self.stack_state(name)?;
        // A version counts while one of its signers still has a say over
        // the stack: pinned and not revoked, or allowed by the keyring for
        // it (expiry aside: it ends new bundles, not the floor). A key
        // revoked, removed or narrowed to other stacks lifts its floor.
        let pinned: Vec<KeyId> = self.trusted_keys()?.iter().map(|k| k.key_id()).collect();
        let valid = |a: &&Accepted| {
            a.signed_by.iter().any(|k| gate::has_say(&pinned, keyring, k, name.as_str()))
        };
        let floor = state.accepted.iter().filter(valid).map(|a| a.sequence).max().unwrap_or(0);
        Ok(floor.max(state.highest_sequence))
    }

    /// Record that `v` was accepted, for the downgrade floor.
    pub(crate) fn note_accepted(
        &self,
        v: &tender_bundle::VerifiedDescriptor,
    ) -> Result<(), StoreError> {
        let d = &v.descriptor;
        let mut state = self.stack_state(&d.stack.name)?;
        if state.accepted.iter().any(|a| a.digest == v.digest) {
            return Ok(());
        }
        state.accepted.push(Accepted {
            sequence: d.sequence,
            digest: v.digest.clone(),
            signed_by: v.signed_by.clone(),
        });
        let dir = self.stack_dir(&d.stack.name);
        let state = serde_json::to_vec_pretty(&state).expect("state serializes");
        write_atomic(&dir, "state.json", &state)
    }

    /// Every version record: (path, record, descriptor).
    pub fn versions(&self) -> Result<Vec<(PathBuf, VersionRecord, Descriptor)>, StoreError> {
        let mut out = Vec::new();
        for stack in read_dir_sorted(&self.root.join("stacks"))? {
            if !stack.is_dir() {
                continue;
            }
            let dir = stack.join("versions");
            if !dir.is_dir() {
                continue;
            }
            for path in read_dir_sorted(&dir)? {
                let is_record = path.extension().is_some_and(|e| e == "json")
                    && path.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.'));
                if !is_record {
                    continue;
                }
                let bytes = fs::read(&path).map_err(io_err(&path))?;
                let rec: VersionRecord = serde_json::from_slice(&bytes).map_err(|e| {
                    StoreError::BadRecord { path: path.clone(), reason: e.to_string() }
                })?;
                let d = rec.parse(&path)?;
                out.push((path, rec, d));
            }
        }
        out.sort_by(|a, b| {
            (a.2.stack.name.as_str(), a.2.sequence).cmp(&(b.2.stack.name.as_str(), b.2.sequence))
        });
        Ok(out)
    }

    /// The version records whose signatures still count (see
    /// [`Store::authority`]): what `serve` offers, so a version only a
    /// since-revoked key signed is never served. (`apply STACK` and `gc`
    /// judge the records of one stack the same way, as they go.)
    pub fn trusted_versions(
        &self,
    ) -> Result<Vec<(PathBuf, VersionRecord, Descriptor)>, StoreError> {
        Ok(self
            .versions()?
            .into_iter()
            .filter(|(_, rec, d)| self.authority(rec, d).is_ok())
            .collect())
    }

    /// Stacks and versions held.
    pub fn list(&self) -> Result<Vec<VersionInfo>, StoreError> {
        Ok(self
            .versions()?
            .into_iter()
            .map(|(_, rec, d)| {
                let missing = self.missing_blobs(&d);
                let missing: Vec<_> =
                    d.blobs.iter().filter(|b| missing.contains(&b.digest)).collect();
                let mut parts_missing: Vec<u32> = missing
                    .iter()
                    .flat_map(|b| {
                        if b.chunks.is_empty() {
                            vec![b.part]
                        } else {
                            b.chunks
                                .iter()
                                .filter(|c| !self.chunk_path(&b.digest, c).is_file())
                                .map(|c| c.part)
                                .collect()
                        }
                    })
                    .collect();
                parts_missing.sort_unstable();
                parts_missing.dedup();
                VersionInfo {
                    complete: missing.is_empty(),
                    parts: d.parts,
                    parts_missing,
                    bytes_missing: missing.iter().map(|b| b.size).sum(),
                    size: d.total_blob_bytes(),
                    blobs: d.blobs.len(),
                    images: d.images.len(),
                    stack: d.stack.name,
                    version: d.stack.version,
                    sequence: d.sequence,
                    created: d.created,
                    imported: rec.imported,
                    digest: rec.digest,
                }
            })
            .collect())
    }

    /// Re-hash every blob; report mismatches, strays, staging leftovers and
    /// incomplete versions. Changes nothing.
    pub fn fsck(&self, progress: &dyn Progress) -> Result<FsckReport, StoreError> {
        let mut report = FsckReport::default();
        let blobs = read_dir_sorted(&self.blobs_dir())?;
        let total: u64 = blobs.iter().filter_map(|p| p.metadata().ok()).map(|m| m.len()).sum();
        progress.start("fsck", total);
        for path in blobs {
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let Ok(expected) = Digest::from_hex(&name) else {
                report.stray.push(path);
                continue;
            };
            progress.item(&name);
            let f = File::open(&path).map_err(io_err(&path))?;
            let mut hasher = Sha256::new();
            // Read straight into a buffer that stays in cache (see
            // `tender_bundle::copy_hashed`).
            let mut r = BufReader::with_capacity(tender_bundle::READ_BUFFER, f);
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = r.read(&mut buf).map_err(io_err(&path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                report.bytes_checked += n as u64;
                progress.advance(n as u64);
            }
            let actual = Digest::from_hasher(hasher);
            if actual != expected {
                report.corrupt.push((path, actual));
            }
            report.blobs_checked += 1;
        }
        progress.finish();
        // Verified chunks waiting for their other parts, and partial blobs
        // of a pull that will resume, are progress, not leftovers.
        report.staging_leftovers = read_dir_sorted(&self.root.join("staging"))?
            .into_iter()
            .filter(|p| !p.ends_with("chunks") && !p.ends_with("partial"))
            .collect();
        // Chunks are named by their digests, and checked as blobs are; a
        // name that is none (an older tender's `<offset>`) is a leftover.
        let chunks = self.root.join("staging/chunks");
        if chunks.is_dir() {
            for dir in read_dir_sorted(&chunks)? {
                // Chunks of a blob the store now holds whole are of no more use.
                let waiting = dir.is_dir()
                    && dir.file_name().is_some_and(|n| {
                        Digest::from_hex(&n.to_string_lossy()).is_ok_and(|d| !self.has_blob(&d))
                    });
                if !waiting {
                    report.staging_leftovers.push(dir);
                    continue;
                }
                for path in read_dir_sorted(&dir)? {
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                    let Some(expected) = name.and_then(|n| Digest::from_hex(&n).ok()) else {
                        report.staging_leftovers.push(path);
                        continue;
                    };
                    let f = File::open(&path).map_err(io_err(&path))?;
                    let (actual, n) = tender_bundle::copy_hashed(
                        f,
                        std::io::sink(),
                        u64::MAX,
                        &tender_bundle::NoProgress,
                    )
                    .map_err(|e| match e {
                        tender_bundle::CopyError::Read(source)
                        | tender_bundle::CopyError::Write(source) => {
                            StoreError::Io { path: path.clone(), source }
                        }
                    })?;
                    report.bytes_checked += n;
                    if actual != expected {
                        report.corrupt.push((path, actual));
                    }
                }
            }
        }
        for (_, _, d) in self.versions()? {
            let missing = d.blobs.iter().filter(|b| !self.has_blob(&b.digest)).count();
            if missing > 0 {
                report.incomplete_versions.push((
                    d.stack.name.to_string(),
                    d.stack.version.to_string(),
                    missing,
                ));
            }
        }
        Ok(report)
    }
}

impl Store {
    /// Remove what `report` found that a crash or bit rot left: staging
    /// leftovers, corrupt and stray blobs. Returns what was removed. Holds the
    /// lock, so it never races an import.
    pub fn repair(&self, report: &FsckReport) -> Result<Vec<PathBuf>, StoreError> {
        let _lock = self.lock()?;
        let mut removed = Vec::new();
        let doomed = report
            .staging_leftovers
            .iter()
            .chain(report.corrupt.iter().map(|(p, _)| p))
            .chain(report.stray.iter());
        for p in doomed {
            if p.is_dir() {
                fs::remove_dir_all(p).map_err(io_err(p))?;
            } else {
                fs::remove_file(p).map_err(io_err(p))?;
            }
            removed.push(p.clone());
        }
        fsutil::sync_dir(&self.root.join("staging"))?;
        fsutil::sync_dir(&self.blobs_dir())?;
        Ok(removed)
    }
}

/// Clock skew tolerated before warning.
const CLOCK_SLACK: std::time::Duration = std::time::Duration::from_secs(300);

/// Largest key, keyring-threshold or thresholds file read from `trust/`.
pub(crate) const MAX_KEY_FILE: u64 = 64 << 10;

impl Store {
    /// The latest clock reading this ship recorded (at each import).
    pub fn latest_seen(&self) -> Result<Option<std::time::SystemTime>, StoreError> {
        let path = self.root.join("time.json");
        match fs::read(&path) {
            Ok(b) => {
                let v: serde_json::Value = serde_json::from_slice(&b).map_err(|e| {
                    StoreError::BadRecord { path: path.clone(), reason: e.to_string() }
                })?;
                Ok(v["latest_seen"].as_str().and_then(|t| humantime::parse_rfc3339(t).ok()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Record the clock's reading at an import. Only the clock's: a bundle's
    /// `created` is the signer's word, and one in 9999 must not move the
    /// ship's idea of time.
    pub(crate) fn note_seen(&self) -> Result<(), StoreError> {
        let now = std::time::SystemTime::now();
        let latest = self.latest_seen()?.map_or(now, |l| l.max(now));
        let body = serde_json::json!({"latest_seen": humantime::format_rfc3339_seconds(latest).to_string()});
        write_atomic(&self.root, "time.json", body.to_string().as_bytes())
    }

    /// Check `d`'s expiry against the clock. The latest reading kept only
    /// serves to warn that the clock went back: judging by it would let one
    /// fast reading (or a bundle dated 9999) make every key and bundle look
    /// expired for good. A bundle created in the future is warned about.
    /// Returns warnings; errors only under [`Freshness::RequireFresh`].
    pub fn check_freshness(
        &self,
        d: &Descriptor,
        policy: Freshness,
    ) -> Result<Vec<String>, StoreError> {
        let mut warnings = Vec::new();
        let clock = std::time::SystemTime::now();
        let fmt = |t| humantime::format_rfc3339_seconds(t).to_string();
        if let Some(latest) = self.latest_seen()?
            && latest > clock + CLOCK_SLACK
        {
            warnings.push(format!(
                "the clock reads {}, before the latest time this ship has recorded ({}): has it been set back? Expiry is judged by the clock",
                fmt(clock),
                fmt(latest)
            ));
        }
        if let Ok(created) = humantime::parse_rfc3339(&d.created)
            && created > clock + CLOCK_SLACK
        {
            warnings.push(format!(
                "{} {} says it was created at {}, after this ship's clock ({}): check the clock here and on shore",
                d.stack.name,
                d.stack.version,
                d.created,
                fmt(clock)
            ));
        }
        if let Some(expiry) = d.expiry()
            && expiry < clock
        {
            let expires = d.expires.clone().unwrap_or_default();
            if policy == Freshness::RequireFresh {
                return Err(StoreError::Expired {
                    stack: d.stack.name.clone(),
                    version: d.stack.version.clone(),
                    expires,
                    now: fmt(clock),
                });
            }
            warnings.push(format!(
                "{} {} expired at {expires}; taken anyway (--require-fresh refuses stale bundles)",
                d.stack.name, d.stack.version
            ));
        }
        Ok(warnings)
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        v.push(e.map_err(io_err(dir))?.path());
    }
    v.sort();
    Ok(v)
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(expires: Option<&str>) -> Descriptor {
        let text = serde_json::json!({
            "format": tender_bundle::FORMAT,
            "stack": {"name": "s", "version": "1"},
            "sequence": 1,
            "created": "2026-01-01T00:00:00Z",
            "manifests": [], "images": [],
            "ociIndex": {"digest": Digest::of(b"{}"), "size": 2},
            "blobs": [],
            "expires": expires,
        });
        let mut v = text;
        if expires.is_none() {
            v.as_object_mut().unwrap().remove("expires");
        }
        Descriptor::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    #[test]
    fn freshness_is_judged_by_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path()).unwrap();
        let fresh = descriptor(Some("2099-01-01T00:00:00Z"));
        assert!(store.check_freshness(&fresh, Freshness::RequireFresh).unwrap().is_empty());
        let stale = descriptor(Some("2001-01-01T00:00:00Z"));
        assert!(matches!(
            store.check_freshness(&stale, Freshness::RequireFresh),
            Err(StoreError::Expired { .. })
        ));
        assert_eq!(store.check_freshness(&stale, Freshness::WarnIfExpired).unwrap().len(), 1);
        // The ship once read 2100: a warning, not a lock-out.
        fs::write(dir.path().join("time.json"), r#"{"latest_seen":"2100-01-01T00:00:00Z"}"#)
            .unwrap();
        let w = store.check_freshness(&fresh, Freshness::RequireFresh).unwrap();
        assert!(w.len() == 1 && w[0].contains("set back"), "{w:?}");
        assert!(store.check_freshness(&descriptor(None), Freshness::RequireFresh).is_ok());
    }

    #[test]
    fn bounded_reads_refuse_what_is_larger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        fs::write(&path, vec![b'x'; 10]).unwrap();
        assert_eq!(read_bounded(&path, 10).unwrap().len(), 10);
        let e = read_bounded(&path, 9).unwrap_err().to_string();
        assert!(
            e.contains("larger than 9 bytes") && e.contains(&path.display().to_string()),
            "{e}"
        );
        // A file far larger than the bound costs only the bound to refuse.
        let big = fs::File::create(dir.path().join("big")).unwrap();
        big.set_len(1 << 36).unwrap();
        assert!(matches!(
            read_bounded(&dir.path().join("big"), 1 << 20),
            Err(StoreError::TooLarge { .. })
        ));
        assert!(matches!(read_bounded(&dir.path().join("none"), 1), Err(StoreError::Io { .. })));
    }

    #[test]
    fn open_does_not_create_a_store() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(Store::open(&dir.path().join("none")), Err(StoreError::NotAStore { .. })));
        assert!(!dir.path().join("none").exists());
    }
}
