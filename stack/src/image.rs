//! Resolving one image into the blobs a bundle must carry, keeping only the
//! requested platforms.

use oci_spec::image::{ImageIndex, ImageManifest};
use tender_bundle::{BlobRecord, Digest, ImageRecord, PlatformManifest};

use crate::StackError;
use crate::platform::Platform;
use crate::source::{ImageSource, Resolved};

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker schema 2 manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_LIST
}

fn is_manifest(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
}

/// The media type of a manifest or index found only by digest.
pub fn sniff_media_type(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    match v["mediaType"].as_str() {
        Some(mt) => mt.to_owned(),
        None if v.get("manifests").is_some() => OCI_INDEX.into(),
        None => OCI_MANIFEST.into(),
    }
}

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

/// Resolve `reference` from `source`, keeping `platforms`. `image` is the
/// image's index in the plan (recorded in [`BlobData::Source`]).
pub fn resolve_image(
    source: &dyn ImageSource,
    reference: &str,
    platforms: &[Platform],
    image: usize,
) -> Result<ResolvedImage, StackError> {
    let bad = |reason: String| StackError::BadImage { reference: reference.into(), reason };
    let Resolved { digest, media_type, size } = source.resolve(reference)?;
    let top = source.read_manifest(reference, &digest, size)?;
    // The bytes' own mediaType is authoritative: a layout's index.json lists
    // Docker types under their OCI equivalents.
    let declared: Option<String> = serde_json::from_slice::<serde_json::Value>(&top)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(String::from));
    let media_type = declared.unwrap_or(media_type);
    let from_source = BlobData::Source { image };
    let mut blobs = Vec::new();
    let mut plats = Vec::new();

    let add_manifest = |m_digest: &Digest,
                        m_type: &str,
                        m_size: u64,
                        want: Option<&Platform>,
                        blobs: &mut Vec<(BlobRecord, BlobData)>|
     -> Result<PlatformManifest, StackError> {
        let bytes = source.read_manifest(reference, m_digest, m_size)?;
        let m = ImageManifest::from_reader(&bytes[..])
            .map_err(|e| bad(format!("manifest {m_digest}: {e}")))?;
        let config = m.config();
        let cdigest: Digest = config
            .digest()
            .to_string()
            .parse()
            .map_err(|e: tender_bundle::BundleError| bad(e.to_string()))?;
        let platform = match want {
            Some(p) => p.clone(),
            None => {
                // A bare manifest: its platform is in its config.
                let cbytes = source.read_small(reference, &cdigest, config.size())?;
                let c: serde_json::Value = serde_json::from_slice(&cbytes)
                    .map_err(|e| bad(format!("config {cdigest}: {e}")))?;
                Platform {
                    os: c["os"].as_str().unwrap_or("").into(),
                    arch: c["architecture"].as_str().unwrap_or("").into(),
                    variant: c["variant"].as_str().map(String::from),
                }
            }
        };
        blobs.push((
            BlobRecord {
                digest: m_digest.clone(),
                size: m_size,
                media_type: m_type.into(),
                part: 1,
                chunks: vec![],
                patch: None,
            },
            from_source.clone(),
        ));
        blobs.push((
            BlobRecord {
                digest: cdigest.clone(),
                size: config.size(),
                media_type: config.media_type().to_string(),
                part: 1,
                chunks: vec![],
                patch: None,
            },
            from_source.clone(),
        ));
        for l in m.layers() {
            let ld: Digest = l
                .digest()
                .to_string()
                .parse()
                .map_err(|e: tender_bundle::BundleError| bad(e.to_string()))?;
            blobs.push((
                BlobRecord {
                    digest: ld,
                    size: l.size(),
                    media_type: l.media_type().to_string(),
                    part: 1,
                    chunks: vec![],
                    patch: None,
                },
                from_source.clone(),
            ));
        }
        Ok(PlatformManifest {
            platform: platform.to_string(),
            manifest: m_digest.clone(),
            config: cdigest,
        })
    };

    let (carried_digest, carried_size) = if is_index(&media_type) {
        let index =
            ImageIndex::from_reader(&top[..]).map_err(|e| bad(format!("index {digest}: {e}")))?;
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
            if platforms.iter().any(|want| want.accepts(&p))
                && is_manifest(child.media_type().as_ref())
            {
                keep.push((i, p));
            }
        }
        if keep.is_empty() {
            return Err(StackError::NoPlatform {
                reference: reference.into(),
                requested: platforms.iter().map(|p| p.to_string()).collect(),
                available,
            });
        }
        let mut child_blobs = Vec::new();
        for (i, p) in &keep {
            let child = &index.manifests()[*i];
            let cd: Digest = child
                .digest()
                .to_string()
                .parse()
                .map_err(|e: tender_bundle::BundleError| bad(e.to_string()))?;
            plats.push(add_manifest(
                &cd,
                child.media_type().as_ref(),
                child.size(),
                Some(p),
                &mut child_blobs,
            )?);
        }
        let (top_record, top_data) = if keep.len() == index.manifests().len() {
            (
                BlobRecord {
                    digest: digest.clone(),
                    size,
                    media_type: media_type.clone(),
                    part: 1,
                    chunks: vec![],
                    patch: None,
                },
                from_source.clone(),
            )
        } else {
            // Registries refuse an index whose children are missing: carry a
            // reduced one, with every other field as the source wrote it.
            let mut v: serde_json::Value =
                serde_json::from_slice(&top).map_err(|e| bad(e.to_string()))?;
            let kept: Vec<serde_json::Value> =
                keep.iter().map(|(i, _)| v["manifests"][*i].clone()).collect();
            v["manifests"] = serde_json::Value::Array(kept);
            let bytes = serde_json::to_vec(&v).expect("json serializes");
            let rec = BlobRecord {
                digest: Digest::of(&bytes),
                size: bytes.len() as u64,
                media_type: media_type.clone(),
                part: 1,
                chunks: vec![],
                patch: None,
            };
            (rec, BlobData::Memory(bytes))
        };
        let carried = (top_record.digest.clone(), top_record.size);
        blobs.push((top_record, top_data));
        blobs.extend(child_blobs);
        carried
    } else if is_manifest(&media_type) {
        let p = add_manifest(&digest, &media_type, size, None, &mut blobs)?;
        let image_platform = Platform::parse(&p.platform).ok();
        if !image_platform.as_ref().is_some_and(|ip| platforms.iter().any(|w| w.accepts(ip))) {
            return Err(StackError::NoPlatform {
                reference: reference.into(),
                requested: platforms.iter().map(|p| p.to_string()).collect(),
                available: vec![p.platform],
            });
        }
        plats.push(p);
        (digest.clone(), size)
    } else {
        return Err(bad(format!("unsupported media type {media_type:?} for an image")));
    };

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
