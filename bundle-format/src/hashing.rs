//! Copying while hashing, so that verification costs no second pass.
//!
//! Large blobs are hashed on a second thread while the first reads and
//! writes the next chunk: SHA-256 and the copy then overlap instead of adding
//! up (on two cores, pack and import run at the disk's rate, not at
//! disk-plus-hash).

use std::io::{self, Read, Write};
use std::sync::mpsc;

use sha2::{Digest as _, Sha256};

use crate::{Digest, Progress};

/// Chunk size of the copy: small enough to stay in a core's cache between
/// being read and being written. Writing from a buffer that has left the
/// cache costs several times more (measured on the 2-core CI machines, 512
/// KiB of L2 a core: `dd` of 1 GiB from `/dev/zero` into the page cache took
/// 1.7-1.9 s with 256 KiB blocks, 0.5-4.4 s with 128 KiB, 0.5 s with 64 KiB
/// every time, about what `cat` takes).
const CHUNK: usize = 64 << 10;
/// The buffer to put in front of a file that [`copy_hashed`] reads or
/// writes: smaller than its chunks, so that they pass straight through
/// (a bigger one would copy them through memory that left the cache),
/// large enough for the small reads of tar headers.
pub const READ_BUFFER: usize = 32 << 10;
/// Below this, hashing inline is cheaper than handing chunks to a thread.
const PIPELINE_FROM: u64 = 4 << 20;
/// Chunks in flight to the hashing thread.
const DEPTH: usize = 32;

/// Which side of a copy failed.
#[derive(Debug)]
pub enum CopyError {
    /// Reading the source failed.
    Read(io::Error),
    /// Writing the destination failed.
    Write(io::Error),
}

/// Fill `buf` from `r` as far as it goes; returns the bytes read (0 at end).
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Copy at most `limit` bytes from `r` to `w`, hashing them; returns the
/// digest and the number of bytes copied (less than `limit` if `r` ended).
pub fn copy_hashed(
    mut r: impl Read,
    mut w: impl Write,
    limit: u64,
    progress: &dyn Progress,
) -> Result<(Digest, u64), CopyError> {
    let mut r = (&mut r).take(limit);
    if limit < PIPELINE_FROM {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; (limit as usize).clamp(1, CHUNK)];
        let mut total = 0u64;
        loop {
            let n = fill(&mut r, &mut buf).map_err(CopyError::Read)?;
            if n == 0 {
                return Ok((Digest::from_hasher(hasher), total));
            }
            hasher.update(&buf[..n]);
            w.write_all(&buf[..n]).map_err(CopyError::Write)?;
            progress.advance(n as u64);
            total += n as u64;
        }
    }
    std::thread::scope(|s| {
        let (to_hash, hash_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let (give_back, spare) = mpsc::channel::<Vec<u8>>();
        let hasher = s.spawn(move || {
            let mut hasher = Sha256::new();
            for buf in hash_rx {
                hasher.update(&buf);
                let _ = give_back.send(buf);
            }
            hasher
        });
        let mut total = 0u64;
        let result = loop {
            let mut buf = spare.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
            buf.resize(CHUNK, 0);
            let n = match fill(&mut r, &mut buf) {
                Ok(n) => n,
                Err(e) => break Err(CopyError::Read(e)),
            };
            if n == 0 {
                break Ok(());
            }
            buf.truncate(n);
            if let Err(e) = w.write_all(&buf) {
                break Err(CopyError::Write(e));
            }
            progress.advance(n as u64);
            total += n as u64;
            if to_hash.send(buf).is_err() {
                unreachable!("the hashing thread only stops when the sender is dropped");
            }
        };
        drop(to_hash);
        let hasher = hasher.join().expect("hashing thread does not panic");
        result.map(|()| (Digest::from_hasher(hasher), total))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;

    #[test]
    fn inline_and_pipelined_agree_with_one_shot() {
        for len in [0usize, 1, 4095, (4 << 20) - 1, 4 << 20, (9 << 20) + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut out = Vec::new();
            let (d, n) = copy_hashed(&data[..], &mut out, len as u64, &NoProgress).unwrap();
            assert_eq!((d, n as usize), (Digest::of(&data), len));
            assert_eq!(out, data);
            // A limit shorter than the source stops there.
            let mut out = Vec::new();
            let (_, n) = copy_hashed(&data[..], &mut out, (len / 2) as u64, &NoProgress).unwrap();
            assert_eq!(n as usize, len / 2);
        }
    }

    #[test]
    fn read_and_write_errors_are_told_apart() {
        struct Fails;
        impl Read for Fails {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("gone"))
            }
        }
        impl Write for Fails {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let big = vec![1u8; 8 << 20];
        assert!(matches!(
            copy_hashed(Fails, Vec::new(), 10 << 20, &NoProgress),
            Err(CopyError::Read(_))
        ));
        assert!(matches!(
            copy_hashed(&big[..], Fails, 8 << 20, &NoProgress),
            Err(CopyError::Write(_))
        ));
        assert!(matches!(
            copy_hashed(&big[..10], Fails, 10, &NoProgress),
            Err(CopyError::Write(_))
        ));
    }
}
