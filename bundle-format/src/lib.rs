//! The tender bundle: one tar file that is both a signed tender stack and a
//! valid `oci-archive` (an OCI image layout in a tar).
//!
//! Entry order (see `docs/bundle-format.md`):
//! 1. `tender/descriptor.json`, the [`Descriptor`];
//! 2. `tender/signatures.json`, its [`Signatures`];
//! 3. `oci-layout` and `index.json`;
//! 4. `blobs/sha256/<hex>`, each blob once, in descriptor order.
//!
//! A reader verifies the signatures before it reads a byte of anything else,
//! and every blob against its digest while it streams.
#![deny(missing_docs)]

use std::io;
use std::path::PathBuf;

pub mod artifact;
mod descriptor;
mod detached;
mod digest;
mod durable;
mod entry;
pub mod gunzip;
mod hashing;
mod header;
pub mod index;
pub mod inventory;
mod kind;
pub mod limits;
pub mod media;
pub mod patch;
mod progress;
mod reader;
pub mod receipt;
pub mod settings;
mod writer;

pub use descriptor::{
    BaseRef, BlobRecord, BlobRef, ChunkRecord, Descriptor, FORMAT, ImageRecord, ManifestFile,
    PatchRecord, PlatformManifest, SIGNING_CONTEXT, Signatures, StackId, StackName, Version,
    signing_message,
};
pub use detached::{detached_sig_path, parse_detached, read_detached};
pub use digest::Digest;
pub use durable::{Writeback, start_writeback, write_replacing};
pub use entry::{EntryName, OCI_LAYOUT_CONTENT, check_relative_path};
pub use hashing::{CopyError, READ_BUFFER, copy_hashed};
pub use header::EntryHeader;
pub use kind::ErrorKind;
pub use progress::{NoProgress, Progress};
pub use reader::{
    Accept, ReadSummary, Sink, VerifiedDescriptor, VerifyOnly, read_bundle, read_bundle_with,
    read_descriptor_bytes,
};
pub use writer::{BundleWriter, SignedDescriptor, oci_archive_index};

/// Media type under which Kubernetes manifests travel.
pub const YAML_MEDIA_TYPE: &str = "application/yaml";

/// Everything that can be wrong with a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not `sha256:` and 64 lowercase hex characters.
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    /// A stack name or version that breaks its rule.
    #[error("invalid {what} {value:?}")]
    InvalidName {
        /// Which kind of name.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// A path that could escape the directory it is meant for.
    #[error("unsafe path {0:?}: must be relative, without `..`, `.` or empty components")]
    UnsafePath(String),
    /// A tar entry whose name is not part of the format (or not where the
    /// descriptor allows it).
    #[error("unexpected entry {entry:?} at byte {offset}: not a name a tender bundle holds there")]
    UnexpectedEntry {
        /// The entry's path.
        entry: String,
        /// Offset of its header.
        offset: u64,
    },
    /// A tar entry that is not a regular file.
    #[error(
        "entry {entry:?} at byte {offset} is a {kind}; a bundle holds only regular files (type flag '0')"
    )]
    EntryType {
        /// The entry's path (its header's name field).
        entry: String,
        /// Offset of its header.
        offset: u64,
        /// What it is (directory, pax header, symlink, device...).
        kind: String,
    },
    /// A tar header in a form the writer does not write (see `header.rs`).
    #[error("tar header of entry {entry:?} at byte {offset}: {reason}")]
    Header {
        /// The entry's path (its header's name field).
        entry: String,
        /// Offset of the header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A metadata entry whose content is not exactly what the format says.
    #[error("entry {entry} at byte {offset}: {reason}")]
    BadEntry {
        /// The entry.
        entry: String,
        /// Offset of its header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A detached signatures file that is not a regular file.
    #[error("{}: a {kind}, not a regular file; a detached signatures file must be one", path.display())]
    SignaturesNotAFile {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: String,
    },
    /// A detached signatures file that does not parse.
    #[error("{}: not a tender signatures file: {reason}", path.display())]
    BadSignatures {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An entry is not where the format puts it.
    #[error("expected {expected} at byte {offset}, found {found:?}")]
    OutOfOrder {
        /// What the format wants there.
        expected: &'static str,
        /// What was there.
        found: String,
        /// Offset of the entry's header.
        offset: u64,
    },
    /// An entry larger than the format allows.
    #[error("{entry} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The entry.
        entry: String,
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The descriptor or signatures are not what the format says.
    #[error("invalid descriptor: {0}")]
    BadDescriptor(String),
    /// A ship's receipt that cannot be read or does not hold together.
    #[error("invalid receipt: {0}")]
    BadReceipt(String),
    /// A descriptor of a format this version does not know.
    #[error("unsupported bundle format {0:?} (this tender reads {FORMAT})")]
    UnsupportedFormat(String),
    /// Signature check failed.
    #[error("signature check failed")]
    Signature(#[from] tender_keys::KeyError),
    /// Bytes do not hash to the digest that names them.
    #[error("{entry}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Which entry or file.
        entry: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// Bytes do not have the size the descriptor gives.
    #[error("{entry}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// Which entry or file.
        entry: String,
        /// Expected size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// The bundle ended inside an entry.
    #[error("bundle truncated inside {entry}: {read} of {expected} bytes")]
    Truncated {
        /// The entry being read.
        entry: String,
        /// Bytes read.
        read: u64,
        /// Bytes the entry should have.
        expected: u64,
    },
    /// A blob the descriptor does not list.
    #[error("blob {0} is not listed in the signed descriptor")]
    UnlistedBlob(Digest),
    /// A blob in a part other than the one the descriptor assigns it to.
    #[error("blob {digest} stands in part {part}, but the descriptor puts it in part {listed}")]
    WrongPart {
        /// The blob.
        digest: Digest,
        /// The part being read.
        part: u32,
        /// The part the descriptor names.
        listed: u32,
    },
    /// The same entry twice.
    #[error("entry {0} appears twice")]
    DuplicateEntry(String),
    /// The bundle ended before every listed blob.
    #[error("bundle ends with {missing} listed blob(s) missing (first: {first}); truncated?")]
    Incomplete {
        /// How many are missing.
        missing: usize,
        /// One of them.
        first: Digest,
    },
    /// A sub-layer patch that does not rebuild its layer.
    #[error("patch for layer {blob}: {reason}")]
    Patch {
        /// The layer (its DiffID).
        blob: Digest,
        /// What went wrong.
        reason: String,
    },
    /// Reading the bundle failed (includes malformed tar structure).
    #[error("reading {}", path.display())]
    Read {
        /// The bundle.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// Writing the bundle failed.
    #[error("writing {}", path.display())]
    Write {
        /// The output.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

impl BundleError {
    /// What kind of failure this is: a digest mismatch, a failure of this
    /// machine to read or write the file, else a bundle that failed its
    /// checks (its content is wrong or untrusted).
    pub fn kind(&self) -> ErrorKind {
        match self {
            BundleError::DigestMismatch { .. } => ErrorKind::DigestMismatch,
            BundleError::Read { .. } | BundleError::Write { .. } => ErrorKind::Local,
            BundleError::InvalidDigest(_)
            | BundleError::InvalidName { .. }
            | BundleError::UnsafePath(_)
            | BundleError::UnexpectedEntry { .. }
            | BundleError::EntryType { .. }
            | BundleError::Header { .. }
            | BundleError::BadEntry { .. }
            | BundleError::SignaturesNotAFile { .. }
            | BundleError::BadSignatures { .. }
            | BundleError::OutOfOrder { .. }
            | BundleError::TooLarge { .. }
            | BundleError::BadDescriptor(_)
            | BundleError::BadReceipt(_)
            | BundleError::UnsupportedFormat(_)
            | BundleError::Signature(_)
            | BundleError::SizeMismatch { .. }
            | BundleError::Truncated { .. }
            | BundleError::UnlistedBlob(_)
            | BundleError::WrongPart { .. }
            | BundleError::DuplicateEntry(_)
            | BundleError::Incomplete { .. }
            | BundleError::Patch { .. } => ErrorKind::Verification,
        }
    }
}

/// An error and its causes, `: `-separated, as anyhow's `{:#}` prints them:
/// each error's message names only its own layer, its cause is its
/// `source`, so each cause appears once.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
