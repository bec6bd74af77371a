//! Aboard, when the captain asks: load a stored stack version's images into
//! the ship's registry, rewrite its manifests to pin them there by digest,
//! apply them to the cluster, and record the outcome. Nothing here fetches
//! from outside the ship.
#![deny(missing_docs)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_yaml::Value;
use tender_bundle::{Descriptor, Digest, Progress};
use tender_registry::{PushReport, Registry, RegistryError, Transport};
use tender_stack::k8s;
use tender_store::{Outcome, Store, StoreError};

pub mod cluster;
pub mod serve;

pub use cluster::{ClusterReport, FIELD_MANAGER, ObjectRef, STACK_LABEL};

/// Errors of load and apply.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The version is not complete in the store.
    #[error(
        "{stack} {version} is not complete: {} blob(s) missing, first {first}; import the rest first",
        missing
    )]
    Incomplete {
        /// Stack.
        stack: String,
        /// Version.
        version: String,
        /// How many blobs are missing.
        missing: usize,
        /// One of them.
        first: Digest,
    },
    /// A stored manifest that cannot be used.
    #[error("manifest {path}: {reason}")]
    BadManifest {
        /// Its path in the stack.
        path: String,
        /// Why.
        reason: String,
    },
    /// An object without the fields apply needs.
    #[error("cannot apply {reason}")]
    BadObject {
        /// What is missing.
        reason: String,
    },
    /// The kubeconfig cannot be used.
    #[error("kubeconfig {}: {reason}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The API server refused an object.
    #[error("applying {object}: the API server answered: {answer}")]
    Cluster {
        /// The object.
        object: String,
        /// The answer.
        answer: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the network runtime: {0}")]
    Runtime(std::io::Error),
    /// `serve` cannot listen.
    #[error("cannot serve on {listen}: {reason}")]
    Serve {
        /// The address.
        listen: String,
        /// Why.
        reason: String,
    },
}

/// Where the ship's registry is.
#[derive(Clone, Debug)]
pub struct RegistryTarget {
    /// `host:port`, e.g. `localhost:32000`.
    pub host: String,
    /// Plain HTTP or TLS.
    pub transport: Transport,
}

/// A version rendered for the ship: references pinned into the ship's registry.
#[derive(Clone, Debug, Serialize)]
pub struct Rendered {
    /// (reference as written, reference in the ship's registry by digest).
    pub pins: Vec<(String, String)>,
    /// The objects, rewritten, in manifest order.
    #[serde(skip)]
    pub objects: Vec<Value>,
}

impl Rendered {
    /// The objects as one multi-document YAML text.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for o in &self.objects {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(o).expect("YAML values serialize"));
        }
        out
    }
}

/// Check every blob of `d` is in the store.
pub fn require_complete(store: &Store, d: &Descriptor) -> Result<(), DeployError> {
    let missing = store.missing_blobs(d);
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(DeployError::Incomplete {
            stack: d.stack.name.to_string(),
            version: d.stack.version.to_string(),
            missing: missing.len(),
            first: first.clone(),
        }),
    }
}

/// The version's manifests, with every image the descriptor carries pinned
/// by digest into `registry`.
pub fn render(store: &Store, d: &Descriptor, registry: &str) -> Result<Rendered, DeployError> {
    let mut pins = Vec::new();
    for i in &d.images {
        let (repo, _) = tender_registry::repository_and_tag(&i.reference)?;
        pins.push((i.reference.clone(), format!("{registry}/{repo}@{}", i.digest)));
    }
    let mut objects = objects(store, d)?;
    for o in &mut objects {
        k8s::rewrite_images(o, &|r| {
            pins.iter().find(|(from, _)| from == r).map(|(_, to)| to.clone())
        });
    }
    Ok(Rendered { pins, objects })
}

/// The objects of a version's manifests, as stored.
fn objects(store: &Store, d: &Descriptor) -> Result<Vec<Value>, DeployError> {
    let mut objects = Vec::new();
    for m in &d.manifests {
        let path = store.blob_path(&m.digest);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| StoreError::Io { path: path.clone(), source: e })?;
        objects.extend(
            k8s::objects_in_yaml(&text)
                .map_err(|reason| DeployError::BadManifest { path: m.path.clone(), reason })?,
        );
    }
    Ok(objects)
}

/// Push every image of `d` from the store into the ship's registry.
pub fn load(
    store: &Store,
    d: &Descriptor,
    target: &RegistryTarget,
    auth: tender_registry::RegistryAuth,
    progress: &dyn Progress,
) -> Result<PushReport, DeployError> {
    require_complete(store, d)?;
    let registry = Registry::new(&target.host, &target.transport, auth)?;
    let mut report = PushReport::default();
    for image in &d.images {
        progress.item(&image.reference);
        registry.push_image(image, &|dg| store.blob_path(dg), progress, &mut report)?;
    }
    Ok(report)
}

/// Objects the previous applied version had that `rendered` no longer has.
pub fn to_prune(
    store: &Store,
    d: &Descriptor,
    rendered: &Rendered,
) -> Result<Vec<ObjectRef>, DeployError> {
    let history = store.history(&d.stack.name)?;
    let Some(current) = history.current else { return Ok(vec![]) };
    let previous = match store.version(&d.stack.name, Some(&current.version)) {
        Ok((_, prev)) => prev,
        // The applied version was removed from the store: nothing to compare.
        Err(StoreError::NoSuchVersion { .. }) => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    let ids = |objs: &[Value]| -> Result<BTreeSet<ObjectRef>, DeployError> {
        objs.iter()
            .map(|o| ObjectRef::of(o).map_err(|reason| DeployError::BadObject { reason }))
            .collect()
    };
    let now = ids(&rendered.objects)?;
    let before = ids(&objects(store, &previous)?)?;
    Ok(before.difference(&now).cloned().collect())
}

/// What an apply did.
#[derive(Clone, Debug, Serialize)]
pub struct ApplyReport {
    /// Stack.
    pub stack: String,
    /// Version.
    pub version: String,
    /// The push.
    pub push: PushReport,
    /// The cluster step (None for `load`).
    pub cluster: Option<ClusterReport>,
}

/// Load and (unless `kubeconfig` is None: `load` only) apply `d`, recording
/// the outcome, failures included.
pub fn deploy(
    store: &Store,
    d: &Descriptor,
    digest: &Digest,
    target: &RegistryTarget,
    auth: tender_registry::RegistryAuth,
    kubeconfig: Option<&Path>,
    progress: &dyn Progress,
) -> Result<ApplyReport, DeployError> {
    let run = || -> Result<ApplyReport, DeployError> {
        let push = load(store, d, target, auth, progress)?;
        let cluster = match kubeconfig {
            None => None,
            Some(kc) => {
                let rendered = render(store, d, &target.host)?;
                let prune = to_prune(store, d, &rendered)?;
                Some(cluster::apply(kc, d.stack.name.as_str(), &rendered.objects, &prune)?)
            }
        };
        Ok(ApplyReport {
            stack: d.stack.name.to_string(),
            version: d.stack.version.to_string(),
            push,
            cluster,
        })
    };
    match run() {
        Ok(r) => {
            let outcome = if kubeconfig.is_some() { Outcome::Applied } else { Outcome::Loaded };
            store.record(d, digest, outcome, None)?;
            Ok(r)
        }
        Err(e) => {
            // The failure is part of the history; `rollback` still works.
            let _ = store.record(d, digest, Outcome::Failed, Some(e.to_string()));
            Err(e)
        }
    }
}
