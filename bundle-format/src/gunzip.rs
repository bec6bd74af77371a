//! gzip layers inflated without their CRC-32 (RFC 1952).
//!
//! Every layer tender uncompresses is checked by SHA-256 already: its
//! compressed bytes by the blob's digest, what it uncompresses to by the
//! DiffID (or, for a patch's base, by the DiffID of what the patch
//! rebuilds). The CRC adds nothing to that, and computing it was a tenth of
//! the decoding thread's time in a sub-layer rebuild (measured with `perf`
//! on the fleet fixture). The length in each member's trailer is still
//! checked: it costs nothing. Used by the ship's rebuild and by the shore
//! as it uncompresses layers to make patches.
//!
//! flate2 inflates; only the member framing is read here, as flate2's
//! `MultiGzDecoder` reads it but for the CRC-32: each member starts with a
//! valid header (its header CRC checked when it has one, a file name or
//! comment at most 65,535 bytes, reserved flags refused), and nothing but
//! members follows the first. `fuzz/fuzz_targets/gunzip.rs` holds it to
//! that: what one reads whole the other reads the same, and what only
//! this one reads is what flate2 refuses for its checksum alone.

use std::io::{self, BufRead, Read};

use flate2::bufread::DeflateDecoder;

/// Longest optional header field (file name, comment), its zero not
/// counted, read before the member is refused (flate2's bound): tar layers
/// carry none, and a field without its end must not be read to the end of
/// a large blob.
const MAX_HEADER_FIELD: u64 = 65_535;

/// The bytes of one or more gzip members read one after another.
pub struct Gunzip<R: BufRead> {
    deflate: DeflateDecoder<R>,
    done: bool,
    /// The framing between members failed: nothing more is read.
    failed: bool,
}

impl<R: BufRead> Gunzip<R> {
    /// Reads the first member's header.
    pub fn new(mut r: R) -> io::Result<Self> {
        skip_header(&mut r)?;
        Ok(Gunzip { deflate: DeflateDecoder::new(r), done: false, failed: false })
    }

    /// The member's trailer, then the next member's header if one follows.
    /// `false` at the end of the stream.
    fn next_member(&mut self) -> io::Result<bool> {
        let out = self.deflate.total_out();
        let r = self.deflate.get_mut();
        let mut trailer = [0u8; 8];
        // read_exact retries an interrupted read itself.
        r.read_exact(&mut trailer).map_err(|e| cut_short(e, "gzip trailer"))?;
        let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        // ISIZE is the member's length modulo 2^32.
        if isize != out as u32 {
            return Err(invalid(format!(
                "a gzip member inflates to {out} bytes, its trailer says {isize} (mod 2^32)"
            )));
        }
        if fill(r)?.is_empty() {
            return Ok(false);
        }
        skip_header(r)?;
        self.deflate.reset_data();
        Ok(true)
    }
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(invalid("the gzip stream failed before".into()));
        }
        while !self.done && !buf.is_empty() {
            // An interrupted read inflated nothing: it may be tried again.
            match self.deflate.read(buf)? {
                // The member's deflate stream ended (a cut one is an error).
                // The framing between members is read whole or fails for
                // good: it retries interrupted reads itself.
                0 => match self.next_member() {
                    Ok(more) => self.done = !more,
                    Err(e) => {
                        self.failed = true;
                        return Err(e);
                    }
                },
                n => return Ok(n),
            }
        }
        Ok(0)
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// `r.fill_buf()`, tried again when interrupted: an interrupted call must
/// not leave the framing half read.
fn fill(r: &mut impl BufRead) -> io::Result<&[u8]> {
    loop {
        match r.fill_buf() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
            Ok([]) => return Ok(&[]),
            Ok(_) => break,
        }
    }
    // What is buffered, read again without a read below.
    r.fill_buf()
}

/// The stream's own end, named; an error from below (a disk's) is left as
/// it is.
fn cut_short(e: io::Error, what: &str) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof && e.get_ref().is_none() {
        io::Error::new(io::ErrorKind::UnexpectedEof, format!("{what} is cut short"))
    } else {
        e
    }
}

/// Header flags (RFC 1952 2.3.1).
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const RESERVED: u8 = 0b1110_0000;

/// Reads a member's header, keeping the CRC of what it read for FHCRC.
struct Header<'a, R> {
    r: &'a mut R,
    crc: flate2::Crc,
}

impl<R: BufRead> Header<'_, R> {
    fn exact<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(|e| cut_short(e, "gzip header"))?;
        self.crc.update(&b);
        Ok(b)
    }

    fn skip(&mut self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let buf = fill(self.r)?;
            if buf.is_empty() {
                return Err(cut_short(io::ErrorKind::UnexpectedEof.into(), "gzip header"));
            }
            let k = buf.len().min(n);
            self.crc.update(&buf[..k]);
            self.r.consume(k);
            n -= k;
        }
        Ok(())
    }

    fn skip_zero_terminated(&mut self) -> io::Result<()> {
        // Bytes of the field still allowed, its zero included.
        let mut left = MAX_HEADER_FIELD as usize + 1;
        loop {
            let buf = fill(self.r)?;
            if buf.is_empty() {
                return Err(cut_short(io::ErrorKind::UnexpectedEof.into(), "gzip header"));
            }
            let look = &buf[..buf.len().min(left)];
            if let Some(end) = look.iter().position(|&b| b == 0) {
                self.crc.update(&look[..=end]);
                self.r.consume(end + 1);
                return Ok(());
            }
            let n = look.len();
            self.crc.update(look);
            self.r.consume(n);
            left -= n;
            if left == 0 {
                return Err(invalid(format!(
                    "a gzip header field is longer than {MAX_HEADER_FIELD} bytes"
                )));
            }
        }
    }
}

fn skip_header(r: &mut impl BufRead) -> io::Result<()> {
    let mut h = Header { r, crc: flate2::Crc::new() };
    let fixed: [u8; 10] = h.exact()?;
    // ID1, ID2, CM = 8 (deflate).
    if fixed[..3] != [0x1f, 0x8b, 8] {
        return Err(invalid("not a gzip member (bad magic or method)".into()));
    }
    let flags = fixed[3];
    if flags & RESERVED != 0 {
        return Err(invalid(format!("gzip header has reserved flags set ({flags:#04x})")));
    }
    if flags & FEXTRA != 0 {
        let len: [u8; 2] = h.exact()?;
        h.skip(usize::from(u16::from_le_bytes(len)))?;
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            h.skip_zero_terminated()?;
        }
    }
    if flags & FHCRC != 0 {
        // The low 16 bits of the CRC-32 of the header before it.
        let want = (h.crc.sum() & 0xffff) as u16;
        let got = u16::from_le_bytes(h.exact()?);
        if got != want {
            return Err(invalid("gzip header checksum does not match".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8], name: Option<&[u8]>) -> Vec<u8> {
        let mut b = flate2::GzBuilder::new().extra(vec![7; 5]).comment(&b"a comment"[..]);
        if let Some(n) = name {
            b = b.filename(n);
        }
        let mut e = b.write(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Gunzip::new(data)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_one_after_another_are_one_stream() {
        let mut both = gz(b"first member, ", Some(b"a.tar"));
        both.extend(gz(b"second member", None));
        assert_eq!(gunzip(&both).unwrap(), b"first member, second member");
        let mut e = GzEncoder::new(Vec::new(), Compression::none());
        e.write_all(&[]).unwrap();
        assert_eq!(gunzip(&e.finish().unwrap()).unwrap(), b"");
    }

    #[test]
    fn what_is_not_whole_members_is_refused() {
        let one = gz(&vec![42u8; 100_000], Some(b"layer.tar"));
        for cut in [3, 12, 20, one.len() / 2, one.len() - 5] {
            let e = gunzip(&one[..cut]).unwrap_err();
            assert!(e.kind() == io::ErrorKind::UnexpectedEof, "cut at {cut}: {e}");
        }
        let mut trailing = one.clone();
        trailing.extend_from_slice(b"not a member");
        assert!(gunzip(&trailing).unwrap_err().to_string().contains("not a gzip member"));
        let mut wrong_len = one.clone();
        let n = wrong_len.len();
        wrong_len[n - 4] ^= 1;
        assert!(gunzip(&wrong_len).unwrap_err().to_string().contains("trailer says"));
        let mut reserved = one.clone();
        reserved[3] |= 0x80;
        assert!(gunzip(&reserved).unwrap_err().to_string().contains("reserved"));
        let mut plain = GzEncoder::new(Vec::new(), Compression::fast());
        plain.write_all(b"x").unwrap();
        let mut endless = plain.finish().unwrap();
        assert_eq!(endless[3], 0, "no optional fields");
        endless[3] |= FNAME;
        endless.splice(10..10, vec![b'n'; MAX_HEADER_FIELD as usize + 10]);
        assert!(gunzip(&endless).unwrap_err().to_string().contains("longer than"));
    }

    /// A reader that is interrupted before every read it gives, and
    /// gives at most 7 bytes at a time.
    struct Interrupting<'a>(&'a [u8], bool);

    impl Read for Interrupting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(7);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn interrupted_reads_leave_the_framing_whole() {
        let mut both = gz(b"first member, ", Some(b"a.tar"));
        both.extend(gz(b"second member", None));
        let r = io::BufReader::with_capacity(16, Interrupting(&both, false));
        let mut out = Vec::new();
        let mut g = Gunzip::new(r).unwrap();
        loop {
            match g.read_to_end(&mut out) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other.map(|_| ()).unwrap(),
            }
        }
        assert_eq!(out, b"first member, second member");
    }

    #[test]
    fn a_header_checksum_is_checked_when_there_is_one() {
        let mut plain = GzEncoder::new(Vec::new(), Compression::fast());
        plain.write_all(b"with a header CRC").unwrap();
        let plain = plain.finish().unwrap();
        let mut header = plain[..10].to_vec();
        header[3] |= FHCRC;
        let mut crc = flate2::Crc::new();
        crc.update(&header);
        let sum = (crc.sum() as u16).to_le_bytes();
        let with = |sum: [u8; 2]| [&header[..], &sum, &plain[10..]].concat();
        assert_eq!(gunzip(&with(sum)).unwrap(), b"with a header CRC");
        let e = gunzip(&with([sum[0] ^ 1, sum[1]])).unwrap_err();
        assert!(e.to_string().contains("header checksum"), "{e}");
    }

    proptest::proptest! {
        /// Wherever flate2's own reader accepts a stream, this one reads
        /// the same bytes (it skips the CRC only).
        #[test]
        fn agrees_with_flate2(
            parts in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..3000), 1..4),
            flip in proptest::option::of((0usize..10_000, 0u8..8)),
        ) {
            let mut stream: Vec<u8> = parts.iter().flat_map(|p| gz(p, Some(b"f"))).collect();
            if let Some((at, bit)) = flip {
                let at = at % stream.len();
                stream[at] ^= 1 << bit;
            }
            let mut theirs = Vec::new();
            let flate = flate2::read::MultiGzDecoder::new(&stream[..]).read_to_end(&mut theirs);
            if flate.is_ok() {
                proptest::prop_assert_eq!(gunzip(&stream).unwrap(), theirs);
            }
        }
    }
}
