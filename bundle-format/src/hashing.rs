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

/// Chunks a [`read_ahead`] thread keeps ready (2 MiB).
const AHEAD: usize = 32;

/// Run `consume` over the bytes of the reader that `make` builds, made and
/// read on a thread of its own, at most [`AHEAD`] chunks ahead:
/// what produces the bytes (decompressing, decoding a patch) then runs
/// beside what consumes them (writing, hashing) instead of in turn. Memory
/// stays bounded whatever the length. `make`'s error, or the reader's,
/// reaches `consume` as a read error; when `consume` stops reading, the
/// thread stops too.
pub fn read_ahead<R, T>(
    make: impl FnOnce() -> io::Result<R> + Send,
    consume: impl FnOnce(&mut dyn Read) -> T,
) -> T
where
    R: Read,
{
    std::thread::scope(|s| {
        let (to_consumer, chunks) = mpsc::sync_channel::<io::Result<Vec<u8>>>(AHEAD);
        let (give_back, spare) = mpsc::channel::<Vec<u8>>();
        s.spawn(move || {
            let mut r = match make() {
                Ok(r) => r,
                Err(e) => {
                    let _ = to_consumer.send(Err(e));
                    return;
                }
            };
            loop {
                let mut buf = spare.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
                buf.resize(CHUNK, 0);
                let item = fill(&mut r, &mut buf).map(|n| {
                    buf.truncate(n);
                    buf
                });
                let end = !matches!(&item, Ok(b) if !b.is_empty());
                // Gone: the consumer stopped reading.
                if to_consumer.send(item).is_err() || end {
                    return;
                }
            }
        });
        let mut reader = Ahead { chunks, give_back, current: Vec::new(), at: 0, done: false };
        consume(&mut reader)
        // `reader` drops here, before the scope joins: a producer blocked
        // on a full channel then sees it gone and stops.
    })
}

/// The consuming end of [`read_ahead`].
struct Ahead {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    give_back: mpsc::Sender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    done: bool,
}

impl Read for Ahead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            let next = match self.chunks.recv() {
                Ok(next) => next,
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            };
            match next {
                Ok(chunk) if chunk.is_empty() => self.done = true,
                Ok(chunk) => {
                    let used = std::mem::replace(&mut self.current, chunk);
                    let _ = self.give_back.send(used);
                    self.at = 0;
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;

    #[test]
    fn read_ahead_passes_every_byte_errors_and_early_stops() {
        let data: Vec<u8> = (0..(5 << 20) + 123).map(|i| (i * 7 % 253) as u8).collect();
        let mut out = Vec::new();
        read_ahead(|| Ok(&data[..]), |r| r.read_to_end(&mut out).unwrap());
        assert_eq!(out, data);
        let e = read_ahead(
            || Err::<&[u8], _>(io::Error::other("no base")),
            |r| r.read_to_end(&mut Vec::new()).unwrap_err(),
        );
        assert_eq!(e.to_string(), "no base");
        // The consumer stops after 1 byte of an endless source: no hang.
        let n = read_ahead(|| Ok(io::repeat(1)), |r| r.read(&mut [0u8; 1]).unwrap());
        assert_eq!(n, 1);
    }

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
