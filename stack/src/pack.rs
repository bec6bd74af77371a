//! Planning and writing a bundle.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{BufWriter, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tender_bundle::{
    BlobRecord, BlobRef, BundleWriter, Descriptor, Digest, FORMAT, ImageRecord, ManifestFile,
    Progress, SignedDescriptor, StackId, StackName, Version, YAML_MEDIA_TYPE, oci_archive_index,
    signing_message,
};
use tender_keys::SigningKey;

use crate::StackError;
use crate::image::{BlobData, resolve_image};
use crate::source::{ImageSource, OciLayoutSource};
use crate::stackfile::StackFile;
use tender_manifests::images_in_yaml;

use tender_bundle::limits::MAX_KUBERNETES_FILE_BYTES as MAX_MANIFEST_FILE;

/// Everything a bundle will hold, resolved and verified (but for the layer
/// bytes, which are verified as they are written).
pub struct Plan {
    /// The stack file.
    pub stack: StackFile,
    /// The Kubernetes manifests.
    pub manifests: Vec<ManifestFile>,
    /// The images.
    pub images: Vec<ImageRecord>,
    /// Every blob once, in bundle order, with where to read it.
    pub blobs: Vec<(BlobRecord, BlobData)>,
    pub(crate) sources: Vec<Box<dyn ImageSource>>,
    /// Per image: which source supplies it.
    pub(crate) image_source: Vec<usize>,
    /// Holds the patches of patched layers, when there are any.
    pub(crate) scratch: Option<tempfile::TempDir>,
    /// `${NAME}` references in the manifests to names the stack does not
    /// declare: left as written, and reported.
    pub undeclared: Vec<String>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("images", &self.images.len())
            .field("blobs", &self.blobs.len())
            .finish()
    }
}

impl Plan {
    /// Resolve a stack file: read every manifest, find every image, resolve
    /// each from the first source that covers it. `extra` sources are tried
    /// after the stack file's own.
    pub fn resolve(stack: StackFile, extra: Vec<Box<dyn ImageSource>>) -> Result<Plan, StackError> {
        let mut sources: Vec<Box<dyn ImageSource>> = stack
            .sources
            .iter()
            .map(|s| {
                Box::new(OciLayoutSource::new(s.prefix.clone(), s.oci_layout.clone()))
                    as Box<dyn ImageSource>
            })
            .collect();
        sources.extend(extra);

        let mut manifests = Vec::new();
        let mut blobs: Vec<(BlobRecord, BlobData)> = Vec::new();
        // reference -> the files naming it (for errors)
        let mut refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut undeclared = Vec::new();
        for (rel, path) in &stack.manifests {
            let len = fs::metadata(path)
                .map_err(|e| StackError::Io { path: path.clone(), source: e })?
                .len();
            if len > MAX_MANIFEST_FILE {
                return Err(StackError::BadManifest {
                    path: path.clone(),
                    reason: format!("{len} bytes, more than {MAX_MANIFEST_FILE}"),
                });
            }
            let bytes =
                fs::read(path).map_err(|e| StackError::Io { path: path.clone(), source: e })?;
            let text = std::str::from_utf8(&bytes).map_err(|_| StackError::BadManifest {
                path: path.clone(),
                reason: "not UTF-8 text".into(),
            })?;
            let found = images_in_yaml(text)
                .map_err(|reason| StackError::BadManifest { path: path.clone(), reason })?;
            for name in tender_bundle::settings::references(text) {
                if !stack.settings.iter().any(|s| s.name.as_str() == name) {
                    undeclared.push(format!(
                        "{rel}: ${{{name}}} is not a declared setting; left as written"
                    ));
                }
            }
            for r in found {
                if !refs.contains_key(&r) {
                    order.push(r.clone());
                }
                refs.entry(r).or_default().push(rel.clone());
            }
            let digest = Digest::of(&bytes);
            manifests.push(ManifestFile { path: rel.clone(), digest: digest.clone(), size: len });
            blobs.push((
                BlobRecord {
                    digest,
                    size: len,
                    media_type: YAML_MEDIA_TYPE.into(),
                    part: 1,
                    chunks: vec![],
                    patch: None,
                },
                BlobData::File(path.clone()),
            ));
        }
        for r in &stack.images {
            if !refs.contains_key(r) {
                order.push(r.clone());
            }
            refs.entry(r.clone()).or_default().push(stack.path.display().to_string());
        }

        let mut images = Vec::new();
        let mut image_source = Vec::new();
        for reference in order {
            let Some(si) = sources.iter().position(|s| s.covers(&reference)) else {
                return Err(StackError::NoSource { files: refs[&reference].join(", "), reference });
            };
            let resolved =
                resolve_image(sources[si].as_ref(), &reference, &stack.platforms, images.len())
                    .map_err(|e| StackError::Named {
                        files: refs[&reference].join(", "),
                        source: Box::new(e),
                    })?;
            images.push(resolved.record);
            image_source.push(si);
            blobs.extend(resolved.blobs);
        }
        // Every blob once, whatever number of images share it.
        let mut seen = HashSet::new();
        blobs.retain(|(b, _)| seen.insert(b.digest.clone()));
        Ok(Plan {
            stack,
            manifests,
            images,
            blobs,
            sources,
            image_source,
            scratch: None,
            undeclared,
        })
    }

    /// Let each source fetch ahead what packing will read from it.
    fn prefetch(&self, progress: &dyn Progress) -> Result<(), StackError> {
        for (si, source) in self.sources.iter().enumerate() {
            let wanted: Vec<(String, Digest, u64)> = self
                .blobs
                .iter()
                .filter_map(|(b, data)| match data {
                    BlobData::Source { image } if self.image_source[*image] == si => {
                        Some((self.images[*image].reference.clone(), b.digest.clone(), b.size))
                    }
                    _ => None,
                })
                .collect();
            if !wanted.is_empty() {
                source.prefetch(&wanted, progress)?;
            }
        }
        Ok(())
    }

    /// Bytes a whole bundle carries for its blobs (patches for patched layers).
    pub fn total_bytes(&self) -> u64 {
        self.blobs.iter().map(|(b, _)| b.patch.as_ref().map_or(b.size, |p| p.size)).sum()
    }

    pub(crate) fn open<'a>(
        &'a self,
        blob: &BlobRecord,
        data: &'a BlobData,
    ) -> Result<(Box<dyn Read + Send + 'a>, PathBuf), StackError> {
        Ok(match data {
            BlobData::Memory(bytes) => (Box::new(&bytes[..]), PathBuf::from("(reduced index)")),
            BlobData::File(path) => {
                let f = File::open(path)
                    .map_err(|e| StackError::Io { path: path.clone(), source: e })?;
                (
                    Box::new(std::io::BufReader::with_capacity(tender_bundle::READ_BUFFER, f)),
                    path.clone(),
                )
            }
            BlobData::Source { image } => {
                let src = &self.sources[self.image_source[*image]];
                let b = src.open(&self.images[*image].reference, &blob.digest, blob.size)?;
                (b.reader, b.location)
            }
        })
    }
}

/// One row of `pack --estimate`: a blob, the image that brings it (or the
/// manifest file), and whether the bundle would carry it.
#[derive(Clone, Debug, Serialize)]
pub struct EstimateRow {
    /// The image reference, or the manifest path.
    pub source: String,
    /// The blob.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Bytes the bundle carries for it (a patched layer: its patch).
    pub size: u64,
    /// False when the ship holds it already.
    pub carried: bool,
    /// True when it travels as a sub-layer patch.
    pub patched: bool,
}

impl Plan {
    /// What a bundle (or a delta against `base`) would carry, blob by blob.
    pub fn estimate(&self, base: Option<&crate::delta::Base>) -> Vec<EstimateRow> {
        self.blobs
            .iter()
            .map(|(b, data)| EstimateRow {
                source: match data {
                    BlobData::Source { image } => self.images[*image].reference.clone(),
                    BlobData::File(_) => self
                        .manifests
                        .iter()
                        .find(|m| m.digest == b.digest)
                        .map_or_else(|| "(manifest)".into(), |m| m.path.clone()),
                    BlobData::Memory(_) => "(reduced index)".into(),
                },
                digest: b.digest.clone(),
                media_type: b.media_type.clone(),
                size: b.patch.as_ref().map_or(b.size, |p| p.size),
                carried: !base.is_some_and(|base| base.blobs.contains(&b.digest)),
                patched: b.patch.is_some(),
            })
            .collect()
    }
}

/// How to pack.
#[derive(Clone, Debug, Default)]
pub struct PackOptions {
    /// The sequence; default: the pack time in Unix seconds.
    pub sequence: Option<u64>,
    /// The creation time; default: now.
    pub created: Option<SystemTime>,
    /// Split into media parts of at most this many bytes.
    pub split: Option<u64>,
    /// Leave out what the ship holds: a delta.
    pub base: Option<crate::delta::Base>,
    /// When the bundle goes stale.
    pub expires: Option<SystemTime>,
    /// A keyring file to carry to the ship (`tender/keyring.json`).
    pub keyring: Option<Vec<u8>>,
}

/// What `pack` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct PackReport {
    /// The bundle (for a split one, the name its parts extend).
    pub path: PathBuf,
    /// The files written: the bundle, or its parts.
    pub files: Vec<PathBuf>,
    /// Their size in bytes.
    pub bytes: u64,
    /// Bytes of blobs.
    pub blob_bytes: u64,
    /// Bytes of blobs left out because the ship holds them (a delta).
    pub expected_bytes: u64,
    /// Number of those blobs.
    pub expected_blobs: usize,
    /// Number of blobs.
    pub blobs: usize,
    /// Number of images.
    pub images: usize,
    /// Number of Kubernetes manifest files.
    pub manifests: usize,
    /// Stack name.
    pub stack: StackName,
    /// Version.
    pub version: Version,
    /// Sequence.
    pub sequence: u64,
    /// Digest of the signed descriptor.
    pub descriptor_digest: Digest,
    /// Changed layers with a predecessor in the base: patched or not, and why.
    pub patches: Vec<crate::patch::PatchRow>,
    /// What the packer should look at (`${X}` not declared as a setting).
    pub warnings: Vec<String>,
}

/// Sign the plan's descriptor and write the bundle to `out` (via a temporary
/// file in the same directory, renamed into place only when complete).
pub fn pack(
    plan: &Plan,
    key: &SigningKey,
    options: &PackOptions,
    out: &Path,
    progress: &dyn Progress,
) -> Result<PackReport, StackError> {
    let created = options.created.unwrap_or_else(SystemTime::now);
    let secs = created.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let oci_index = oci_archive_index(&plan.images);
    let mut descriptor = Descriptor {
        format: FORMAT.into(),
        stack: StackId { name: plan.stack.name.clone(), version: plan.stack.version.clone() },
        sequence: options.sequence.unwrap_or(secs),
        created: humantime::format_rfc3339_seconds(created).to_string(),
        manifests: plan.manifests.clone(),
        images: plan.images.clone(),
        oci_index: BlobRef { digest: Digest::of(&oci_index), size: oci_index.len() as u64 },
        blobs: plan.blobs.iter().map(|(b, _)| b.clone()).collect(),
        parts: 1,
        bases: vec![],
        expires: options.expires.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        settings: plan.stack.settings.clone(),
    };
    if let Some(base) = &options.base {
        for b in &mut descriptor.blobs {
            if base.blobs.contains(&b.digest) {
                b.part = 0;
                // Held already: no patch needed.
                b.patch = None;
            }
        }
        descriptor.bases = base.refs.clone();
    }
    // Fetch once, before anything reads blobs (chunk digests or the write).
    plan.prefetch(progress)?;
    if let Some(size) = options.split {
        assign_parts(&mut descriptor, size, oci_index.len() as u64)?;
        digest_chunks(plan, &mut descriptor)?;
    }
    descriptor.validate()?;
    let raw = descriptor.to_bytes();
    let signed = SignedDescriptor {
        signatures: vec![key.sign(&signing_message(&raw))],
        raw,
        keyring: options.keyring.clone(),
    };

    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    progress.start("pack", plan.total_bytes());
    let mut files = Vec::new();
    let mut bytes = 0;
    for part in 1..=descriptor.parts {
        // A whole bundle is OUT; parts are OUT.001, OUT.002, ...
        let path = if options.split.is_some() {
            PathBuf::from(format!("{}.{part:03}", out.display()))
        } else {
            out.to_owned()
        };
        let marker = options.split.is_some().then_some(part);
        bytes += write_part(
            plan,
            &descriptor,
            &signed,
            &oci_index,
            secs,
            marker,
            &path,
            &dir,
            progress,
        )?;
        files.push(path);
    }
    progress.finish();
    Ok(PackReport {
        path: out.to_owned(),
        files,
        bytes,
        blob_bytes: descriptor.total_blob_bytes(),
        expected_bytes: descriptor.expected_blobs().map(|b| b.size).sum(),
        expected_blobs: descriptor.expected_blobs().count(),
        blobs: descriptor.blobs.len(),
        images: descriptor.images.len(),
        manifests: descriptor.manifests.len(),
        stack: descriptor.stack.name,
        version: descriptor.stack.version,
        sequence: descriptor.sequence,
        descriptor_digest: Digest::of(&signed.raw),
        patches: vec![],
        warnings: plan.undeclared.clone(),
    })
}

/// Room kept for `tender/signatures.json` (one signature takes ~230 bytes;
/// `tender-shore sign` may add more later).
const SIGNATURES_BOUND: u64 = 4096;

/// Bytes a part spends besides its blobs: a 512-byte header per entry, the
/// metadata entries, padding, and the end marker.
fn part_overhead(descriptor_bytes: u64, index_bytes: u64) -> u64 {
    let entry = |n: u64| 512 + n.div_ceil(512) * 512;
    entry(descriptor_bytes)
        + entry(SIGNATURES_BOUND)
        + entry(64)
        + entry(64)
        + entry(index_bytes)
        + 1024
}

/// Put blobs into parts of at most `size` bytes each, in order. A blob that
/// cannot fit in any part (larger than `size` less the overhead) travels
/// alone in a part of its own, which is then larger than `size`.
fn assign_parts(d: &mut Descriptor, size: u64, index_bytes: u64) -> Result<(), StackError> {
    // Size the descriptor with the widest part numbers it could hold, and
    // room for the chunk records a first count says it needs.
    let mut widest = d.clone();
    widest.parts = tender_bundle::limits::MAX_PARTS;
    widest
        .blobs
        .iter_mut()
        .filter(|b| b.part != 0)
        .for_each(|b| b.part = tender_bundle::limits::MAX_PARTS);
    let base = widest.to_bytes().len() as u64;
    let first = size.saturating_sub(part_overhead(base, index_bytes));
    let chunks: u64 = if first > 1024 {
        d.blobs
            .iter()
            .filter(|b| b.part != 0 && 512 + b.size > first)
            .map(|b| b.size.div_ceil(first - 1024) + 1)
            .sum()
    } else {
        0
    };
    // A chunk record is under 200 bytes; keep twice that.
    let overhead = part_overhead(base + 400 * chunks, index_bytes);
    if size <= overhead + 1024 {
        return Err(StackError::BadSplit { size, overhead: overhead + 1024 });
    }
    let room = size - overhead;
    // The largest chunk that fits a part of its own: header plus data.
    let chunk_size = (room - 512) / 512 * 512;
    let (mut part, mut used) = (1u32, 0u64);
    // Blobs the ship holds already (part 0) travel in no part.
    for b in d.blobs.iter_mut().filter(|b| b.part != 0) {
        let carried = b.patch.as_ref().map_or(b.size, |p| p.size);
        let cost = 512 + carried.div_ceil(512) * 512;
        if used > 0 && used + cost > room {
            part += 1;
            used = 0;
        }
        if cost <= room {
            b.part = part;
            used += cost;
            continue;
        }
        if b.patch.is_some() {
            // Patches travel whole (they are small; this one is not).
            return Err(StackError::BadSplit { size, overhead: cost + overhead });
        }
        // Larger than a part: split into chunks, one part each; the digests
        // are filled in before signing.
        let mut offset = 0;
        while offset < b.size {
            if used > 0 {
                part += 1;
            }
            let len = chunk_size.min(b.size - offset);
            b.chunks.push(tender_bundle::ChunkRecord {
                part,
                offset,
                size: len,
                digest: Digest::of(b""),
            });
            used = 512 + len.div_ceil(512) * 512;
            offset += len;
        }
        b.part = b.chunks[0].part;
    }
    d.parts = part;
    Ok(())
}

/// Hash each chunk of each chunked blob (a pass over those blobs only).
fn digest_chunks(plan: &Plan, d: &mut Descriptor) -> Result<(), StackError> {
    for ((blob, data), record) in plan.blobs.iter().zip(d.blobs.iter_mut()) {
        if record.chunks.is_empty() {
            continue;
        }
        let (mut reader, location) = plan.open(blob, data)?;
        for c in &mut record.chunks {
            let (digest, n) = tender_bundle::copy_hashed(
                &mut reader,
                std::io::sink(),
                c.size,
                &tender_bundle::NoProgress,
            )
            .map_err(|e| match e {
                tender_bundle::CopyError::Read(source)
                | tender_bundle::CopyError::Write(source) => {
                    StackError::Io { path: location.clone(), source }
                }
            })?;
            if n != c.size {
                return Err(tender_bundle::BundleError::SizeMismatch {
                    entry: location.display().to_string(),
                    expected: record.size,
                    actual: c.offset + n,
                }
                .into());
            }
            c.digest = digest;
        }
    }
    Ok(())
}

/// Write one part (or the whole bundle) to `path` via a temporary file in
/// `dir`; returns its size.
#[allow(clippy::too_many_arguments)]
fn write_part(
    plan: &Plan,
    descriptor: &Descriptor,
    signed: &SignedDescriptor,
    oci_index: &[u8],
    mtime: u64,
    part: Option<u32>,
    path: &Path,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<u64, StackError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| StackError::Io { path: p, source }
    };
    let tmp = tempfile::Builder::new().prefix(".tender-pack-").tempfile_in(dir).map_err(io(dir))?;
    let mut w = BundleWriter::new(
        BufWriter::with_capacity(tender_bundle::READ_BUFFER, tmp),
        path,
        signed,
        oci_index,
        mtime,
        part,
    )?;
    let this = part.unwrap_or(1);
    for ((blob, data), record) in plan.blobs.iter().zip(&descriptor.blobs) {
        if !record.chunks.is_empty() {
            for c in record.chunks.iter().filter(|c| c.part == this) {
                let (mut reader, location) = plan.open(blob, data)?;
                // Sources are streams: read up to the chunk (the cost of
                // keeping every source a plain reader).
                std::io::copy(&mut (&mut reader).take(c.offset), &mut std::io::sink())
                    .map_err(|e| StackError::Io { path: location.clone(), source: e })?;
                progress.item(&blob.digest.to_string());
                w.append_chunk(record, c, reader, &location, progress)?;
            }
            continue;
        }
        if record.part != this {
            continue;
        }
        let (reader, location) = plan.open(blob, data)?;
        progress.item(&blob.digest.to_string());
        if record.patch.is_some() {
            w.append_patch(record, reader, &location, progress)?;
        } else {
            w.append_blob(record, reader, &location, progress)?;
        }
    }
    let tmp = w
        .finish()?
        .into_inner()
        .map_err(|e| StackError::Io { path: path.to_owned(), source: e.into_error() })?;
    // tempfile creates 0600; a bundle is for others to read (sticks, servers).
    tmp.as_file().set_permissions(fs::Permissions::from_mode(0o644)).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    let bytes = tmp.as_file().metadata().map_err(io(path))?.len();
    tmp.persist(path).map_err(|e| StackError::Io { path: path.to_owned(), source: e.error })?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(bytes)
}
