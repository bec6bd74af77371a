//! The shore side of tender: read a stack file, find every image its
//! Kubernetes manifests name, resolve each from an [`ImageSource`](source::ImageSource) keeping
//! the requested platforms, and pack a signed bundle.
#![deny(missing_docs)]

use std::path::PathBuf;

pub mod delta;
pub mod image;
pub use tender_manifests as k8s;
mod pack;
pub mod patch;
pub mod platform;
mod publish;
mod registry_source;
pub mod sequence;
pub mod source;
mod stackfile;
mod windows;

pub use pack::{EstimateRow, PackOptions, PackReport, Plan, pack};
pub use publish::{PublishReport, publish};
pub use registry_source::RegistrySource;
pub use stackfile::{SourceSpec, StackFile};

/// Errors on the shore side.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A file operation failed.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The stack file is not valid.
    #[error("stack file {}: {reason}", path.display())]
    BadStackFile {
        /// The stack file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The stack file names no manifests.
    #[error("stack file {}: names no manifests (`manifests: [stack/*.yaml]`)", path.display())]
    NoManifests {
        /// The stack file.
        path: PathBuf,
    },
    /// A manifest pattern matched no file.
    #[error("stack file {}: manifest pattern {pattern:?} matches no file", stack.display())]
    PatternMatchesNothing {
        /// The stack file.
        stack: PathBuf,
        /// The pattern.
        pattern: String,
    },
    /// A Kubernetes manifest cannot be read.
    #[error("manifest {}: {reason}", path.display())]
    BadManifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A platform that is not `os/arch[/variant]`.
    #[error("invalid platform {0:?}: expected os/arch[/variant], such as linux/arm64")]
    BadPlatform(String),
    /// No source covers a reference.
    #[error(
        "image {reference} (named in {files}): no source supplies it; add a `sources` entry whose prefix covers it"
    )]
    NoSource {
        /// The reference.
        reference: String,
        /// The files that name it.
        files: String,
    },
    /// The source has no such image.
    #[error("image {reference}: not found in OCI layout {}", layout.display())]
    ImageNotFound {
        /// The reference.
        reference: String,
        /// The layout searched.
        layout: PathBuf,
    },
    /// None of the image's platforms was requested.
    #[error("image {reference}: none of its platforms ({}) is among those requested ({})", available.join(", "), requested.join(", "))]
    NoPlatform {
        /// The reference.
        reference: String,
        /// Platforms requested.
        requested: Vec<String>,
        /// Platforms the image has.
        available: Vec<String>,
    },
    /// An image whose manifests cannot be used.
    #[error("image {reference}: {reason}")]
    BadImage {
        /// The reference.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading an image from its registry failed.
    #[error("image {reference}")]
    Registry {
        /// The reference.
        reference: String,
        /// What the registry client met.
        source: tender_registry::RegistryError,
    },
    /// Publishing a bundle to a registry failed.
    #[error("publishing to {target}")]
    Publish {
        /// `REGISTRY/REPO:TAG`.
        target: String,
        /// What the registry client met.
        source: tender_registry::RegistryError,
    },
    /// What was given is not a publishable bundle.
    #[error("{}: {reason}", path.display())]
    NotABundle {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Resolving an image failed; names the files that name it.
    #[error("image named in {files}")]
    Named {
        /// The manifest files (or stack file) naming the image.
        files: String,
        /// What failed.
        #[source]
        source: Box<StackError>,
    },
    /// A `--base` that cannot be used.
    #[error("base {}: {reason}", path.display())]
    BadBase {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `--split` smaller than what a part needs besides its blobs.
    #[error(
        "--split {size} is too small: each part needs {overhead} bytes for its descriptor and tar structure"
    )]
    BadSplit {
        /// The size asked for.
        size: u64,
        /// What a part needs.
        overhead: u64,
    },
    /// The shore's sequence state cannot be used.
    #[error("sequence state {}: {reason}", path.display())]
    BadSequenceState {
        /// The state file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A bundle-format error (including digest mismatches of source blobs).
    #[error(transparent)]
    Bundle(#[from] tender_bundle::BundleError),
    /// A key error.
    #[error(transparent)]
    Key(#[from] tender_keys::KeyError),
}

impl StackError {
    /// What kind of failure this is. A bundle error keeps its own kind; a
    /// key that cannot be used on shore is bad input. An image that cannot
    /// be resolved ([`StackError::Named`]) is bad input on shore even when
    /// its cause failed a check (a source's manifest not matching its
    /// digest): `pack` has always exited 1 for it, and 3 is kept for
    /// bundles and trust; otherwise it is of its cause's kind.
    pub fn kind(&self) -> tender_bundle::ErrorKind {
        use tender_bundle::ErrorKind;
        match self {
            StackError::Named { source, .. } => match source.kind() {
                ErrorKind::Verification | ErrorKind::DigestMismatch => ErrorKind::Invalid,
                kind => kind,
            },
            StackError::Bundle(e) => e.kind(),
            StackError::Registry { source, .. } | StackError::Publish { source, .. } => {
                source.kind()
            }
            StackError::Io { .. } => ErrorKind::Local,
            StackError::ImageNotFound { .. } | StackError::NoPlatform { .. } => ErrorKind::NotFound,
            StackError::BadStackFile { .. }
            | StackError::BadSequenceState { .. }
            | StackError::NoManifests { .. }
            | StackError::PatternMatchesNothing { .. }
            | StackError::BadManifest { .. }
            | StackError::BadPlatform(_)
            | StackError::NoSource { .. }
            | StackError::BadImage { .. }
            | StackError::NotABundle { .. }
            | StackError::BadBase { .. }
            | StackError::BadSplit { .. }
            | StackError::Key(_) => ErrorKind::Invalid,
        }
    }
}
