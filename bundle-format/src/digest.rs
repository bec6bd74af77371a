//! The [`Digest`] newtype: validated once, trusted everywhere after.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::BundleError;

/// A SHA-256 content digest, `sha256:` and 64 lowercase hex characters.
///
/// Only SHA-256 is accepted: it is what OCI registries and tools use, and a
/// single algorithm keeps every comparison exact.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The digest a finished hasher holds.
    pub fn from_hasher(h: Sha256) -> Digest {
        Digest(format!("sha256:{}", hex::encode(h.finalize())))
    }

    /// The 64 hex characters, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// The whole digest as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FromStr for Digest {
    type Err = BundleError;
    fn from_str(s: &str) -> Result<Self, BundleError> {
        match s.strip_prefix("sha256:") {
            Some(hex) if is_hex64(hex) => Ok(Digest(s.to_owned())),
            _ => Err(BundleError::InvalidDigest(s.chars().take(100).collect())),
        }
    }
}

impl Digest {
    /// A digest from its 64 hex characters alone (as in `blobs/sha256/<hex>`).
    pub fn from_hex(hex: &str) -> Result<Digest, BundleError> {
        if is_hex64(hex) {
            Ok(Digest(format!("sha256:{hex}")))
        } else {
            Err(BundleError::InvalidDigest(hex.chars().take(100).collect()))
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = BundleError;
    fn try_from(s: String) -> Result<Self, BundleError> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_value() {
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in ["", "sha256:", "sha512:00", "sha256:ABC", &format!("sha256:{}", "A".repeat(64))]
        {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
        assert!(Digest::from_hex("../etc").is_err());
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let d = Digest::of(&bytes);
            prop_assert_eq!(d.as_str().parse::<Digest>().unwrap(), d.clone());
            prop_assert_eq!(Digest::from_hex(d.hex()).unwrap(), d);
        }
    }
}
