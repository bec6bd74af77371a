//! A signed bundle built in memory from a descriptor's few fields, for the
//! libraries' own integration tests (`store/tests`, `deploy/tests`): no
//! stack file, no images, no process.

use std::path::PathBuf;

use tender_bundle::{
    BlobRecord, BlobRef, BundleWriter, Descriptor, Digest, FORMAT, ManifestFile, NoProgress,
    SignedDescriptor, StackId, oci_archive_index, signing_message,
};
use tender_keys::SigningKey;

/// A signed bundle of `stack` `version` (`sequence`) carrying `manifests`
/// (path, YAML) and the opaque `blobs`.
pub fn bundle(
    key: &SigningKey,
    id: (&str, &str, u64),
    manifests: &[(&str, &str)],
    blobs: &[&[u8]],
) -> Vec<u8> {
    bundle_packed_at(key, id, "2026-11-01T00:00:00Z", manifests, blobs)
}

/// [`bundle`], packed at `created` (the same release packed twice).
pub fn bundle_packed_at(
    key: &SigningKey,
    (stack, version, sequence): (&str, &str, u64),
    created: &str,
    manifests: &[(&str, &str)],
    blobs: &[&[u8]],
) -> Vec<u8> {
    let record = |bytes: &[u8], mt: &str| BlobRecord {
        digest: Digest::of(bytes),
        size: bytes.len() as u64,
        media_type: mt.into(),
        part: 1,
        chunks: vec![],
        patch: None,
    };
    let mut carried: Vec<(BlobRecord, &[u8])> = manifests
        .iter()
        .map(|(_, yaml)| (record(yaml.as_bytes(), "application/yaml"), yaml.as_bytes()))
        .collect();
    carried.extend(blobs.iter().map(|b| (record(b, "application/octet-stream"), *b)));
    let index = oci_archive_index(&[]);
    let d = Descriptor {
        format: FORMAT.into(),
        stack: StackId {
            name: stack.to_string().try_into().unwrap(),
            version: version.to_string().try_into().unwrap(),
        },
        sequence,
        created: created.into(),
        manifests: manifests
            .iter()
            .map(|(path, yaml)| ManifestFile {
                path: (*path).into(),
                digest: Digest::of(yaml.as_bytes()),
                size: yaml.len() as u64,
            })
            .collect(),
        images: vec![],
        oci_index: BlobRef { digest: Digest::of(&index), size: index.len() as u64 },
        blobs: carried.iter().map(|(r, _)| r.clone()).collect(),
        parts: 1,
        bases: vec![],
        expires: None,
        settings: vec![],
    };
    let raw = d.to_bytes();
    let signed =
        SignedDescriptor { signatures: vec![key.sign(&signing_message(&raw))], raw, keyring: None };
    let mem = PathBuf::from("mem");
    let mut w = BundleWriter::new(Vec::new(), &mem, &signed, &index, 0, None).unwrap();
    for (r, bytes) in &carried {
        w.append_blob(r, *bytes, &mem, &NoProgress).unwrap();
    }
    w.finish().unwrap()
}
