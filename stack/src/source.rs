//! Where images come from. [`ImageSource`] is the seam: an OCI layout
//! directory today, a registry later.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::PathBuf;

use tender_bundle::media::MediaType;
use tender_bundle::{Digest, Progress, limits::MAX_JSON_BLOB_BYTES};

use crate::StackError;

/// The top object an image reference names.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
}

/// A readable blob and where it is (for errors).
pub struct BlobReader {
    /// The bytes (not yet verified: the caller hashes as it reads).
    pub reader: Box<dyn Read + Send>,
    /// Where they come from.
    pub location: PathBuf,
}

/// A place images are read from.
pub trait ImageSource: Send + Sync {
    /// Whether this source supplies `reference`.
    fn covers(&self, reference: &str) -> bool;
    /// Resolve a reference to its top manifest or index.
    fn resolve(&self, reference: &str) -> Result<Resolved, StackError>;
    /// Open a blob of the image that `reference` names.
    fn open(&self, reference: &str, digest: &Digest, size: u64) -> Result<BlobReader, StackError>;

    /// Read a manifest or index whole, verified. Registries serve these from
    /// another endpoint than blobs; a layout keeps both as blobs.
    fn read_manifest(
        &self,
        reference: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<Vec<u8>, StackError> {
        self.read_small(reference, digest, size)
    }

    /// Fetch ahead, concurrently, the blobs that packing will open:
    /// (reference, digest, size). Sources on disk have nothing to do.
    fn prefetch(
        &self,
        _blobs: &[(String, Digest, u64)],
        _progress: &dyn Progress,
    ) -> Result<(), StackError> {
        Ok(())
    }

    /// Read a small JSON blob whole, verified against its digest and size.
    fn read_small(
        &self,
        reference: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<Vec<u8>, StackError> {
        if size > MAX_JSON_BLOB_BYTES {
            return Err(StackError::BadImage {
                reference: reference.into(),
                reason: format!(
                    "{digest} is {size} bytes, more than {MAX_JSON_BLOB_BYTES} for a manifest"
                ),
            });
        }
        let b = self.open(reference, digest, size)?;
        let mut buf = Vec::with_capacity(size as usize);
        b.reader
            .take(size + 1)
            .read_to_end(&mut buf)
            .map_err(|e| StackError::Io { path: b.location.clone(), source: e })?;
        let actual = Digest::of(&buf);
        if buf.len() as u64 != size || actual != *digest {
            return Err(tender_bundle::BundleError::DigestMismatch {
                entry: b.location.display().to_string(),
                expected: digest.clone(),
                actual,
            }
            .into());
        }
        Ok(buf)
    }
}

/// References under `prefix` come from OCI image layouts in `dir`:
/// `dir/<repository path after prefix>`.
#[derive(Clone, Debug)]
pub struct OciLayoutSource {
    prefix: String,
    dir: PathBuf,
}

/// A reference split after its source's prefix.
struct Parts<'a> {
    repo: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

fn split(rest: &str) -> Parts<'_> {
    let (name, digest) = match rest.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (rest, None),
    };
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => {
            Parts { repo: &name[..i], tag: Some(&name[i + 1..]), digest }
        }
        _ => Parts { repo: name, tag: None, digest },
    }
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

impl OciLayoutSource {
    /// A source for `prefix` reading layouts below `dir`.
    pub fn new(prefix: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        OciLayoutSource { prefix: prefix.into(), dir: dir.into() }
    }

    fn layout_dir(&self, reference: &str) -> Result<PathBuf, StackError> {
        let rest = &reference[self.prefix.len().min(reference.len())..];
        let p = split(rest);
        tender_bundle::check_relative_path(p.repo).map_err(|_| StackError::BadImage {
            reference: reference.into(),
            reason: format!("repository path {:?} is not a safe relative path", p.repo),
        })?;
        Ok(self.dir.join(p.repo))
    }
}

impl ImageSource for OciLayoutSource {
    fn covers(&self, reference: &str) -> bool {
        reference.starts_with(&self.prefix)
    }

    fn resolve(&self, reference: &str) -> Result<Resolved, StackError> {
        let layout = self.layout_dir(reference)?;
        let parts = split(&reference[self.prefix.len()..]);
        let index_path = layout.join("index.json");
        let meta = fs::metadata(&index_path)
            .map_err(|e| StackError::Io { path: index_path.clone(), source: e })?;
        if meta.len() > MAX_JSON_BLOB_BYTES {
            return Err(StackError::BadImage {
                reference: reference.into(),
                reason: "index.json too large".into(),
            });
        }
        let bytes = fs::read(&index_path)
            .map_err(|e| StackError::Io { path: index_path.clone(), source: e })?;
        let index: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| StackError::BadImage {
                reference: reference.into(),
                reason: format!("{}: {e}", index_path.display()),
            })?;
        let entries = index["manifests"].as_array().cloned().unwrap_or_default();
        let to_resolved = |e: &serde_json::Value| -> Result<Resolved, StackError> {
            let bad = |reason: String| StackError::BadImage { reference: reference.into(), reason };
            let digest: Digest = e["digest"]
                .as_str()
                .unwrap_or("")
                .parse()
                .map_err(|e: tender_bundle::BundleError| bad(e.to_string()))?;
            let size = e["size"]
                .as_u64()
                .ok_or_else(|| bad(format!("{}: entry without size", index_path.display())))?;
            let media_type = e["mediaType"]
                .as_str()
                .map_or_else(|| MediaType::ImageManifest.to_string(), String::from);
            Ok(Resolved { digest, media_type, size })
        };
        // A digest pins the image, whatever the tag says.
        if let Some(d) = parts.digest {
            let want: Digest = d.parse().map_err(|e: tender_bundle::BundleError| {
                StackError::BadImage { reference: reference.into(), reason: e.to_string() }
            })?;
            if let Some(e) = entries.iter().find(|e| e["digest"].as_str() == Some(want.as_str())) {
                return to_resolved(e);
            }
            let path = layout.join("blobs/sha256").join(want.hex());
            let size = fs::metadata(&path).map_err(|_| StackError::ImageNotFound {
                reference: reference.into(),
                layout: layout.clone(),
            })?;
            let bytes = self.read_small(reference, &want, size.len())?;
            let media_type = crate::image::sniff_media_type(&bytes);
            return Ok(Resolved { digest: want, media_type, size: size.len() });
        }
        let tag = parts.tag.unwrap_or("latest");
        let found = entries.iter().find(|e| {
            let name = e["annotations"][REF_NAME].as_str();
            name == Some(tag) || name == Some(reference)
        });
        match found {
            Some(e) => to_resolved(e),
            None => Err(StackError::ImageNotFound { reference: reference.into(), layout }),
        }
    }

    fn open(&self, reference: &str, digest: &Digest, _size: u64) -> Result<BlobReader, StackError> {
        let path = self.layout_dir(reference)?.join("blobs/sha256").join(digest.hex());
        let f = File::open(&path).map_err(|e| StackError::Io { path: path.clone(), source: e })?;
        Ok(BlobReader {
            reader: Box::new(BufReader::with_capacity(tender_bundle::READ_BUFFER, f)),
            location: path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_references() {
        let p = split("fleet/a:1.0");
        assert_eq!((p.repo, p.tag, p.digest), ("fleet/a", Some("1.0"), None));
        let p = split("fleet/a@sha256:ab");
        assert_eq!((p.repo, p.tag, p.digest), ("fleet/a", None, Some("sha256:ab")));
        let p = split("fleet/a:1@sha256:ab");
        assert_eq!((p.repo, p.tag, p.digest), ("fleet/a", Some("1"), Some("sha256:ab")));
        let p = split("host:5000/a");
        assert_eq!((p.repo, p.tag), ("host:5000/a", None));
    }
}
