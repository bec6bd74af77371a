//! Keyrings: root keys, kept offline, sign a document naming the current
//! signing keys, the stacks each may sign, their expiry, and revoked keys.
//! Bundles carry the keyring, so a ship learns rotations and revocations by
//! sneakernet. A new keyring is accepted only when signed by the roots in
//! force (a chain, as in TUF) and by its own roots, and only when its
//! version is higher.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{KeyError, KeyId, PublicKey, Signature, Threshold, Trust};

/// The keyring format this crate reads and writes.
pub const KEYRING_FORMAT: &str = "tender-keyring/1";
/// Largest keyring file accepted.
pub const MAX_KEYRING_BYTES: u64 = 1 << 20;
/// Domain separation for keyring signatures.
const CONTEXT: &[u8] = b"tender-keyring/1\n";
/// The role that lets a key sign every stack.
pub const ANY_STACK: &str = "*";

/// A public key as a keyring lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Its id (hex SHA-256 of the raw key).
    pub keyid: KeyId,
    /// Base64 of the 32 raw ed25519 public key bytes.
    #[serde(rename = "publicKey")]
    pub public_key: String,
}

impl KeyRecord {
    /// The record of `key`.
    pub fn of(key: &PublicKey) -> KeyRecord {
        KeyRecord {
            keyid: key.key_id(),
            public_key: base64::engine::general_purpose::STANDARD.encode(key.0.as_bytes()),
        }
    }

    /// The key, checked against its id.
    pub fn key(&self) -> Result<PublicKey, KeyError> {
        let bad = |reason: String| KeyError::BadKeyring { reason };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&self.public_key)
            .map_err(|e| bad(format!("key {}: {e}", self.keyid)))?;
        let raw: [u8; 32] =
            raw.try_into().map_err(|_| bad(format!("key {}: not 32 bytes", self.keyid)))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&raw)
            .map_err(|e| bad(format!("key {}: {e}", self.keyid)))?;
        let key = PublicKey(key);
        if key.key_id() != self.keyid {
            return Err(bad(format!("key {} does not have that id", self.keyid)));
        }
        Ok(key)
    }
}

/// The root keys and how many of them must sign the next keyring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roots {
    /// The root keys.
    pub keys: Vec<KeyRecord>,
    /// Signatures by distinct root keys a keyring needs.
    pub threshold: usize,
}

/// A signing key and what it may sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signer {
    /// The key.
    #[serde(flatten)]
    pub key: KeyRecord,
    /// Stack names it may sign; `*` for all.
    pub stacks: Vec<String>,
    /// When it stops being valid (RFC 3339), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Whether its stacks may hold cluster-scoped objects (other than their
    /// own Namespaces): ClusterRoles, bindings, CRDs. Off unless granted,
    /// so a key trusted for one stack cannot reach the whole cluster.
    #[serde(default, rename = "clusterScope", skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
}

/// The signed part of a keyring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyring {
    /// Always [`KEYRING_FORMAT`].
    pub format: String,
    /// Raised by every change; a ship never goes back to a lower one.
    pub version: u64,
    /// When it was made (RFC 3339).
    pub created: String,
    /// Who signs the next keyring.
    pub roots: Roots,
    /// The signing keys in force.
    pub signers: Vec<Signer>,
    /// Keys that must never be trusted again, whoever else trusts them.
    #[serde(default)]
    pub revoked: Vec<KeyId>,
    /// Signatures a stack's bundles need (per stack; default one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub thresholds: BTreeMap<String, usize>,
}

/// A keyring and its root signatures: the file `tender-shore keyring`
/// writes, bundles carry, and ships keep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedKeyring {
    /// The keyring.
    pub signed: Keyring,
    /// Root signatures over [`Keyring::signing_message`].
    pub signatures: Vec<Signature>,
}

fn parse_time(s: &str, what: &str) -> Result<SystemTime, KeyError> {
    humantime::parse_rfc3339(s)
        .map_err(|e| KeyError::BadKeyring { reason: format!("{what} {s:?}: {e}") })
}

impl Keyring {
    /// A first keyring: these roots, no signers yet.
    pub fn new(roots: &[PublicKey], threshold: usize, created: SystemTime) -> Keyring {
        Keyring {
            format: KEYRING_FORMAT.into(),
            version: 1,
            created: humantime::format_rfc3339_seconds(created).to_string(),
            roots: Roots { keys: roots.iter().map(KeyRecord::of).collect(), threshold },
            signers: vec![],
            revoked: vec![],
            thresholds: BTreeMap::new(),
        }
    }

    /// The signed bytes: a context line and the keyring as serde writes it
    /// (field order fixed by these structs).
    pub fn signing_message(&self) -> Vec<u8> {
        let mut m = CONTEXT.to_vec();
        m.extend(serde_json::to_vec(self).expect("keyring serializes"));
        m
    }

    /// Internal consistency.
    pub fn validate(&self) -> Result<(), KeyError> {
        let bad = |reason: String| Err(KeyError::BadKeyring { reason });
        if self.format != KEYRING_FORMAT {
            return bad(format!("format {:?}, expected {KEYRING_FORMAT}", self.format));
        }
        parse_time(&self.created, "created")?;
        if self.roots.keys.is_empty()
            || self.roots.threshold == 0
            || self.roots.threshold > self.roots.keys.len()
        {
            return bad(format!(
                "root threshold {} of {} keys",
                self.roots.threshold,
                self.roots.keys.len()
            ));
        }
        let revoked: BTreeSet<&KeyId> = self.revoked.iter().collect();
        let mut seen = BTreeSet::new();
        for r in &self.roots.keys {
            r.key()?;
            if revoked.contains(&r.keyid) || !seen.insert(&r.keyid) {
                return bad(format!("root key {} is revoked or listed twice", r.keyid));
            }
        }
        let mut signers = BTreeSet::new();
        for s in &self.signers {
            s.key.key()?;
            if revoked.contains(&s.key.keyid) || !signers.insert(&s.key.keyid) {
                return bad(format!("signing key {} is revoked or listed twice", s.key.keyid));
            }
            if s.stacks.is_empty() {
                return bad(format!("signing key {} may sign no stack", s.key.keyid));
            }
            if let Some(e) = &s.expires {
                parse_time(e, "expires")?;
            }
        }
        if let Some((stack, _)) = self.thresholds.iter().find(|(_, k)| **k == 0) {
            return bad(format!("threshold 0 for stack {stack}"));
        }
        Ok(())
    }

    /// Trust in this keyring's roots, with its threshold.
    pub fn root_trust(&self) -> Result<Trust, KeyError> {
        let keys = self.roots.keys.iter().map(KeyRecord::key).collect::<Result<Vec<_>, _>>()?;
        Ok(Trust::new(keys).with_threshold(Threshold::AtLeast(self.roots.threshold)))
    }

    /// Signing keys valid at `now`: listed, not revoked, not expired.
    pub fn signer_keys(&self, now: SystemTime) -> Vec<PublicKey> {
        self.signers
            .iter()
            .filter(|s| !self.is_revoked(&s.key.keyid))
            .filter(|s| {
                s.expires
                    .as_deref()
                    .and_then(|e| humantime::parse_rfc3339(e).ok())
                    .is_none_or(|t| t > now)
            })
            .filter_map(|s| s.key.key().ok())
            .collect()
    }

    /// Whether `key` may sign bundles of `stack`.
    pub fn allows(&self, key: &KeyId, stack: &str) -> bool {
        !self.is_revoked(key)
            && self.signers.iter().any(|s| {
                s.key.keyid == *key && s.stacks.iter().any(|r| r == ANY_STACK || r == stack)
            })
    }

    /// Whether `key` may sign `stack` with cluster-scoped objects.
    pub fn grants_cluster_scope(&self, key: &KeyId, stack: &str) -> bool {
        self.allows(key, stack)
            && self.signers.iter().any(|s| s.key.keyid == *key && s.cluster_scope)
    }

    /// The signing keys it lists (expired ones too) and does not revoke:
    /// the keys whose past signatures still count.
    pub fn listed_keys(&self) -> Vec<PublicKey> {
        self.signers
            .iter()
            .filter(|s| !self.is_revoked(&s.key.keyid))
            .filter_map(|s| s.key.key().ok())
            .collect()
    }

    /// Whether `key` is revoked.
    pub fn is_revoked(&self, key: &KeyId) -> bool {
        self.revoked.contains(key)
    }
}

impl Keyring {
    /// Let `signer`'s key sign what it names (replacing what the same key
    /// could sign before).
    pub fn add_signer(&mut self, signer: Signer) {
        self.signers.retain(|s| s.key.keyid != signer.key.keyid);
        self.signers.push(signer);
    }

    /// Revoke `keyid`: no longer a signer, and never trusted again. A root
    /// key cannot be revoked while it is one (replace the roots first).
    pub fn revoke(&mut self, keyid: &KeyId) -> Result<(), KeyError> {
        if self.roots.keys.iter().any(|r| r.keyid == *keyid) {
            return Err(KeyError::BadKeyring {
                reason: format!(
                    "{keyid} is a root key of this keyring: replace the roots first (set-roots)"
                ),
            });
        }
        self.signers.retain(|s| s.key.keyid != *keyid);
        if !self.revoked.contains(keyid) {
            self.revoked.push(keyid.clone());
        }
        Ok(())
    }

    /// Signatures `stack`'s bundles need (1, the default, removes the entry).
    pub fn set_threshold(&mut self, stack: String, n: usize) {
        if n <= 1 {
            self.thresholds.remove(&stack);
        } else {
            self.thresholds.insert(stack, n);
        }
    }
}

impl SignedKeyring {
    /// Change the keyring with `f`. A signed keyring becomes the next
    /// version, unsigned (its roots sign it anew); it is valid after `f`.
    pub fn edit(
        &mut self,
        now: SystemTime,
        f: impl FnOnce(&mut Keyring) -> Result<(), KeyError>,
    ) -> Result<(), KeyError> {
        let mut k = self.signed.clone();
        f(&mut k)?;
        if !self.signatures.is_empty() {
            k.version += 1;
        }
        k.created = humantime::format_rfc3339_seconds(now).to_string();
        k.validate()?;
        *self = SignedKeyring { signed: k, signatures: vec![] };
        Ok(())
    }

    /// Add (or replace) the signature of `key` over this keyring version.
    pub fn sign(&mut self, key: &crate::SigningKey) -> Signature {
        let sig = key.sign(&self.signed.signing_message());
        self.signatures.retain(|s| s.keyid != sig.keyid);
        self.signatures.push(sig.clone());
        sig
    }

    /// How many of its root keys have signed it.
    pub fn root_signatures(&self) -> usize {
        let roots = &self.signed.roots.keys;
        roots.iter().filter(|r| self.signatures.iter().any(|s| s.keyid == r.keyid)).count()
    }

    /// Parse a keyring file (untrusted bytes): bounded, strict, consistent.
    /// Signatures are not checked here: see [`SignedKeyring::verify_successor`].
    pub fn parse(bytes: &[u8]) -> Result<SignedKeyring, KeyError> {
        if bytes.len() as u64 > MAX_KEYRING_BYTES {
            return Err(KeyError::BadKeyring {
                reason: format!("{} bytes, more than {MAX_KEYRING_BYTES}", bytes.len()),
            });
        }
        let k: SignedKeyring = serde_json::from_slice(bytes)
            .map_err(|e| KeyError::BadKeyring { reason: e.to_string() })?;
        k.signed.validate()?;
        Ok(k)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("keyring serializes");
        v.push(b'\n');
        v
    }

    /// Check that `self` may follow `current` (the keyring in force; with
    /// none, `pinned_threshold` of the ship's pinned root keys, so one
    /// stolen root cannot install the first keyring): it is signed by a
    /// threshold of the roots in force and of its own roots, and its
    /// version is higher.
    pub fn verify_successor(
        &self,
        current: Option<&Keyring>,
        pinned_roots: &[PublicKey],
        pinned_threshold: usize,
    ) -> Result<(), KeyError> {
        let message = self.signed.signing_message();
        let in_force = match current {
            Some(k) => {
                if self.signed.version <= k.version {
                    return Err(KeyError::KeyringNotNewer {
                        offered: self.signed.version,
                        held: k.version,
                    });
                }
                k.root_trust()?
            }
            None if pinned_roots.is_empty() => {
                return Err(KeyError::BadKeyring {
                    reason: "the ship pins no root key (`tender-ship trust add ROOT.pub --root`)"
                        .into(),
                });
            }
            None => Trust::new(pinned_roots.to_vec())
                .with_threshold(Threshold::AtLeast(pinned_threshold.max(1))),
        };
        in_force.verify(&message, &self.signatures).map_err(|e| KeyError::BadKeyring {
            reason: match current {
                Some(_) => format!("version {}: by the roots in force: {e}", self.signed.version),
                None => format!(
                    "version {}, the first: it needs {} of the {} pinned root keys (`tender-ship trust root-threshold`): {e}",
                    self.signed.version,
                    pinned_threshold.max(1),
                    pinned_roots.len()
                ),
            },
        })?;
        self.signed.root_trust()?.verify(&message, &self.signatures).map_err(|e| {
            KeyError::BadKeyring {
                reason: format!("version {}: by its own roots: {e}", self.signed.version),
            }
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;

    fn signed(k: Keyring, by: &[&SigningKey]) -> SignedKeyring {
        let m = k.signing_message();
        SignedKeyring { signatures: by.iter().map(|s| s.sign(&m)).collect(), signed: k }
    }

    #[test]
    fn edits_make_a_new_unsigned_version_and_never_revoke_a_root() {
        let root = SigningKey::generate().unwrap();
        let ci = SigningKey::generate().unwrap();
        let now = SystemTime::now();
        let mut k =
            SignedKeyring { signed: Keyring::new(&[root.public()], 1, now), signatures: vec![] };
        let signer = |stacks: &[&str]| Signer {
            key: KeyRecord::of(&ci.public()),
            stacks: stacks.iter().map(|s| s.to_string()).collect(),
            expires: None,
            cluster_scope: false,
        };
        // Unsigned: edits stay on version 1.
        k.edit(now, |k| {
            k.add_signer(signer(&["a"]));
            Ok(())
        })
        .unwrap();
        assert_eq!((k.signed.version, k.signed.signers.len()), (1, 1));
        k.sign(&root);
        assert_eq!(k.root_signatures(), 1);
        // Signed: the next edit is version 2, unsigned; the same key again
        // replaces its entry.
        k.edit(now, |k| {
            k.add_signer(signer(&["a", "b"]));
            Ok(())
        })
        .unwrap();
        assert_eq!((k.signed.version, k.signatures.len()), (2, 0));
        assert_eq!(k.signed.signers.len(), 1);
        assert_eq!(k.signed.signers[0].stacks, ["a", "b"]);
        k.edit(now, |k| {
            k.set_threshold("a".into(), 2);
            Ok(())
        })
        .unwrap();
        assert_eq!(k.signed.thresholds.get("a"), Some(&2));
        // A root cannot be revoked; a failed edit changes nothing.
        let before = k.clone();
        assert!(k.edit(now, |k| k.revoke(&root.public().key_id())).is_err());
        assert_eq!(k, before);
        k.edit(now, |k| k.revoke(&ci.public().key_id())).unwrap();
        assert!(k.signed.signers.is_empty() && k.signed.is_revoked(&ci.public().key_id()));
    }

    #[test]
    fn chain_roles_expiry_and_revocation() {
        let root = SigningKey::generate().unwrap();
        let ci = SigningKey::generate().unwrap();
        let mut k = Keyring::new(&[root.public()], 1, SystemTime::now());
        k.signers.push(Signer {
            key: KeyRecord::of(&ci.public()),
            stacks: vec!["awareness".into()],
            expires: Some("2030-01-01T00:00:00Z".into()),
            cluster_scope: false,
        });
        let v1 = signed(k.clone(), &[&root]);
        let bytes = v1.to_bytes();
        let parsed = SignedKeyring::parse(&bytes).unwrap();
        assert_eq!(parsed, v1);
        parsed.verify_successor(None, &[root.public()], 1).unwrap();
        assert!(parsed.verify_successor(None, &[ci.public()], 1).is_err(), "not by a pinned root");
        assert!(k.allows(&ci.public().key_id(), "awareness"));
        assert!(!k.allows(&ci.public().key_id(), "radar"));
        let later = humantime::parse_rfc3339("2031-01-01T00:00:00Z").unwrap();
        assert!(k.signer_keys(later).is_empty(), "expired");
        assert_eq!(k.signer_keys(SystemTime::now()).len(), 1);

        // Rotation to a new root: signed by the old and the new.
        let root2 = SigningKey::generate().unwrap();
        let mut k2 = k.clone();
        k2.version = 2;
        k2.roots.keys = vec![KeyRecord::of(&root2.public())];
        k2.revoked.push(ci.public().key_id());
        k2.signers.clear();
        assert!(signed(k2.clone(), &[&root2]).verify_successor(Some(&k), &[], 1).is_err());
        assert!(signed(k2.clone(), &[&root]).verify_successor(Some(&k), &[], 1).is_err());
        signed(k2.clone(), &[&root, &root2]).verify_successor(Some(&k), &[], 1).unwrap();
        assert!(!k2.allows(&ci.public().key_id(), "awareness"));
        // Not newer: refused.
        assert!(matches!(
            signed(k.clone(), &[&root]).verify_successor(Some(&k2), &[], 1),
            Err(KeyError::KeyringNotNewer { .. })
        ));
        // Altered after signing: refused.
        let mut forged = signed(k2.clone(), &[&root, &root2]);
        forged.signed.version = 3;
        assert!(forged.verify_successor(Some(&k), &[], 1).is_err());
    }

    #[test]
    fn the_first_keyring_needs_the_pinned_threshold() {
        let roots: Vec<SigningKey> = (0..3).map(|_| SigningKey::generate().unwrap()).collect();
        let pinned: Vec<PublicKey> = roots.iter().map(|r| r.public()).collect();
        let k = Keyring::new(&pinned, 2, SystemTime::now());
        assert!(signed(k.clone(), &[&roots[0]]).verify_successor(None, &pinned, 2).is_err());
        signed(k.clone(), &[&roots[0], &roots[2]]).verify_successor(None, &pinned, 2).unwrap();
        // Old keyrings (no clusterScope) serialize as they were signed.
        let mut g = k.clone();
        g.signers.push(Signer {
            key: KeyRecord::of(&roots[1].public()),
            stacks: vec!["radar".into()],
            expires: None,
            cluster_scope: false,
        });
        assert!(!String::from_utf8(g.signing_message()).unwrap().contains("clusterScope"));
        assert!(!g.grants_cluster_scope(&roots[1].public().key_id(), "radar"));
        g.signers[0].cluster_scope = true;
        assert!(g.grants_cluster_scope(&roots[1].public().key_id(), "radar"));
        assert!(!g.grants_cluster_scope(&roots[1].public().key_id(), "awareness"));
    }

    #[test]
    fn malformed_keyrings_are_refused() {
        let root = SigningKey::generate().unwrap();
        let k = Keyring::new(&[root.public()], 1, SystemTime::now());
        let mut v = serde_json::to_value(signed(k, &[&root])).unwrap();
        v["signed"]["roots"]["threshold"] = 2.into();
        assert!(SignedKeyring::parse(&serde_json::to_vec(&v).unwrap()).is_err());
        v["signed"]["roots"]["threshold"] = 1.into();
        v["signed"]["roots"]["keys"][0]["publicKey"] = "AAAA".into();
        assert!(SignedKeyring::parse(&serde_json::to_vec(&v).unwrap()).is_err());
        assert!(SignedKeyring::parse(b"{}").is_err());
        assert!(SignedKeyring::parse(&vec![b' '; (MAX_KEYRING_BYTES + 1) as usize]).is_err());
    }
}
