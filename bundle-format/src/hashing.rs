//! Readers that hash what passes through them, so that verification costs no
//! second pass.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::{Digest, Progress};

/// Hashes and counts every byte read through it, reporting to a [`Progress`].
pub struct HashingReader<'p, R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    progress: &'p dyn Progress,
    read_error: Option<io::Error>,
}

impl<'p, R: Read> HashingReader<'p, R> {
    /// Wrap `inner`.
    pub fn new(inner: R, progress: &'p dyn Progress) -> Self {
        HashingReader { inner, hasher: Sha256::new(), count: 0, progress, read_error: None }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The error the inner reader returned, if any: tells a failing source
    /// from a failing destination when both sit behind one `io::copy`.
    pub fn take_read_error(&mut self) -> Option<io::Error> {
        self.read_error.take()
    }

    /// The digest and count of everything read.
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_hasher(self.hasher), self.count)
    }
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.read_error = Some(io::Error::new(e.kind(), e.to_string()));
                return Err(e);
            }
        };
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
