//! gzip layers inflated without their CRC-32 (RFC 1952).
//!
//! Every layer tender uncompresses is checked by SHA-256 already: its
//! compressed bytes by the blob's digest, what it uncompresses to by the
//! DiffID (or, for a patch's base, by the DiffID of what the patch
//! rebuilds). The CRC adds nothing to that, and computing it was a tenth
//! of a sub-layer rebuild's critical path (`docs/deltas.md`). The length in
//! each member's trailer is still checked: it costs nothing.
//!
//! flate2 inflates; only the member framing is read here, as strictly as
//! flate2's `MultiGzDecoder` reads it: each member starts with a valid
//! header, and nothing but members follows the first.

use std::io::{self, BufRead, Read};

use flate2::bufread::DeflateDecoder;

/// Longest optional header field (file name, comment) read before the
/// member is refused: tar layers carry none, and a field without its end
/// must not be read to the end of a large blob.
const MAX_HEADER_FIELD: u64 = 64 << 10;

/// The bytes of one or more gzip members read one after another.
pub struct Gunzip<R: BufRead> {
    deflate: DeflateDecoder<R>,
    done: bool,
}

impl<R: BufRead> Gunzip<R> {
    /// Reads the first member's header.
    pub fn new(mut r: R) -> io::Result<Self> {
        skip_header(&mut r)?;
        Ok(Gunzip { deflate: DeflateDecoder::new(r), done: false })
    }

    /// The member's trailer, then the next member's header if one follows.
    /// `false` at the end of the stream.
    fn next_member(&mut self) -> io::Result<bool> {
        let out = self.deflate.total_out();
        let r = self.deflate.get_mut();
        let mut trailer = [0u8; 8];
        r.read_exact(&mut trailer).map_err(|e| cut_short(e, "gzip trailer"))?;
        let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        // ISIZE is the member's length modulo 2^32.
        if isize != out as u32 {
            return Err(invalid(format!(
                "a gzip member inflates to {out} bytes, its trailer says {isize} (mod 2^32)"
            )));
        }
        if r.fill_buf()?.is_empty() {
            return Ok(false);
        }
        skip_header(r)?;
        self.deflate.reset_data();
        Ok(true)
    }
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while !self.done && !buf.is_empty() {
            match self.deflate.read(buf)? {
                // The member's deflate stream ended (a cut one is an error).
                0 => self.done = !self.next_member()?,
                n => return Ok(n),
            }
        }
        Ok(0)
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn cut_short(e: io::Error, what: &str) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
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

fn skip_header(r: &mut impl BufRead) -> io::Result<()> {
    let mut fixed = [0u8; 10];
    r.read_exact(&mut fixed).map_err(|e| cut_short(e, "gzip header"))?;
    // ID1, ID2, CM = 8 (deflate).
    if fixed[..3] != [0x1f, 0x8b, 8] {
        return Err(invalid("not a gzip member (bad magic or method)".into()));
    }
    let flags = fixed[3];
    if flags & RESERVED != 0 {
        return Err(invalid(format!("gzip header has reserved flags set ({flags:#04x})")));
    }
    if flags & FEXTRA != 0 {
        let mut len = [0u8; 2];
        r.read_exact(&mut len).map_err(|e| cut_short(e, "gzip header"))?;
        skip_exactly(r, u64::from(u16::from_le_bytes(len)))?;
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            skip_zero_terminated(r)?;
        }
    }
    if flags & FHCRC != 0 {
        skip_exactly(r, 2)?;
    }
    Ok(())
}

fn skip_exactly(r: &mut impl BufRead, n: u64) -> io::Result<()> {
    if io::copy(&mut r.take(n), &mut io::sink())? < n {
        return Err(cut_short(io::ErrorKind::UnexpectedEof.into(), "gzip header"));
    }
    Ok(())
}

fn skip_zero_terminated(r: &mut impl BufRead) -> io::Result<()> {
    // Bytes of the field still allowed, its zero included.
    let mut left = MAX_HEADER_FIELD as usize + 1;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Err(cut_short(io::ErrorKind::UnexpectedEof.into(), "gzip header"));
        }
        let look = &buf[..buf.len().min(left)];
        if let Some(end) = look.iter().position(|&b| b == 0) {
            r.consume(end + 1);
            return Ok(());
        }
        let n = look.len();
        r.consume(n);
        left -= n;
        if left == 0 {
            return Err(invalid(format!(
                "a gzip header field is longer than {MAX_HEADER_FIELD} bytes"
            )));
        }
    }
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
