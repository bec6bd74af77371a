//! A bundle published to an OCI registry (`docs/links.md`): one OCI image
//! manifest whose config is the signed descriptor, whose first layer is the
//! signatures, and whose other layers are the blobs the bundle carries.

use crate::limits::{MAX_DESCRIPTOR_BYTES, MAX_SIGNATURES_BYTES};
use crate::{BundleError, Digest};

/// `artifactType` of a published bundle.
pub const ARTIFACT_TYPE: &str = "application/vnd.tender.bundle.v1";
/// Media type of the artifact's config: the signed descriptor.
pub const DESCRIPTOR_MEDIA_TYPE: &str = "application/vnd.tender.descriptor.v1+json";
/// Media type of the artifact's first layer: the signatures.
pub const SIGNATURES_MEDIA_TYPE: &str = "application/vnd.tender.signatures.v1+json";
/// Media type of the optional keyring layer.
pub const KEYRING_MEDIA_TYPE: &str = "application/vnd.tender.keyring.v1+json";
/// Media type under which the bundle's blobs are listed. Their real types
/// are in the signed descriptor; a neutral type keeps registries from
/// checking an image manifest listed as a layer against their manifests.
pub const BLOB_MEDIA_TYPE: &str = "application/octet-stream";
/// Largest artifact manifest accepted (100,000 blobs of ~150 bytes each).
pub const MAX_ARTIFACT_BYTES: usize = 16 << 20;

/// What a pull needs from the artifact manifest: where the descriptor and
/// the signatures are (both still to be checked against these digests, and
/// the descriptor against its signatures).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactRefs {
    /// The descriptor blob.
    pub descriptor: Digest,
    /// Its size (at most the descriptor limit).
    pub descriptor_size: u64,
    /// The signatures blob.
    pub signatures: Digest,
    /// Its size (at most the signatures limit).
    pub signatures_size: u64,
    /// The keyring the bundle carries, if any: (digest, size).
    pub keyring: Option<(Digest, u64)>,
}

/// Read an artifact manifest (untrusted bytes from a registry).
pub fn parse_artifact(bytes: &[u8]) -> Result<ArtifactRefs, BundleError> {
    let bad = |reason: String| BundleError::BadDescriptor(format!("artifact manifest: {reason}"));
    if bytes.len() > MAX_ARTIFACT_BYTES {
        return Err(bad(format!("larger than {MAX_ARTIFACT_BYTES} bytes")));
    }
    let m: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if m["config"]["mediaType"] != DESCRIPTOR_MEDIA_TYPE {
        return Err(bad(format!(
            "not a tender bundle (a {} whose config is {}, not {DESCRIPTOR_MEDIA_TYPE})",
            m["mediaType"].as_str().unwrap_or("manifest"),
            m["config"]["mediaType"]
        )));
    }
    let desc =
        |v: &serde_json::Value, mt: &str, limit: u64| -> Result<(Digest, u64), BundleError> {
            if v["mediaType"] != mt {
                return Err(bad(format!(
                    "not a tender bundle: expected {mt}, found {}",
                    v["mediaType"]
                )));
            }
            let size = v["size"].as_u64().ok_or_else(|| bad(format!("{mt} has no size")))?;
            if size > limit {
                return Err(bad(format!("{mt} is {size} bytes, over the limit of {limit}")));
            }
            let d = v["digest"].as_str().ok_or_else(|| bad(format!("{mt} has no digest")))?;
            Ok((d.parse()?, size))
        };
    let (descriptor, descriptor_size) =
        desc(&m["config"], DESCRIPTOR_MEDIA_TYPE, MAX_DESCRIPTOR_BYTES)?;
    let (signatures, signatures_size) =
        desc(&m["layers"][0], SIGNATURES_MEDIA_TYPE, MAX_SIGNATURES_BYTES)?;
    let keyring = match m["layers"].get(1) {
        Some(l) if l["mediaType"] == KEYRING_MEDIA_TYPE => {
            Some(desc(l, KEYRING_MEDIA_TYPE, tender_keys::keyring::MAX_KEYRING_BYTES)?)
        }
        _ => None,
    };
    Ok(ArtifactRefs { descriptor, descriptor_size, signatures, signatures_size, keyring })
}

/// The artifact manifest for a bundle: `descriptor`, `signatures` and
/// `keyring` are those entries' bytes; `blobs` the (digest, size) of every
/// blob carried.
pub fn artifact_manifest(
    descriptor: &crate::Descriptor,
    raw_descriptor: &[u8],
    signatures: &[u8],
    keyring: Option<&[u8]>,
    blobs: &[(Digest, u64)],
) -> Vec<u8> {
    let layer = |mt: &str, d: &Digest, size: u64| serde_json::json!({"mediaType": mt, "digest": d, "size": size});
    let mut layers =
        vec![layer(SIGNATURES_MEDIA_TYPE, &Digest::of(signatures), signatures.len() as u64)];
    if let Some(k) = keyring {
        layers.push(layer(KEYRING_MEDIA_TYPE, &Digest::of(k), k.len() as u64));
    }
    layers.extend(blobs.iter().map(|(dg, size)| layer(BLOB_MEDIA_TYPE, dg, *size)));
    let d = descriptor;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::media::MediaType::ImageManifest,
        "artifactType": ARTIFACT_TYPE,
        "config": layer(DESCRIPTOR_MEDIA_TYPE, &Digest::of(raw_descriptor), raw_descriptor.len() as u64),
        "layers": layers,
        "annotations": {
            "org.opencontainers.image.title": format!("{} {}", d.stack.name, d.stack.version),
            "org.opencontainers.image.created": d.created,
            "io.tender.stack": d.stack.name.as_str(),
            "io.tender.version": d.stack.version.as_str(),
            "io.tender.sequence": d.sequence.to_string(),
        },
    });
    serde_json::to_vec(&manifest).expect("manifest serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let d = crate::descriptor::tests::sample();
        let raw = d.to_bytes();
        let sigs = br#"{"signatures":[]}"#;
        let m = artifact_manifest(&d, &raw, sigs, None, &[(Digest::of(b"x"), 1)]);
        let refs = parse_artifact(&m).unwrap();
        assert_eq!(refs.keyring, None);
        let with = artifact_manifest(&d, &raw, sigs, Some(b"{}"), &[]);
        assert_eq!(parse_artifact(&with).unwrap().keyring, Some((Digest::of(b"{}"), 2)));
        assert_eq!(refs.descriptor, Digest::of(&raw));
        assert_eq!(refs.signatures, Digest::of(sigs));
        let mut v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        v["config"]["size"] = (MAX_DESCRIPTOR_BYTES + 1).into();
        assert!(parse_artifact(&serde_json::to_vec(&v).unwrap()).is_err());
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let e = parse_artifact(index).unwrap_err().to_string();
        assert!(e.contains("not a tender bundle"), "{e}");
        assert!(parse_artifact(b"[[[").is_err());
    }
}
