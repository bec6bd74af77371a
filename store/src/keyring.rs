//! The ship's side of keyrings: pinned root keys (`trust/roots/`), the
//! keyring in force (`trust/keyring.json`), and the trust they give.

use std::path::PathBuf;

use tender_keys::keyring::{Keyring, SignedKeyring};
use tender_keys::{KeyId, PublicKey, Trust};

use crate::fsutil::{read_private, write_atomic};
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
                let pem = read_private(&p, crate::MAX_KEY_FILE)?.unwrap_or_default();
                let pem = String::from_utf8_lossy(&pem);
                keys.push(PublicKey::from_pem(&pem).map_err(|e| StoreError::BadRecord {
                    path: p.clone(),
                    reason: e.to_string(),
                })?);
            }
        }
        Ok(keys)
    }

    /// How many pinned roots must sign the first keyring (`trust
    /// root-threshold`; default a majority of `pinned`).
    pub fn root_threshold(&self, pinned: usize) -> Result<usize, StoreError> {
        let path = self.trust_dir().join("root-threshold.json");
        match crate::fsutil::read_private(&path, 4096)? {
            Some(b) => {
                let v: serde_json::Value = serde_json::from_slice(&b).map_err(|e| {
                    StoreError::BadRecord { path: path.clone(), reason: e.to_string() }
                })?;
                v["threshold"].as_u64().filter(|k| *k >= 1).map(|k| k as usize).ok_or(
                    StoreError::BadRecord { path, reason: "no threshold of 1 or more".into() },
                )
            }
            None => Ok(pinned / 2 + 1),
        }
    }

    /// Require `k` of the pinned roots to sign the first keyring.
    pub fn set_root_threshold(&self, k: usize) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let pinned = self.pinned_roots()?.len();
        if k == 0 || k > pinned {
            return Err(StoreError::BadThreshold { k, pinned });
        }
        let body = serde_json::json!({ "threshold": k }).to_string();
        write_atomic(&self.trust_dir(), "root-threshold.json", body.as_bytes())
    }

    /// The keyring in force, if any.
    pub fn keyring(&self) -> Result<Option<SignedKeyring>, StoreError> {
        let path = self.trust_dir().join("keyring.json");
        match read_private(&path, tender_keys::keyring::MAX_KEYRING_BYTES)? {
            Some(b) => SignedKeyring::parse(&b)
                .map(Some)
                .map_err(|e| StoreError::BadRecord { path, reason: e.to_string() }),
            None => Ok(None),
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
        let pinned = self.pinned_roots()?;
        let threshold = self.root_threshold(pinned.len())?;
        offered.verify_successor(current.as_ref().map(|c| &c.signed), &pinned, threshold)?;
        if install == Install::Yes {
            write_atomic(&self.trust_dir(), "keyring.json", &offered.to_bytes())?;
        }
        Ok((KeyringChange::Installed { version: offered.signed.version }, offered))
    }

    /// The keys whose signatures count under `keyring` (default: the one
    /// in force) for new bundles: signers not expired now, pinned keys not
    /// revoked.
    pub fn trust_with(&self, keyring: Option<&Keyring>) -> Result<Trust, StoreError> {
        let held = self.keyring()?;
        let keyring = keyring.or(held.as_ref().map(|k| &k.signed));
        let keys = self.signing_keys(keyring, Expiry::Now)?;
        if keys.is_empty() && keyring.is_none() && self.pinned_roots()?.is_empty() {
            return Err(StoreError::NoTrustedKeys { path: self.trust_dir() });
        }
        Ok(Trust::new(keys))
    }

    /// Pinned signing keys that `keyring` does not revoke, and the signing
    /// keys `keyring` lists (and does not revoke). With [`Expiry::Now`] a
    /// listed key past its expiry is left out, judged by the clock (one
    /// reading, from a bundle or a clock that ran fast, must not make every
    /// key look expired for good).
    pub(crate) fn signing_keys(
        &self,
        keyring: Option<&Keyring>,
        expiry: Expiry,
    ) -> Result<Vec<PublicKey>, StoreError> {
        let mut keys: Vec<PublicKey> = self
            .trusted_keys()?
            .into_iter()
            .filter(|k| !keyring.is_some_and(|r| r.is_revoked(&k.key_id())))
            .collect();
        if let Some(r) = keyring {
            let listed = match expiry {
                Expiry::Now => r.signer_keys(std::time::SystemTime::now()),
                Expiry::Ignored => r.listed_keys(),
            };
            for k in listed {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        Ok(keys)
    }
}

/// Whether a keyring signer's expiry counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// For new bundles: an expired signer signs no more.
    Now,
    /// For versions already held: expiry ends new bundles, not the versions
    /// a key signed before (a revocation ends both).
    Ignored,
}
