//! Crash-safe, private file writes: temp file in the same directory (mode
//! 0600), fsync, rename, fsync of the directory; directories 0700. And the
//! checks that refuse a store another user could write into (as ssh refuses
//! a key file others can write).

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use crate::StoreError;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

/// fsync a directory, so a rename inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Replace `dir/name` with `bytes` atomically, mode 0600
/// ([`tender_bundle::write_replacing`]).
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    tender_bundle::write_replacing(dir, name, bytes, 0o600)
        .map_err(|(path, source)| StoreError::Io { path, source })
}

/// Create `path` and its missing parents with mode 0700 (the umask can
/// only take bits away).
pub(crate) fn create_dirs(path: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io_err(path))
}

/// Refuse a file or directory of the store that another user could write:
/// owned by someone other than us or root, or writable by group or others.
pub(crate) fn check_private(path: &Path, meta: &fs::Metadata) -> Result<(), StoreError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mode = meta.mode() & 0o7777;
    if (meta.uid() != me && meta.uid() != 0) || mode & 0o022 != 0 {
        return Err(StoreError::NotPrivate { path: path.to_owned(), mode, uid: meta.uid() });
    }
    Ok(())
}

/// Check a directory of the store (see [`check_private`]); a missing one is
/// fine (it is made private when created).
pub(crate) fn check_private_dir(path: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(path) {
        Ok(m) => check_private(path, &m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Io { path: path.to_owned(), source: e }),
    }
}

/// Read a trust file of the store (a key, the keyring, thresholds): a
/// regular file no other user can write, at most `limit` bytes. `None`
/// when it does not exist.
pub(crate) fn read_private(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::Io { path: path.to_owned(), source: e }),
    };
    if !meta.is_file() {
        return Err(StoreError::BadRecord {
            path: path.to_owned(),
            reason: "not a regular file".into(),
        });
    }
    check_private(path, &meta)?;
    let mut buf = Vec::new();
    File::open(path).and_then(|f| f.take(limit + 1).read_to_end(&mut buf)).map_err(io_err(path))?;
    if buf.len() as u64 > limit {
        return Err(StoreError::BadRecord {
            path: path.to_owned(),
            reason: format!("larger than {limit} bytes"),
        });
    }
    Ok(Some(buf))
}

/// Bytes an unprivileged writer may still use on the filesystem of `path`.
pub(crate) fn available(path: &Path) -> Result<u64, StoreError> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| StoreError::Io {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"),
    })?;
    // SAFETY: statvfs reads a NUL-terminated path and fills the struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(StoreError::Io {
            path: path.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
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
