//! Shore side of sub-layer patches (`docs/deltas.md`): for each changed
//! layer whose predecessor the ship holds, a zstd patch of the new layer's
//! uncompressed tar against the old one's; the image's manifests are
//! rewritten to describe that layer uncompressed (its digest is its DiffID).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use serde::Serialize;
use tender_bundle::limits::MAX_JSON_BLOB_BYTES;
use tender_bundle::patch::{Geometry, decompress, layer_kind, make_patch};
use tender_bundle::{BlobRecord, Digest, ImageRecord, NoProgress, PatchRecord, Progress};

use crate::StackError;
use crate::delta::Base;
use crate::image::BlobData;
use crate::pack::Plan;

/// Whether `pack --base` may carry changed layers as sub-layer patches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Patches {
    /// Patch a changed layer whose predecessor the ship holds, where the
    /// patch is smaller than the layer (the default).
    #[default]
    WhereSmaller,
    /// Carry changed layers whole (a layer delta).
    Never,
}

/// What became of one changed layer that had a predecessor.
#[derive(Clone, Debug, Serialize)]
pub struct PatchRow {
    /// The image reference.
    pub image: String,
    /// The new layer (as the source has it).
    pub layer: Digest,
    /// Its size there.
    pub layer_size: u64,
    /// The predecessor the patch is against.
    pub base: Digest,
    /// The patch's size, when one was made.
    pub patch_size: Option<u64>,
    /// Whether the patch travels instead of the layer.
    pub used: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// A changed layer and its predecessor.
struct Candidate {
    image: usize,
    layer: Digest,
    layer_size: u64,
    layer_type: String,
    diff_id: Digest,
    base: Digest,
    base_size: u64,
    base_type: String,
    /// The old image's reference (to read the base from the sources).
    base_reference: String,
}

/// A layer that will travel as a patch.
struct Patched {
    diff_id: Digest,
    size: u64,
    media_type: String,
    record: PatchRecord,
    path: PathBuf,
}

/// The repository of a reference: without tag or digest.
fn repository(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    }
}

fn json(bytes: &[u8], what: &str) -> Result<serde_json::Value, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("{what}: {e}"))
}

fn digest_of(v: &serde_json::Value) -> Option<Digest> {
    v["digest"].as_str()?.parse().ok()
}

impl Plan {
    /// A small blob of the plan (a manifest, index or config), read whole.
    fn read_plan_blob(&self, digest: &Digest) -> Result<Vec<u8>, StackError> {
        let Some((b, data)) = self.blobs.iter().find(|(b, _)| b.digest == *digest) else {
            return Err(StackError::BadImage {
                reference: digest.to_string(),
                reason: "not in the plan".into(),
            });
        };
        if b.size > MAX_JSON_BLOB_BYTES {
            return Err(StackError::BadImage {
                reference: digest.to_string(),
                reason: "too large for a manifest".into(),
            });
        }
        let (mut r, location) = self.open(b, data)?;
        let mut v = Vec::new();
        r.read_to_end(&mut v).map_err(|e| StackError::Io { path: location, source: e })?;
        if Digest::of(&v) != *digest {
            return Err(tender_bundle::BundleError::DigestMismatch {
                entry: digest.to_string(),
                expected: digest.clone(),
                actual: Digest::of(&v),
            }
            .into());
        }
        Ok(v)
    }

    /// A blob of the base: from a base bundle file, else from the source
    /// covering the base image's reference. Unverified: callers hash it.
    fn open_base(
        &self,
        base: &Base,
        reference: &str,
        digest: &Digest,
        size: u64,
    ) -> Option<Box<dyn Read + Send + '_>> {
        for (path, offsets) in &base.files {
            if let Some(&(offset, len)) = offsets.get(digest) {
                let mut f = File::open(path).ok()?;
                f.seek(SeekFrom::Start(offset)).ok()?;
                return Some(Box::new(std::io::BufReader::with_capacity(1 << 20, f.take(len))));
            }
        }
        let source = self.sources.iter().find(|s| s.covers(reference))?;
        source.open(reference, digest, size).ok().map(|b| b.reader)
    }

    /// Window starts for candidate `c` whose new layer is uncompressed at
    /// `new_tar` (see `crate::windows`); none (a margin either side) where
    /// either layer does not read as a tar. `progress` counts the base's
    /// bytes read.
    fn place_windows(
        &self,
        base: &Base,
        c: &Candidate,
        compression: tender_bundle::patch::Compression,
        new_tar: &std::path::Path,
        progress: &dyn Progress,
    ) -> Vec<u64> {
        let entries = || -> Option<_> {
            let old = self.open_base(base, &c.base_reference, &c.base, c.base_size)?;
            let old = Advancing { inner: old, progress };
            let (old, old_len) =
                crate::windows::tar_entries(decompress(old, compression).ok()?).ok()?;
            let new = std::io::BufReader::with_capacity(1 << 20, File::open(new_tar).ok()?);
            let (new, new_len) = crate::windows::tar_entries(new).ok()?;
            Some((old, old_len, new, new_len))
        };
        match entries() {
            Some((old, old_len, new, new_len)) => {
                crate::windows::place(&old, old_len, &new, new_len, Geometry::DEFAULT)
            }
            None => Vec::new(),
        }
    }

    fn read_base_small(&self, base: &Base, reference: &str, digest: &Digest) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        self.open_base(base, reference, digest, 0)?
            .take(MAX_JSON_BLOB_BYTES + 1)
            .read_to_end(&mut v)
            .ok()?;
        (Digest::of(&v) == *digest).then_some(v)
    }

    /// Changed layers whose predecessor (same repository, platform and
    /// position in the layer list) the ship holds.
    fn patch_candidates(&self, base: &Base) -> Result<Vec<Candidate>, StackError> {
        let mut out: Vec<Candidate> = Vec::new();
        for (ii, image) in self.images.iter().enumerate() {
            // The latest base image of the same repository.
            let Some(old) = base
                .images
                .iter()
                .rev()
                .find(|o| repository(&o.reference) == repository(&image.reference))
            else {
                continue;
            };
            for p in &image.platforms {
                let Some(op) = old.platforms.iter().find(|o| o.platform == p.platform) else {
                    continue;
                };
                let bad = |reason: String| StackError::BadImage {
                    reference: image.reference.clone(),
                    reason,
                };
                let new_m = json(&self.read_plan_blob(&p.manifest)?, "manifest").map_err(bad)?;
                let config = json(&self.read_plan_blob(&p.config)?, "config").map_err(bad)?;
                let Some(old_m) = self.read_base_small(base, &old.reference, &op.manifest) else {
                    continue;
                };
                let Ok(old_m) = json(&old_m, "base manifest") else { continue };
                let (Some(layers), Some(old_layers)) =
                    (new_m["layers"].as_array(), old_m["layers"].as_array())
                else {
                    continue;
                };
                for (i, l) in layers.iter().enumerate() {
                    let (Some(digest), Some(ol)) = (digest_of(l), old_layers.get(i)) else {
                        continue;
                    };
                    let Some(old_digest) = digest_of(ol) else { continue };
                    let (mt, omt) = (
                        l["mediaType"].as_str().unwrap_or(""),
                        ol["mediaType"].as_str().unwrap_or(""),
                    );
                    if base.blobs.contains(&digest)
                        || !base.blobs.contains(&old_digest)
                        || layer_kind(mt).is_none()
                        || layer_kind(omt).is_none()
                        || out.iter().any(|c| c.layer == digest)
                    {
                        continue;
                    }
                    let Some(diff_id) =
                        config["rootfs"]["diff_ids"][i].as_str().and_then(|d| d.parse().ok())
                    else {
                        continue;
                    };
                    out.push(Candidate {
                        image: ii,
                        layer: digest,
                        layer_size: l["size"].as_u64().unwrap_or(0),
                        layer_type: mt.into(),
                        diff_id,
                        base: old_digest,
                        base_size: ol["size"].as_u64().unwrap_or(0),
                        base_type: omt.into(),
                        base_reference: old.reference.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Make the patch for one candidate in `dir`, or say why not.
    fn make_one(
        &self,
        base: &Base,
        c: &Candidate,
        dir: &std::path::Path,
        progress: &dyn Progress,
    ) -> Result<Patched, String> {
        let (old_c, _) = layer_kind(&c.base_type).ok_or("base is not a layer")?;
        let (new_c, plain_type) = layer_kind(&c.layer_type).ok_or("not a layer")?;
        // The new layer, uncompressed to a file and checked against its DiffID.
        let (blob, data) =
            self.blobs.iter().find(|(b, _)| b.digest == c.layer).ok_or("layer not in the plan")?;
        let (r, _) = self.open(blob, data).map_err(|e| e.to_string())?;
        let tar_path = dir.join(format!("{}.tar", c.diff_id.hex()));
        let mut tar = File::create(&tar_path).map_err(|e| e.to_string())?;
        let (diff_id, len) = tender_bundle::copy_hashed(
            decompress(r, new_c).map_err(|e| e.to_string())?,
            &mut tar,
            u64::MAX,
            &NoProgress,
        )
        .map_err(|e| format!("{e:?}"))?;
        drop(tar);
        if diff_id != c.diff_id {
            let _ = std::fs::remove_file(&tar_path);
            return Err(format!(
                "uncompresses to {diff_id}, not the DiffID {} its config gives",
                c.diff_id
            ));
        }
        // Where each segment's window goes: where its files were in the
        // base, from a first read of it (a phase of its own: a large base
        // takes seconds).
        progress.start("windows", c.base_size);
        progress.item(&c.layer.to_string());
        let starts = self.place_windows(base, c, old_c, &tar_path, progress);
        progress.finish();
        // The base streams through, hashed on the way and checked at the end:
        // a patch against bytes that are not the base is thrown away.
        let reader = self
            .open_base(base, &c.base_reference, &c.base, c.base_size)
            .ok_or("the base layer's bytes are not at hand (give the earlier bundle as --base)")?;
        let mut hashing = HashingReader::new(reader);
        let patch_path = dir.join(format!("{}.patch", c.diff_id.hex()));
        // Encoding is the slow part (minutes for a large layer): its own
        // phase, counted in bytes of the new layer encoded.
        progress.start("patch", len);
        progress.item(&c.layer.to_string());
        let made = (|| {
            let old = decompress(&mut hashing, old_c).map_err(|e| format!("base layer: {e}"))?;
            let out = File::create(&patch_path).map_err(|e| e.to_string())?;
            let new = File::open(&tar_path).map_err(|e| e.to_string())?;
            make_patch(
                old,
                Advancing { inner: std::io::BufReader::with_capacity(1 << 20, new), progress },
                std::io::BufWriter::new(out),
                Geometry::DEFAULT,
                &starts,
            )
            .map_err(|e| format!("making the patch: {e}"))
        })();
        // Ended whether or not it worked (a failed stage says where it stopped).
        progress.finish();
        let made = made?;
        let _ = std::fs::remove_file(&tar_path);
        // What the decompressor left unread (a gzip trailer) counts too.
        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| e.to_string())?;
        if hashing.digest() != c.base {
            return Err("the base layer's bytes do not match its digest".into());
        }
        // Misplaced windows would only make the patch larger; windows
        // past the end of the base as checked here would make the record
        // invalid (a source that changed between the two reads).
        if let Err(why) =
            Geometry::DEFAULT.check_starts(&starts, made.frames.len(), made.base_len, made.new_len)
        {
            return Err(format!("the base layer read differently the second time: {why}"));
        }
        let bytes = std::fs::read(&patch_path).map_err(|e| e.to_string())?;
        let record = PatchRecord {
            digest: Digest::of(&bytes),
            size: bytes.len() as u64,
            base: c.base.clone(),
            base_media_type: c.base_type.clone(),
            base_size: made.base_len,
            segment: Geometry::DEFAULT.segment,
            margin: Geometry::DEFAULT.margin,
            frames: made.frames,
            windows: starts,
        };
        Ok(Patched { diff_id, size: len, media_type: plain_type, record, path: patch_path })
    }

    /// Carry changed layers as patches where the base holds a predecessor
    /// and the patch is smaller; rewrite the manifests and indexes of the
    /// images concerned. Returns what became of each candidate.
    pub fn apply_patches(
        &mut self,
        base: &Base,
        policy: Patches,
        progress: &dyn Progress,
    ) -> Result<Vec<PatchRow>, StackError> {
        if policy == Patches::Never {
            return Ok(vec![]);
        }
        let candidates = self.patch_candidates(base)?;
        if candidates.is_empty() {
            return Ok(vec![]);
        }
        let dir = tempfile::Builder::new()
            .prefix(".tender-patches-")
            .tempdir()
            .map_err(|e| StackError::Io { path: std::env::temp_dir(), source: e })?;
        let mut rows = Vec::new();
        let mut patched: HashMap<Digest, Patched> = HashMap::new();
        for c in &candidates {
            let mut row = PatchRow {
                image: self.images[c.image].reference.clone(),
                layer: c.layer.clone(),
                layer_size: c.layer_size,
                base: c.base.clone(),
                patch_size: None,
                used: false,
                reason: None,
            };
            match self.make_one(base, c, dir.path(), progress) {
                Ok(p) if p.record.size < c.layer_size => {
                    row.patch_size = Some(p.record.size);
                    row.used = true;
                    patched.insert(c.layer.clone(), p);
                }
                Ok(p) => {
                    row.patch_size = Some(p.record.size);
                    row.reason = Some("the patch is not smaller than the layer".into());
                }
                Err(reason) => row.reason = Some(reason),
            }
            rows.push(row);
        }
        if patched.is_empty() {
            return Ok(rows);
        }
        self.rewrite(&patched)?;
        // Patched layers first: a patch that does not rebuild its layer stops
        // an import before anything of the images is written.
        let mut front: Vec<(BlobRecord, BlobData)> = patched
            .values()
            .map(|p| {
                (
                    BlobRecord {
                        digest: p.diff_id.clone(),
                        size: p.size,
                        media_type: p.media_type.clone(),
                        part: 1,
                        chunks: vec![],
                        patch: Some(p.record.clone()),
                    },
                    BlobData::File(p.path.clone()),
                )
            })
            .collect();
        front.sort_by(|a, b| a.0.digest.cmp(&b.0.digest));
        front.append(&mut self.blobs);
        self.blobs = front;
        self.scratch = Some(dir);
        Ok(rows)
    }

    /// Point every manifest that names a patched layer at its uncompressed
    /// form, and every index at the rewritten manifests.
    fn rewrite(&mut self, patched: &HashMap<Digest, Patched>) -> Result<(), StackError> {
        let mut replaced: HashMap<Digest, (Digest, u64)> = HashMap::new();
        let mut added: Vec<(BlobRecord, BlobData)> = Vec::new();
        let mut images: Vec<ImageRecord> = self.images.clone();
        for image in &mut images {
            let bad = |reason: String| StackError::BadImage {
                reference: image.reference.clone(),
                reason,
            };
            let mut changed = false;
            for p in &mut image.platforms {
                if let Some((d, _)) = replaced.get(&p.manifest) {
                    p.manifest = d.clone();
                    changed = true;
                    continue;
                }
                let bytes = self.read_plan_blob(&p.manifest)?;
                let mut m = json(&bytes, "manifest").map_err(bad)?;
                let mut touched = false;
                for l in m["layers"].as_array_mut().into_iter().flatten() {
                    if let Some(pl) = digest_of(l).and_then(|d| patched.get(&d)) {
                        l["mediaType"] = pl.media_type.clone().into();
                        l["digest"] = pl.diff_id.to_string().into();
                        l["size"] = pl.size.into();
                        touched = true;
                    }
                }
                if !touched {
                    continue;
                }
                let new = serde_json::to_vec(&m).expect("manifest serializes");
                let nd = Digest::of(&new);
                let media_type = self
                    .blobs
                    .iter()
                    .find(|(b, _)| b.digest == p.manifest)
                    .map(|(b, _)| b.media_type.clone())
                    .unwrap_or_default();
                replaced.insert(p.manifest.clone(), (nd.clone(), new.len() as u64));
                added.push((
                    BlobRecord {
                        digest: nd.clone(),
                        size: new.len() as u64,
                        media_type,
                        part: 1,
                        chunks: vec![],
                        patch: None,
                    },
                    BlobData::Memory(new),
                ));
                p.manifest = nd;
                changed = true;
            }
            if !changed {
                continue;
            }
            if let Some((d, size)) = replaced.get(&image.digest) {
                // The image is a single manifest.
                image.digest = d.clone();
                image.size = *size;
                continue;
            }
            let bytes = self.read_plan_blob(&image.digest)?;
            let mut index = json(&bytes, "index").map_err(bad)?;
            for m in index["manifests"].as_array_mut().into_iter().flatten() {
                if let Some((d, size)) = digest_of(m).and_then(|d| replaced.get(&d)) {
                    m["digest"] = d.to_string().into();
                    m["size"] = (*size).into();
                }
            }
            let new = serde_json::to_vec(&index).expect("index serializes");
            let nd = Digest::of(&new);
            let len = new.len() as u64;
            replaced.insert(image.digest.clone(), (nd.clone(), len));
            added.push((
                BlobRecord {
                    digest: nd.clone(),
                    size: new.len() as u64,
                    media_type: image.media_type.clone(),
                    part: 1,
                    chunks: vec![],
                    patch: None,
                },
                BlobData::Memory(new),
            ));
            image.digest = nd;
            image.size = len;
        }
        // Blobs no longer named: the replaced layers, manifests and indexes
        // (every image naming them was rewritten).
        let gone: HashSet<&Digest> = patched.keys().chain(replaced.keys()).collect();
        self.blobs.retain(|(b, _)| !gone.contains(&b.digest));
        let mut seen: HashSet<Digest> = self.blobs.iter().map(|(b, _)| b.digest.clone()).collect();
        added.retain(|(b, _)| seen.insert(b.digest.clone()));
        self.blobs.extend(added);
        self.images = images;
        Ok(())
    }
}

/// Hashes what passes through.
struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader { inner, hasher: <sha2::Sha256 as sha2::Digest>::new() }
    }
    fn digest(self) -> Digest {
        Digest::from_hasher(self.hasher)
    }
}

/// A reader that reports what passes through it as progress.
struct Advancing<'p, R> {
    inner: R,
    progress: &'p dyn Progress,
}

impl<R: Read> Read for Advancing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories() {
        assert_eq!(repository("r.example:5000/fleet/a:1.0.0"), "r.example:5000/fleet/a");
        assert_eq!(repository("r.example/fleet/a"), "r.example/fleet/a");
        assert_eq!(repository(&format!("r.example/a:1@sha256:{}", "0".repeat(64))), "r.example/a");
    }
}
