//! The ship's side of keyrings: pinned root keys (`trust/roots/`), the
//! keyring in force (`trust/keyring.json`), and the trust they give.

use std::fs;
use std::path::PathBuf;

use tender_bundle::{BlobRecord, BundleError, Sink, VerifiedDescriptor};
use tender_keys::keyring::{Keyring, SignedKeyring};
use tender_keys::{KeyError, KeyId, PublicKey, Trust};

use crate::fsutil::{io_err, write_atomic};
use crate::{Store, StoreError};

/// What became of a keyring a bundle (or the operator) offered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyringChange {
    /// It is now in force.
    Installed {
        /// Its version.
        version: u64,
    },
    /// It is the one in force.
    Same,
    /// It is older than the one in force: ignored.
    Older {
        /// Its version.
        offered: u64,
        /// The version in force.
        held: u64,
    },
}

/// Whether judging a keyring may install it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install {
    /// Install it when it may follow the one in force.
    Yes,
    /// Only judge it (`verify` writes nothing).
    No,
}

impl Store {
    fn roots_dir(&self) -> PathBuf {
        self.trust_dir().join("roots")
    }

    /// Pin a root key (SPKI PEM): keyrings are accepted only when a chain
    /// of them leads back to the pinned roots.
    pub fn root_add(&self, pem: &str) -> Result<KeyId, StoreError> {
        let key = PublicKey::from_pem(pem)?;
        let id = key.key_id();
        let _lock = self.lock()?;
        let dir = self.roots_dir();
        crate::create_dirs(&dir)?;
        write_atomic(&dir, &format!("{id}.pub"), key.to_pem()?.as_bytes())?;
        Ok(id)
    }

    /// The pinned root keys.
    pub fn pinned_roots(&self) -> Result<Vec<PublicKey>, StoreError> {
        let dir = self.roots_dir();
        if !dir.is_dir() {
            return Ok(vec![]);
        }
        let mut keys = Vec::new();
        for p in crate::read_dir_sorted(&dir)? {
            if p.extension().is_some_and(|e| e == "pub") {
                let pem = fs::read_to_string(&p).map_err(io_err(&p))?;
                keys.push(PublicKey::from_pem(&pem).map_err(|e| StoreError::BadRecord {
                    path: p.clone(),
                    reason: e.to_string(),
                })?);
            }
        }
        Ok(keys)
    }

    /// The keyring in force, if any.
    pub fn keyring(&self) -> Result<Option<SignedKeyring>, StoreError> {
        let path = self.trust_dir().join("keyring.json");
        match fs::read(&path) {
            Ok(b) => SignedKeyring::parse(&b)
                .map(Some)
                .map_err(|e| StoreError::BadRecord { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Judge a keyring file's bytes against the keyring in force (or the
    /// pinned roots): a newer one signed by the roots in force and by its
    /// own is installed (with [`Install::Yes`]); an older one is ignored; a
    /// forged or malformed one is an error.
    pub fn consider_keyring(
        &self,
        bytes: &[u8],
        install: Install,
    ) -> Result<(KeyringChange, SignedKeyring), StoreError> {
        let offered = SignedKeyring::parse(bytes)?;
        let current = self.keyring()?;
        if let Some(c) = &current {
            if c.signed == offered.signed {
                return Ok((KeyringChange::Same, offered));
            }
            if offered.signed.version < c.signed.version {
                let change = KeyringChange::Older {
                    offered: offered.signed.version,
                    held: c.signed.version,
                };
                return Ok((change, offered));
            }
        }
        offered.verify_successor(current.as_ref().map(|c| &c.signed), &self.pinned_roots()?)?;
        if install == Install::Yes {
            write_atomic(&self.trust_dir(), "keyring.json", &offered.to_bytes())?;
        }
        Ok((KeyringChange::Installed { version: offered.signed.version }, offered))
    }

    /// The keys whose signatures count under `keyring` (default: the one
    /// in force): pinned signing keys it does not revoke, and its signing
    /// keys valid now (the later of the clock and the latest time seen).
    pub fn trust_with(&self, keyring: Option<&Keyring>) -> Result<Trust, StoreError> {
        let held = self.keyring()?;
        let keyring = keyring.or(held.as_ref().map(|k| &k.signed));
        let mut keys: Vec<PublicKey> = self
            .trusted_keys()?
            .into_iter()
            .filter(|k| !keyring.is_some_and(|r| r.is_revoked(&k.key_id())))
            .collect();
        if let Some(r) = keyring {
            let now = self.now()?;
            for k in r.signer_keys(now) {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        if keys.is_empty() && keyring.is_none() && self.pinned_roots()?.is_empty() {
            return Err(StoreError::NoTrustedKeys { path: self.trust_dir() });
        }
        Ok(Trust::new(keys))
    }

    /// The later of the clock and the latest time this ship has seen.
    pub(crate) fn now(&self) -> Result<std::time::SystemTime, StoreError> {
        let clock = std::time::SystemTime::now();
        Ok(self.latest_seen()?.map_or(clock, |l| l.max(clock)))
    }

    /// Refuse a verified descriptor unless enough of its signers may sign
    /// its stack: pinned signing keys may sign any stack; keyring keys the
    /// stacks their role names. The threshold is the higher of the ship's
    /// (`trust threshold`) and the keyring's for the stack.
    pub fn check_signers(
        &self,
        v: &VerifiedDescriptor,
        keyring: Option<&Keyring>,
    ) -> Result<(), StoreError> {
        let held = self.keyring()?;
        let keyring = keyring.or(held.as_ref().map(|k| &k.signed));
        let stack = v.descriptor.stack.name.as_str();
        let pinned: Vec<KeyId> = self.trusted_keys()?.iter().map(|k| k.key_id()).collect();
        let allowed: Vec<&KeyId> = v
            .signed_by
            .iter()
            .filter(|k| match keyring {
                Some(r) => r.allows(k, stack) || (pinned.contains(k) && !r.is_revoked(k)),
                None => pinned.contains(k),
            })
            .collect();
        if allowed.is_empty() {
            return Err(StoreError::NotAllowed {
                stack: v.descriptor.stack.name.clone(),
                signed_by: v.signed_by.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", "),
            });
        }
        let required = self
            .thresholds()?
            .get(stack)
            .copied()
            .unwrap_or(1)
            .max(keyring.and_then(|r| r.thresholds.get(stack).copied()).unwrap_or(1));
        if allowed.len() < required {
            return Err(KeyError::BelowThreshold { valid: allowed.len(), required }.into());
        }
        Ok(())
    }
}

/// `verify`: checks everything an import would, writes nothing; a keyring
/// the bundle carries is judged, not installed.
pub struct CheckOnly<'s> {
    store: &'s Store,
    /// The bundle's keyring, when it carried a usable one.
    pub keyring: Option<SignedKeyring>,
    /// What was noticed on the way (an older keyring).
    pub warnings: Vec<String>,
}

impl<'s> CheckOnly<'s> {
    /// A checker against `store`.
    pub fn new(store: &'s Store) -> Self {
        CheckOnly { store, keyring: None, warnings: vec![] }
    }
}

impl Sink for CheckOnly<'_> {
    type Error = StoreError;
    type Staged = std::io::Sink;
    fn keyring(&mut self, bytes: &[u8]) -> Result<Option<Trust>, StoreError> {
        let (change, k) = self.store.consider_keyring(bytes, Install::No)?;
        if let KeyringChange::Older { offered, held } = change {
            self.warnings.push(format!(
                "the bundle carries keyring version {offered}, older than version {held} in force: ignored"
            ));
            return Ok(None);
        }
        let trust = self.store.trust_with(Some(&k.signed))?;
        self.keyring = Some(k);
        Ok(Some(trust))
    }
    fn accept(&mut self, _: &VerifiedDescriptor) -> Result<tender_bundle::Accept, StoreError> {
        Ok(tender_bundle::Accept::Read)
    }
    fn wants(&mut self, _: &BlobRecord) -> bool {
        false
    }
    fn stage(&mut self, _: &BlobRecord) -> Result<std::io::Sink, StoreError> {
        Ok(std::io::sink())
    }
    fn write_failed(&self, _: &std::io::Sink, err: std::io::Error) -> StoreError {
        BundleError::Write { path: "(nowhere)".into(), source: err }.into()
    }
    fn commit(&mut self, _: &BlobRecord, _: std::io::Sink) -> Result<(), StoreError> {
        Ok(())
    }
}
