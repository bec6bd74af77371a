//! The image media types tender reads and writes, named through
//! `oci-spec`'s [`MediaType`] and its Docker schema 2 equivalents
//! ([`ToDockerV2S2`]) rather than as string literals. The one Docker type
//! `oci-spec` does not name, the uncompressed layer, is
//! [`DOCKER_LAYER_TAR`].

pub use oci_spec::image::MediaType;
use oci_spec::image::ToDockerV2S2;

/// Docker's uncompressed layer (not named by `oci-spec`).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Whether `mt` is `oci` or its Docker schema 2 equivalent.
fn is_or_docker(mt: &str, oci: MediaType) -> bool {
    mt == oci.as_ref() || oci.to_docker_v2s2().is_ok_and(|d| d == mt)
}

/// An image index (OCI) or manifest list (Docker).
pub fn is_index(mt: &str) -> bool {
    is_or_docker(mt, MediaType::ImageIndex)
}

/// An image manifest (OCI or Docker schema 2).
pub fn is_manifest(mt: &str) -> bool {
    is_or_docker(mt, MediaType::ImageManifest)
}

/// The OCI type of a manifest or index (a Docker type as its OCI
/// equivalent); any other type as it is.
pub fn oci_equivalent(mt: &str) -> MediaType {
    if is_index(mt) {
        MediaType::ImageIndex
    } else if is_manifest(mt) {
        MediaType::ImageManifest
    } else {
        MediaType::from(mt)
    }
}

/// The media type of a manifest or index found only by digest: its own
/// `mediaType`, else an index if it lists manifests, else a manifest.
pub fn sniff(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    match v["mediaType"].as_str() {
        Some(mt) => mt.to_owned(),
        None if v.get("manifests").is_some() => MediaType::ImageIndex.to_string(),
        None => MediaType::ImageManifest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_oci_types_are_told_apart_and_paired() {
        let docker_list = "application/vnd.docker.distribution.manifest.list.v2+json";
        let docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
        assert!(is_index("application/vnd.oci.image.index.v1+json") && is_index(docker_list));
        assert!(is_manifest("application/vnd.oci.image.manifest.v1+json"));
        assert!(is_manifest(docker_manifest) && !is_manifest(docker_list));
        assert_eq!(oci_equivalent(docker_list), MediaType::ImageIndex);
        assert_eq!(oci_equivalent(docker_manifest), MediaType::ImageManifest);
        assert_eq!(oci_equivalent("text/plain"), MediaType::Other("text/plain".into()));
        assert_eq!(sniff(br#"{"manifests":[]}"#), "application/vnd.oci.image.index.v1+json");
        assert_eq!(sniff(b"{}"), "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(sniff(br#"{"mediaType":"x/y"}"#), "x/y");
    }
}
