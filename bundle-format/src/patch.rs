//! Sub-layer patches (`docs/deltas.md`). A changed layer whose predecessor
//! the ship holds travels as zstd frames, one per segment of the new layer's
//! uncompressed tar: frame `i` decodes segment `i` (bytes `i*S .. (i+1)*S`)
//! with a window of the predecessor's uncompressed tar as reference prefix
//! (what `zstd --patch-from` does for a whole file): `S + 2M` bytes from
//! where the shore placed it to follow content that moved (`starts`), else
//! from `i*S - M`. Segments keep memory bounded on both sides whatever the
//! layer's size: a segment and a window of the base, never the whole layer.
//! The ship checks the result against the new layer's DiffID.

use std::io::{self, BufReader, Read, Write};

use crate::limits::{
    MAX_PATCH_MARGIN, MAX_PATCH_MARGIN_SEGMENTS, MAX_PATCH_SEGMENT, MAX_PATCH_WINDOW_LOG,
};
use crate::media::{DOCKER_LAYER_TAR, MediaType};
// flate2's backend, named for its `std` feature alone (see Cargo.toml).
use zlib_rs as _;
/// Segment length the shore uses.
pub const SEGMENT: u64 = 4 << 20;
/// Margin the shore uses: content that moved by up to this much against
/// where its window was placed is still found in the base (windows follow
/// files that moved further, see `tender_stack`'s patch planning).
pub const MARGIN: u64 = 4 << 20;
/// Most room the ship keeps a base window in when the window itself is
/// smaller (see [`Geometry::room`]).
const MAX_WINDOW_ROOM: u64 = 64 << 20;
/// Segments' worth of room past the window: the kept bytes then move to
/// the front once in six segments rather than before each.
const ROOM_AHEAD: u64 = 5;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// The compression of a layer media type, and the media type of the same
/// layer uncompressed; `None` for what is not a layer.
pub fn layer_kind(media_type: &str) -> Option<(Compression, String)> {
    use oci_spec::image::ToDockerV2S2;
    let oci = |c| Some((c, MediaType::ImageLayer.to_string()));
    match MediaType::from(media_type) {
        MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => oci(Compression::None),
        MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => {
            oci(Compression::Gzip)
        }
        MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => {
            oci(Compression::Zstd)
        }
        _ if media_type == DOCKER_LAYER_TAR => Some((Compression::None, DOCKER_LAYER_TAR.into())),
        _ if MediaType::ImageLayerGzip.to_docker_v2s2().is_ok_and(|d| d == media_type) => {
            Some((Compression::Gzip, DOCKER_LAYER_TAR.into()))
        }
        _ => None,
    }
}

/// A reader of `r`'s uncompressed bytes (`r` unbuffered: this buffers).
/// gzip is read without its CRC: see [`crate::gunzip`]. Its input is
/// buffered in [`crate::READ_BUFFER`] (32 KiB): with 256 KiB, the kernel's
/// copy out of the page cache took six times as long.
pub fn decompress<'a>(r: impl Read + 'a, c: Compression) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(r),
        // Multi-member gzip, as some tools write layers.
        Compression::Gzip => {
            Box::new(crate::gunzip::Gunzip::new(BufReader::with_capacity(crate::READ_BUFFER, r))?)
        }
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
    })
}

/// Segment and margin as a patch record gives them, checked against the
/// limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Segment length.
    pub segment: u64,
    /// Margin either side.
    pub margin: u64,
}

impl Geometry {
    /// The shore's geometry.
    pub const DEFAULT: Geometry = Geometry { segment: SEGMENT, margin: MARGIN };

    /// Within the limits: a segment of 1 byte to [`MAX_PATCH_SEGMENT`], a
    /// margin of at most [`MAX_PATCH_MARGIN`] and
    /// [`MAX_PATCH_MARGIN_SEGMENTS`] segments.
    pub fn is_valid(&self) -> bool {
        (1..=MAX_PATCH_SEGMENT).contains(&self.segment)
            && self.margin <= MAX_PATCH_MARGIN
            && self.margin <= MAX_PATCH_MARGIN_SEGMENTS * self.segment
    }

    /// The most a segment's base window spans: the segment and a margin
    /// either side.
    fn span(&self) -> u64 {
        self.segment + 2 * self.margin
    }

    /// The room a rebuild keeps its windows in: the span and
    /// [`ROOM_AHEAD`] segments, at most [`MAX_WINDOW_ROOM`] unless the
    /// span alone is more (32 MiB with the default geometry: its rebuilds
    /// took 10 % less time than in a room of the span's 12 MiB).
    fn room(&self) -> u64 {
        self.span().max((self.span() + ROOM_AHEAD * self.segment).min(MAX_WINDOW_ROOM))
    }

    /// Frames a layer of `len` bytes has.
    pub fn frames(&self, len: u64) -> u64 {
        len.div_ceil(self.segment)
    }

    /// The base window for segment `i`: `[lo, hi)` (clipped at the base's
    /// end): a span from `starts[i]`, or with no `starts`, a margin before
    /// the segment to a margin after it.
    fn window(&self, i: u64, starts: &[u64]) -> (u64, u64) {
        debug_assert!(starts.is_empty() || (i as usize) < starts.len(), "checked before");
        if let Some(&lo) = starts.get(i as usize) {
            return (lo, lo.saturating_add(self.span()));
        }
        let start = i * self.segment;
        (start.saturating_sub(self.margin), start + self.segment + self.margin)
    }

    /// How far into the base a window may start for a layer of `len`
    /// bytes: twice the layer's length. Content the new release dropped
    /// may be skipped, up to as much as the layer holds, and what a
    /// rebuild reads of its base stays in proportion to what it writes.
    pub fn furthest_start(&self, len: u64) -> u64 {
        len.saturating_mul(2)
    }

    /// Checks window starts `starts` for the `frames` segments of a layer
    /// of `layer_len` bytes against a base of `base_len` bytes: none (a
    /// margin either side), or one per segment, never going back (the base
    /// is read once, front to back), none past the base nor past
    /// [`Geometry::furthest_start`]. Says which rule failed.
    pub fn check_starts(
        &self,
        starts: &[u64],
        frames: usize,
        base_len: u64,
        layer_len: u64,
    ) -> Result<(), String> {
        if starts.is_empty() {
            return Ok(());
        }
        if starts.len() != frames {
            return Err(format!("{} window starts for {frames} frames", starts.len()));
        }
        if let Some(i) = starts.windows(2).position(|w| w[0] > w[1]) {
            return Err(format!("window starts go back at frame {}", i + 1));
        }
        let last = starts[frames - 1];
        let furthest = base_len.min(self.furthest_start(layer_len));
        if last > furthest {
            return Err(format!(
                "window start {last} of frame {} is past {furthest} (the base's {base_len} bytes, twice the layer's {layer_len})",
                frames - 1
            ));
        }
        Ok(())
    }
}

/// A forward-only view of a stream that keeps the bytes from some offset on.
struct Sliding<R> {
    r: R,
    /// `buf[head..end]` holds the stream's bytes from `start` on; the bytes
    /// before `head` are spent, moved out only when room is needed. Zeroed
    /// when taken (by the kernel, as it maps the pages in: no pass of
    /// ours), so reads go straight into it, never through a buffer that
    /// is cleared before each read.
    buf: Box<[u8]>,
    head: usize,
    end: usize,
    /// Offset of `buf[head]` in the stream.
    start: u64,
    eof: bool,
}

impl<R: Read> Sliding<R> {
    /// A view whose windows span at most `room` bytes, the room taken at
    /// the start.
    fn new(r: R, room: u64) -> Self {
        Sliding { r, buf: vec![0; room as usize].into(), head: 0, end: 0, start: 0, eof: false }
    }

    /// The bytes `[lo, hi)` of the stream (fewer at its end). `lo` never
    /// goes back; `hi - lo` is at most the span.
    fn window(&mut self, lo: u64, hi: u64) -> io::Result<&[u8]> {
        debug_assert!(hi.saturating_sub(lo) <= self.buf.len() as u64);
        if lo > self.start {
            let spent = ((lo - self.start) as usize).min(self.end - self.head);
            self.head += spent;
            self.start += spent as u64;
        }
        // Skip forward if `lo` is beyond what was read.
        while self.start < lo && !self.eof {
            let n = io::copy(&mut (&mut self.r).take(lo - self.start), &mut io::sink())?;
            self.start += n;
            if n == 0 {
                self.eof = true;
            }
        }
        let want = (hi.saturating_sub(self.start) as usize).min(self.buf.len());
        if self.end - self.head < want && !self.eof && self.head + want > self.buf.len() {
            self.buf.copy_within(self.head..self.end, 0);
            self.end -= self.head;
            self.head = 0;
        }
        while self.end - self.head < want && !self.eof {
            match self.r.read(&mut self.buf[self.end..self.head + want]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let stop = self.head + want.min(self.end - self.head);
        let from = self.head + ((lo.max(self.start) - self.start) as usize).min(stop - self.head);
        Ok(&self.buf[from..stop])
    }

    /// Read to the end; the stream's length.
    fn finish(mut self) -> io::Result<u64> {
        let n = io::copy(&mut self.r, &mut io::sink())?;
        Ok(self.start + (self.end - self.head) as u64 + n)
    }
}

fn window_log(span: u64) -> u32 {
    let log = 64 - (span.max(1 << 10) - 1).leading_zeros();
    log.clamp(10, MAX_PATCH_WINDOW_LOG)
}

/// zstd level for patches: level 3 with long-distance matching finds the
/// unchanged files in the base; level 19 saved a fifth of a 2 KB patch on
/// the fleet fixture and cost 50 times the time.
const PATCH_LEVEL: i32 = 3;

/// What [`make_patch`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Made {
    /// Compressed length of each frame.
    pub frames: Vec<u64>,
    /// Length of the new layer.
    pub new_len: u64,
    /// Length of the base (read to its end).
    pub base_len: u64,
}

/// Write the patch that turns the stream `base` into `new` to `out`, each
/// segment's window placed by `starts` (see [`Geometry::check_starts`]; none: a
/// margin either side).
pub fn make_patch(
    base: impl Read,
    mut new: impl Read,
    mut out: impl Write,
    g: Geometry,
    starts: &[u64],
) -> io::Result<Made> {
    if !g.is_valid() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "patch geometry out of bounds"));
    }
    if starts.windows(2).any(|w| w[0] > w[1]) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "patch windows go back"));
    }
    let mut base = Sliding::new(base, g.span());
    let mut frames = Vec::new();
    let mut new_len = 0u64;
    let mut seg = Vec::with_capacity(g.segment.min(1 << 20) as usize);
    for i in 0.. {
        seg.clear();
        (&mut new).take(g.segment).read_to_end(&mut seg)?;
        if seg.is_empty() {
            break;
        }
        new_len += seg.len() as u64;
        if !starts.is_empty() && i >= starts.len() as u64 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "fewer windows than segments"));
        }
        let (lo, hi) = g.window(i, starts);
        let window = base.window(lo, hi)?;
        let mut counted = Counting { inner: &mut out, n: 0 };
        let mut enc =
            zstd::stream::write::Encoder::with_ref_prefix(&mut counted, PATCH_LEVEL, window)?;
        enc.window_log(window_log(window.len() as u64 + seg.len() as u64))?;
        enc.long_distance_matching(true)?;
        enc.include_checksum(true)?;
        enc.set_pledged_src_size(Some(seg.len() as u64))?;
        enc.write_all(&seg)?;
        enc.finish()?;
        frames.push(counted.n);
    }
    let base_len = base.finish()?;
    Ok(Made { frames, new_len, base_len })
}

struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The layer that `patch` (frames of the given lengths) rebuilds from the
/// stream `base`, to decode a segment at a time. Unverified: the caller
/// hashes what it takes and bounds how much. Holds the base window in its
/// room (a span and a few segments, at most 64 MiB unless the span is more).
pub fn apply_patch<B: Read, P: Read>(
    base: B,
    patch: P,
    frames: &[u64],
    g: Geometry,
    starts: &[u64],
) -> io::Result<Rebuild<B, P>> {
    if !g.is_valid() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "patch geometry out of bounds"));
    }
    if let Err(why) = g.check_starts(starts, frames.len(), u64::MAX, u64::MAX) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    }
    Ok(Rebuild {
        base: Sliding::new(base, g.room()),
        patch,
        frames: frames.to_vec(),
        starts: starts.to_vec(),
        g,
        next: 0,
        frame: Vec::new(),
    })
}

/// A layer being rebuilt from its base and patch, a segment at a time
/// ([`Rebuild::decode_into`]; [`rebuild_ahead`] does it on a thread).
pub struct Rebuild<B, P> {
    base: Sliding<B>,
    patch: P,
    frames: Vec<u64>,
    starts: Vec<u64>,
    g: Geometry,
    next: usize,
    /// The current frame's compressed bytes.
    frame: Vec<u8>,
}

impl<B: Read, P: Read> Rebuild<B, P> {
    /// Read the base as far as the next frame's window reaches (what
    /// [`Rebuild::decode_into`] reads first), before an output buffer is
    /// needed.
    pub fn fill_window(&mut self) -> io::Result<()> {
        if self.next < self.frames.len() {
            let (lo, hi) = self.g.window(self.next as u64, &self.starts);
            self.base.window(lo, hi)?;
        }
        Ok(())
    }

    /// Decode the next segment into `out` (resized to a segment; its
    /// allocation is reused); `false` after the last.
    pub fn decode_into(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        let Some(&len) = self.frames.get(self.next) else { return Ok(false) };
        let i = self.next as u64;
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        // A frame is at most what zstd makes of a segment (the patch is
        // signed and checked by then; this bounds the memory it may take).
        let bound = zstd::zstd_safe::compress_bound(self.g.segment as usize) as u64;
        if len > bound {
            return Err(invalid(format!("frame {i} is {len} bytes, more than a segment needs")));
        }
        self.frame.clear();
        let got = (&mut self.patch).take(len).read_to_end(&mut self.frame)? as u64;
        if got < len {
            return Err(invalid(format!("frame {i} is cut short ({got} of {len} bytes)")));
        }
        let (lo, hi) = self.g.window(i, &self.starts);
        let window = self.base.window(lo, hi)?;
        // Room for what the frame's header says it holds, at most a segment:
        // a frame that decodes to more is refused. It is decoded in one
        // call, straight into `out`: no window buffer of the decoder's own
        // to fill and copy out of. (Sized by the header, the last segment
        // of a small layer does not take a whole segment of memory.)
        let room = match zstd::zstd_safe::get_frame_content_size(&self.frame) {
            Ok(Some(n)) => n.min(self.g.segment),
            _ => self.g.segment,
        };
        out.resize(room as usize, 0);
        let zstd_err =
            |e: usize| invalid(format!("frame {i}: {}", zstd::zstd_safe::get_error_name(e)));
        // A decoder per frame: it borrows the frame's window.
        let mut dctx = zstd::zstd_safe::DCtx::create();
        dctx.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(MAX_PATCH_WINDOW_LOG))
            .map_err(zstd_err)?;
        dctx.ref_prefix(window).map_err(zstd_err)?;
        let n = dctx.decompress(&mut out[..], &self.frame).map_err(zstd_err)? as u64;
        let last = self.next + 1 == self.frames.len();
        if n > self.g.segment || n == 0 || (!last && n != self.g.segment) {
            return Err(invalid(format!(
                "frame {i} decodes to {n} bytes, not a segment of {}",
                self.g.segment
            )));
        }
        out.truncate(n as usize);
        self.next += 1;
        Ok(true)
    }
}

/// Which side of [`rebuild_ahead`] failed.
#[derive(Debug)]
pub enum RebuildError<E> {
    /// Opening the base or decoding the patch.
    Decode(io::Error),
    /// What `write` returned.
    Write(E),
}

/// Rebuild a layer as [`apply_patch`] does, on two threads. The work is
/// three chains, each done in order: decoding segments, hashing them and
/// writing them. The spawned thread opens the base (so it need not be
/// `Send`) and is the one that decodes; both threads take whatever hashing
/// or writing is ready, the decoding thread decoding first when it can.
/// (One thread decoding and the other hashing and writing left a core idle
/// a quarter of the time: the three take different times.) `hash` and
/// `write` see every segment once, in order; two to four decoded segments
/// (at most 64 MiB of them unless two are more) are in memory besides the
/// base window. Stops at the first error of either side.
pub fn rebuild_ahead<B: Read, P: Read + Send, E: Send>(
    base: impl FnOnce() -> io::Result<B> + Send,
    patch: P,
    frames: &[u64],
    g: Geometry,
    starts: &[u64],
    hash: impl FnMut(&[u8]) + Send,
    write: impl FnMut(&[u8]) -> Result<(), E> + Send,
) -> Result<(), RebuildError<E>> {
    // Checked before the buffers it sizes are taken.
    if !g.is_valid() {
        return Err(RebuildError::Decode(io::Error::new(
            io::ErrorKind::InvalidData,
            "patch geometry out of bounds",
        )));
    }
    let work = Work {
        state: std::sync::Mutex::new(Chains {
            ready: std::collections::VecDeque::new(),
            first: 0,
            hashed: 0,
            written: 0,
            hashing: false,
            writing: false,
            spare: Vec::new(),
            decoded: 0,
            segments: frames.len(),
            failed: None,
        }),
        changed: std::sync::Condvar::new(),
        hash: std::sync::Mutex::new(hash),
        write: std::sync::Mutex::new(write),
    };
    std::thread::scope(|s| {
        let work = &work;
        // However either thread ends (a panic too), the other does not
        // wait for it.
        let _stopped = Stopped(work);
        s.spawn(move || {
            let _stopped = Stopped(work);
            let rebuild = base().and_then(|b| apply_patch(b, patch, frames, g, starts));
            match rebuild {
                Ok(mut rebuild) => {
                    // The base first, while the other thread touches the
                    // buffers.
                    match rebuild.fill_window() {
                        Ok(()) => work.run(Some(&mut rebuild)),
                        Err(e) => work.fail(RebuildError::Decode(e)),
                    }
                }
                Err(e) => work.fail(RebuildError::Decode(e)),
            }
        });
        // The segment buffers, touched here while the decoder reads the
        // base into its first window: fresh memory costs its first touch
        // (much of a copy's time on a virtual machine).
        let buffers = frames.len().min(segments_ahead(g));
        for _ in 0..buffers {
            let mut seg = Vec::new();
            if frames.len() > 1 {
                seg.resize(g.segment as usize, 0);
            }
            work.give_back(seg);
        }
        work.run(None::<&mut Rebuild<B, P>>);
    });
    match work.state.into_inner().unwrap_or_else(|p| p.into_inner()).failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Segments a rebuild holds besides its base window: enough that decoding
/// runs ahead while hashing and writing catch up (four of the default
/// 4 MiB), but not more than 64 MiB of them unless two are (a signed
/// segment may be 128 MiB).
fn segments_ahead(g: Geometry) -> usize {
    ((64 << 20) / g.segment).clamp(2, 4) as usize
}

/// What [`rebuild_ahead`]'s two threads share.
struct Work<H, W, E> {
    state: std::sync::Mutex<Chains<E>>,
    changed: std::sync::Condvar,
    hash: std::sync::Mutex<H>,
    write: std::sync::Mutex<W>,
}

/// Where the three chains stand. Segments are counted from 0; all counts
/// only grow.
struct Chains<E> {
    /// Decoded segments not yet both hashed and written: segments `first`
    /// on.
    ready: std::collections::VecDeque<std::sync::Arc<Vec<u8>>>,
    first: usize,
    /// How many segments were hashed, written and decoded so far.
    hashed: usize,
    written: usize,
    decoded: usize,
    /// Whether a thread is hashing or writing the next segment now.
    hashing: bool,
    writing: bool,
    /// Buffers free to decode into.
    spare: Vec<Vec<u8>>,
    /// How many segments the layer has.
    segments: usize,
    failed: Option<RebuildError<E>>,
}

/// Marks a rebuild failed if a thread ends (or panics) before all is done,
/// so the other stops waiting for it.
struct Stopped<'a, H, W, E>(&'a Work<H, W, E>);

impl<H, W, E> Drop for Stopped<'_, H, W, E> {
    fn drop(&mut self) {
        let finished = self.0.lock().finished();
        if !finished {
            self.0.fail(RebuildError::Decode(io::Error::other("a rebuilding thread stopped")));
        }
    }
}

/// One piece of work a thread took.
enum Task {
    Decode(Vec<u8>),
    Hash(std::sync::Arc<Vec<u8>>),
    Write(std::sync::Arc<Vec<u8>>),
}

impl<E> Chains<E> {
    /// The next task for a thread (`decodes`: the decoding one), marking
    /// it taken; `None` when there is none now.
    fn take(&mut self, decodes: bool) -> Option<Task> {
        if decodes
            && self.decoded < self.segments
            && let Some(buf) = self.spare.pop()
        {
            return Some(Task::Decode(buf));
        }
        let have = self.first + self.ready.len();
        if !self.hashing && self.hashed < have {
            self.hashing = true;
            return Some(Task::Hash(self.ready[self.hashed - self.first].clone()));
        }
        if !self.writing && self.written < have {
            self.writing = true;
            return Some(Task::Write(self.ready[self.written - self.first].clone()));
        }
        None
    }

    /// Whether nothing is left to do.
    fn finished(&self) -> bool {
        self.failed.is_some() || (self.hashed == self.segments && self.written == self.segments)
    }

    /// Hand segments both hashed and written back as spare buffers.
    fn recycle(&mut self) {
        while self.first < self.hashed.min(self.written) {
            let seg = self.ready.pop_front().expect("a segment per index");
            self.first += 1;
            // The last reference, as both tasks dropped theirs before
            // counting (else a new buffer: the decoder must never wait
            // for one that does not come back).
            self.spare.push(std::sync::Arc::try_unwrap(seg).unwrap_or_default());
        }
    }
}

impl<H, W, E> Work<H, W, E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Chains<E>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, e: RebuildError<E>) {
        let mut s = self.lock();
        s.failed.get_or_insert(e);
        self.changed.notify_all();
    }

    fn give_back(&self, buf: Vec<u8>) {
        self.lock().spare.push(buf);
        self.changed.notify_all();
    }
}

impl<H: FnMut(&[u8]), W: FnMut(&[u8]) -> Result<(), E>, E> Work<H, W, E> {
    /// Take and do tasks until all is done or one failed; `rebuild` on the
    /// thread that decodes.
    fn run<B: Read, P: Read>(&self, mut rebuild: Option<&mut Rebuild<B, P>>) {
        loop {
            let task = {
                let mut s = self.lock();
                loop {
                    if s.finished() {
                        return;
                    }
                    if let Some(t) = s.take(rebuild.is_some()) {
                        break t;
                    }
                    s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
                }
            };
            match task {
                Task::Decode(mut buf) => {
                    let r = rebuild.as_deref_mut().expect("only the decoding thread decodes");
                    match r.decode_into(&mut buf) {
                        Ok(true) => {
                            let mut s = self.lock();
                            s.ready.push_back(std::sync::Arc::new(buf));
                            s.decoded += 1;
                            drop(s);
                            // Hashing and writing may start on it now.
                            self.changed.notify_all();
                            // The next window's base now, before a buffer
                            // is needed for it.
                            if let Err(e) = r.fill_window() {
                                self.fail(RebuildError::Decode(e));
                            }
                        }
                        Ok(false) => unreachable!("decoding is taken only while frames are left"),
                        Err(e) => self.fail(RebuildError::Decode(e)),
                    }
                }
                Task::Hash(seg) => {
                    (self.hash.lock().unwrap_or_else(|p| p.into_inner()))(&seg);
                    drop(seg);
                    let mut s = self.lock();
                    s.hashed += 1;
                    s.hashing = false;
                    s.recycle();
                }
                Task::Write(seg) => {
                    let wrote = (self.write.lock().unwrap_or_else(|p| p.into_inner()))(&seg);
                    drop(seg);
                    match wrote {
                        Ok(()) => {
                            let mut s = self.lock();
                            s.written += 1;
                            s.writing = false;
                            s.recycle();
                        }
                        Err(e) => self.fail(RebuildError::Write(e)),
                    }
                }
            }
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: u32, tag: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            v.extend_from_slice(
                format!("{tag} line {i} of a file that does not change\n").as_bytes(),
            );
        }
        v
    }

    /// Every segment `r` decodes, joined.
    fn decode_all(mut r: Rebuild<&[u8], &[u8]>) -> io::Result<Vec<u8>> {
        let (mut out, mut seg) = (Vec::new(), Vec::new());
        while r.decode_into(&mut seg)? {
            out.extend_from_slice(&seg);
        }
        Ok(out)
    }

    fn rebuild(base: &[u8], patch: &[u8], made: &Made, g: Geometry) -> io::Result<Vec<u8>> {
        decode_all(apply_patch(base, patch, &made.frames, g, &[])?)
    }

    #[test]
    fn a_patch_rebuilds_the_new_layer_and_is_small() {
        let base = lines(20_000, "a");
        let mut new = base.clone();
        new[500_000..500_010].copy_from_slice(b"CHANGED!!!");
        let mut patch = Vec::new();
        let made = make_patch(&base[..], &new[..], &mut patch, Geometry::DEFAULT, &[]).unwrap();
        assert_eq!((made.new_len, made.base_len), (new.len() as u64, base.len() as u64));
        assert!(patch.len() < 200, "patch of {} bytes", patch.len());
        assert_eq!(rebuild(&base, &patch, &made, Geometry::DEFAULT).unwrap(), new);
        // Against another base it does not rebuild the layer.
        let mut other = base.clone();
        other[100] ^= 1;
        if let Ok(o) = rebuild(&other, &patch, &made, Geometry::DEFAULT) {
            assert_ne!(o, new);
        }
    }

    #[test]
    fn segments_find_content_that_moved_within_the_margin() {
        // Small segments, so the layer spans many; content shifted by an
        // insertion early on is still found in each segment's window.
        let g = Geometry { segment: 64 << 10, margin: 32 << 10 };
        let base = lines(40_000, "b");
        let mut new = b"inserted at the front\n".repeat(500);
        new.extend_from_slice(&base);
        new.extend_from_slice(b"and a tail\n");
        let mut patch = Vec::new();
        let made = make_patch(&base[..], &new[..], &mut patch, g, &[]).unwrap();
        assert_eq!(made.frames.len() as u64, g.frames(new.len() as u64));
        assert!(patch.len() < new.len() / 20, "patch {} of {}", patch.len(), new.len());
        assert_eq!(rebuild(&base, &patch, &made, g).unwrap(), new);
        // Frame lengths that do not match the patch: refused.
        let mut bad = made.clone();
        bad.frames.swap(0, 1);
        if let Ok(o) = rebuild(&base, &patch, &bad, g) {
            assert_ne!(o, new);
        }
        // An empty layer has no frame.
        let made = make_patch(&base[..], &b""[..], &mut Vec::new(), g, &[]).unwrap();
        assert!(made.frames.is_empty());
    }

    #[test]
    fn windows_placed_where_content_moved_find_it_beyond_the_margin() {
        let g = Geometry { segment: 64 << 10, margin: 16 << 10 };
        let base = lines(40_000, "d");
        // 300 KiB inserted near the front: everything after it moved by
        // far more than the margin.
        let inserted: Vec<u8> = (0..300u32 << 10).map(|i| (i * 7919 % 251) as u8).collect();
        let mut new = base[..100_000].to_vec();
        new.extend_from_slice(&inserted);
        new.extend_from_slice(&base[100_000..]);
        let n = g.frames(new.len() as u64) as usize;
        let mut fixed = Vec::new();
        make_patch(&base[..], &new[..], &mut fixed, g, &[]).unwrap();
        // Windows that follow the content: the segment's own offset
        // before the insertion, less the insertion's length after it.
        let starts: Vec<u64> = (0..n as u64)
            .map(|i| (i * g.segment).saturating_sub(inserted.len() as u64).saturating_sub(g.margin))
            .collect();
        g.check_starts(&starts, n, base.len() as u64, new.len() as u64).unwrap();
        let mut placed = Vec::new();
        let made = make_patch(&base[..], &new[..], &mut placed, g, &starts).unwrap();
        assert!(
            placed.len() * 3 < fixed.len(),
            "placed windows: {} bytes, a margin either side: {}",
            placed.len(),
            fixed.len()
        );
        let rebuilt =
            decode_all(apply_patch(&base[..], &placed[..], &made.frames, g, &starts).unwrap());
        assert_eq!(rebuilt.unwrap(), new);
        // And on two threads.
        assert_eq!(rebuild_placed(&base, &placed, &made, g, &starts).unwrap(), new);
        // Decoded against the windows a margin either side instead: not
        // the layer.
        if let Ok(o) = rebuild(&base, &placed, &made, g) {
            assert_ne!(o, new);
        }
        // Windows that go back, or are not one per segment, are refused.
        let mut back = starts.clone();
        back[n - 1] = back[n - 2] - 1;
        assert!(g.check_starts(&back, n, base.len() as u64, new.len() as u64).is_err());
        assert!(apply_patch(&base[..], &placed[..], &made.frames, g, &back).is_err());
        assert!(make_patch(&base[..], &new[..], &mut Vec::new(), g, &back).is_err());
        assert!(g.check_starts(&starts[1..], n, base.len() as u64, new.len() as u64).is_err());
        assert!(apply_patch(&base[..], &placed[..], &made.frames, g, &starts[1..]).is_err());
        assert!(make_patch(&base[..], &new[..], &mut Vec::new(), g, &starts[1..]).is_err());
        // A window that starts past the base's end is refused as a record.
        let mut past = starts.clone();
        past[n - 1] = base.len() as u64 + 1;
        assert!(g.check_starts(&past, n, base.len() as u64, new.len() as u64).is_err());
        // Or past twice the layer's length, a base as long as it may be.
        let mut far = starts.clone();
        far[n - 1] = 2 * new.len() as u64 + 1;
        assert!(g.check_starts(&far, n, u64::MAX, new.len() as u64).is_err());
    }

    /// What [`rebuild_ahead`] hands over, joined.
    fn rebuild_segments(
        base: &[u8],
        patch: &[u8],
        made: &Made,
        g: Geometry,
    ) -> Result<Vec<u8>, RebuildError<()>> {
        rebuild_placed(base, patch, made, g, &[])
    }

    /// [`rebuild_segments`] with windows placed by `starts`.
    fn rebuild_placed(
        base: &[u8],
        patch: &[u8],
        made: &Made,
        g: Geometry,
        starts: &[u64],
    ) -> Result<Vec<u8>, RebuildError<()>> {
        let (mut out, mut hashed) = (Vec::new(), Vec::new());
        rebuild_ahead(
            || Ok(base),
            patch,
            &made.frames,
            g,
            starts,
            |seg| hashed.extend_from_slice(seg),
            |seg| {
                assert!(seg.len() as u64 <= g.segment);
                out.extend_from_slice(seg);
                Ok(())
            },
        )?;
        // Both chains saw every segment, in order.
        assert!(hashed == out);
        Ok(out)
    }

    #[test]
    fn segments_ahead_rebuild_the_same_and_stop_on_either_side() {
        let g = Geometry { segment: 64 << 10, margin: 32 << 10 };
        let base = lines(40_000, "c");
        let mut new = base.clone();
        new.splice(300_000..300_000, b"a new file\n".repeat(100));
        let mut patch = Vec::new();
        let made = make_patch(&base[..], &new[..], &mut patch, g, &[]).unwrap();
        assert!(made.frames.len() > 3);
        assert_eq!(rebuild_segments(&base, &patch, &made, g).unwrap(), new);
        // The base cannot be opened: a decode error, nothing consumed.
        let r = rebuild_ahead(
            || Err::<&[u8], _>(io::Error::other("no base")),
            &patch[..],
            &made.frames,
            g,
            &[],
            |_| panic!("nothing to hash"),
            |_| -> Result<(), ()> { panic!("nothing to write") },
        );
        assert!(matches!(r, Err(RebuildError::Decode(e)) if e.to_string() == "no base"));
        // Writing fails at the first segment, or after more segments than
        // are decoded ahead: no hang, its error, nothing written after it.
        for fail_at in [1, 10] {
            let mut seen = 0;
            let r = rebuild_ahead(
                || Ok(&base[..]),
                &patch[..],
                &made.frames,
                g,
                &[],
                |_| {},
                |_| {
                    seen += 1;
                    if seen == fail_at { Err("full") } else { Ok(()) }
                },
            );
            assert!(matches!(r, Err(RebuildError::Write("full"))));
            assert_eq!(seen, fail_at);
        }
        // Writing panics, on whichever thread: the rebuild panics too,
        // neither thread waits for the other.
        for frames in [&made.frames[..1], &made.frames[..]] {
            let r = std::panic::catch_unwind(|| {
                rebuild_ahead(
                    || Ok(&base[..]),
                    &patch[..],
                    frames,
                    g,
                    &[],
                    |_| {},
                    |_| -> Result<(), ()> { panic!("a bug") },
                )
            });
            assert!(r.is_err());
        }
        // No frames: nothing to hash or write.
        let r = rebuild_ahead(
            || Ok(&base[..]),
            &patch[..0],
            &[],
            g,
            &[],
            |_| panic!("nothing to hash"),
            |_| -> Result<(), ()> { panic!("nothing to write") },
        );
        assert!(r.is_ok());
        // The decoding thread panics: the other does not wait for it.
        let r = std::panic::catch_unwind(|| {
            rebuild_ahead(
                || -> io::Result<&[u8]> { panic!("a bug") },
                &patch[..],
                &made.frames,
                g,
                &[],
                |_| {},
                |_| -> Result<(), ()> { Ok(()) },
            )
        });
        assert!(r.is_err());
        // A cut patch: the segments before it, then a decode error.
        let cut = &patch[..patch.len() - 10];
        assert!(matches!(
            rebuild_segments(&base, cut, &made, g),
            Err(RebuildError::Decode(e)) if e.to_string().contains("cut short")
        ));
    }

    #[test]
    fn a_frame_header_that_lies_about_its_size_is_refused_or_harmless() {
        // A plain frame of 100 bytes: single segment, its content size in
        // the one byte after the frame header descriptor.
        let g = Geometry { segment: 100, margin: 0 };
        let layer = vec![b'x'; 100];
        let frame = zstd::bulk::compress(&layer, 3).unwrap();
        assert_eq!(frame[4] & 0b1110_0000, 0b0010_0000, "single segment, 1-byte size");
        assert_eq!(frame[5], 100);
        let rebuilt = |frame: &[u8]| -> io::Result<Vec<u8>> {
            decode_all(apply_patch(&b"base"[..], frame, &[frame.len() as u64], g, &[])?)
        };
        assert_eq!(rebuilt(&frame).unwrap(), layer);
        // Says 10: its buffer is 10 bytes, and decoding 100 into it fails.
        let mut short = frame.clone();
        short[5] = 10;
        assert!(rebuilt(&short).is_err());
        // Says 200: its buffer is at most a segment; never more comes out.
        let mut long = frame.clone();
        long[5] = 200;
        if let Ok(out) = rebuilt(&long) {
            assert_eq!(out, layer);
        }
    }

    proptest::proptest! {
        /// The sliding view gives exactly the bytes a slice would, for
        /// any forward-moving sequence of windows and whatever the reads
        /// return (spent bytes are moved out lazily, which must never show).
        #[test]
        fn sliding_windows_are_the_streams_bytes(
            len in 0usize..40_000,
            steps in proptest::collection::vec((0u64..3_000, 0u64..6_000), 1..60),
            chunk in 1usize..5_000,
        ) {
            let data: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
            let mut s = Sliding::new(Chunked(&data[..], chunk), 6_000);
            let mut lo = 0u64;
            for (forward, span) in steps {
                lo += forward;
                let hi = lo + span;
                let want = &data[(lo as usize).min(len)..(hi as usize).min(len)];
                proptest::prop_assert_eq!(s.window(lo, hi).unwrap(), want);
            }
            proptest::prop_assert_eq!(s.finish().unwrap(), len as u64);
        }
    }

    /// A reader that hands back at most `.1` bytes per read.
    struct Chunked<'a>(&'a [u8], usize);

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn kinds_and_geometry() {
        assert_eq!(
            layer_kind("application/vnd.oci.image.layer.v1.tar+gzip"),
            Some((Compression::Gzip, "application/vnd.oci.image.layer.v1.tar".to_string()))
        );
        assert_eq!(layer_kind("application/vnd.oci.image.config.v1+json"), None);
        assert!(!Geometry { segment: 0, margin: 0 }.is_valid());
        assert!(!Geometry { segment: MAX_PATCH_SEGMENT + 1, margin: 0 }.is_valid());
        assert_eq!(window_log(3 << 20), 22);
    }
}
