//! Where each entry lies in a bundle file, read from the tar headers alone
//! (seeking over the data), for tools that read entries in place: `publish`
//! uploads blobs from their offsets, `pack --base` reads predecessors.
//! Nothing here verifies content: callers hash what they read.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::{BundleError, EntryHeader, EntryName};

/// One entry of a bundle file: its name, where its data starts, its length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryAt {
    /// The entry.
    pub name: EntryName,
    /// Offset of its data in the file.
    pub offset: u64,
    /// Its length.
    pub size: u64,
}

/// Every entry of the bundle file at `path`, in order. Headers and names
/// outside the format are refused as the reader refuses them.
pub fn entry_offsets(path: &Path) -> Result<Vec<EntryAt>, BundleError> {
    let read_err = |e| BundleError::Read { path: path.to_owned(), source: e };
    let mut archive = tar::Archive::new(File::open(path).map_err(read_err)?);
    let mut out = Vec::new();
    for entry in archive.entries_with_seek().map_err(read_err)?.raw(true) {
        let entry = entry.map_err(read_err)?;
        let header = EntryHeader::parse(entry.header().as_bytes(), entry.raw_header_position())?;
        out.push(EntryAt {
            name: header.name,
            offset: entry.raw_file_position(),
            size: header.size,
        });
    }
    Ok(out)
}

/// Read `at`'s data whole, refusing an entry over `limit` bytes.
pub fn read_entry(path: &Path, at: &EntryAt, limit: u64) -> Result<Vec<u8>, BundleError> {
    if at.size > limit {
        return Err(BundleError::TooLarge { entry: at.name.path(), size: at.size, limit });
    }
    let read_err = |e| BundleError::Read { path: path.to_owned(), source: e };
    let mut f = File::open(path).map_err(read_err)?;
    f.seek(SeekFrom::Start(at.offset)).map_err(read_err)?;
    let mut v = Vec::with_capacity(at.size as usize);
    f.take(at.size).read_to_end(&mut v).map_err(read_err)?;
    if v.len() as u64 != at.size {
        return Err(BundleError::Truncated {
            entry: at.name.path(),
            read: v.len() as u64,
            expected: at.size,
        });
    }
    Ok(v)
}
