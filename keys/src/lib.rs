//! Keys, signatures and trust for tender.
//!
//! Private keys are ed25519 keys stored as PKCS#8 PEM, public keys as SPKI PEM,
//! so that standard tools (`openssl pkey`) can read them. A [`KeyId`] is the
//! hex SHA-256 of the 32 raw public-key bytes.
//!
//! This crate holds no state on disk: the ship store persists trusted keys and
//! hands them to a [`Trust`] to make the decision.
#![deny(missing_docs)]

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, Verifier as _};
pub mod keyring;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Errors from key handling and signature checks.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A private key could not be parsed.
    #[error("not an ed25519 private key in PKCS#8 PEM form: {reason}")]
    BadPrivateKey {
        /// What the parser said.
        reason: String,
    },
    /// A public key could not be parsed.
    #[error("not an ed25519 public key in SPKI PEM form: {reason}")]
    BadPublicKey {
        /// What the parser said.
        reason: String,
    },
    /// A key id is not 64 lowercase hex characters.
    #[error("invalid key id {0:?}: expected 64 lowercase hex characters")]
    BadKeyId(String),
    /// The operating system's random source failed.
    #[error("cannot get random bytes for a new key: {0}")]
    Random(String),
    /// A signature's bytes are not a valid ed25519 signature encoding.
    #[error("signature by key {keyid} is malformed")]
    MalformedSignature {
        /// The key the signature claims.
        keyid: KeyId,
    },
    /// No signature was made by a trusted key.
    #[error("no signature by a trusted key (signed by: {})", list_ids(signed_by))]
    UntrustedSigner {
        /// The key ids the signatures claim.
        signed_by: Vec<KeyId>,
    },
    /// A signature by a trusted key does not match the signed bytes.
    #[error("signature by trusted key {keyid} does not match the signed data")]
    BadSignature {
        /// The trusted key whose signature failed.
        keyid: KeyId,
    },
    /// A keyring that cannot be used.
    #[error("keyring: {reason}")]
    BadKeyring {
        /// What is wrong.
        reason: String,
    },
    /// A keyring no newer than the one in force.
    #[error("keyring version {offered} is not newer than version {held}, in force")]
    KeyringNotNewer {
        /// The version offered.
        offered: u64,
        /// The version in force.
        held: u64,
    },
    /// Fewer distinct trusted keys signed than the threshold asks.
    #[error("{valid} valid signature(s) by trusted keys, {required} required")]
    BelowThreshold {
        /// Distinct trusted keys with a valid signature.
        valid: usize,
        /// The threshold.
        required: usize,
    },
}

fn list_ids(ids: &[KeyId]) -> String {
    if ids.is_empty() {
        return "nobody".into();
    }
    ids.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ")
}

/// The id of a public key: hex SHA-256 of its 32 raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    /// The id as 64 hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyId {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(KeyId(s.to_owned()))
        } else {
            Err(KeyError::BadKeyId(s.chars().take(80).collect()))
        }
    }
}

impl TryFrom<String> for KeyId {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, KeyError> {
        s.parse()
    }
}

impl From<KeyId> for String {
    fn from(k: KeyId) -> String {
        k.0
    }
}

/// An ed25519 private key.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// Parse a PKCS#8 PEM private key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim())
            .map(SigningKey)
            .map_err(|e| KeyError::BadPrivateKey { reason: e.to_string() })
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map(|z| z.to_string())
            .map_err(|e| KeyError::BadPrivateKey { reason: e.to_string() })
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Sign `message` and name the signing key.
    pub fn sign(&self, message: &[u8]) -> Signature {
        let sig = self.0.sign(message);
        Signature { keyid: self.public().key_id(), sig: B64.encode(sig.to_bytes()) }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secret material.
        write!(f, "SigningKey({})", self.public().key_id())
    }
}

/// An ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Parse an SPKI PEM public key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim())
            .map(PublicKey)
            .map_err(|e| KeyError::BadPublicKey { reason: e.to_string() })
    }

    /// The key as SPKI PEM.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::BadPublicKey { reason: e.to_string() })
    }

    /// The key's id.
    pub fn key_id(&self) -> KeyId {
        KeyId(hex::encode(Sha256::digest(self.0.as_bytes())))
    }

    /// Check one signature over `message`.
    pub fn verify(&self, message: &[u8], sig: &Signature) -> Result<(), KeyError> {
        let keyid = self.key_id();
        let bytes: [u8; 64] =
            B64.decode(sig.sig.as_bytes())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| KeyError::MalformedSignature { keyid: keyid.clone() })?;
        self.0
            .verify(message, &ed25519_dalek::Signature::from_bytes(&bytes))
            .map_err(|_| KeyError::BadSignature { keyid })
    }
}

/// One signature: the signing key's id and the base64 ed25519 signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The key that made the signature.
    pub keyid: KeyId,
    /// Base64 (standard alphabet, padded) of the 64 signature bytes.
    pub sig: String,
}

/// Whether a decision needs one trusted signature or several.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Threshold {
    /// One valid signature by a trusted key is enough.
    #[default]
    One,
    /// At least this many distinct trusted keys must have signed.
    AtLeast(usize),
}

impl Threshold {
    fn required(self) -> usize {
        match self {
            Threshold::One => 1,
            Threshold::AtLeast(n) => n.max(1),
        }
    }
}

/// A set of trusted public keys and the rule for accepting signed data.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    keys: Vec<PublicKey>,
    threshold: Threshold,
}

impl Trust {
    /// Trust these keys, with the default threshold of one.
    pub fn new(keys: Vec<PublicKey>) -> Self {
        Trust { keys, threshold: Threshold::default() }
    }

    /// Require a different threshold.
    pub fn with_threshold(mut self, threshold: Threshold) -> Self {
        self.threshold = threshold;
        self
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Check `sigs` over `message`; returns the distinct trusted keys that signed.
    ///
    /// A signature that claims a trusted key but does not verify is an error
    /// even when others do: a forged signature under our key is an attack,
    /// not noise. Signatures by unknown keys are ignored.
    pub fn verify(&self, message: &[u8], sigs: &[Signature]) -> Result<Vec<KeyId>, KeyError> {
        let mut valid = BTreeSet::new();
        for sig in sigs {
            if let Some(key) = self.keys.iter().find(|k| k.key_id() == sig.keyid) {
                key.verify(message, sig)?;
                valid.insert(sig.keyid.clone());
            }
        }
        if valid.is_empty() {
            return Err(KeyError::UntrustedSigner {
                signed_by: sigs.iter().map(|s| s.keyid.clone()).collect(),
            });
        }
        let required = self.threshold.required();
        if valid.len() < required {
            return Err(KeyError::BelowThreshold { valid: valid.len(), required });
        }
        Ok(valid.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_key_id() {
        let k = SigningKey::generate().unwrap();
        let again = SigningKey::from_pem(&k.to_pem().unwrap()).unwrap();
        assert_eq!(k.public().key_id(), again.public().key_id());
        let p = PublicKey::from_pem(&k.public().to_pem().unwrap()).unwrap();
        assert_eq!(p, k.public());
        assert!(k.to_pem().unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn trust_accepts_trusted_and_refuses_others() {
        let a = SigningKey::generate().unwrap();
        let b = SigningKey::generate().unwrap();
        let trust = Trust::new(vec![a.public()]);
        let sig = a.sign(b"hello");
        assert_eq!(
            trust.verify(b"hello", std::slice::from_ref(&sig)).unwrap(),
            vec![a.public().key_id()]
        );
        assert!(matches!(trust.verify(b"hellp", &[sig]), Err(KeyError::BadSignature { .. })));
        assert!(matches!(
            trust.verify(b"hello", &[b.sign(b"hello")]),
            Err(KeyError::UntrustedSigner { .. })
        ));
        assert!(matches!(trust.verify(b"hello", &[]), Err(KeyError::UntrustedSigner { .. })));
    }

    #[test]
    fn threshold_counts_distinct_keys() {
        let a = SigningKey::generate().unwrap();
        let b = SigningKey::generate().unwrap();
        let trust = Trust::new(vec![a.public(), b.public()]).with_threshold(Threshold::AtLeast(2));
        let one = a.sign(b"m");
        assert!(matches!(
            trust.verify(b"m", &[one.clone(), one.clone()]),
            Err(KeyError::BelowThreshold { valid: 1, required: 2 })
        ));
        assert_eq!(trust.verify(b"m", &[one, b.sign(b"m")]).unwrap().len(), 2);
    }

    #[test]
    fn malformed_signature_and_key_id() {
        let a = SigningKey::generate().unwrap();
        let mut sig = a.sign(b"m");
        sig.sig = "AAAA".into();
        assert!(matches!(
            Trust::new(vec![a.public()]).verify(b"m", &[sig]),
            Err(KeyError::MalformedSignature { .. })
        ));
        assert!("ABC".parse::<KeyId>().is_err());
        assert!(SigningKey::from_pem("nope").is_err());
        assert!(PublicKey::from_pem("nope").is_err());
    }
}
