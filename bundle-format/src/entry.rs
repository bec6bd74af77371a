//! Tar entry names: every name a bundle may hold is parsed into an
//! [`EntryName`] once, and nothing else is accepted.

use crate::{BundleError, Digest};

/// Path of the descriptor entry (the first entry).
pub const DESCRIPTOR_PATH: &str = "tender/descriptor.json";
/// Path of the signatures entry (the second entry).
pub const SIGNATURES_PATH: &str = "tender/signatures.json";
/// Path of the (unsigned) part marker of a split bundle, after the signatures.
pub const PART_PATH: &str = "tender/part.json";
/// The keyring's path (optional, after the signatures).
pub const KEYRING_PATH: &str = "tender/keyring.json";
/// The OCI layout marker file.
pub const OCI_LAYOUT_PATH: &str = "oci-layout";
/// The OCI layout's index.
pub const INDEX_PATH: &str = "index.json";
/// Contents of the `oci-layout` file this crate writes.
pub const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// What a tar entry of a bundle is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryName {
    /// `tender/descriptor.json`.
    Descriptor,
    /// `tender/signatures.json`.
    Signatures,
    /// `tender/part.json`.
    Part,
    /// `tender/keyring.json`.
    Keyring,
    /// `oci-layout`.
    OciLayout,
    /// `index.json`.
    Index,
    /// `blobs/sha256/<hex>`.
    Blob(Digest),
    /// `chunks/sha256/<hex>/<offset>`: a piece of a blob split across parts.
    Chunk(Digest, u64),
    /// `patches/sha256/<hex>`: a sub-layer patch.
    Patch(Digest),
}

impl EntryName {
    /// Parse a tar entry path: exactly one of the names above, as the
    /// writer spells it (no `./`, no directories); `None` for anything else,
    /// which rules out absolute paths, `..`, and every other surprise.
    pub fn parse(path: &[u8]) -> Option<EntryName> {
        let s = std::str::from_utf8(path).ok()?;
        Some(match s {
            DESCRIPTOR_PATH => EntryName::Descriptor,
            SIGNATURES_PATH => EntryName::Signatures,
            PART_PATH => EntryName::Part,
            KEYRING_PATH => EntryName::Keyring,
            OCI_LAYOUT_PATH => EntryName::OciLayout,
            INDEX_PATH => EntryName::Index,
            _ => {
                if let Some(hex) = s.strip_prefix("blobs/sha256/") {
                    EntryName::Blob(Digest::from_hex(hex).ok()?)
                } else if let Some(hex) = s.strip_prefix("patches/sha256/") {
                    EntryName::Patch(Digest::from_hex(hex).ok()?)
                } else {
                    let (hex, offset) = s.strip_prefix("chunks/sha256/")?.split_once('/')?;
                    let n: u64 = offset.parse().ok()?;
                    // Canonical decimal only: one name per chunk.
                    if offset != n.to_string() {
                        return None;
                    }
                    EntryName::Chunk(Digest::from_hex(hex).ok()?, n)
                }
            }
        })
    }

    /// The path this entry is written under.
    pub fn path(&self) -> String {
        match self {
            EntryName::Descriptor => DESCRIPTOR_PATH.into(),
            EntryName::Signatures => SIGNATURES_PATH.into(),
            EntryName::Part => PART_PATH.into(),
            EntryName::Keyring => KEYRING_PATH.into(),
            EntryName::OciLayout => OCI_LAYOUT_PATH.into(),
            EntryName::Index => INDEX_PATH.into(),
            EntryName::Blob(d) => format!("blobs/sha256/{}", d.hex()),
            EntryName::Chunk(d, offset) => format!("chunks/sha256/{}/{offset}", d.hex()),
            EntryName::Patch(d) => format!("patches/sha256/{}", d.hex()),
        }
    }
}

/// Check a relative, `/`-separated path such as a manifest's name: no
/// absolute path, no `..` or `.` component, no empty component, no NUL or
/// backslash, at most 1024 bytes.
pub fn check_relative_path(p: &str) -> Result<(), BundleError> {
    let ok = !p.is_empty()
        && p.len() <= 1024
        && !p.starts_with('/')
        && !p.contains(['\\', '\0'])
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if ok { Ok(()) } else { Err(BundleError::UnsafePath(p.chars().take(200).collect())) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_known_names() {
        assert_eq!(EntryName::parse(b"tender/descriptor.json").unwrap(), EntryName::Descriptor);
        assert_eq!(EntryName::parse(b"index.json").unwrap(), EntryName::Index);
        let d = Digest::of(b"x");
        let p = EntryName::Blob(d.clone()).path();
        assert_eq!(EntryName::parse(p.as_bytes()).unwrap(), EntryName::Blob(d.clone()));
        let c = EntryName::Chunk(d, 1 << 30).path();
        assert!(matches!(EntryName::parse(c.as_bytes()).unwrap(), EntryName::Chunk(_, 1073741824)));
        assert!(EntryName::parse(c.replace("/1073741824", "/01073741824").as_bytes()).is_none());
        let p = EntryName::Patch(Digest::of(b"p")).path();
        assert_eq!(EntryName::parse(p.as_bytes()).unwrap(), EntryName::Patch(Digest::of(b"p")));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            &b"/etc/passwd"[..],
            b"../index.json",
            b"blobs/sha256/../../x",
            b"blobs/sha512/00",
            b"tender/other.json",
            b"\xff",
            b"./index.json",
            b"blobs/",
            b"tender/",
            b"blobs/sha256/",
        ] {
            assert!(EntryName::parse(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
        for bad in ["/a", "a/../b", "a//b", "./a", "a\\b", ""] {
            assert!(check_relative_path(bad).is_err(), "{bad}");
        }
        check_relative_path("stack/v2/a.yaml").unwrap();
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = EntryName::parse(&bytes);
        }

        #[test]
        fn accepted_relative_paths_stay_inside(p in "[a-z./]{1,20}") {
            if check_relative_path(&p).is_ok() {
                let joined = std::path::Path::new("/root").join(&p);
                prop_assert!(joined.components().all(|c| !matches!(c, std::path::Component::ParentDir)));
                prop_assert!(joined.starts_with("/root"));
            }
        }
    }
}
