//! `publish`: a bundle file pushed to an OCI registry as an artifact
//! (`docs/links.md`): its config is the signed descriptor, its first layer
//! the signatures, then the keyring if any, and the other layers every
//! blob the bundle carries (listed so the registry keeps them). Blobs the
//! registry holds are not uploaded again; those of an image the stack
//! names in the same registry are mounted from its repository.

use std::path::Path;

use oci_spec::image::MediaType;
use serde::Serialize;
use tender_bundle::artifact::artifact_manifest;
use tender_bundle::index::{EntryAt, entry_offsets, read_entry};
use tender_bundle::limits::{MAX_DESCRIPTOR_BYTES, MAX_JSON_BLOB_BYTES, MAX_SIGNATURES_BYTES};
use tender_bundle::{Descriptor, Digest, EntryName, Progress, Signatures};
use tender_keys::Signature;
use tender_keys::keyring::MAX_KEYRING_BYTES;
use tender_registry::{BlobUpload, Registry};

use crate::StackError;

/// What `publish` did.
#[derive(Clone, Debug, Serialize)]
pub struct PublishReport {
    /// Where it went.
    pub reference: String,
    /// Digest of the artifact manifest.
    pub manifest: Digest,
    /// Digest of the descriptor (the bundle version's identity).
    pub descriptor: Digest,
    /// Stack.
    pub stack: String,
    /// Version.
    pub version: String,
    /// Sequence.
    pub sequence: u64,
    /// Blobs uploaded.
    pub blobs_pushed: usize,
    /// Their bytes.
    pub bytes_pushed: u64,
    /// Blobs the registry already held (not uploaded again), in the target
    /// repository or mounted from another.
    pub blobs_present: usize,
    /// Of those, blobs mounted from the repository of an image the stack
    /// names in this same registry.
    pub blobs_mounted: usize,
    /// Their bytes.
    pub bytes_present: u64,
}

/// Where each blob's bytes lie in a bundle file.
struct BundleIndex {
    raw: Vec<u8>,
    keyring: Option<Vec<u8>>,
    signatures: Vec<Signature>,
    descriptor: Descriptor,
    /// (digest, offset of its data, size).
    blobs: Vec<(Digest, u64, u64)>,
}

fn index_bundle(path: &Path) -> Result<BundleIndex, StackError> {
    let not = |reason: String| StackError::NotABundle { path: path.into(), reason };
    let (mut raw, mut sigs, mut keyring) = (None, None, None);
    let mut blobs = Vec::new();
    for at in entry_offsets(path)? {
        match &at.name {
            EntryName::Descriptor => raw = Some(read_entry(path, &at, MAX_DESCRIPTOR_BYTES)?),
            EntryName::Signatures => sigs = Some(read_entry(path, &at, MAX_SIGNATURES_BYTES)?),
            EntryName::Keyring => keyring = Some(read_entry(path, &at, MAX_KEYRING_BYTES)?),
            EntryName::Blob(d) | EntryName::Patch(d) => blobs.push((d.clone(), at.offset, at.size)),
            EntryName::Part | EntryName::Chunk(..) => {
                return Err(not(
                    "this is one part of a split bundle; publish the whole bundle (pack without --split)"
                        .into(),
                ));
            }
            _ => {}
        }
    }
    let raw = raw.ok_or_else(|| not("no tender/descriptor.json".into()))?;
    let sigs = sigs.ok_or_else(|| not("no tender/signatures.json".into()))?;
    let descriptor = Descriptor::parse(&raw)?;
    let signatures = Signatures::parse(&sigs)?.signatures;
    Ok(BundleIndex { raw, keyring, signatures, descriptor, blobs })
}

/// Where in this registry (`host`) a blob of the bundle may already be: the
/// repository of each image the stack names there, for the image's index,
/// manifests, configs and layers (read from the bundle's manifests).
fn mount_sources(
    b: &BundleIndex,
    host: &str,
    target_repo: &str,
    bundle: &Path,
) -> std::collections::HashMap<Digest, String> {
    let mut out = std::collections::HashMap::new();
    let read = |d: &Digest| -> Option<serde_json::Value> {
        let &(_, offset, size) = b.blobs.iter().find(|(x, ..)| x == d)?;
        let at = EntryAt { name: EntryName::Blob(d.clone()), offset, size };
        serde_json::from_slice(&read_entry(bundle, &at, MAX_JSON_BLOB_BYTES).ok()?).ok()
    };
    for image in &b.descriptor.images {
        let Some(rest) = image.reference.strip_prefix(host).and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        let Ok((repo, _)) = tender_registry::repository_and_tag(&format!("{host}/{rest}")) else {
            continue;
        };
        if repo == target_repo {
            continue;
        }
        let mut digests = vec![image.digest.clone()];
        for p in &image.platforms {
            digests.push(p.manifest.clone());
            digests.push(p.config.clone());
            if let Some(m) = read(&p.manifest) {
                digests.extend(
                    m["layers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|l| l["digest"].as_str()?.parse().ok()),
                );
            }
        }
        for d in digests {
            out.entry(d).or_insert_with(|| repo.clone());
        }
    }
    out
}

/// Publish the bundle file `bundle` (with extra detached signatures) as
/// an OCI artifact at `repo:tag` of `registry`.
pub fn publish(
    registry: &Registry,
    bundle: &Path,
    detached: &[Signature],
    repo: &str,
    tag: &str,
    progress: &dyn Progress,
) -> Result<PublishReport, StackError> {
    let not = |reason: String| StackError::NotABundle { path: bundle.into(), reason };
    let mut b = index_bundle(bundle)?;
    b.signatures.extend(detached.iter().cloned());
    let d = &b.descriptor;
    let sources = mount_sources(&b, registry.host(), repo, bundle);
    let mut uploads = Vec::new();
    for blob in d.blobs.iter().filter(|x| x.part != 0) {
        // A patched layer is published as its patch.
        let (digest, listed) = blob.carried_as();
        let Some((_, offset, size)) = b.blobs.iter().find(|(dg, ..)| dg == digest) else {
            return Err(not(format!("blob {digest} is listed but not carried")));
        };
        if *size != listed {
            return Err(not(format!("blob {digest} is {size} bytes, listed as {listed}")));
        }
        uploads.push(BlobUpload {
            digest: digest.clone(),
            path: bundle.to_owned(),
            offset: *offset,
            size: *size,
            mount_from: sources.get(digest).cloned(),
        });
    }
    let sig_bytes = serde_json::to_vec_pretty(&Signatures { signatures: b.signatures.clone() })
        .expect("signatures serialize");
    let descriptor_digest = Digest::of(&b.raw);
    let listed: Vec<(Digest, u64)> = uploads.iter().map(|u| (u.digest.clone(), u.size)).collect();
    let manifest = artifact_manifest(d, &b.raw, &sig_bytes, b.keyring.as_deref(), &listed);
    let manifest_digest = Digest::of(&manifest);
    let mut documents =
        vec![(descriptor_digest.clone(), b.raw.clone()), (Digest::of(&sig_bytes), sig_bytes)];
    documents.extend(b.keyring.as_ref().map(|k| (Digest::of(k), k.clone())));
    let counts = registry
        .push_artifact(
            repo,
            tag,
            documents,
            &uploads,
            (manifest, &MediaType::ImageManifest),
            progress,
        )
        .map_err(|source| StackError::Publish {
            target: format!("{}/{repo}:{tag}", registry.host()),
            source,
        })?;
    Ok(PublishReport {
        reference: format!("{}/{repo}:{tag}", registry.host()),
        manifest: manifest_digest,
        descriptor: descriptor_digest,
        stack: d.stack.name.to_string(),
        version: d.stack.version.to_string(),
        sequence: d.sequence,
        blobs_pushed: counts.pushed,
        bytes_pushed: counts.pushed_bytes,
        blobs_present: counts.present,
        blobs_mounted: counts.mounted,
        bytes_present: counts.present_bytes,
    })
}
