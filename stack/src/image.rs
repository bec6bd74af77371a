//! Resolving one image into the blobs a bundle must carry, keeping only the
//! requested platforms.

use oci_spec::image::{ImageIndex, ImageManifest};
use tender_bundle::{BlobRecord, Digest, ImageRecord, PlatformManifest};

use crate::StackError;
use crate::platform::Platform;
use crate::source::{ImageSource, Resolved};

pub use tender_bundle::media::sniff as sniff_media_type;
use tender_bundle::media::{is_index, is_manifest};

/// Where the bytes of a blob to pack come from.
#[derive(Clone, Debug)]
pub enum BlobData {
    /// Read from the image's source.
    Source {
        /// Index of the image (in the pack plan) whose source holds it.
        image: usize,
    },
    /// Made by tender (a reduced index).
    Memory(Vec<u8>),
    /// A file on disk (a Kubernetes manifest).
    File(std::path::PathBuf),
}

/// One image, resolved.
#[derive(Debug)]
pub struct ResolvedImage {
    /// What goes in the descriptor.
    pub record: ImageRecord,
    /// Blobs in bundle order (top first, then per platform manifest,
    /// config, layers), with where to read them.
    pub blobs: Vec<(BlobRecord, BlobData)>,
}

/// A blob of part 1, whole (packing assigns parts later).
fn record(digest: Digest, size: u64, media_type: String) -> BlobRecord {
    BlobRecord { digest, size, media_type, part: 1, chunks: vec![], patch: None }
}

/// Reads one image's manifests from its source.
struct Resolver<'a> {
    source: &'a dyn ImageSource,
    reference: &'a str,
    platforms: &'a [Platform],
    from_source: BlobData,
}

impl Resolver<'_> {
    fn bad(&self, reason: String) -> StackError {
        StackError::BadImage { reference: self.reference.into(), reason }
    }

    fn digest(&self, d: &oci_spec::image::Digest) -> Result<Digest, StackError> {
        d.to_string().parse().map_err(|e: tender_bundle::BundleError| self.bad(e.to_string()))
    }

    fn no_platform(&self, available: Vec<String>) -> StackError {
        StackError::NoPlatform {
            reference: self.reference.into(),
            requested: self.platforms.iter().map(|p| p.to_string()).collect(),
            available,
        }
    }

    /// A platform manifest, its config and its layers, pushed onto `blobs`
    /// in that order. `want` is its platform as the index gives it; a bare
    /// manifest's platform is read from its config.
    fn manifest(
        &self,
        (m_digest, m_type, m_size): (&Digest, &str, u64),
        want: Option<&Platform>,
        blobs: &mut Vec<(BlobRecord, BlobData)>,
    ) -> Result<PlatformManifest, StackError> {
        let bytes = self.source.read_manifest(self.reference, m_digest, m_size)?;
        let m = ImageManifest::from_reader(&bytes[..])
            .map_err(|e| self.bad(format!("manifest {m_digest}: {e}")))?;
        let config = m.config();
        let cdigest = self.digest(config.digest())?;
        let platform = match want {
            Some(p) => p.clone(),
            None => {
                let cbytes = self.source.read_small(self.reference, &cdigest, config.size())?;
                let c: serde_json::Value = serde_json::from_slice(&cbytes)
                    .map_err(|e| self.bad(format!("config {cdigest}: {e}")))?;
                Platform {
                    os: c["os"].as_str().unwrap_or("").into(),
                    arch: c["architecture"].as_str().unwrap_or("").into(),
                    variant: c["variant"].as_str().map(String::from),
                }
            }
        };
        let src = || self.from_source.clone();
        blobs.push((record(m_digest.clone(), m_size, m_type.into()), src()));
        blobs
            .push((record(cdigest.clone(), config.size(), config.media_type().to_string()), src()));
        for l in m.layers() {
            blobs.push((
                record(self.digest(l.digest())?, l.size(), l.media_type().to_string()),
                src(),
            ));
        }
        Ok(PlatformManifest {
            platform: platform.to_string(),
            manifest: m_digest.clone(),
            config: cdigest,
        })
    }

    /// An index: the children of the requested platforms, and the index
    /// itself, reduced when some children are left out. Returns the
    /// carried top blob first, then the children's blobs.
    fn index(
        &self,
        top: &[u8],
        (digest, media_type, size): (&Digest, &str, u64),
        plats: &mut Vec<PlatformManifest>,
    ) -> Result<Vec<(BlobRecord, BlobData)>, StackError> {
        let index =
            ImageIndex::from_reader(top).map_err(|e| self.bad(format!("index {digest}: {e}")))?;
        let mut keep = Vec::new();
        let mut available = Vec::new();
        for (i, child) in index.manifests().iter().enumerate() {
            let Some(p) = child.platform() else { continue };
            let p = Platform {
                os: p.os().to_string(),
                arch: p.architecture().to_string(),
                variant: p.variant().clone(),
            };
            available.push(p.to_string());
            if self.platforms.iter().any(|want| want.accepts(&p))
                && is_manifest(child.media_type().as_ref())
            {
                keep.push((i, p));
            }
        }
        if keep.is_empty() {
            return Err(self.no_platform(available));
        }
        let mut child_blobs = Vec::new();
        for (i, p) in &keep {
            let child = &index.manifests()[*i];
            let cd = self.digest(child.digest())?;
            let m = (&cd, child.media_type().as_ref(), child.size());
            plats.push(self.manifest(m, Some(p), &mut child_blobs)?);
        }
        let top_blob = if keep.len() == index.manifests().len() {
            (record(digest.clone(), size, media_type.into()), self.from_source.clone())
        } else {
            // Registries refuse an index whose children are missing: carry a
            // reduced one, with every other field as the source wrote it.
            let mut v: serde_json::Value =
                serde_json::from_slice(top).map_err(|e| self.bad(e.to_string()))?;
            let kept: Vec<serde_json::Value> =
                keep.iter().map(|(i, _)| v["manifests"][*i].clone()).collect();
            v["manifests"] = serde_json::Value::Array(kept);
            let bytes = serde_json::to_vec(&v).expect("json serializes");
            let rec = record(Digest::of(&bytes), bytes.len() as u64, media_type.into());
            (rec, BlobData::Memory(bytes))
        };
        Ok(std::iter::once(top_blob).chain(child_blobs).collect())
    }
}

/// Resolve `reference` from `source`, keeping `platforms`. `image` is the
/// image's index in the plan (recorded in [`BlobData::Source`]).
pub fn resolve_image(
    source: &dyn ImageSource,
    reference: &str,
    platforms: &[Platform],
    image: usize,
) -> Result<ResolvedImage, StackError> {
    let r = Resolver { source, reference, platforms, from_source: BlobData::Source { image } };
    let Resolved { digest, media_type, size } = source.resolve(reference)?;
    let top = source.read_manifest(reference, &digest, size)?;
    // The bytes' own mediaType is authoritative: a layout's index.json lists
    // Docker types under their OCI equivalents.
    let declared: Option<String> = serde_json::from_slice::<serde_json::Value>(&top)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(String::from));
    let media_type = declared.unwrap_or(media_type);
    let mut plats = Vec::new();
    let blobs = if is_index(&media_type) {
        r.index(&top, (&digest, &media_type, size), &mut plats)?
    } else if is_manifest(&media_type) {
        let mut blobs = Vec::new();
        let p = r.manifest((&digest, &media_type, size), None, &mut blobs)?;
        let image_platform = Platform::parse(&p.platform).ok();
        if !image_platform.as_ref().is_some_and(|ip| platforms.iter().any(|w| w.accepts(ip))) {
            return Err(r.no_platform(vec![p.platform]));
        }
        plats.push(p);
        blobs
    } else {
        return Err(r.bad(format!("unsupported media type {media_type:?} for an image")));
    };
    // The top blob carried: the index (perhaps reduced) or the manifest.
    let (carried_digest, carried_size) = (blobs[0].0.digest.clone(), blobs[0].0.size);
    Ok(ResolvedImage {
        record: ImageRecord {
            reference: reference.into(),
            digest: carried_digest,
            media_type,
            size: carried_size,
            source_digest: digest,
            platforms: plats,
        },
        blobs,
    })
}
