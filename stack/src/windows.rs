//! Where each segment's base window goes (`docs/deltas.md`). A window a
//! margin either side of its segment finds content that moved by less
//! than the margin. A file that grew by more, or one inserted before the
//! rest, moves everything after it further than that. So the shore lists
//! the entries of both tars and places each segment's window where the
//! files of that segment were in the base: shifts of any length are
//! followed, and the margin only has to cover what moved within a segment.
//!
//! Placement only decides how small the patch is: the ship decodes with
//! the windows the record gives and checks the result against the DiffID.

use std::collections::HashMap;
use std::io::{self, Read};

use tender_bundle::patch::Geometry;

/// One entry of a tar stream: its path, where its header starts and where
/// its data ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    path: Vec<u8>,
    at: u64,
    end: u64,
}

/// The entries of the tar stream `r`, in order, and the stream's length
/// (read to its end).
pub(crate) fn tar_entries(r: impl Read) -> io::Result<(Vec<Entry>, u64)> {
    let mut counted = Counted { inner: r, n: 0 };
    let mut entries = Vec::new();
    {
        let mut archive = tar::Archive::new(&mut counted);
        for e in archive.entries()? {
            let e = e?;
            let end = e.raw_file_position().saturating_add(e.size());
            entries.push(Entry {
                path: e.path_bytes().into_owned(),
                at: e.raw_header_position(),
                end,
            });
        }
    }
    io::copy(&mut counted, &mut io::sink())?;
    Ok((entries, counted.n))
}

struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Window starts for a new layer of `new_len` bytes whose entries are
/// `new`, against a base of `base_len` bytes whose entries are `base`:
/// each segment's window a margin before where the entry covering most
/// of the segment was in the base. An entry covers as much of itself as
/// the base's entry of that path held: what a file grew by is new, and a
/// segment of only new bytes leaves its window where the one before was
/// (moving it on would pass what comes after an insertion). Never going
/// back, never past the base or twice the layer's length (what a ship
/// accepts, [`Geometry::check_starts`]). Empty where nothing was in the base, or
/// where every window is within half a margin of where a margin either
/// side puts it (a record a ship that predates placed windows reads too).
pub(crate) fn place(
    base: &[Entry],
    base_len: u64,
    new: &[Entry],
    new_len: u64,
    g: Geometry,
) -> Vec<u64> {
    let mut was: HashMap<&[u8], &Entry> = HashMap::with_capacity(base.len());
    for e in base {
        was.entry(&e.path).or_insert(e);
    }
    let mut starts: Vec<u64> = Vec::new();
    let (mut first, mut known) = (0usize, false);
    // What a ship accepts (it reads no further into the base).
    let furthest = base_len.min(g.furthest_start(new_len));
    for i in 0..g.frames(new_len) {
        let (lo, hi) = (i * g.segment, ((i + 1) * g.segment).min(new_len));
        while first < new.len() && new[first].end <= lo {
            first += 1;
        }
        // Where the segment's bytes were in the base, as an offset.
        let (mut best, mut shift) = (0u64, None);
        for e in new[first..].iter().take_while(|e| e.at < hi) {
            let Some(b) = was.get(e.path.as_slice()) else { continue };
            let held = e.end.min(e.at.saturating_add(b.end.saturating_sub(b.at)));
            let covers = held.min(hi).saturating_sub(e.at.max(lo));
            if covers > best {
                best = covers;
                shift = Some(i128::from(b.at) - i128::from(e.at));
            }
        }
        let before = starts.last().copied().unwrap_or(0);
        let start = match shift {
            Some(d) => {
                known = true;
                let at = (i128::from(lo) + d - i128::from(g.margin)).clamp(0, i128::from(furthest));
                (at as u64).max(before)
            }
            None => before,
        };
        starts.push(start);
    }
    // Within half a margin of where a margin puts them, that placement
    // finds the content too: the record then works with every ship.
    let near = |(i, &start): (usize, &u64)| {
        let by_margin = (i as u64 * g.segment).saturating_sub(g.margin);
        start.abs_diff(by_margin) <= g.margin / 2
    };
    if !known || starts.iter().enumerate().all(near) {
        starts.clear();
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of the given files, in order.
    fn tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn borrowed(v: &[(String, Vec<u8>)]) -> Vec<(&str, Vec<u8>)> {
        v.iter().map(|(n, d)| (n.as_str(), d.clone())).collect()
    }

    fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn windows_follow_files_that_moved_further_than_the_margin() {
        let g = Geometry { segment: 64 << 10, margin: 16 << 10 };
        let files: Vec<(String, Vec<u8>)> =
            (0..12).map(|i| (format!("usr/lib/f{i:02}"), noise(50_000, i))).collect();
        let base = tar(&borrowed(&files));
        // Release 2: the second file grew by 200 KB, moving every file
        // after it by far more than the margin.
        let mut grown = files.clone();
        grown[1].1.extend(noise(200_000, 99));
        let new = tar(&borrowed(&grown));
        let (be, blen) = tar_entries(&base[..]).unwrap();
        let (ne, nlen) = tar_entries(&new[..]).unwrap();
        assert_eq!((blen, nlen), (base.len() as u64, new.len() as u64));
        assert_eq!(be.len(), 12);
        let starts = place(&be, blen, &ne, nlen, g);
        g.check_starts(&starts, g.frames(nlen) as usize, blen, nlen).unwrap();

        let patch = |starts: &[u64]| {
            let mut out = Vec::new();
            let made =
                tender_bundle::patch::make_patch(&base[..], &new[..], &mut out, g, starts).unwrap();
            let mut rebuilt = Vec::new();
            let mut r =
                tender_bundle::patch::apply_patch(&base[..], &out[..], &made.frames, g, starts)
                    .unwrap();
            let mut seg = Vec::new();
            while r.decode_into(&mut seg).unwrap() {
                rebuilt.extend_from_slice(&seg);
            }
            assert_eq!(rebuilt, new);
            out.len()
        };
        let (placed, margin) = (patch(&starts), patch(&[]));
        // What is new is 200 KB of noise; placed windows find the rest.
        assert!(placed < 220_000, "placed windows: {placed} bytes");
        assert!(margin > placed + 200_000, "a margin either side: {margin}, placed: {placed}");
    }

    #[test]
    fn unmoved_or_unknown_content_keeps_the_margin_placement() {
        let g = Geometry { segment: 64 << 10, margin: 16 << 10 };
        let files = [("a", noise(300_000, 1)), ("b", noise(300_000, 2))];
        let base = tar(&files);
        let (be, blen) = tar_entries(&base[..]).unwrap();
        // The same tar: the windows a margin either side, so none listed.
        assert!(place(&be, blen, &be, blen, g).is_empty());
        // A file grown by less than half a margin: none listed either; by
        // more, listed.
        for (growth, listed) in [(7_000, false), (9_000, true)] {
            let mut a = files[0].1.clone();
            a.extend(noise(growth, 5));
            let grown = tar(&[("a", a), ("b", files[1].1.clone())]);
            let (ge, glen) = tar_entries(&grown[..]).unwrap();
            assert_eq!(!place(&be, blen, &ge, glen, g).is_empty(), listed, "grown by {growth}");
        }
        // Nothing in common: no shift to follow either.
        let other = tar(&[("c", noise(300_000, 3)), ("d", noise(300_000, 4))]);
        let (oe, olen) = tar_entries(&other[..]).unwrap();
        assert!(place(&be, blen, &oe, olen, g).is_empty());
        // No entries known for the new layer (it did not read as a tar):
        // the margin placement.
        assert!(place(&be, blen, &[], 600_000, g).is_empty());
    }

    proptest::proptest! {
        /// Whatever the entries, the starts are ones a record may carry.
        #[test]
        fn placed_windows_are_always_valid(
            base in proptest::collection::vec((0u8..8, 0u64..1_000_000, 0u64..100_000), 0..20),
            new in proptest::collection::vec((0u8..8, 0u64..1_000_000, 0u64..100_000), 0..20),
            base_len in 0u64..2_000_000,
            new_len in 0u64..2_000_000,
            segment in 1u64..200_000,
            margin in 0u64..100_000,
        ) {
            let entries = |v: &[(u8, u64, u64)]| -> Vec<Entry> {
                let mut at = 0;
                v.iter().map(|&(p, skip, len)| {
                    at += skip;
                    let e = Entry { path: vec![p], at, end: at + len };
                    at += len;
                    e
                }).collect()
            };
            let g = Geometry { segment, margin };
            let starts = place(&entries(&base), base_len, &entries(&new), new_len, g);
            let fits = g.check_starts(&starts, g.frames(new_len) as usize, base_len, new_len);
            proptest::prop_assert!(fits.is_ok(), "{:?}", fits);
        }
    }
}
