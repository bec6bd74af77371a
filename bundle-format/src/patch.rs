//! Sub-layer patches (`docs/deltas.md`). A changed layer whose predecessor
//! the ship holds travels as one zstd frame, compressed with the
//! predecessor's uncompressed tar as reference prefix (what `zstd
//! --patch-from` does), with a window long enough to reach back into it.
//! The ship decompresses its copy of the predecessor, decodes the frame
//! against it, and checks the result against the new layer's DiffID.

use std::io::{self, BufReader, Read, Write};

use crate::limits::{MAX_PATCH_BASE_BYTES, MAX_PATCH_WINDOW_LOG};

/// The OCI media type of an uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// The Docker media type of an uncompressed layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// The compression of a layer media type, and the media type of the same
/// layer uncompressed; `None` for what is not a layer.
pub fn layer_kind(media_type: &str) -> Option<(Compression, &'static str)> {
    Some(match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar" => {
            (Compression::None, OCI_LAYER_TAR)
        }
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
            (Compression::Gzip, OCI_LAYER_TAR)
        }
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
            (Compression::Zstd, OCI_LAYER_TAR)
        }
        "application/vnd.docker.image.rootfs.diff.tar" => (Compression::None, DOCKER_LAYER_TAR),
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            (Compression::Gzip, DOCKER_LAYER_TAR)
        }
        _ => return None,
    })
}

/// A reader of `r`'s uncompressed bytes.
pub fn decompress<'a>(r: impl Read + 'a, c: Compression) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(r),
        // Multi-member gzip, as some tools write layers.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(r))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
    })
}

/// Read a layer whole, uncompressed, refusing more than `limit` bytes.
pub fn read_uncompressed(r: impl Read, c: Compression, limit: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    decompress(r, c)?.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("uncompressed layer is larger than {limit} bytes"),
        ));
    }
    Ok(out)
}

/// The window (log2) a patch of a `new_len`-byte layer against a
/// `base_len`-byte base needs, or `None` when it exceeds the limits.
pub fn window_log(base_len: u64, new_len: u64) -> Option<u32> {
    if base_len > MAX_PATCH_BASE_BYTES {
        return None;
    }
    let span = (base_len + new_len).max(1 << 10);
    let log = 64 - (span - 1).leading_zeros();
    (log <= MAX_PATCH_WINDOW_LOG).then_some(log.max(10))
}

/// Write a patch that turns `base` into `new` (`new_len` bytes) to `out`.
pub fn make_patch(base: &[u8], new: impl Read, new_len: u64, out: impl Write) -> io::Result<()> {
    let log = window_log(base.len() as u64, new_len).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "layers too large for a patch")
    })?;
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(out, PATCH_LEVEL, base)?;
    enc.window_log(log)?;
    enc.long_distance_matching(true)?;
    enc.include_checksum(true)?;
    enc.set_pledged_src_size(Some(new_len))?;
    let mut new = new;
    io::copy(&mut new, &mut enc)?;
    enc.finish()?;
    Ok(())
}

/// zstd level for patches: level 3 with long-distance matching finds the
/// unchanged files in the base; level 19 saved a fifth of a 2 KB patch on
/// the fleet fixture and cost 50 times the time.
const PATCH_LEVEL: i32 = 3;

/// A reader of the layer that `patch` rebuilds from `base` (unverified:
/// the caller hashes what it reads and bounds how much).
pub fn apply_patch<'a>(base: &'a [u8], patch: impl Read + 'a) -> io::Result<impl Read + 'a> {
    let mut dec = zstd::stream::read::Decoder::with_ref_prefix(BufReader::new(patch), base)?;
    dec.window_log_max(MAX_PATCH_WINDOW_LOG)?;
    Ok(dec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_rebuilds_the_new_layer_and_is_small() {
        let mut base = Vec::new();
        for i in 0..20_000u32 {
            base.extend_from_slice(format!("line {i} of a file that does not change\n").as_bytes());
        }
        let mut new = base.clone();
        new[500_000..500_010].copy_from_slice(b"CHANGED!!!");
        let mut patch = Vec::new();
        make_patch(&base, &new[..], new.len() as u64, &mut patch).unwrap();
        assert!(patch.len() < 200, "patch of {} bytes", patch.len());
        let mut out = Vec::new();
        apply_patch(&base, &patch[..]).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, new);
        // Against another base it does not rebuild the layer.
        let mut other = base.clone();
        other[100] ^= 1;
        let mut out = Vec::new();
        let r = apply_patch(&other, &patch[..]).and_then(|mut r| r.read_to_end(&mut out));
        assert!(r.is_err() || out != new);
    }

    #[test]
    fn windows_and_kinds() {
        assert_eq!(window_log(1 << 20, 1 << 20), Some(21));
        assert_eq!(window_log(0, 0), Some(10));
        assert_eq!(window_log(MAX_PATCH_BASE_BYTES + 1, 0), None);
        assert_eq!(
            layer_kind("application/vnd.oci.image.layer.v1.tar+gzip"),
            Some((Compression::Gzip, OCI_LAYER_TAR))
        );
        assert_eq!(layer_kind("application/vnd.oci.image.config.v1+json"), None);
    }
}
