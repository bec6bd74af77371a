//! The signed stack descriptor: what a bundle claims to carry.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use tender_keys::Signature;

use crate::{BundleError, Digest};

/// The format this crate writes and reads.
pub const FORMAT: &str = "tender-bundle/1";

/// Domain separation for descriptor signatures: a signature over a tender
/// descriptor can never be replayed as a signature over anything else.
pub const SIGNING_CONTEXT: &[u8] = b"tender-bundle/1 descriptor\n";

/// The bytes that are signed: [`SIGNING_CONTEXT`] followed by the descriptor.
pub fn signing_message(descriptor: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + descriptor.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(descriptor);
    m
}

/// A stack name: `[a-z0-9-]+`, at most 63 characters (a Kubernetes label value).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StackName(String);

impl StackName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StackName {
    type Error = BundleError;
    fn try_from(s: String) -> Result<Self, BundleError> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(StackName(s))
        } else {
            Err(BundleError::InvalidName { what: "stack name", value: s })
        }
    }
}

impl std::str::FromStr for StackName {
    type Err = BundleError;
    fn from_str(s: &str) -> Result<Self, BundleError> {
        StackName::try_from(s.to_owned())
    }
}

impl From<StackName> for String {
    fn from(n: StackName) -> String {
        n.0
    }
}

impl fmt::Display for StackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version as the captain sees it: `[A-Za-z0-9._+-]+`, at most 128
/// characters, not starting with a dot (it names a directory in the store).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version(String);

impl Version {
    /// The version.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Version {
    type Error = BundleError;
    fn try_from(s: String) -> Result<Self, BundleError> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && !s.starts_with('.')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
        if ok {
            Ok(Version(s))
        } else {
            Err(BundleError::InvalidName { what: "version", value: s })
        }
    }
}

impl std::str::FromStr for Version {
    type Err = BundleError;
    fn from_str(s: &str) -> Result<Self, BundleError> {
        Version::try_from(s.to_owned())
    }
}

impl From<Version> for String {
    fn from(n: Version) -> String {
        n.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Stack name and version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackId {
    /// The stack's name.
    pub name: StackName,
    /// The version.
    pub version: Version,
}

/// A digest with the size of the bytes it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    /// Digest of the bytes.
    pub digest: Digest,
    /// Their length.
    pub size: u64,
}

/// One blob the bundle carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRecord {
    /// Digest of the bytes.
    pub digest: Digest,
    /// Their length.
    pub size: u64,
    /// The OCI media type, or `application/yaml` for a Kubernetes manifest.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Which media part carries it (1-based; a whole bundle is part 1 of 1).
    /// 0: no part carries it, the ship must hold it already (a delta).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub part: u32,
    /// A blob larger than a media part travels in chunks, each in its own
    /// part with its own signed digest; then `part` is its first chunk's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkRecord>,
    /// An uncompressed layer that travels as a sub-layer patch against a
    /// layer the ship holds (`docs/deltas.md`); the blob itself is rebuilt
    /// aboard and checked against `digest` (its DiffID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<PatchRecord>,
}

impl BlobRecord {
    /// What travels for this blob, by its digest and size: the blob, or
    /// its patch when it is rebuilt aboard (what a link publishes and a
    /// pull fetches).
    pub fn carried_as(&self) -> (&Digest, u64) {
        match &self.patch {
            Some(p) => (&p.digest, p.size),
            None => (&self.digest, self.size),
        }
    }
}

/// How a patched layer travels: `patches/sha256/<digest>` holds zstd
/// frames, one per `segment` bytes of the layer, each decoded with a window
/// of the uncompressed `base` layer as reference prefix: `segment + 2 *
/// margin` bytes from where `windows` starts it, else `margin` either side
/// of the segment (`tender_bundle::patch`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchRecord {
    /// Digest of the patch bytes.
    pub digest: Digest,
    /// Their length.
    pub size: u64,
    /// The layer blob (compressed as it is stored) the ship must hold.
    pub base: Digest,
    /// Its media type (how to decompress it).
    #[serde(rename = "baseMediaType")]
    pub base_media_type: String,
    /// Its uncompressed length.
    #[serde(rename = "baseSize")]
    pub base_size: u64,
    /// Bytes of the layer each frame rebuilds (the last may be fewer).
    pub segment: u64,
    /// How far either side of a segment (or of where the segment's bytes
    /// were in the base) its base window reaches.
    pub margin: u64,
    /// Compressed length of each frame, in order.
    pub frames: Vec<u64>,
    /// Window starts: where in the base each frame's window starts, when
    /// the shore placed them to follow content that moved; absent: a
    /// margin before each segment (see `tender_bundle::patch`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<u64>,
}

impl PatchRecord {
    /// Segment and margin.
    pub fn geometry(&self) -> crate::patch::Geometry {
        crate::patch::Geometry { segment: self.segment, margin: self.margin }
    }

    /// Checks that it has a geometry within the limits, one frame per
    /// segment of a layer of `size` bytes, none empty, adding up to its
    /// size, and window starts that fit them (see
    /// [`crate::patch::Geometry::check_starts`]). Says which rule failed.
    fn check(&self, size: u64) -> Result<(), String> {
        let g = self.geometry();
        if !g.is_valid() {
            return Err(format!(
                "segment {} and margin {} out of bounds (a segment of 1 byte to 128 MiB, a margin of at most 128 MiB and 4 segments)",
                self.segment, self.margin
            ));
        }
        if self.frames.len() as u64 != g.frames(size) {
            return Err(format!(
                "{} frames for a layer of {} segments",
                self.frames.len(),
                g.frames(size)
            ));
        }
        if self.frames.contains(&0) {
            return Err("a frame of 0 bytes".into());
        }
        if self.frames.iter().try_fold(0u64, |a, f| a.checked_add(*f)) != Some(self.size) {
            return Err(format!("its frames do not add up to the patch's {} bytes", self.size));
        }
        g.check_starts(&self.windows, self.frames.len(), self.base_size, size)
    }
}

/// A piece of a blob split across media parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkRecord {
    /// The part carrying it.
    pub part: u32,
    /// Where it starts in the blob.
    pub offset: u64,
    /// Its length.
    pub size: u64,
    /// Digest of its bytes.
    pub digest: Digest,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// A Kubernetes manifest file, carried byte for byte as a blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// The path relative to the stack file, `/`-separated.
    pub path: String,
    /// Digest of the file.
    pub digest: Digest,
    /// Its length.
    pub size: u64,
}

/// One platform of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformManifest {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The image manifest for that platform.
    pub manifest: Digest,
    /// The manifest's config blob.
    pub config: Digest,
}

/// An image the stack names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    /// The reference exactly as the manifests (or the stack file) write it.
    pub reference: String,
    /// What the bundle carries: an index (possibly reduced) or a manifest.
    pub digest: Digest,
    /// Its media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// The digest at the source. Differs from `digest` when the index was
    /// reduced to the requested platforms.
    #[serde(rename = "sourceDigest")]
    pub source_digest: Digest,
    /// Per-platform manifests.
    pub platforms: Vec<PlatformManifest>,
}

/// The signed description of one stack version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    /// Always [`FORMAT`].
    pub format: String,
    /// Which stack and version.
    pub stack: StackId,
    /// Monotonic per stack: a ship refuses a lower one (rollback protection).
    pub sequence: u64,
    /// When the bundle was packed, RFC 3339 UTC.
    pub created: String,
    /// The Kubernetes manifests.
    pub manifests: Vec<ManifestFile>,
    /// The images.
    pub images: Vec<ImageRecord>,
    /// The archive's `index.json`.
    #[serde(rename = "ociIndex")]
    pub oci_index: BlobRef,
    /// Every blob, each once, in the order they stand in the bundle.
    pub blobs: Vec<BlobRecord>,
    /// How many media parts carry the blobs (each part repeats this
    /// descriptor and carries the blobs whose `part` is its number).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub parts: u32,
    /// For a delta: the versions it was made against, so a ship that lacks
    /// an expected blob can be told what to import first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<BaseRef>,
    /// After this time (RFC 3339 UTC) the bundle is stale: ships warn, and
    /// refuse it only when told to require fresh bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Settings each ship fills in (`${NAME}` in manifest strings); see
    /// [`crate::settings`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<crate::settings::Setting>,
}

/// A version a delta was made against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseRef {
    /// Stack name.
    pub stack: StackName,
    /// Version.
    pub version: Version,
    /// Sequence.
    pub sequence: u64,
}

impl fmt::Display for BaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} (sequence {})", self.stack, self.version, self.sequence)
    }
}

#[derive(Deserialize)]
struct FormatProbe {
    format: String,
}

impl Descriptor {
    /// Parse and validate descriptor bytes (already checked against
    /// [`crate::limits::MAX_DESCRIPTOR_BYTES`] by the reader).
    pub fn parse(bytes: &[u8]) -> Result<Descriptor, BundleError> {
        // Check the format first, so a newer bundle gets a clear message rather
        // than an unknown-field error.
        let probe: FormatProbe =
            serde_json::from_slice(bytes).map_err(|e| BundleError::BadDescriptor(e.to_string()))?;
        if probe.format != FORMAT {
            return Err(BundleError::UnsupportedFormat(probe.format.chars().take(64).collect()));
        }
        let d: Descriptor =
            serde_json::from_slice(bytes).map_err(|e| BundleError::BadDescriptor(e.to_string()))?;
        d.validate()?;
        Ok(d)
    }

    /// The canonical bytes this crate writes (and signs).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a descriptor always serializes")
    }

    /// Internal consistency: unique blobs, and everything named is carried.
    pub fn validate(&self) -> Result<(), BundleError> {
        let bad = |m: String| Err(BundleError::BadDescriptor(m));
        if self.blobs.len() > crate::limits::MAX_BLOBS {
            return bad(format!(
                "{} blobs, more than {}",
                self.blobs.len(),
                crate::limits::MAX_BLOBS
            ));
        }
        // Counted before any pattern is compiled.
        if self.settings.len() > crate::limits::MAX_SETTINGS {
            return bad(format!(
                "{} settings, more than {}",
                self.settings.len(),
                crate::limits::MAX_SETTINGS
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &self.settings {
            if !names.insert(&s.name) {
                return bad(format!("setting {} is declared twice", s.name));
            }
            if let Err(e) = s.check() {
                return bad(format!("setting {e}"));
            }
        }
        if let Some(e) = &self.expires
            && humantime::parse_rfc3339(e).is_err()
        {
            return bad(format!("expires {e:?} is not an RFC 3339 UTC time"));
        }
        if self.parts == 0 || self.parts > crate::limits::MAX_PARTS {
            return bad(format!(
                "{} parts, expected 1 to {}",
                self.parts,
                crate::limits::MAX_PARTS
            ));
        }
        let mut seen = BTreeSet::new();
        let mut carried = BTreeSet::new();
        for b in &self.blobs {
            if b.part > self.parts {
                return bad(format!("blob {} is in part {} of {}", b.digest, b.part, self.parts));
            }
            if !seen.insert(&b.digest) {
                return bad(format!("blob {} listed twice", b.digest));
            }
            // What travels is named (and, pulled, stored while it arrives) by
            // its own digest: two blobs travelling under one would share it.
            if !carried.insert(b.carried_as().0) {
                return bad(format!(
                    "blob {} travels as {}, which another blob travels as too",
                    b.digest,
                    b.carried_as().0
                ));
            }
            if let Some(p) = &b.patch {
                use crate::patch::{Compression, layer_kind};
                let plain = matches!(layer_kind(&b.media_type), Some((Compression::None, _)));
                if !plain
                    || layer_kind(&p.base_media_type).is_none()
                    || !b.chunks.is_empty()
                    || b.part == 0
                {
                    return bad(format!(
                        "blob {}: a patch must rebuild an uncompressed layer from a layer and travel whole",
                        b.digest
                    ));
                }
                if let Err(why) = p.check(b.size) {
                    return bad(format!("blob {}: its patch: {why}", b.digest));
                }
            }
            if !b.chunks.is_empty() {
                let mut at = 0u64;
                for c in &b.chunks {
                    if c.offset != at || c.size == 0 || c.part == 0 || c.part > self.parts {
                        return bad(format!(
                            "blob {}: chunk at {} does not follow on",
                            b.digest, c.offset
                        ));
                    }
                    at += c.size;
                }
                if at != b.size || b.part != b.chunks[0].part {
                    return bad(format!(
                        "blob {}: chunks cover {at} of {} bytes",
                        b.digest, b.size
                    ));
                }
            }
        }
        let sizes: BTreeMap<&Digest, u64> =
            self.blobs.iter().map(|b| (&b.digest, b.size)).collect();
        let carried = |d: &Digest, size: Option<u64>, what: &str| match sizes.get(d) {
            None => Err(BundleError::BadDescriptor(format!("{what} {d} is not among the blobs"))),
            Some(s) if size.is_some_and(|z| z != *s) => Err(BundleError::BadDescriptor(format!(
                "{what} {d}: size {} but blob size {s}",
                size.unwrap_or(0)
            ))),
            Some(_) => Ok(()),
        };
        for m in &self.manifests {
            crate::entry::check_relative_path(&m.path)?;
            carried(&m.digest, Some(m.size), &format!("manifest file {}", m.path))?;
        }
        for i in &self.images {
            carried(&i.digest, Some(i.size), &format!("image {}", i.reference))?;
            if i.platforms.is_empty() {
                return bad(format!("image {} has no platform", i.reference));
            }
            for p in &i.platforms {
                carried(
                    &p.manifest,
                    None,
                    &format!("image {} {} manifest", i.reference, p.platform),
                )?;
                carried(&p.config, None, &format!("image {} {} config", i.reference, p.platform))?;
            }
        }
        Ok(())
    }

    /// Total bytes of all blobs.
    pub fn total_blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }

    /// The expiry, if any, as a time.
    pub fn expiry(&self) -> Option<std::time::SystemTime> {
        self.expires.as_deref().and_then(|e| humantime::parse_rfc3339(e).ok())
    }

    /// Whether `other` describes the same release as this one, however
    /// it travels: the same stack, version, sequence, manifests, images,
    /// settings and blobs. A whole bundle, its delta, and its split parts
    /// differ only in how blobs travel (parts, chunks, patches, bases) and
    /// when they were packed.
    pub fn same_release(&self, other: &Descriptor) -> bool {
        fn content(d: &Descriptor) -> Vec<(&Digest, u64, &str)> {
            let mut blobs: Vec<_> =
                d.blobs.iter().map(|b| (&b.digest, b.size, b.media_type.as_str())).collect();
            blobs.sort();
            blobs
        }
        self.stack == other.stack
            && self.sequence == other.sequence
            && self.manifests == other.manifests
            && self.images == other.images
            && self.settings == other.settings
            && self.oci_index == other.oci_index
            && content(self) == content(other)
    }

    /// Blobs no part carries: a delta expects the ship to hold them.
    pub fn expected_blobs(&self) -> impl Iterator<Item = &BlobRecord> {
        self.part_blobs(0)
    }

    /// Layers the ship must hold for the patches to rebuild (not blobs of
    /// this version).
    pub fn patch_bases(&self) -> impl Iterator<Item = &Digest> {
        self.blobs.iter().filter_map(|b| b.patch.as_ref().map(|p| &p.base))
    }

    /// The whole blobs media part `part` carries (not chunked ones).
    pub fn part_blobs(&self, part: u32) -> impl Iterator<Item = &BlobRecord> {
        self.blobs.iter().filter(move |b| b.part == part && b.chunks.is_empty())
    }

    /// The chunks media part `part` carries, with their blobs.
    pub fn part_chunks(&self, part: u32) -> impl Iterator<Item = (&BlobRecord, &ChunkRecord)> {
        self.blobs
            .iter()
            .flat_map(move |b| b.chunks.iter().filter(move |c| c.part == part).map(move |c| (b, c)))
    }
}

/// The signatures entry: `{"signatures": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    /// One per signing key.
    pub signatures: Vec<Signature>,
}

impl Signatures {
    /// Parse the signatures entry (bounded by the caller).
    pub fn parse(bytes: &[u8]) -> Result<Signatures, BundleError> {
        serde_json::from_slice(bytes)
            .map_err(|e| BundleError::BadDescriptor(format!("tender/signatures.json: {e}")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Descriptor {
        let blob = |s: &[u8], mt: &str| BlobRecord {
            digest: Digest::of(s),
            size: s.len() as u64,
            media_type: mt.into(),
            part: 1,
            chunks: vec![],
            patch: None,
        };
        let man = blob(b"kind: Pod", "application/yaml");
        let idx = blob(b"index", "application/vnd.oci.image.index.v1+json");
        let m = blob(b"manifest", "application/vnd.oci.image.manifest.v1+json");
        let c = blob(b"config", "application/vnd.oci.image.config.v1+json");
        Descriptor {
            format: FORMAT.into(),
            stack: StackId {
                name: StackName::try_from("awareness".to_string()).unwrap(),
                version: Version::try_from("1.1.0".to_string()).unwrap(),
            },
            sequence: 7,
            created: "2026-01-01T00:00:00Z".into(),
            manifests: vec![ManifestFile {
                path: "stack/a.yaml".into(),
                digest: man.digest.clone(),
                size: man.size,
            }],
            images: vec![ImageRecord {
                reference: "r.example/a:1".into(),
                digest: idx.digest.clone(),
                media_type: idx.media_type.clone(),
                size: idx.size,
                source_digest: idx.digest.clone(),
                platforms: vec![PlatformManifest {
                    platform: "linux/amd64".into(),
                    manifest: m.digest.clone(),
                    config: c.digest.clone(),
                }],
            }],
            oci_index: BlobRef { digest: Digest::of(b"{}"), size: 2 },
            blobs: vec![man, idx, m, c],
            parts: 1,
            bases: vec![],
            expires: None,
            settings: vec![],
        }
    }

    #[test]
    fn round_trip_and_validation() {
        let d = sample();
        assert_eq!(Descriptor::parse(&d.to_bytes()).unwrap(), d);

        let mut dup = d.clone();
        dup.blobs.push(dup.blobs[0].clone());
        assert!(dup.validate().is_err());

        let mut missing = d.clone();
        missing.blobs.remove(3);
        assert!(missing.validate().unwrap_err().to_string().contains("config"));

        let mut traversal = d.clone();
        traversal.manifests[0].path = "../x.yaml".into();
        assert!(traversal.validate().is_err());

        // Two layers travelling as one patch (one partial file aboard, one
        // entry name): refused; each with its own patch: fine.
        let patched = |layer: &[u8], patch: &[u8]| BlobRecord {
            digest: Digest::of(layer),
            size: layer.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            part: 1,
            chunks: vec![],
            patch: Some(PatchRecord {
                digest: Digest::of(patch),
                size: patch.len() as u64,
                base: Digest::of(b"base"),
                base_media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                base_size: 4,
                segment: crate::patch::SEGMENT,
                margin: crate::patch::MARGIN,
                frames: vec![patch.len() as u64],
                windows: vec![],
            }),
        };
        let mut two = d.clone();
        two.blobs.push(patched(b"layer one", b"patch one"));
        two.blobs.push(patched(b"layer two", b"patch two"));
        two.validate().unwrap();
        // Windows: one per frame, in order, within the base; else refused.
        for (windows, ok) in
            [(vec![0], true), (vec![4], true), (vec![5], false), (vec![0, 0], false)]
        {
            let mut placed = d.clone();
            let mut b = patched(b"layer one", b"patch one");
            b.patch.as_mut().unwrap().windows = windows.clone();
            placed.blobs.push(b);
            assert_eq!(placed.validate().is_ok(), ok, "{windows:?}");
        }
        let mut shared = d.clone();
        shared.blobs.push(patched(b"layer one", b"one patch"));
        shared.blobs.push(patched(b"layer two", b"one patch"));
        let e = shared.validate().unwrap_err().to_string();
        assert!(e.contains("another blob travels as too"), "{e}");
        // A patch with the digest of another blob: refused too.
        let mut clash = d.clone();
        clash.blobs.push(patched(b"layer one", b"kind: Pod"));
        assert!(clash.validate().is_err());
    }

    #[test]
    fn names_and_formats() {
        assert!(StackName::try_from("Awareness".to_string()).is_err());
        assert!(Version::try_from("../1".to_string()).is_err());
        let mut other = serde_json::to_value(sample()).unwrap();
        other["format"] = "tender-bundle/9".into();
        let e = Descriptor::parse(&serde_json::to_vec(&other).unwrap()).unwrap_err();
        assert!(matches!(e, BundleError::UnsupportedFormat(_)));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(Descriptor::parse(deep.as_bytes()).is_err());
    }
}
