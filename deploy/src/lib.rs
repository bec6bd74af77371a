//! Aboard, when the captain asks: load a stored stack version's images into
//! the ship's registry, rewrite its manifests to pin them there by digest,
//! apply them to the cluster, and record the outcome. Nothing here fetches
//! from outside the ship.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_yaml::Value;
use tender_bundle::limits::MAX_KUBERNETES_FILE_BYTES;
use tender_bundle::{Descriptor, Digest, ErrorKind, Progress};
use tender_manifests as k8s;
use tender_registry::{PushReport, Registry, RegistryError, Transport};
use tender_store::{Claim, Outcome, Store, StoreError, VersionRecord};

pub mod cluster;
pub mod containerd;
pub mod health;
mod inventory;
mod receipt;
pub use tender_manifests::order;
mod rollout;
pub mod settings;

pub use inventory::inventory;
pub use receipt::receipt;
pub use rollout::{OnFailure, Rollout, Wait, cluster_health};

pub use cluster::{
    Adopt, Cluster, ClusterReport, ClusterScope, FIELD_MANAGER, ObjectHealth, Plan, RestoreReport,
    STACK_LABEL,
};
pub use containerd::{ContainerdError, ContainerdTarget};
pub use health::Health;
pub use settings::Secrets;
pub use tender_manifests::ObjectRef;

/// Errors of load and apply.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// containerd failed (`--containerd`).
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
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
    /// The API server refused an object, or could not be reached.
    #[error("applying {object}: {answer}")]
    Cluster {
        /// The object.
        object: String,
        /// What the API server answered, or why there was no answer.
        answer: String,
        /// From the answer's status, or `Network` when none came.
        kind: ErrorKind,
    },
    /// A live object labelled for another stack.
    #[error(
        "{object} is labelled {}={owner}: it belongs to stack {owner}; stack {stack} may not apply over it",
        STACK_LABEL
    )]
    OwnedObject {
        /// The object.
        object: String,
        /// The stack named by its label.
        owner: String,
        /// The stack being applied.
        stack: String,
    },
    /// A live object that tender did not create for this stack.
    #[error(
        "{object} exists and tender did not create it for stack {stack} (it lacks the label {}={stack} with field manager {}); refusing to take it over: if it should become part of the stack, pass --adopt {adopt}",
        STACK_LABEL,
        FIELD_MANAGER
    )]
    NotOurs {
        /// The object.
        object: String,
        /// The stack being applied.
        stack: String,
        /// What `--adopt` would name it.
        adopt: Adopt,
    },
    /// `--adopt` naming nothing the version applies (a typo would
    /// otherwise go unnoticed).
    #[error("--adopt {adopt} names no object of stack {stack}'s version")]
    AdoptNothing {
        /// The flag's value.
        adopt: Adopt,
        /// The stack.
        stack: String,
    },
    /// A cluster-scoped object, or one in a shared namespace, whose signers
    /// have no grant for it.
    #[error(
        "{object} is cluster-scoped or in a namespace shared by the cluster (kube-system, kube-public, kube-node-lease, default): the signers of {stack} {version} may apply only namespaced objects in the stack's own namespaces; the root keys can grant more (`tender-shore keyring add-signer ... --cluster-scope`)"
    )]
    ClusterScope {
        /// The object.
        object: String,
        /// Stack.
        stack: String,
        /// Version.
        version: String,
    },
    /// Objects not healthy by the deadline.
    #[error("not healthy after {after}: {}", objects.join("; "))]
    Unhealthy {
        /// The timeout.
        after: String,
        /// Each object not ready, and why.
        objects: Vec<String>,
    },
    /// An object that will not become healthy by waiting.
    #[error("{object} failed: {reason}")]
    Failed {
        /// The object.
        object: String,
        /// Why, as its status says.
        reason: String,
    },
    /// The version failed and the one in force before is back, healthy.
    #[error("{stack} {version} failed and was undone: {restored}")]
    RolledBack {
        /// Stack.
        stack: String,
        /// The version that failed.
        version: String,
        /// What is in force again, and what the undoing did.
        restored: String,
        /// Why the version failed.
        #[source]
        cause: Box<DeployError>,
    },
    /// The version failed, and restoring the one before failed too.
    #[error(
        "{stack} {version} failed ({cause}), and restoring {} failed too: the cluster may hold objects of both; see `tender-ship status {stack} --cluster`, then {}",
        .previous.as_deref().unwrap_or("the state before it"),
        restore_advice(stack, previous.as_deref())
    )]
    RestoreFailed {
        /// Stack.
        stack: String,
        /// The version that failed.
        version: String,
        /// Why it failed (with its causes).
        cause: String,
        /// The version being restored (None: nothing was in force).
        previous: Option<String>,
        /// Why restoring failed.
        #[source]
        restore: Box<DeployError>,
    },
    /// The version failed and was left as it is, as asked.
    #[error(
        "{stack} {version} failed and was left in place for diagnosis (--no-rollback); {in_force}"
    )]
    LeftInPlace {
        /// Stack.
        stack: String,
        /// The version that failed.
        version: String,
        /// What is in force and how to restore it.
        in_force: String,
        /// Why it failed.
        #[source]
        cause: Box<DeployError>,
    },
    /// The version in force is no longer in the store.
    #[error("{0}")]
    VersionGone(String),
    /// A local patch that cannot be used.
    #[error("local patch {patch}: {reason}")]
    BadPatch {
        /// Its name.
        patch: String,
        /// Why.
        reason: String,
    },
    /// A local patch naming an object the version does not have.
    #[error(
        "local patch {patch} names {object}, which {stack} {version} does not have; remove it (`tender-ship settings unpatch {stack} {patch}`) or fix it"
    )]
    PatchMatchesNothing {
        /// The patch.
        patch: String,
        /// The object it names.
        object: String,
        /// Stack.
        stack: String,
        /// Version.
        version: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the network runtime: {0}")]
    Runtime(std::io::Error),
}

/// What to run after a failed restore.
fn restore_advice(stack: &str, previous: Option<&str>) -> String {
    match previous {
        Some(v) => format!("run `tender-ship rollback {stack} {v}` or apply a version again"),
        None => "apply a version again (nothing was in force before)".to_owned(),
    }
}

impl DeployError {
    /// What kind of failure this is: the store's and the registry's own
    /// kinds pass through; the checks before any change are refusals.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DeployError::Store(e) => e.kind(),
            DeployError::Registry(e) => e.kind(),
            DeployError::Containerd(e) => e.kind(),
            DeployError::Incomplete { .. } => ErrorKind::NotFound,
            DeployError::BadManifest { .. }
            | DeployError::BadObject { .. }
            | DeployError::Kubeconfig { .. }
            | DeployError::AdoptNothing { .. }
            | DeployError::BadPatch { .. }
            | DeployError::PatchMatchesNothing { .. } => ErrorKind::Invalid,
            DeployError::Cluster { kind, .. } => *kind,
            DeployError::OwnedObject { .. }
            | DeployError::NotOurs { .. }
            | DeployError::ClusterScope { .. } => ErrorKind::Refused,
            DeployError::Unhealthy { .. }
            | DeployError::Failed { .. }
            | DeployError::LeftInPlace { .. } => ErrorKind::Refused,
            DeployError::RolledBack { .. } => ErrorKind::RolledBack,
            DeployError::RestoreFailed { .. } => ErrorKind::RestoreFailed,
            DeployError::VersionGone(_) => ErrorKind::NotFound,
            DeployError::Runtime(_) => ErrorKind::Local,
        }
    }
}

/// Where the ship's registry is.
#[derive(Clone, Debug)]
pub struct RegistryTarget {
    /// `host:port`, e.g. `localhost:32000`.
    pub host: String,
    /// Plain HTTP or TLS.
    pub transport: Transport,
}

/// Where `load` puts a version's images, and so what rendered manifests
/// pin them to.
#[derive(Clone, Debug)]
pub enum LoadTarget {
    /// The ship's registry: pinned as `HOST/REPO@DIGEST`.
    Registry(RegistryTarget),
    /// containerd's content store: pinned as the repository written in the
    /// manifests, `REPO@DIGEST`, which the kubelet finds locally.
    Containerd(ContainerdTarget),
    /// `tender-ship serve` at `host:port`, serving this store read-only:
    /// pinned as `HOST/REPO@DIGEST` like a registry, and nothing is pushed
    /// (loading only checks the store holds every blob).
    Served(String),
}

impl LoadTarget {
    /// The reference `image` is pinned to in rendered manifests.
    pub fn pin(&self, image: &tender_bundle::ImageRecord) -> Result<String, DeployError> {
        Ok(match self {
            LoadTarget::Registry(RegistryTarget { host, .. }) | LoadTarget::Served(host) => {
                let (repo, _) = tender_registry::repository_and_tag(&image.reference)?;
                format!("{host}/{repo}@{}", image.digest)
            }
            LoadTarget::Containerd(_) => {
                format!("{}@{}", containerd::repository(&image.reference)?, image.digest)
            }
        })
    }

    /// Where the images go, for messages.
    pub fn describe(&self) -> String {
        match self {
            LoadTarget::Registry(r) => r.host.clone(),
            LoadTarget::Containerd(c) => {
                format!("containerd {} (namespace {})", c.socket.display(), c.namespace)
            }
            LoadTarget::Served(host) => {
                format!("the store, served by `tender-ship serve` on {host}")
            }
        }
    }
}

/// A version rendered for the ship: references pinned where `load` put them.
#[derive(Clone, Debug, Serialize)]
pub struct Rendered {
    /// (reference as written, reference in the ship's registry by digest).
    pub pins: Vec<(String, String)>,
    /// The objects, rewritten, in apply order ([`order`]).
    #[serde(skip)]
    pub objects: Vec<Value>,
    /// The settings and local patches rendered with (for history).
    pub settings: Option<tender_store::SettingsUsed>,
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

/// The version's manifests with this ship's settings and local patches
/// (`secrets` masked or not), in apply order, with every image the
/// descriptor carries pinned by digest where `target` holds them.
pub fn render(
    store: &Store,
    d: &Descriptor,
    target: &LoadTarget,
    secrets: Secrets,
) -> Result<Rendered, DeployError> {
    render_with(store, d, Some(target), secrets, settings::Unmatched::Refuse)
}

/// [`render`], choosing what a local patch that names nothing does;
/// without a target, images stay as written (for identity only).
pub(crate) fn render_with(
    store: &Store,
    d: &Descriptor,
    target: Option<&LoadTarget>,
    secrets: Secrets,
    unmatched: settings::Unmatched,
) -> Result<Rendered, DeployError> {
    let mut pins = Vec::new();
    if let Some(target) = target {
        for i in &d.images {
            pins.push((i.reference.clone(), target.pin(i)?));
        }
    }
    let (values, used) = settings::resolve(store, d, secrets)?;
    let mut objects = objects(store, d)?;
    settings::apply_to(store, d, &values, &mut objects, unmatched)?;
    order::sort(&mut objects);
    for o in &mut objects {
        k8s::rewrite_images(o, &|r| {
            pins.iter().find(|(from, _)| from == r).map(|(_, to)| to.clone())
        });
    }
    Ok(Rendered { pins, objects, settings: used })
}

/// The objects of a version's manifests, as stored.
fn objects(store: &Store, d: &Descriptor) -> Result<Vec<Value>, DeployError> {
    let mut objects = Vec::new();
    for m in &d.manifests {
        let path = store.blob_path(&m.digest);
        let bytes = tender_store::read_bounded(&path, MAX_KUBERNETES_FILE_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|_| DeployError::BadManifest {
            path: m.path.clone(),
            reason: "not UTF-8".into(),
        })?;
        objects.extend(
            k8s::objects_in_yaml(&text)
                .map_err(|reason| DeployError::BadManifest { path: m.path.clone(), reason })?,
        );
    }
    Ok(objects)
}

/// Put every image of `d` from the store where `target` says: push it
/// into the ship's registry (`auth` is for that), or write it into
/// containerd ([`containerd::load`]); for [`LoadTarget::Served`] the
/// store already is the registry, so only its completeness is checked.
pub fn load(
    store: &Store,
    d: &Descriptor,
    target: &LoadTarget,
    auth: tender_registry::RegistryAuth,
    progress: &dyn Progress,
) -> Result<PushReport, DeployError> {
    require_complete(store, d)?;
    let target = match target {
        LoadTarget::Registry(r) => r,
        LoadTarget::Containerd(c) => {
            return Ok(containerd::load(c, d, &|dg| store.blob_path(dg), progress)?);
        }
        LoadTarget::Served(_) => {
            let mut images = Vec::new();
            for i in &d.images {
                images.push((i.reference.clone(), target.pin(i)?));
            }
            return Ok(PushReport {
                images,
                blobs_present: d.blobs.len(),
                bytes_present: d.total_blob_bytes(),
                ..PushReport::default()
            });
        }
    };
    let registry = Registry::new(&target.host, &target.transport, auth)?;
    let mut report = PushReport::default();
    for image in &d.images {
        progress.item(&image.reference);
        registry.push_image(image, &|dg| store.blob_path(dg), progress, &mut report)?;
    }
    Ok(report)
}

/// The version in force before this apply: what prune compares with and
/// what a failure restores.
pub(crate) enum Previous {
    /// Nothing yet.
    Never,
    /// Its record and descriptor, found by the digest applied.
    Version(Box<(VersionRecord, Descriptor)>),
    /// No longer in the store: why nothing is pruned or restored.
    Gone(String),
}

/// The version in force, found by its descriptor's digest: a version name
/// may have been re-issued with other objects.
fn previous(store: &Store, stack: &tender_bundle::StackName) -> Result<Previous, DeployError> {
    let Some(current) = store.history(stack)?.current else {
        return Ok(Previous::Never);
    };
    Ok(match store.version_by_digest(stack, &current.digest)? {
        Some(found) => Previous::Version(Box::new(found)),
        None => Previous::Gone(format!(
            "the version in force ({stack} {}, {}) is no longer in the store",
            current.version, current.digest
        )),
    })
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

/// The cluster `deploy` applies to.
#[derive(Clone, Copy, Debug)]
pub struct ClusterTarget<'a> {
    /// Its kubeconfig.
    pub kubeconfig: &'a Path,
    /// Live objects tender may take over although it did not create them
    /// for this stack.
    pub adopt: &'a [Adopt],
    /// Waiting for health, and what a failure does.
    pub rollout: Rollout,
}

/// What `apply --dry-run` shows: the version rendered for `target`,
/// after the checks that need no registry or cluster (complete, and its
/// signatures still count).
pub fn preview(
    store: &Store,
    rec: &VersionRecord,
    d: &Descriptor,
    target: &LoadTarget,
) -> Result<Rendered, DeployError> {
    require_complete(store, d)?;
    store.authority(rec, d)?;
    render(store, d, target, Secrets::Mask)
}

/// The repositories `d`'s images go to: the ship's registry's, and the
/// same claims when they go into containerd (one rule for both ways).
fn repositories(d: &Descriptor) -> Result<Vec<Claim>, DeployError> {
    let mut v = Vec::new();
    for i in &d.images {
        let (repo, _) = tender_registry::repository_and_tag(&i.reference)?;
        v.push(Claim::Repository(repo));
    }
    Ok(v)
}

/// Load and (unless `cluster` is None: `load` only) apply `d`, recording
/// the outcome, failures included. Everything that can refuse is checked
/// before anything changes: ownership of the namespaces and repositories it
/// touches, cluster scope, and every live object it would apply over; only
/// then are the claims recorded, the images pushed and the objects applied
/// in kind order. Then it waits until the version is healthy and prunes;
/// a refused object or a version not healthy in time is undone (see
/// [`Rollout`]): `DeployError::RolledBack` when the version before is back.
pub fn deploy(
    store: &Store,
    rec: &VersionRecord,
    d: &Descriptor,
    target: &LoadTarget,
    auth: tender_registry::RegistryAuth,
    cluster: Option<ClusterTarget<'_>>,
    progress: &dyn Progress,
) -> Result<ApplyReport, DeployError> {
    // Which settings the render used, for the history entry.
    let used = std::cell::RefCell::new(None);
    let run = || -> Result<ApplyReport, DeployError> {
        require_complete(store, d)?;
        // The stored signatures are judged again against the trust in force:
        // a version a since-revoked key signed is neither loaded nor applied.
        let authority = store.authority(rec, d)?;
        let stack = &d.stack.name;
        let mut claims = repositories(d)?;
        // Early, before connecting to the cluster; the namespaces join the
        // check below, and `claim` checks again under the store's lock.
        store.owners()?.conflict(stack, &claims)?;
        let prepared = match cluster {
            None => None,
            Some(c) => {
                let conn = Cluster::connect(c.kubeconfig)?;
                let rendered = render(store, d, target, Secrets::Reveal)?;
                *used.borrow_mut() = rendered.settings.clone();
                let previous = previous(store, stack)?;
                let mut plan = match &previous {
                    Previous::Never => conn.plan(stack.as_str(), &rendered.objects, None)?,
                    Previous::Version(p) => {
                        // As it was rendered (a setting can name an object),
                        // identities only; as signed if it no longer renders.
                        let before = render_with(
                            store,
                            &p.1,
                            None,
                            Secrets::Reveal,
                            settings::Unmatched::Skip,
                        )
                        .map(|r| r.objects)
                        .or_else(|_| objects(store, &p.1))?;
                        conn.plan(stack.as_str(), &rendered.objects, Some(&before))?
                    }
                    Previous::Gone(why) => {
                        let mut plan = conn.plan(stack.as_str(), &rendered.objects, None)?;
                        plan.note(format!("{why}: nothing pruned"));
                        plan
                    }
                };
                claims.extend(plan.namespaces().into_iter().map(Claim::Namespace));
                store.owners()?.conflict(stack, &claims)?;
                let scope = if authority.cluster_scope {
                    ClusterScope::Granted
                } else {
                    ClusterScope::NamespacesOnly
                };
                plan.check_scope(scope, d.stack.version.as_str())?;
                conn.check_live(&mut plan, c.adopt)?;
                Some((conn, plan, previous, c))
            }
        };
        store.claim(stack, &claims)?;
        let push = load(store, d, target, auth.clone(), progress)?;
        let cluster = match prepared {
            None => None,
            Some((conn, plan, previous, c)) => {
                let step = rollout::Step { store, d, target, auth: &auth, conn: &conn, progress };
                Some(step.run(&plan, previous, c.rollout)?)
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
            let outcome = if cluster.is_some() { Outcome::Applied } else { Outcome::Loaded };
            let detail = match &r.cluster {
                Some(c) if !c.waited => Some("not waited for health (--no-wait)".to_owned()),
                _ => None,
            };
            store.record(d, &rec.digest, outcome, detail, used.take())?;
            Ok(r)
        }
        Err(e) => {
            // The failure is part of the history; `rollback` still works.
            let outcome = match e {
                DeployError::RolledBack { .. } => Outcome::RolledBack,
                _ => Outcome::Failed,
            };
            let _ = store.record(d, &rec.digest, outcome, Some(chain(&e)), used.take());
            Err(e)
        }
    }
}

pub(crate) use tender_bundle::error_chain as chain;
