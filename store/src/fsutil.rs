//! Crash-safe file writes: temp file in the same directory, fsync, rename,
//! fsync of the directory.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use crate::StoreError;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

/// fsync a directory, so a rename inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Replace `dir/name` with `bytes` atomically.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(io_err(dir))?;
    tmp.write_all(bytes).and_then(|_| tmp.as_file().sync_all()).map_err(io_err(tmp.path()))?;
    let target = dir.join(name);
    tmp.persist(&target).map_err(|e| StoreError::Io { path: target.clone(), source: e.error })?;
    sync_dir(dir)
}

pub(crate) fn create_dirs(path: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(path).map_err(io_err(path))
}

/// Read `path` whole if it holds at most `limit` bytes; refuse a larger one
/// having read no more than `limit + 1` bytes of it (a manifest that is
/// really a layer must not be read into memory).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, StoreError> {
    let f = File::open(path).map_err(io_err(path))?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).map_err(io_err(path))?;
    if buf.len() as u64 > limit {
        return Err(StoreError::TooLarge { path: path.to_owned(), limit });
    }
    Ok(buf)
}
