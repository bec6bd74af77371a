//! Reading a bundle in one streaming pass: signatures first, then every
//! entry verified as it passes.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;

use tender_keys::{KeyId, Signature, Trust};

use crate::entry::{EntryName, OCI_LAYOUT_CONTENT};
use crate::hashing::{CopyError, copy_hashed};
use crate::header::EntryHeader;
use crate::limits::{MAX_DESCRIPTOR_BYTES, MAX_INDEX_BYTES, MAX_SIGNATURES_BYTES};
use crate::{
    BlobRecord, BundleError, ChunkRecord, Descriptor, Digest, NoProgress, PatchRecord, Progress,
    Signatures,
};
use tender_keys::keyring::MAX_KEYRING_BYTES;

/// A descriptor whose signatures checked against the trust given.
#[derive(Clone, Debug)]
pub struct VerifiedDescriptor {
    /// The parsed descriptor.
    pub descriptor: Descriptor,
    /// Its exact signed bytes.
    pub raw: Vec<u8>,
    /// Digest of `raw`: the identity of this bundle version.
    pub digest: Digest,
    /// All signatures the bundle carried.
    pub signatures: Vec<Signature>,
    /// The trusted keys whose signatures verified.
    pub signed_by: Vec<KeyId>,
}

impl VerifiedDescriptor {
    /// Check `signatures` over the descriptor bytes `raw` against `trust`,
    /// then parse them: the parser only ever sees signed bytes.
    pub fn verify(
        raw: Vec<u8>,
        signatures: Vec<Signature>,
        trust: &Trust,
    ) -> Result<VerifiedDescriptor, BundleError> {
        if raw.len() as u64 > MAX_DESCRIPTOR_BYTES {
            return Err(BundleError::TooLarge {
                entry: "tender/descriptor.json".into(),
                size: raw.len() as u64,
                limit: MAX_DESCRIPTOR_BYTES,
            });
        }
        let signed_by = trust.verify(&crate::signing_message(&raw), &signatures)?;
        let descriptor = Descriptor::parse(&raw)?;
        Ok(VerifiedDescriptor { digest: Digest::of(&raw), descriptor, raw, signatures, signed_by })
    }
}

/// Where verified blobs go. The reader calls [`Sink::accept`] once the
/// signature checked; then for each blob it either only hashes it (when
/// [`Sink::wants`] says no) or copies it into what [`Sink::stage`] returns
/// and, only after its digest checked, hands that to [`Sink::commit`]. The
/// reader does the copying and the hashing, so no sink can skip a check.
pub trait Sink {
    /// The sink's error; bundle errors convert into it.
    type Error: From<BundleError>;
    /// Where a blob is written before it is verified (dropping it must
    /// discard it).
    type Staged: Write;
    /// The descriptor verified: read on, or stop before any blob (for
    /// instance, when this exact bundle is already held). An error stops too.
    fn accept(&mut self, bundle: &VerifiedDescriptor) -> Result<Accept, Self::Error>;
    /// What progress calls the pass over the blobs (`verify`; a sink that
    /// keeps them: `import`).
    fn phase(&self) -> &'static str {
        "verify"
    }
    /// Whether this blob should be staged (false: verify and discard).
    fn wants(&mut self, blob: &BlobRecord) -> bool;
    /// Somewhere temporary to write the blob's bytes.
    fn stage(&mut self, blob: &BlobRecord) -> Result<Self::Staged, Self::Error>;
    /// The error for a failed write to `staged` (naming its path).
    fn write_failed(&self, staged: &Self::Staged, err: io::Error) -> Self::Error;
    /// The staged bytes matched their digest: make them permanent.
    fn commit(&mut self, blob: &BlobRecord, staged: Self::Staged) -> Result<(), Self::Error>;
    /// Whether this chunk of a blob split across parts should be staged
    /// (default: no, verify and discard).
    fn wants_chunk(&mut self, _blob: &BlobRecord, _chunk: &ChunkRecord) -> bool {
        false
    }
    /// The bundle carries a keyring (`tender/keyring.json`, bytes not yet
    /// checked): judge it, and return the trust to check the descriptor
    /// with, or `None` to keep the trust given. The default ignores it.
    fn keyring(&mut self, _bytes: &[u8]) -> Result<Option<Trust>, Self::Error> {
        Ok(None)
    }
    /// A staged patch matched its digest: rebuild the layer from it (and
    /// check the layer against its digest), advancing `progress` by the
    /// layer's bytes. The default refuses: a sink that keeps blobs must
    /// rebuild patched ones.
    fn commit_patch(
        &mut self,
        blob: &BlobRecord,
        _staged: Self::Staged,
        _progress: &dyn Progress,
    ) -> Result<(), Self::Error> {
        Err(BundleError::Patch {
            blob: blob.digest.clone(),
            reason: "this reader cannot rebuild patched layers".into(),
        }
        .into())
    }
    /// A staged chunk matched its digest: keep it until the blob is whole.
    fn commit_chunk(
        &mut self,
        _blob: &BlobRecord,
        _chunk: &ChunkRecord,
        _staged: Self::Staged,
    ) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A sink's answer to a verified descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Read and verify the blobs.
    Read,
    /// Stop here; [`ReadSummary::stopped`] says so.
    Stop,
}

/// A sink that keeps nothing: `tender-ship verify`.
#[derive(Debug, Default)]
pub struct VerifyOnly;

impl Sink for VerifyOnly {
    type Error = BundleError;
    type Staged = io::Sink;
    fn accept(&mut self, _: &VerifiedDescriptor) -> Result<Accept, BundleError> {
        Ok(Accept::Read)
    }
    fn wants(&mut self, _: &BlobRecord) -> bool {
        false
    }
    fn stage(&mut self, _: &BlobRecord) -> Result<io::Sink, BundleError> {
        Ok(io::sink())
    }
    fn write_failed(&self, _: &io::Sink, err: io::Error) -> BundleError {
        BundleError::Write { path: "(nowhere)".into(), source: err }
    }
    fn commit(&mut self, _: &BlobRecord, _: io::Sink) -> Result<(), BundleError> {
        Ok(())
    }
}

/// What one pass read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Blobs in the bundle.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Blobs staged and committed by the sink.
    pub blobs_committed: usize,
    /// Their bytes.
    pub bytes_committed: u64,
    /// The sink stopped the read after the descriptor.
    pub stopped: bool,
    /// Which media part this was (1 for a whole bundle).
    pub part: u32,
}

/// Read a whole entry of at most `limit` bytes into memory.
fn read_small<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
    limit: u64,
    source: &Path,
) -> Result<Vec<u8>, BundleError> {
    let size =
        entry.header().size().map_err(|e| BundleError::Read { path: source.into(), source: e })?;
    if size > limit {
        return Err(BundleError::TooLarge { entry: name.into(), size, limit });
    }
    let mut buf = Vec::with_capacity(size as usize);
    entry
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| BundleError::Read { path: source.into(), source: e })?;
    if (buf.len() as u64) < size {
        return Err(BundleError::Truncated {
            entry: name.into(),
            read: buf.len() as u64,
            expected: size,
        });
    }
    Ok(buf)
}

/// An entry with its parsed name and header offset.
type NextEntry<'a, R> = Option<(tar::Entry<'a, CountingReader<R>>, EntryName, u64)>;

/// Counts the bytes the tar reader consumed, and checks that the padding
/// after the current entry's data is zeros: no digest covers those bytes, so
/// without this a flipped bit there would pass unnoticed.
struct CountingReader<R> {
    inner: R,
    count: u64,
    /// The current entry's padding, [start, end) in file offsets.
    padding: std::rc::Rc<std::cell::Cell<(u64, u64)>>,
    /// Set once the input ended: the tar reader's error for a header cut
    /// short does not say so itself.
    ended: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended.set(true);
        }
        let (start, end) = self.padding.get();
        let (from, to) = (self.count.max(start), (self.count + n as u64).min(end));
        if from < to {
            let slice = &buf[(from - self.count) as usize..(to - self.count) as usize];
            if let Some(i) = slice.iter().position(|&b| b != 0) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("non-zero tar padding at byte {}", from + i as u64),
                ));
            }
        }
        self.count += n as u64;
        Ok(n)
    }
}

enum End {
    Io(io::Error),
    Bad(String),
}

/// Most bytes accepted after the last entry: the end-of-archive blocks and
/// the padding that tar tools add to fill a record (GNU tar: 10 KiB).
const MAX_TRAILER: u64 = 1 << 20;

/// A bundle ends with at least two zero blocks after its last entry, and only
/// zeros: a bundle cut short inside its end marker is still a cut bundle, and
/// trailing bytes are something nobody signed.
fn check_end<R: Read>(mut r: CountingReader<R>, data_end: u64) -> Result<(), End> {
    let mut buf = [0u8; 8192];
    loop {
        let n = r.read(&mut buf).map_err(End::Io)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(End::Bad(
                "the end-of-archive marker (non-zero bytes after the last entry)".into(),
            ));
        }
        if r.count > data_end + MAX_TRAILER {
            return Err(End::Bad(format!(
                "the trailer (more than {MAX_TRAILER} bytes after the last entry)"
            )));
        }
    }
    if r.count < data_end + 1024 {
        return Err(End::Bad(format!(
            "the end-of-archive marker ({} of 1024 bytes)",
            r.count.saturating_sub(data_end)
        )));
    }
    Ok(())
}

/// The descriptor bytes of a bundle (its first entry), unverified: for
/// `tender-shore sign`, which adds a signature, and for reading a base.
pub fn read_descriptor_bytes(input: impl Read, source: &Path) -> Result<Vec<u8>, BundleError> {
    let read_err = |e: io::Error| BundleError::Read { path: source.to_owned(), source: e };
    let mut archive = tar::Archive::new(input);
    // Raw: the tar crate would read a pax record or GNU long name (of any
    // size) into memory before handing out the entry it describes.
    let mut entries = archive.entries().map_err(read_err)?.raw(true);
    let mut entry = entries
        .next()
        .ok_or_else(|| BundleError::OutOfOrder {
            expected: "tender/descriptor.json",
            found: "end of bundle".into(),
            offset: 0,
        })?
        .map_err(read_err)?;
    let header = EntryHeader::parse(entry.header().as_bytes(), 0)?;
    if header.name != EntryName::Descriptor {
        return Err(BundleError::OutOfOrder {
            expected: "tender/descriptor.json",
            found: header.name.path(),
            offset: 0,
        });
    }
    read_small(&mut entry, "tender/descriptor.json", MAX_DESCRIPTOR_BYTES, source)
}

/// Read and verify a bundle from `input` (`source` names it in errors),
/// handing verified blobs to `sink`.
///
/// Nothing reaches the sink before the descriptor's signatures verify
/// against `trust`; no blob is committed before its digest checks.
pub fn read_bundle<R: Read, S: Sink>(
    input: R,
    source: &Path,
    trust: &Trust,
    sink: &mut S,
    progress: &dyn Progress,
) -> Result<(VerifiedDescriptor, ReadSummary), S::Error> {
    read_bundle_with(input, source, trust, &[], sink, progress)
}

/// The archive's entries, each with its header checked and its name
/// parsed; keeps where the last entry's data (padded to a block) ends.
struct Entries<'a, R: Read> {
    entries: tar::Entries<'a, CountingReader<R>>,
    source: &'a Path,
    data_end: u64,
    padding: std::rc::Rc<std::cell::Cell<(u64, u64)>>,
    ended: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<'a, R: Read> Entries<'a, R> {
    fn read_err(&self) -> impl Fn(io::Error) -> BundleError + use<'a, R> {
        let path = self.source.to_owned();
        move |e| BundleError::Read { path: path.clone(), source: e }
    }

    fn next(&mut self) -> Result<NextEntry<'a, R>, BundleError> {
        let Some(entry) = self.entries.next() else { return Ok(None) };
        let entry = entry.map_err(|e| {
            if self.ended.get() {
                // The file ends inside a header block: a cut bundle (exit
                // 3), not an I/O failure.
                BundleError::Truncated {
                    entry: format!("a tar header at byte {}", self.data_end),
                    read: 0,
                    expected: 512,
                }
            } else {
                self.read_err()(e)
            }
        })?;
        let offset = entry.raw_header_position();
        let header = EntryHeader::parse(entry.header().as_bytes(), offset)?;
        self.data_end = entry.raw_file_position() + header.size.div_ceil(512) * 512;
        self.padding.set((entry.raw_file_position() + header.size, self.data_end));
        Ok(Some((entry, header.name, offset)))
    }

    /// The next entry, which must be `want`: read whole, with its offset.
    fn expect(
        &mut self,
        want: EntryName,
        label: &'static str,
        limit: u64,
    ) -> Result<(Vec<u8>, u64), BundleError> {
        match self.next()? {
            None => Err(BundleError::OutOfOrder {
                expected: label,
                found: "end of bundle".into(),
                offset: 0,
            }),
            Some((mut e, name, offset)) if name == want => {
                Ok((read_small(&mut e, label, limit, self.source)?, offset))
            }
            Some((_, name, offset)) => {
                Err(BundleError::OutOfOrder { expected: label, found: name.path(), offset })
            }
        }
    }
}

/// [`read_bundle`], counting also `detached` signatures (from a `BUNDLE.sig`
/// file that `tender-shore sign` wrote beside the bundle).
pub fn read_bundle_with<R: Read, S: Sink>(
    input: R,
    source: &Path,
    trust: &Trust,
    detached: &[Signature],
    sink: &mut S,
    progress: &dyn Progress,
) -> Result<(VerifiedDescriptor, ReadSummary), S::Error> {
    let read_err = |e: io::Error| BundleError::Read { path: source.to_owned(), source: e };
    let padding = std::rc::Rc::new(std::cell::Cell::new((0, 0)));
    let ended = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut archive = tar::Archive::new(CountingReader {
        inner: input,
        count: 0,
        padding: padding.clone(),
        ended: ended.clone(),
    });
    let mut entries = Entries {
        // Raw: no pax records or GNU long names applied (the header check
        // refuses them before their data is read), each header as it stands.
        entries: archive.entries().map_err(read_err)?.raw(true),
        source,
        data_end: 0,
        padding,
        ended,
    };
    let (verified, mut pending) = read_head(&mut entries, trust, detached, sink)?;
    if sink.accept(&verified)? == Accept::Stop {
        return Ok((verified, ReadSummary { stopped: true, ..ReadSummary::default() }));
    }
    // 3 and 4: the layout and the blobs, each checked against the descriptor.
    let mut body = Body::new(&verified.descriptor);
    loop {
        let item = match pending.take() {
            Some(p) => Some(p),
            None => entries.next()?,
        };
        let Some((mut entry, name, offset)) = item else { break };
        body.entry(&mut entry, name, offset, source, sink, progress)?;
    }
    progress.finish();
    let data_end = entries.data_end;
    drop(entries);
    check_end(archive.into_inner(), data_end).map_err(|e| match e {
        End::Io(e) => read_err(e),
        End::Bad(what) => BundleError::Truncated { entry: what, read: 0, expected: 1024 },
    })?;
    let summary = body.finish()?;
    Ok((verified, summary))
}

/// 1 and 2: descriptor and signatures, before anything else; then an
/// optional keyring, which the sink judges (against the ship's pinned
/// roots) before the descriptor's signatures are checked, since it may
/// name the key that made them. Returns the verified descriptor and the
/// entry read after the head, if any.
fn read_head<'a, R: Read, S: Sink>(
    entries: &mut Entries<'a, R>,
    trust: &Trust,
    detached: &[Signature],
    sink: &mut S,
) -> Result<(VerifiedDescriptor, NextEntry<'a, R>), S::Error> {
    let (raw, _) =
        entries.expect(EntryName::Descriptor, "tender/descriptor.json", MAX_DESCRIPTOR_BYTES)?;
    let (sig_bytes, sig_offset) =
        entries.expect(EntryName::Signatures, "tender/signatures.json", MAX_SIGNATURES_BYTES)?;
    let mut sigs = Signatures::parse(&sig_bytes)?;
    // Nothing else covers these bytes: only the form the writer writes.
    if serde_json::to_vec_pretty(&sigs).expect("signatures serialize") != sig_bytes {
        return Err(BundleError::BadEntry {
            entry: "tender/signatures.json".into(),
            offset: sig_offset,
            reason: "not in the form the writer writes (pretty JSON, two-space indent)".into(),
        }
        .into());
    }
    sigs.signatures.extend(detached.iter().cloned());
    let mut pending = entries.next()?;
    let mut trust = std::borrow::Cow::Borrowed(trust);
    if let Some((mut e, EntryName::Keyring, _)) = pending.take_if(|p| p.1 == EntryName::Keyring) {
        let bytes = read_small(&mut e, "tender/keyring.json", MAX_KEYRING_BYTES, entries.source)?;
        drop(e);
        if let Some(t) = sink.keyring(&bytes)? {
            trust = std::borrow::Cow::Owned(t);
        }
        pending = entries.next()?;
    }
    let verified = VerifiedDescriptor::verify(raw, sigs.signatures, &trust)?;
    Ok((verified, pending))
}

/// What the body of a bundle (after its head) has shown so far, checked
/// entry by entry against the verified descriptor.
struct Body<'d> {
    d: &'d Descriptor,
    listed: HashMap<&'d Digest, &'d BlobRecord>,
    patches: HashMap<&'d Digest, &'d BlobRecord>,
    seen: std::collections::HashSet<&'d Digest>,
    seen_chunks: std::collections::HashSet<(&'d Digest, u64)>,
    have_layout: bool,
    have_index: bool,
    /// Which media part this file is; a whole bundle is part 1 of 1.
    part: Option<u32>,
    summary: ReadSummary,
    /// Progress started: at the first blob, when this file's part is known.
    started: bool,
}

/// Where one blob entry's bytes must go and what they must be.
struct Expected<'d> {
    blob: &'d BlobRecord,
    chunk: Option<&'d ChunkRecord>,
    patch: Option<&'d PatchRecord>,
    digest: &'d Digest,
    size: u64,
}

impl<'d> Body<'d> {
    fn new(d: &'d Descriptor) -> Self {
        let listed: HashMap<_, _> = d.blobs.iter().map(|b| (&b.digest, b)).collect();
        Body {
            d,
            patches: d
                .blobs
                .iter()
                .filter_map(|b| b.patch.as_ref().map(|p| (&p.digest, b)))
                .collect(),
            seen: std::collections::HashSet::with_capacity(listed.len()),
            listed,
            seen_chunks: Default::default(),
            have_layout: false,
            have_index: false,
            part: None,
            summary: ReadSummary::default(),
            started: false,
        }
    }

    fn entry<R: Read, S: Sink>(
        &mut self,
        entry: &mut tar::Entry<'_, CountingReader<R>>,
        name: EntryName,
        offset: u64,
        source: &Path,
        sink: &mut S,
        progress: &dyn Progress,
    ) -> Result<(), S::Error> {
        match name {
            EntryName::Part => self.part_entry(entry, name, offset, source)?,
            EntryName::Descriptor | EntryName::Signatures | EntryName::Keyring => {
                return Err(BundleError::DuplicateEntry(name.path()).into());
            }
            EntryName::OciLayout => {
                if std::mem::replace(&mut self.have_layout, true) {
                    return Err(BundleError::DuplicateEntry(name.path()).into());
                }
                // Exactly the bytes the writer writes: OCI tools read this
                // file, and nothing else covers it.
                let want = OCI_LAYOUT_CONTENT;
                let bad = || BundleError::BadEntry {
                    entry: name.path(),
                    offset,
                    reason: format!("not exactly {}", String::from_utf8_lossy(want)),
                };
                let size = entry
                    .header()
                    .size()
                    .map_err(|e| BundleError::Read { path: source.to_owned(), source: e })?;
                if size != want.len() as u64
                    || read_small(entry, "oci-layout", want.len() as u64, source)? != want
                {
                    return Err(bad().into());
                }
            }
            EntryName::Index => {
                if std::mem::replace(&mut self.have_index, true) {
                    return Err(BundleError::DuplicateEntry(name.path()).into());
                }
                let bytes = read_small(entry, "index.json", MAX_INDEX_BYTES, source)?;
                let actual = Digest::of(&bytes);
                if actual != self.d.oci_index.digest {
                    return Err(BundleError::DigestMismatch {
                        entry: "index.json".into(),
                        expected: self.d.oci_index.digest.clone(),
                        actual,
                    }
                    .into());
                }
            }
            EntryName::Blob(_) | EntryName::Chunk(..) | EntryName::Patch(_) => {
                if !std::mem::replace(&mut self.started, true) {
                    // What this file carries (a patched layer at the
                    // layer's size), not the version's whole.
                    let k = self.part.unwrap_or(1);
                    let carried = self.d.part_blobs(k).map(|b| b.size).sum::<u64>()
                        + self.d.part_chunks(k).map(|(_, c)| c.size).sum::<u64>();
                    progress.start(sink.phase(), carried);
                }
                let want = self.expected(&name, offset)?;
                self.blob_entry(entry, &name, want, source, sink, progress)?;
            }
        }
        Ok(())
    }

    /// `tender/part.json`: exactly `{"part":K}` as the writer writes it,
    /// K in 1..=parts; the file is not signed, so no other byte may pass.
    fn part_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, CountingReader<R>>,
        name: EntryName,
        offset: u64,
        source: &Path,
    ) -> Result<(), BundleError> {
        if self.part.is_some() || !self.seen.is_empty() {
            return Err(BundleError::DuplicateEntry(name.path()));
        }
        let bytes = read_small(entry, "tender/part.json", MAX_SIGNATURES_BYTES, source)?;
        let parts = self.d.parts;
        let k = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.strip_prefix("{\"part\":")?.strip_suffix('}')?.parse().ok())
            .filter(|k: &u32| {
                (1..=parts).contains(k) && bytes == format!("{{\"part\":{k}}}").as_bytes()
            })
            .ok_or_else(|| BundleError::BadEntry {
                entry: name.path(),
                offset,
                reason: format!(
                    "not {{\"part\":K}} with K between 1 and {parts} (found {:?})",
                    String::from_utf8_lossy(&bytes).chars().take(100).collect::<String>()
                ),
            })?;
        self.part = Some(k);
        Ok(())
    }

    /// What a blob, chunk or patch entry named `name` must hold, from the
    /// descriptor: listed, in this part, not seen before.
    fn expected(&mut self, name: &EntryName, offset: u64) -> Result<Expected<'d>, BundleError> {
        let (EntryName::Blob(digest) | EntryName::Chunk(digest, _) | EntryName::Patch(digest)) =
            name
        else {
            unreachable!("called for blob entries only")
        };
        let found = match name {
            EntryName::Patch(_) => self.patches.get(digest),
            _ => self.listed.get(digest),
        };
        let Some(blob) = found.copied() else {
            return Err(BundleError::UnlistedBlob(digest.clone()));
        };
        let unexpected = || BundleError::UnexpectedEntry { entry: name.path(), offset };
        let chunk = match name {
            EntryName::Chunk(_, at) => {
                Some(blob.chunks.iter().find(|c| c.offset == *at).ok_or_else(unexpected)?)
            }
            // A patched layer travels only as its patch.
            EntryName::Blob(_) if !blob.chunks.is_empty() || blob.patch.is_some() => {
                return Err(unexpected());
            }
            _ => None,
        };
        let patch = match name {
            EntryName::Patch(_) => blob.patch.as_ref(),
            _ => None,
        };
        let (want_part, digest, size) = match (chunk, patch) {
            (Some(c), _) => (c.part, &c.digest, c.size),
            (_, Some(p)) => (blob.part, &p.digest, p.size),
            _ => (blob.part, &blob.digest, blob.size),
        };
        let this_part = *self.part.get_or_insert(1);
        if want_part != this_part {
            return Err(BundleError::WrongPart {
                digest: blob.digest.clone(),
                part: this_part,
                listed: want_part,
            });
        }
        let fresh = match chunk {
            Some(c) => self.seen_chunks.insert((&blob.digest, c.offset)),
            None => self.seen.insert(&blob.digest),
        };
        if !fresh {
            return Err(BundleError::DuplicateEntry(name.path()));
        }
        Ok(Expected { blob, chunk, patch, digest, size })
    }

    /// Copy one blob entry, hashing it, into the sink's staging (or
    /// nowhere, if the sink does not want it); commit it once its size
    /// and digest check.
    fn blob_entry<R: Read, S: Sink>(
        &mut self,
        entry: &mut tar::Entry<'_, CountingReader<R>>,
        name: &EntryName,
        want: Expected<'d>,
        source: &Path,
        sink: &mut S,
        progress: &dyn Progress,
    ) -> Result<(), S::Error> {
        let read_err = |e: io::Error| BundleError::Read { path: source.to_owned(), source: e };
        let Expected { blob, chunk, patch, .. } = want;
        let size = entry.header().size().map_err(read_err)?;
        let label = name.path();
        if size != want.size {
            let e = BundleError::SizeMismatch { entry: label, expected: want.size, actual: size };
            return Err(e.into());
        }
        progress.item(&label);
        let wanted = match chunk {
            Some(c) => sink.wants_chunk(blob, c),
            None => sink.wants(blob),
        };
        let mut staged = if wanted { Some(sink.stage(blob)?) } else { None };
        // A patched layer counts as the layer: its bytes as it is rebuilt,
        // or at once when it is not.
        let counted = if patch.is_some() { &NoProgress as &dyn Progress } else { progress };
        let copied = match staged.as_mut() {
            Some(w) => copy_hashed(entry, &mut *w, size, counted),
            None => copy_hashed(entry, io::sink(), size, counted),
        };
        let (actual, n) = match copied {
            Ok(r) => r,
            Err(CopyError::Read(e)) => return Err(read_err(e).into()),
            Err(CopyError::Write(e)) => {
                let staged = staged.expect("only a staged blob is written");
                return Err(sink.write_failed(&staged, e));
            }
        };
        if n < size {
            return Err(BundleError::Truncated { entry: label, read: n, expected: size }.into());
        }
        if actual != *want.digest {
            let e =
                BundleError::DigestMismatch { entry: label, expected: want.digest.clone(), actual };
            return Err(e.into());
        }
        if patch.is_some() && staged.is_none() {
            progress.advance(blob.size);
        }
        // A patched layer counts as the layer it rebuilt.
        let counted = if patch.is_some() { blob.size } else { size };
        if let Some(staged) = staged {
            match (chunk, patch) {
                (Some(c), _) => sink.commit_chunk(blob, c, staged)?,
                (_, Some(_)) => sink.commit_patch(blob, staged, progress)?,
                _ => sink.commit(blob, staged)?,
            }
            self.summary.blobs_committed += 1;
            self.summary.bytes_committed += counted;
        }
        self.summary.blobs += 1;
        self.summary.bytes += counted;
        Ok(())
    }

    /// After the end marker: both layout files, and every blob and chunk
    /// this part carries.
    fn finish(self) -> Result<ReadSummary, BundleError> {
        // Both, as the writer writes them: without `oci-layout` OCI tools do
        // not read the archive as a layout at all.
        for (have, expected) in [(self.have_index, "index.json"), (self.have_layout, "oci-layout")]
        {
            if !have {
                return Err(BundleError::OutOfOrder {
                    expected,
                    found: "end of bundle".into(),
                    offset: 0,
                });
            }
        }
        let this_part = self.part.unwrap_or(1);
        let missing: Vec<&Digest> = self
            .d
            .part_blobs(this_part)
            .map(|b| &b.digest)
            .filter(|dg| !self.seen.contains(dg))
            .chain(
                self.d
                    .part_chunks(this_part)
                    .filter(|(b, c)| !self.seen_chunks.contains(&(&b.digest, c.offset)))
                    .map(|(b, _)| &b.digest),
            )
            .collect();
        if let Some(first) = missing.first() {
            return Err(BundleError::Incomplete {
                missing: missing.len(),
                first: (*first).clone(),
            });
        }
        Ok(ReadSummary { part: this_part, ..self.summary })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use proptest::prelude::*;
    use tender_keys::SigningKey;

    use super::*;
    use crate::{
        BlobRef, BundleWriter, FORMAT, NoProgress, SignedDescriptor, StackId, signing_message,
    };

    /// Keeps every committed blob in memory.
    #[derive(Default)]
    struct Collect(BTreeMap<Digest, Vec<u8>>);

    impl Sink for Collect {
        type Error = BundleError;
        type Staged = Vec<u8>;
        fn accept(&mut self, _: &VerifiedDescriptor) -> Result<Accept, BundleError> {
            Ok(Accept::Read)
        }
        fn wants(&mut self, _: &BlobRecord) -> bool {
            true
        }
        fn stage(&mut self, _: &BlobRecord) -> Result<Vec<u8>, BundleError> {
            Ok(Vec::new())
        }
        fn write_failed(&self, _: &Vec<u8>, err: io::Error) -> BundleError {
            BundleError::Write { path: "mem".into(), source: err }
        }
        fn commit(&mut self, b: &BlobRecord, staged: Vec<u8>) -> Result<(), BundleError> {
            self.0.insert(b.digest.clone(), staged);
            Ok(())
        }
    }

    fn bundle(blobs: &[Vec<u8>], key: &SigningKey) -> Vec<u8> {
        let mut records: Vec<BlobRecord> = Vec::new();
        for b in blobs {
            let d = Digest::of(b);
            if !records.iter().any(|r| r.digest == d) {
                records.push(BlobRecord {
                    digest: d,
                    size: b.len() as u64,
                    media_type: "application/octet-stream".into(),
                    part: 1,
                    chunks: vec![],
                    patch: None,
                });
            }
        }
        let index = crate::oci_archive_index(&[]);
        let d = Descriptor {
            format: FORMAT.into(),
            stack: StackId {
                name: "s".to_string().try_into().unwrap(),
                version: "1".to_string().try_into().unwrap(),
            },
            sequence: 1,
            created: "2026-01-01T00:00:00Z".into(),
            manifests: vec![],
            images: vec![],
            oci_index: BlobRef { digest: Digest::of(&index), size: index.len() as u64 },
            blobs: records.clone(),
            parts: 1,
            bases: vec![],
            expires: None,
            settings: vec![],
        };
        let raw = d.to_bytes();
        let signed = SignedDescriptor {
            signatures: vec![key.sign(&signing_message(&raw))],
            raw,
            keyring: None,
        };
        let mut w =
            BundleWriter::new(Vec::new(), &PathBuf::from("mem"), &signed, &index, 0, None).unwrap();
        for r in &records {
            let data = blobs.iter().find(|b| Digest::of(b) == r.digest).unwrap();
            w.append_blob(r, &data[..], &PathBuf::from("mem"), &NoProgress).unwrap();
        }
        w.finish().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        #[test]
        fn write_then_read_returns_every_blob(
            blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..6)
        ) {
            let key = SigningKey::generate().unwrap();
            let bytes = bundle(&blobs, &key);
            let trust = Trust::new(vec![key.public()]);
            let mut sink = Collect::default();
            let (v, summary) = read_bundle(&bytes[..], Path::new("mem"), &trust, &mut sink, &NoProgress).unwrap();
            prop_assert_eq!(summary.blobs, v.descriptor.blobs.len());
            for b in &blobs {
                prop_assert_eq!(sink.0.get(&Digest::of(b)), Some(b));
            }
        }

        #[test]
        fn any_single_bit_flip_or_cut_is_refused(seed in any::<u64>()) {
            let key = SigningKey::generate().unwrap();
            let blobs = vec![vec![7u8; 700], b"manifest".to_vec()];
            let good = bundle(&blobs, &key);
            let trust = Trust::new(vec![key.public()]);
            let at = (seed as usize) % good.len();
            let mut flipped = good.clone();
            flipped[at] ^= 1 << (seed % 8);
            let mut sink = Collect::default();
            prop_assert!(
                read_bundle(&flipped[..], Path::new("mem"), &trust, &mut sink, &NoProgress).is_err(),
                "flip of bit {} at byte {} accepted", seed % 8, at
            );
            let mut sink = Collect::default();
            prop_assert!(read_bundle(&good[..at], Path::new("mem"), &trust, &mut sink, &NoProgress).is_err());
        }
    }
}
