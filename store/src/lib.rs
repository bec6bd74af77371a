//! The ship's content store.
//!
//! ```text
//! STORE/
//!   lock                      held exclusively while the store changes
//!   blobs/sha256/<hex>        verified blobs, named by digest
//!   staging/                  blobs being written; moved into blobs/ once verified
//!   staging/chunks/<hex>/<chunk hex>  verified chunks of a blob split across media parts,
//!                             named by their own digests
//!   staging/partial/<hex>     a blob being pulled over a link, unverified until whole
//!   trust/<keyid>.pub         pinned signing keys (SPKI PEM): may sign any stack
//!   trust/roots/<keyid>.pub   pinned root keys: sign keyrings
//!   trust/keyring.json        the keyring in force (signing keys, roles, revocations)
//!   stacks/<name>/versions/<version>.json   one record per complete stack version
//!   stacks/<name>/state.json  the highest sequence accepted (rollback protection)
//!   stacks/<name>/history.json  what was applied when, and the version in force
//! ```
//!
//! Every file is written to a temporary name in its directory, fsynced, and
//! renamed, so a crash leaves the old state or the new one.
#![deny(missing_docs)]

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tender_bundle::{BundleError, Descriptor, Digest, Progress, StackName, Version};
use tender_keys::{KeyError, KeyId, PublicKey, Signature, Trust};

mod fsutil;
mod history;
mod import;
mod keyring;
mod partial;
mod patch;

use fsutil::{create_dirs, io_err, write_atomic};
pub use history::{GcReport, History, HistoryEntry, Outcome};
pub use import::{Admission, Downgrade, Freshness, ImportPolicy, ImportReport};
pub use keyring::{CheckOnly, Install, KeyringChange};

/// Errors of the ship store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The bundle failed verification.
    #[error(transparent)]
    Bundle(#[from] BundleError),
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
    /// The bundle is older than one already imported for the stack.
    #[error(
        "refusing downgrade of stack {stack}: bundle sequence {sequence} is lower than {highest}, already imported \
         (use --allow-downgrade to import it anyway)"
    )]
    Downgrade {
        /// The stack.
        stack: StackName,
        /// The bundle's sequence.
        sequence: u64,
        /// The highest imported.
        highest: u64,
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
        "{stack} {version} expired at {expires} (it is now at least {now}); refused because fresh bundles are required"
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
    /// A store record that cannot be read.
    #[error("{}: invalid record: {reason}", path.display())]
    BadRecord {
        /// The record.
        path: PathBuf,
        /// Why.
        reason: String,
    },
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

/// What the signers of a stored version may do now (judged against the
/// keyring in force, so a revocation reaches versions already held).
#[derive(Clone, Debug, Serialize)]
pub struct Authority {
    /// The keys whose signatures still count for this version's stack.
    pub signed_by: Vec<KeyId>,
    /// Whether the version may apply cluster-scoped objects other than its
    /// own Namespaces: a key pinned by hand, or a keyring signer granted it.
    pub cluster_scope: bool,
}

impl Store {
    /// The authority of a stored version's signatures now.
    pub fn authority(
        &self,
        _rec: &VersionRecord,
        _d: &Descriptor,
    ) -> Result<Authority, StoreError> {
        // Placeholder until the trust gate lands (same session).
        Ok(Authority { signed_by: vec![], cluster_scope: true })
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct StackState {
    highest_sequence: u64,
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
    /// Open the store at `root`, creating it if needed.
    pub fn init(root: &Path) -> Result<Store, StoreError> {
        for d in ["blobs/sha256", "staging", "trust", "stacks"] {
            create_dirs(&root.join(d))?;
        }
        Ok(Store { root: root.to_owned() })
    }

    /// Open an existing store (never creates anything: `verify` and `list`
    /// must not write).
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        if !root.join("blobs/sha256").is_dir() {
            return Err(StoreError::NotAStore { path: root.to_owned() });
        }
        Ok(Store { root: root.to_owned() })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Take the store's exclusive lock, or fail at once if it is held.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        let path = self.root.join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
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
                let pem = fs::read_to_string(&entry).map_err(io_err(&entry))?;
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
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StoreError::BadRecord { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Refuse a verified descriptor signed by fewer distinct trusted keys,
    /// allowed to sign its stack, than its stack's threshold (see
    /// [`Store::check_signers`]).
    pub fn check_threshold(&self, v: &tender_bundle::VerifiedDescriptor) -> Result<(), StoreError> {
        self.check_signers(v, None)
    }

    /// The trust decision for bundles: pinned signing keys and the keyring
    /// in force (see [`Store::trust_with`]).
    pub fn trust(&self) -> Result<Trust, StoreError> {
        self.trust_with(None)
    }

    fn stack_dir(&self, name: &StackName) -> PathBuf {
        self.root.join("stacks").join(name.as_str())
    }

    fn highest_sequence(&self, name: &StackName) -> Result<u64, StoreError> {
        let path = self.stack_dir(name).join("state.json");
        let state: StackState = match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StoreError::BadRecord { path: path.clone(), reason: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StackState::default(),
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        Ok(state.highest_sequence)
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
            let mut r = BufReader::with_capacity(1 << 20, f);
            let mut buf = vec![0u8; 1 << 20];
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

/// Clock skew tolerated before warning that the clock went back.
const CLOCK_SLACK: std::time::Duration = std::time::Duration::from_secs(300);

impl Store {
    /// The latest time this ship has seen: from its clock at each import, and
    /// from the creation time of each bundle it accepted.
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

    /// Record that `d` was accepted now.
    pub(crate) fn note_seen(&self, d: &Descriptor) -> Result<(), StoreError> {
        let now = std::time::SystemTime::now();
        let created = humantime::parse_rfc3339(&d.created).unwrap_or(now);
        let latest = [Some(now), Some(created), self.latest_seen()?]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(now);
        let body = serde_json::json!({"latest_seen": humantime::format_rfc3339_seconds(latest).to_string()});
        write_atomic(&self.root, "time.json", body.to_string().as_bytes())
    }

    /// Check `d`'s expiry against the later of the clock and the latest time
    /// seen (a clock set back must not make a stale bundle look fresh).
    /// Returns warnings; errors only under [`Freshness::RequireFresh`].
    pub fn check_freshness(
        &self,
        d: &Descriptor,
        policy: Freshness,
    ) -> Result<Vec<String>, StoreError> {
        let mut warnings = Vec::new();
        let clock = std::time::SystemTime::now();
        let latest = self.latest_seen()?;
        if let Some(latest) = latest
            && latest > clock + CLOCK_SLACK
        {
            warnings.push(format!(
                "the clock reads {}, before the latest time this ship has seen ({}): has it been set back?",
                humantime::format_rfc3339_seconds(clock),
                humantime::format_rfc3339_seconds(latest)
            ));
        }
        let now = latest.map_or(clock, |l| l.max(clock));
        if let Some(expiry) = d.expiry()
            && expiry < now
        {
            let expires = d.expires.clone().unwrap_or_default();
            if policy == Freshness::RequireFresh {
                return Err(StoreError::Expired {
                    stack: d.stack.name.clone(),
                    version: d.stack.version.clone(),
                    expires,
                    now: humantime::format_rfc3339_seconds(now).to_string(),
                });
            }
            warnings.push(format!(
                "{} {} expired at {expires}; importing it anyway (use --require-fresh to refuse stale bundles)",
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
    fn freshness_uses_the_later_of_clock_and_latest_seen() {
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
        // The ship once saw 2100: a bundle fresh by the clock is stale by that.
        fs::write(dir.path().join("time.json"), r#"{"latest_seen":"2100-01-01T00:00:00Z"}"#)
            .unwrap();
        let w = store.check_freshness(&fresh, Freshness::WarnIfExpired).unwrap();
        assert!(
            w.iter().any(|w| w.contains("set back")) && w.iter().any(|w| w.contains("expired")),
            "{w:?}"
        );
        assert!(store.check_freshness(&descriptor(None), Freshness::RequireFresh).is_ok());
    }

    #[test]
    fn open_does_not_create_a_store() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(Store::open(&dir.path().join("none")), Err(StoreError::NotAStore { .. })));
        assert!(!dir.path().join("none").exists());
    }
}
