//! Replacing a file whole or not at all, the one way every crate does it
//! (the store's records, the fleet's entries, the shore's keyrings and
//! signature files): a temporary file beside it, fsync, rename, fsync of
//! the directory. And starting a long write's writeback as it goes.

use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Replace `dir/name` with `bytes`, mode `mode` (the temporary file is
/// created 0600 and set to `mode` before any byte is written). On error,
/// the path it concerns and the cause.
pub fn write_replacing(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), (PathBuf, io::Error)> {
    let at = |p: &Path| {
        let p = p.to_owned();
        move |e| (p, e)
    };
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(at(dir))?;
    // Through the file itself: NamedTempFile's own writes append "at path
    // P" to an error that already names P.
    let file = tmp.as_file_mut();
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|_| file.write_all(bytes))
        .and_then(|_| file.sync_all())
        .map_err(at(tmp.path()))?;
    let target = dir.join(name);
    tmp.persist(&target).map_err(|e| (target.clone(), e.error))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// Ask the kernel to start writing `len` bytes at `offset` of `file` to
/// disk, without waiting for them. A long write that does this as it goes
/// leaves its closing fsync only the last stretch to wait for, instead of
/// the whole file (durability still comes from that fsync).
#[cfg(target_os = "linux")]
pub fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: a valid open descriptor; the call only schedules writeback,
    // and if it fails the fsync after does it all.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Elsewhere the closing fsync does it all.
#[cfg(not(target_os = "linux"))]
pub fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}

/// A file written front to back whose writeback is started every
/// [`Writeback::EVERY`] bytes as it grows (see [`start_writeback`]): what
/// the import's staged blobs and a pull's partials keep beside their file.
#[derive(Clone, Copy, Debug, Default)]
pub struct Writeback {
    written: u64,
    started: u64,
}

impl Writeback {
    /// Bytes between two starts.
    pub const EVERY: u64 = 8 << 20;

    /// A file that already holds `len` bytes (left to the closing fsync).
    pub fn at(len: u64) -> Writeback {
        Writeback { written: len, started: len }
    }

    /// `n` more bytes were appended to `file`.
    pub fn wrote(&mut self, file: &std::fs::File, n: u64) {
        self.written += n;
        if self.written - self.started >= Self::EVERY {
            start_writeback(file, self.started, self.written - self.started);
            self.started = self.written;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_with_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        write_replacing(dir.path(), "f", b"one", 0o600).unwrap();
        write_replacing(dir.path(), "f", b"two", 0o644).unwrap();
        let path = dir.path().join("f");
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
        let (p, _) = write_replacing(&dir.path().join("none"), "f", b"x", 0o600).unwrap_err();
        assert_eq!(p, dir.path().join("none"));
    }
}
