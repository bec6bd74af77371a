//! Detached signatures: `tender-shore sign` adds a signature beside a bundle
//! without repacking it, in `FILE.sig` (for a part `NAME.tender.NNN`, one
//! `NAME.tender.sig` for all parts: they share the descriptor). The file is
//! read before any signature is checked, so as untrusted bytes: a regular
//! file (not a symlink, device or fifo, which could be endless), at most
//! [`MAX_SIGNATURES_BYTES`].

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use tender_keys::Signature;

use crate::limits::MAX_SIGNATURES_BYTES;
use crate::{BundleError, Signatures};

/// Where the detached signatures of `bundle` live: `FILE.sig`, or for a part
/// `NAME.tender.NNN`, `NAME.tender.sig`.
pub fn detached_sig_path(bundle: &Path) -> PathBuf {
    let s = bundle.to_string_lossy();
    match s.rsplit_once(".tender.") {
        Some((base, n)) if n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{base}.tender.sig").into()
        }
        _ => format!("{s}.sig").into(),
    }
}

fn kind(t: fs::FileType) -> &'static str {
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

fn check_file(path: &Path, meta: &fs::Metadata) -> Result<(), BundleError> {
    if !meta.file_type().is_file() {
        return Err(BundleError::SignaturesNotAFile {
            path: path.to_owned(),
            kind: kind(meta.file_type()).into(),
        });
    }
    if meta.len() > MAX_SIGNATURES_BYTES {
        return Err(BundleError::TooLarge {
            entry: path.display().to_string(),
            size: meta.len(),
            limit: MAX_SIGNATURES_BYTES,
        });
    }
    Ok(())
}

/// The detached signatures beside `bundle` (none when there is no such
/// file). Refuses a file that is not a regular one (a symlink is refused
/// even to a regular file: a stick's links point anywhere aboard) or is
/// larger than [`MAX_SIGNATURES_BYTES`], and reads at most that many bytes
/// whatever the file claims.
pub fn read_detached(bundle: &Path) -> Result<Vec<Signature>, BundleError> {
    let path = detached_sig_path(bundle);
    let read_err = |source| BundleError::Read { path: path.clone(), source };
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(read_err(e)),
    };
    check_file(&path, &meta)?;
    let file = File::open(&path).map_err(read_err)?;
    // What was opened is judged again: the name may have changed since.
    check_file(&path, &file.metadata().map_err(read_err)?)?;
    let mut bytes = Vec::new();
    // One byte past the bound is enough for parse_detached to refuse it.
    file.take(MAX_SIGNATURES_BYTES + 1).read_to_end(&mut bytes).map_err(read_err)?;
    parse_detached(&bytes, &path)
}

/// Parse the bytes of a detached signatures file (`path` names it in
/// errors): `{"signatures": [...]}`, as in a bundle.
pub fn parse_detached(bytes: &[u8], path: &Path) -> Result<Vec<Signature>, BundleError> {
    if bytes.len() as u64 > MAX_SIGNATURES_BYTES {
        return Err(BundleError::TooLarge {
            entry: path.display().to_string(),
            size: bytes.len() as u64,
            limit: MAX_SIGNATURES_BYTES,
        });
    }
    serde_json::from_slice::<Signatures>(bytes)
        .map(|s| s.signatures)
        .map_err(|e| BundleError::BadSignatures { path: path.to_owned(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sig_paths() {
        assert_eq!(detached_sig_path(Path::new("a/x.tender")), Path::new("a/x.tender.sig"));
        assert_eq!(detached_sig_path(Path::new("a/x.tender.007")), Path::new("a/x.tender.sig"));
        assert_eq!(detached_sig_path(Path::new("x.tender.0071")), Path::new("x.tender.0071.sig"));
    }

    #[test]
    fn refuses_links_specials_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("b.tender");
        assert_eq!(read_detached(&bundle).unwrap(), vec![]);
        let sig = dir.path().join("b.tender.sig");
        std::os::unix::fs::symlink("/dev/zero", &sig).unwrap();
        let e = read_detached(&bundle).unwrap_err();
        assert!(matches!(e, BundleError::SignaturesNotAFile { ref kind, .. } if kind == "symlink"));
        fs::remove_file(&sig).unwrap();
        fs::create_dir(&sig).unwrap();
        assert!(matches!(read_detached(&bundle), Err(BundleError::SignaturesNotAFile { .. })));
        fs::remove_dir(&sig).unwrap();
        File::create(&sig).unwrap().set_len(1 << 40).unwrap();
        assert!(
            matches!(read_detached(&bundle), Err(BundleError::TooLarge { size, .. }) if size == 1 << 40)
        );
        fs::write(&sig, br#"{"signatures": [], "extra": 1}"#).unwrap();
        assert!(matches!(read_detached(&bundle), Err(BundleError::BadSignatures { .. })));
        fs::write(&sig, br#"{"signatures": []}"#).unwrap();
        assert_eq!(read_detached(&bundle).unwrap(), vec![]);
    }
}
