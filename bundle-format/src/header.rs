//! The one form of tar header a bundle entry takes: what
//! [`BundleWriter`](crate::BundleWriter) writes, and nothing else.
//!
//! Tar readers disagree about everything beyond that form: whether a
//! directory's size field means data follows, pax records, GNU long names, a
//! non-empty prefix field, the pre-POSIX type flag NUL, GNU's magic. A bundle
//! that tender reads one way and skopeo, umoci or GNU tar another could show
//! them an image tender never verified, so a reader refuses every such
//! header before it reads a byte of the entry's data (which also keeps a
//! multi-GiB pax record or long name out of memory).

use crate::{BundleError, EntryName};

/// The ustar magic and version our writer puts in every header.
const USTAR_MAGIC: &[u8; 8] = b"ustar\x0000";
/// Sizes from 8 GiB up do not fit 11 octal digits: the tar crate then writes
/// them in base-256 (high bit of the first byte set), as GNU tar does.
const BASE256_FROM: u64 = 1 << 33;

/// A checked entry header: a regular file with a bundle name and a size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// The entry.
    pub name: EntryName,
    /// Its data's length.
    pub size: u64,
}

/// What a tar type flag makes of an entry, for errors.
fn kind(flag: u8) -> String {
    match flag {
        0 => "regular file in the pre-POSIX form (type flag NUL)".into(),
        b'1' => "hard link".into(),
        b'2' => "symlink".into(),
        b'3' => "character device".into(),
        b'4' => "block device".into(),
        b'5' => "directory".into(),
        b'6' => "fifo".into(),
        b'7' => "contiguous file".into(),
        b'x' => "pax extended header".into(),
        b'g' => "pax global header".into(),
        b'L' => "GNU long name".into(),
        b'K' => "GNU long link name".into(),
        b'S' => "GNU sparse file".into(),
        other => format!("entry of type flag {:?}", other as char),
    }
}

fn octal(b: &[u8]) -> bool {
    b.iter().all(|b| (b'0'..=b'7').contains(b))
}

impl EntryHeader {
    /// Check the 512-byte header block at `offset` (named in errors): type
    /// flag `'0'`, POSIX ustar magic and version, empty prefix and link
    /// name, the checksum as 7 octal digits and NUL, the size as 11 octal
    /// digits and NUL or (from 8 GiB) base-256, and a bundle entry name.
    pub fn parse(block: &[u8; 512], offset: u64) -> Result<EntryHeader, BundleError> {
        let name_field = &block[..100];
        let raw_name = &name_field[..name_field.iter().position(|&b| b == 0).unwrap_or(100)];
        let entry = || String::from_utf8_lossy(raw_name).into_owned();
        let bad = |reason: String| BundleError::Header { entry: entry(), offset, reason };
        if block[156] != b'0' {
            return Err(BundleError::EntryType { entry: entry(), offset, kind: kind(block[156]) });
        }
        if &block[257..265] != USTAR_MAGIC {
            return Err(bad(format!(
                "magic and version {:?}, not POSIX ustar's (\"ustar\", NUL, then version \"00\")",
                String::from_utf8_lossy(&block[257..265])
            )));
        }
        // The checksum field is the one its own sum does not cover, and tar
        // readers are lenient about its form (a leading zero flipped to a
        // space parses the same): so its form is fixed too.
        let ck = &block[148..156];
        if !(octal(&ck[..7]) && ck[7] == 0) {
            return Err(bad("checksum field is not 7 octal digits and NUL".into()));
        }
        // Readers join a prefix to the name, or not: it must be empty.
        if block[345..500].iter().any(|&b| b != 0) {
            return Err(bad("prefix field is not empty".into()));
        }
        if block[157..257].iter().any(|&b| b != 0) {
            return Err(bad("link name field is not empty".into()));
        }
        let size = &block[124..136];
        let size = if octal(&size[..11]) && size[11] == 0 {
            // 11 octal digits: at most 8 GiB - 1, no overflow.
            size[..11].iter().fold(0u64, |n, d| n * 8 + u64::from(d - b'0'))
        } else if size[0] == 0x80 && size[1..4] == [0, 0, 0] {
            let n = u64::from_be_bytes(size[4..].try_into().expect("8 bytes"));
            if n < BASE256_FROM {
                return Err(bad(format!("size {n} in base-256, which is for 8 GiB and more")));
            }
            n
        } else {
            return Err(bad("size field is neither 11 octal digits and NUL nor base-256".into()));
        };
        let name = EntryName::parse(raw_name).ok_or_else(|| BundleError::UnexpectedEntry {
            entry: entry().chars().take(200).collect(),
            offset,
        })?;
        Ok(EntryHeader { name, size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A header as the writer makes it.
    fn good(name: &str, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_path(name).unwrap();
        h.set_cksum();
        h
    }

    /// An edit of a header block.
    type Edit = Box<dyn Fn(&mut [u8; 512])>;

    fn block(h: &tar::Header) -> [u8; 512] {
        *h.as_bytes()
    }

    #[test]
    fn accepts_what_the_writer_writes() {
        for size in [0, 1, 8 << 30, (8 << 30) - 1, 1 << 40] {
            let h = EntryHeader::parse(&block(&good("index.json", size)), 0).unwrap();
            assert_eq!(h, EntryHeader { name: EntryName::Index, size });
        }
    }

    #[test]
    fn refuses_every_other_form() {
        let cases: Vec<(&str, Edit)> = vec![
            ("directory", Box::new(|b| b[156] = b'5')),
            ("pax extended header", Box::new(|b| b[156] = b'x')),
            ("pax global header", Box::new(|b| b[156] = b'g')),
            ("GNU long name", Box::new(|b| b[156] = b'L')),
            ("GNU long link name", Box::new(|b| b[156] = b'K')),
            ("type flag NUL", Box::new(|b| b[156] = 0)),
            ("symlink", Box::new(|b| b[156] = b'2')),
            ("magic", Box::new(|b| b[257..265].copy_from_slice(b"ustar  \0"))),
            ("prefix", Box::new(|b| b[345] = b'x')),
            ("link name", Box::new(|b| b[157] = b'x')),
            ("checksum", Box::new(|b| b[148] = b' ')),
            ("size field", Box::new(|b| b[124] = b' ')),
            (
                "base-256",
                Box::new(|b| b[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9])),
            ),
            ("unexpected entry", Box::new(|b| b[0] = b'/')),
        ];
        for (needle, edit) in cases {
            let mut b = block(&good("index.json", 10));
            edit(&mut b);
            let e = EntryHeader::parse(&b, 1536).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("1536"), "{needle}: {e}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 512)) {
            let _ = EntryHeader::parse(&bytes.try_into().unwrap(), 0);
        }
    }
}
