//! The cluster step, kept thin: resolve each object's API and namespace by
//! discovery, look at what is live before anything changes, server-side
//! apply with the `kube` crate in kind order (waiting for the kinds new
//! CRDs define to be served), wait for health, and delete what the stack no
//! longer has, but only what tender made for this stack.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::client::AuthError;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError, LoadDataError};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::{Client, Config};
use serde::Serialize;
use serde_yaml::Value;
use tender_bundle::{ErrorKind, Progress};

use crate::DeployError;
use crate::health::{self, Health};
use tender_manifests::ObjectRef;
use tender_manifests::order::{self, CRD_RANK};

/// Namespaces no stack may claim without a cluster-scope grant: the
/// cluster's own, and `default`, which every namespace-less object of any
/// tool lands in.
pub const SHARED_NAMESPACES: [&str; 4] =
    ["kube-system", "kube-public", "kube-node-lease", "default"];

/// The field manager tender applies with.
pub const FIELD_MANAGER: &str = "tender";
/// The label that marks an object as part of a stack.
pub const STACK_LABEL: &str = "tender.io/stack";

/// The kind of `obj` as the `kube` crate names it.
fn gvk(obj: &ObjectRef) -> GroupVersionKind {
    let (group, version) = obj.api_version.split_once('/').unwrap_or(("", &obj.api_version));
    GroupVersionKind::gvk(group, version, &obj.kind)
}

/// An object the engineer lets `apply` take over although tender did not
/// create it for this stack: `KIND/NAMESPACE/NAME`, or `KIND/NAME` for a
/// cluster-scoped kind (`--adopt Secret/kube-system/registry-auth`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adopt {
    /// Kind, matched without regard to case.
    pub kind: String,
    /// Namespace (None: a cluster-scoped object).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl std::str::FromStr for Adopt {
    type Err = String;
    fn from_str(s: &str) -> Result<Adopt, String> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("{s:?}: expected KIND/NAMESPACE/NAME or KIND/NAME"));
        }
        match parts[..] {
            [kind, name] => Ok(Adopt { kind: kind.into(), namespace: None, name: name.into() }),
            [kind, ns, name] => {
                Ok(Adopt { kind: kind.into(), namespace: Some(ns.into()), name: name.into() })
            }
            _ => Err(format!("{s:?}: expected KIND/NAMESPACE/NAME or KIND/NAME")),
        }
    }
}

impl std::fmt::Display for Adopt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// Whether a version may apply cluster-scoped objects other than its own
/// Namespaces (ClusterRoles, ClusterRoleBindings, CRDs, webhooks...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClusterScope {
    /// Only its Namespaces (the default).
    #[default]
    NamespacesOnly,
    /// Its signers were granted cluster scope.
    Granted,
}

/// An object resolved against the cluster: its resource and the namespace
/// it lands in (the kubeconfig's default for a namespaced object written
/// without one; None for a cluster-scoped object).
#[derive(Clone, Debug)]
pub struct Resolved {
    /// As the manifest writes it.
    pub written: ObjectRef,
    resource: ApiResource,
    /// Where it lands.
    pub namespace: Option<String>,
    /// False for a kind a CustomResourceDefinition of the same plan
    /// defines and the cluster does not serve yet: apply waits for it.
    served: bool,
}

/// An object's identity in the cluster, owned: kind, group, namespace, name.
pub type Key = (String, String, Option<String>, String);

impl Resolved {
    /// Group, kind, namespace and name: the same object whatever version
    /// of its API a manifest names.
    fn owned_key(&self) -> Key {
        (
            self.resource.group.clone(),
            self.resource.kind.clone(),
            self.namespace.clone(),
            self.written.name.clone(),
        )
    }

    /// A core Namespace object.
    fn is_namespace(&self) -> bool {
        self.resource.group.is_empty() && self.resource.kind == "Namespace"
    }

    /// A PersistentVolumeClaim: its volume may hold the only copy of data.
    fn is_claim(&self) -> bool {
        self.resource.group.is_empty() && self.resource.kind == "PersistentVolumeClaim"
    }

    /// Where it goes in the apply order.
    fn rank(&self) -> u8 {
        order::rank(&self.resource.group, &self.resource.kind)
    }

    /// `Kind namespace/name`, as progress shows it.
    fn short(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.written.kind, self.written.name),
            None => format!("{} {}", self.written.kind, self.written.name),
        }
    }

    fn matches(&self, a: &Adopt) -> bool {
        a.kind.eq_ignore_ascii_case(&self.resource.kind)
            && a.namespace == self.namespace
            && a.name == self.written.name
    }

    fn api(&self, client: &Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }
}

impl std::fmt::Display for Resolved {
    /// As [`ObjectRef`] shows it, with the namespace it lands in.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        ObjectRef { namespace: self.namespace.clone(), ..self.written.clone() }.fmt(f)
    }
}

/// What a version would do to the cluster, resolved by discovery before
/// anything changes.
#[derive(Debug)]
pub struct Plan {
    stack: String,
    /// Objects to apply, labelled with the stack, in apply order.
    objects: Vec<(Resolved, Value)>,
    /// Objects of the plan that were live before it was applied.
    existed: std::cell::RefCell<BTreeSet<Key>>,
    /// What `--adopt` named, for objects first read during apply.
    adopt: Vec<Adopt>,
    /// Objects of the version applied before that this one no longer has.
    prune: Vec<Resolved>,
    /// Why prune will leave something alone, found while planning.
    notes: Vec<String>,
    /// Live objects taken over because the engineer said `--adopt`.
    pub(crate) adopted: Vec<String>,
}

impl Plan {
    /// Namespaces the version applies into, its own Namespace objects
    /// included: the stack must own them.
    pub fn namespaces(&self) -> BTreeSet<String> {
        self.objects
            .iter()
            .filter_map(|(r, _)| {
                if r.is_namespace() { Some(r.written.name.clone()) } else { r.namespace.clone() }
            })
            .collect()
    }

    /// Objects that need a cluster-scope grant: cluster-scoped ones other
    /// than Namespaces, and anything in (or being) a namespace the cluster
    /// itself or every stack shares ([`SHARED_NAMESPACES`]): ownership is
    /// first come, and those must not be a one-stack key's to take.
    pub fn needs_grant(&self) -> Vec<&Resolved> {
        let shared = |ns: &str| SHARED_NAMESPACES.contains(&ns);
        self.objects
            .iter()
            .map(|(r, _)| r)
            .filter(|r| match (&r.namespace, r.is_namespace()) {
                (_, true) => shared(&r.written.name),
                (None, false) => true,
                (Some(ns), false) => shared(ns),
            })
            .collect()
    }

    /// Something to report about prune.
    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    pub(crate) fn keys(&self) -> BTreeSet<Key> {
        self.objects.iter().map(|(r, _)| r.owned_key()).collect()
    }

    /// Refuse what [`Plan::needs_grant`] lists without a grant.
    pub fn check_scope(&self, scope: ClusterScope, version: &str) -> Result<(), DeployError> {
        match (scope, self.needs_grant().first()) {
            (ClusterScope::NamespacesOnly, Some(r)) => Err(DeployError::ClusterScope {
                object: r.to_string(),
                stack: self.stack.clone(),
                version: version.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// What the cluster step did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClusterReport {
    /// Objects applied.
    pub applied: Vec<String>,
    /// Live objects taken over with `--adopt`.
    pub adopted: Vec<String>,
    /// Objects deleted because the new version no longer has them.
    pub deleted: Vec<String>,
    /// Objects the new version no longer has, left in place, and why.
    pub skipped: Vec<String>,
    /// Whether apply waited until every object was healthy.
    pub waited: bool,
}

/// What undoing a failed version did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreReport {
    /// Objects of the version restored, applied again.
    pub applied: Vec<String>,
    /// Objects only the failed version created, deleted.
    pub deleted: Vec<String>,
    /// Objects of the failed version left in place, and why.
    pub left: Vec<String>,
    /// What else a person should know (images not pushed again).
    pub notes: Vec<String>,
}

/// One object's health, for `status --cluster`.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectHealth {
    /// `Kind namespace/name (apiVersion)`.
    pub object: String,
    /// Its health.
    pub health: Health,
}

/// The label and field managers of a live object, as far as tender judges it.
fn stack_label(meta: &ObjectMeta) -> Option<&str> {
    meta.labels.as_ref()?.get(STACK_LABEL).map(String::as_str)
}

fn managed_by_tender(meta: &ObjectMeta) -> bool {
    meta.managed_fields.iter().flatten().any(|m| m.manager.as_deref() == Some(FIELD_MANAGER))
}

/// Whether tender made this live object for `stack`: its label, and
/// tender's field manager (the label alone can be copied by anyone).
fn made_for(stack: &str, meta: &ObjectMeta) -> bool {
    stack_label(meta) == Some(stack) && managed_by_tender(meta)
}

/// Judge a live object the plan would apply over: tender's own for this
/// stack passes; another stack's is refused, adopt or not; anything else
/// passes only when adopted. Returns whether it was adopted.
fn judge_live(
    stack: &str,
    object: &Resolved,
    meta: &ObjectMeta,
    adopt: &[Adopt],
) -> Result<bool, DeployError> {
    if let Some(owner) = stack_label(meta).filter(|o| *o != stack) {
        return Err(DeployError::OwnedObject {
            object: object.to_string(),
            owner: owner.to_owned(),
            stack: stack.to_owned(),
        });
    }
    if made_for(stack, meta) {
        return Ok(false);
    }
    if adopt.iter().any(|a| object.matches(a)) {
        return Ok(true);
    }
    let adopt = Adopt {
        kind: object.written.kind.clone(),
        namespace: object.namespace.clone(),
        name: object.written.name.clone(),
    };
    Err(DeployError::NotOurs { object: object.to_string(), stack: stack.to_owned(), adopt })
}

/// A connection to the cluster a kubeconfig names.
pub struct Cluster {
    client: Client,
    /// The API server's address, for errors.
    server: String,
    /// (apiVersion, kind) -> resource and whether it is namespaced.
    discovered: Mutex<HashMap<(String, String), (ApiResource, Scope)>>,
    rt: tokio::runtime::Runtime,
}

/// A kind a CustomResourceDefinition of the plan defines.
struct Defined {
    group: String,
    kind: String,
    plural: String,
    versions: Vec<String>,
    scope: Scope,
}

impl Defined {
    /// What `obj`, if it is a CustomResourceDefinition, defines.
    fn by(obj: &Value) -> Option<Defined> {
        let id = ObjectRef::of(obj).ok()?;
        if order::group_of(&id.api_version) != "apiextensions.k8s.io"
            || id.kind != "CustomResourceDefinition"
        {
            return None;
        }
        let spec = obj.get("spec")?;
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(String::from);
        Some(Defined {
            group: s(spec.get("group"))?,
            kind: s(spec.get("names").and_then(|n| n.get("kind")))?,
            plural: s(spec.get("names").and_then(|n| n.get("plural")))?,
            versions: spec
                .get("versions")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(|v| s(v.get("name")))
                .collect(),
            scope: match spec.get("scope").and_then(Value::as_str) {
                Some("Cluster") => Scope::Cluster,
                _ => Scope::Namespaced,
            },
        })
    }

    fn resource_for(&self, obj: &ObjectRef) -> Option<(ApiResource, Scope)> {
        let gvk = gvk(obj);
        (gvk.group == self.group && gvk.kind == self.kind && self.versions.contains(&gvk.version))
            .then(|| {
                let ar = ApiResource::from_gvk_with_plural(&gvk, &self.plural);
                (ar, self.scope.clone())
            })
    }
}

/// How long to wait and how often to look.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    /// Give up at.
    pub at: Instant,
    /// Look again after.
    pub poll: Duration,
    /// The whole wait, for messages.
    pub timeout: Duration,
}

impl Deadline {
    /// From now, for `timeout`; looking every 1/20 of it, between 200 ms
    /// and 2 s (as often as a person would look, never hammering the API
    /// server).
    pub fn after(timeout: Duration) -> Deadline {
        let poll = (timeout / 20).clamp(Duration::from_millis(200), Duration::from_secs(2));
        // A timeout past the clock's range (`--timeout 300000000000y`) is
        // no timeout, not a crash after the push.
        let now = Instant::now();
        let at = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        Deadline { at, poll, timeout }
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    async fn sleep(&self) {
        let left = self.at.saturating_duration_since(Instant::now());
        tokio::time::sleep(self.poll.min(left)).await;
    }

    /// `f`, unless the deadline (and one poll interval of grace, so that
    /// the last look, taken at the deadline, still gets its answer) comes
    /// first (None): a request the API server never answers must not hold
    /// apply past `--timeout`.
    async fn bound<T>(&self, f: impl std::future::Future<Output = T>) -> Option<T> {
        let until = self.at.checked_add(self.poll).unwrap_or(self.at);
        tokio::time::timeout_at(tokio::time::Instant::from_std(until), f).await.ok()
    }

    /// What an object's request is said to have got when the deadline came first.
    fn no_answer(&self, r: &Resolved) -> DeployError {
        DeployError::Cluster {
            object: r.to_string(),
            answer: format!(
                "no answer from the API server within --timeout {}",
                humantime::format_duration(self.timeout)
            ),
            kind: ErrorKind::Network,
        }
    }
}

/// The longest tender waits for the bytes of one answer of the API server
/// when no deadline is nearer (planning, checks, prune, status): one that
/// accepts a request and never answers would otherwise hold it forever.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl Cluster {
    /// Read `kubeconfig` and make a client (contacts nothing yet). Errors
    /// say what is wrong and where, never quoting the file: it holds
    /// credentials.
    pub fn connect(kubeconfig: &Path) -> Result<Cluster, DeployError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(DeployError::Runtime)?;
        let err = |reason: String| DeployError::Kubeconfig { path: kubeconfig.to_owned(), reason };
        let client = rt.block_on(async {
            let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| err(kubeconfig_problem(&e)))?;
            let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| err(kubeconfig_problem(&e)))?;
            // kube sets no read timeout of its own.
            config.read_timeout = Some(READ_TIMEOUT);
            let server = config.cluster_url.to_string();
            Ok::<_, DeployError>((Client::try_from(config).map_err(|e| err(answer(&e)))?, server))
        })?;
        let (client, server) = client;
        Ok(Cluster { client, server, discovered: Mutex::new(HashMap::new()), rt })
    }

    /// The namespace objects written without one land in.
    pub fn default_namespace(&self) -> &str {
        self.client.default_namespace()
    }

    /// A failed request about `object`: what the API server answered (of the
    /// kind its status says), or that it could not be reached (`Network`: a
    /// rerun may help).
    fn error(&self, object: String, e: &kube::Error) -> DeployError {
        let (answer, kind) = match e {
            kube::Error::Api(s) => (
                format!("the API server answered: {}", answer(e)),
                match s.code {
                    401 | 403 => ErrorKind::Auth,
                    404 => ErrorKind::NotFound,
                    408 | 429 | 500..=599 => ErrorKind::Network,
                    _ => ErrorKind::Refused,
                },
            ),
            kube::Error::Auth(_) => (answer(e), ErrorKind::Auth),
            kube::Error::InferKubeconfig(_) | kube::Error::Discovery(_) => {
                (answer(e), ErrorKind::Invalid)
            }
            _ => (
                format!("cannot reach the API server at {}: {}", self.server, answer(e)),
                ErrorKind::Network,
            ),
        };
        DeployError::Cluster { object, answer, kind }
    }

    /// The resource and scope of `obj`'s kind, by discovery (cached).
    async fn discover(&self, obj: &ObjectRef) -> Result<(ApiResource, Scope), kube::Error> {
        let key = (obj.api_version.clone(), obj.kind.clone());
        if let Some(hit) = self.discovered.lock().expect("discovery cache").get(&key).cloned() {
            return Ok(hit);
        }
        let (ar, caps) = pinned_kind(&self.client, &gvk(obj)).await?;
        let hit = (ar, caps.scope);
        self.discovered.lock().expect("discovery cache").insert(key, hit.clone());
        Ok(hit)
    }

    /// Resolve `obj` by discovery or, for a kind the cluster does not serve
    /// yet, by a CustomResourceDefinition in `defined`.
    async fn resolve(&self, obj: &ObjectRef, defined: &[Defined]) -> Result<Resolved, DeployError> {
        let (resource, scope, served) = match self.discover(obj).await {
            Ok((ar, scope)) => (ar, scope, true),
            Err(e) => match defined.iter().find_map(|d| d.resource_for(obj)) {
                Some((ar, scope)) => (ar, scope, false),
                None => {
                    return Err(self.error(format!("{obj} (discovery)"), &e));
                }
            },
        };
        let namespace = match scope {
            Scope::Cluster => None,
            Scope::Namespaced => {
                Some(obj.namespace.clone().unwrap_or_else(|| self.default_namespace().to_owned()))
            }
        };
        Ok(Resolved { written: obj.clone(), resource, namespace, served })
    }

    /// Resolve `objects` (to apply for `stack`) and `before` (the objects
    /// of the version applied before, None if it is not known) by
    /// discovery, and put them in apply order. Reads only.
    pub fn plan(
        &self,
        stack: &str,
        objects: &[Value],
        before: Option<&[Value]>,
    ) -> Result<Plan, DeployError> {
        let defined: Vec<Defined> = objects.iter().filter_map(Defined::by).collect();
        self.rt.block_on(async {
            let mut plan = Plan {
                stack: stack.to_owned(),
                objects: Vec::new(),
                existed: Default::default(),
                adopt: Vec::new(),
                prune: Vec::new(),
                notes: Vec::new(),
                adopted: Vec::new(),
            };
            for obj in objects {
                let id = ObjectRef::of(obj).map_err(|reason| DeployError::BadObject { reason })?;
                let resolved = self.resolve(&id, &defined).await?;
                let mut obj = obj.clone();
                obj["metadata"]["labels"][STACK_LABEL] = Value::String(stack.to_owned());
                plan.objects.push((resolved, obj));
            }
            plan.objects.sort_by_key(|(r, _)| r.rank());
            let Some(before) = before else { return Ok(plan) };
            let now = plan.keys();
            let mut prune = Vec::new();
            for obj in before {
                let id = ObjectRef::of(obj).map_err(|reason| DeployError::BadObject { reason })?;
                match self.resolve(&id, &[]).await {
                    Ok(r) if !now.contains(&r.owned_key()) => prune.push(r),
                    Ok(_) => {}
                    // A kind the cluster no longer serves has nothing to delete.
                    Err(e) => plan.notes.push(format!("{id}: left in place: {e}")),
                }
            }
            // Dependents first: the reverse of the apply order.
            prune.sort_by_key(|r| std::cmp::Reverse(r.rank()));
            plan.prune = prune;
            Ok(plan)
        })
    }

    /// Look at every object the plan would apply: refuse, naming it, one
    /// labelled for another stack, and one that tender did not make for
    /// this stack unless `adopt` names it; refuse an `adopt` that names no
    /// object of the plan. Remembers which objects were live, so that
    /// undoing the plan never deletes one it did not create. Reads only.
    pub fn check_live(&self, plan: &mut Plan, adopt: &[Adopt]) -> Result<(), DeployError> {
        self.check_live_within(plan, adopt, None)
    }

    /// [`Cluster::check_live`], each read bounded by `deadline` when given.
    pub(crate) fn check_live_within(
        &self,
        plan: &mut Plan,
        adopt: &[Adopt],
        deadline: Option<&Deadline>,
    ) -> Result<(), DeployError> {
        if let Some(a) = adopt.iter().find(|a| !plan.objects.iter().any(|(r, _)| r.matches(a))) {
            return Err(DeployError::AdoptNothing { adopt: a.clone(), stack: plan.stack.clone() });
        }
        plan.adopt = adopt.to_vec();
        self.rt.block_on(async {
            let mut adopted = Vec::new();
            for (r, _) in plan.objects.iter().filter(|(r, _)| r.served) {
                let api = r.api(&self.client);
                let read = api.get_opt(&r.written.name);
                let live = match deadline {
                    Some(d) => d.bound(read).await.ok_or_else(|| d.no_answer(r))?,
                    None => read.await,
                }
                .map_err(|e| self.error(r.to_string(), &e))?;
                let Some(live) = live else { continue };
                plan.existed.get_mut().insert(r.owned_key());
                if judge_live(&plan.stack, r, &live.metadata, adopt)? {
                    adopted.push(r.to_string());
                }
            }
            plan.adopted = adopted;
            Ok(())
        })
    }

    /// Server-side apply the plan's objects in order as field manager
    /// `tender`. After the CustomResourceDefinitions, wait until each is
    /// Established and the kinds they define are served. Stops at the
    /// first refusal, naming the object and the API server's answer.
    pub fn apply(
        &self,
        plan: &Plan,
        deadline: &Deadline,
        progress: &dyn Progress,
    ) -> Result<Vec<String>, DeployError> {
        self.rt.block_on(async {
            // Force: fields another manager holds are taken over; check_live
            // has made sure the object is this stack's or adopted.
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let mut applied = Vec::new();
            let mut crds: Vec<&Resolved> = Vec::new();
            for (r, obj) in &plan.objects {
                if r.rank() > CRD_RANK && !crds.is_empty() {
                    self.await_served(std::mem::take(&mut crds), plan, deadline, progress).await?;
                }
                progress.item(&r.to_string());
                let api = r.api(&self.client);
                if !r.served {
                    // Its kind was not served when the plan was checked (a
                    // CRD of this version defines it, or a new version of
                    // it): judge what is live now, as check_live does.
                    self.judge_now(plan, r, deadline).await?;
                }
                deadline
                    .bound(api.patch(&r.written.name, &params, &Patch::Apply(obj)))
                    .await
                    .ok_or_else(|| deadline.no_answer(r))?
                    .map_err(|e| self.error(r.to_string(), &e))?;
                if r.rank() == CRD_RANK {
                    crds.push(r);
                }
                applied.push(r.to_string());
            }
            if !crds.is_empty() {
                self.await_served(crds, plan, deadline, progress).await?;
            }
            Ok(applied)
        })
    }

    /// Read `r` and judge it as [`Cluster::check_live`] would, remembering
    /// it was live.
    async fn judge_now(
        &self,
        plan: &Plan,
        r: &Resolved,
        deadline: &Deadline,
    ) -> Result<(), DeployError> {
        let live = deadline
            .bound(r.api(&self.client).get_opt(&r.written.name))
            .await
            .ok_or_else(|| deadline.no_answer(r))?
            .map_err(|e| self.error(r.to_string(), &e))?;
        if let Some(live) = live {
            plan.existed.borrow_mut().insert(r.owned_key());
            judge_live(&plan.stack, r, &live.metadata, &plan.adopt)?;
        }
        Ok(())
    }

    /// Wait until `crds` are Established and every kind of the plan they
    /// define is served by discovery.
    async fn await_served(
        &self,
        crds: Vec<&Resolved>,
        plan: &Plan,
        deadline: &Deadline,
        progress: &dyn Progress,
    ) -> Result<(), DeployError> {
        self.await_ready(&crds, deadline, progress).await?;
        for (r, _) in plan.objects.iter().filter(|(r, _)| !r.served) {
            let key = (r.written.api_version.clone(), r.written.kind.clone());
            loop {
                self.discovered.lock().expect("discovery cache").remove(&key);
                let found = deadline
                    .bound(self.discover(&r.written))
                    .await
                    .ok_or_else(|| deadline.no_answer(r))?;
                match found {
                    Ok(_) => break,
                    Err(e) if deadline.passed() => {
                        return Err(DeployError::Unhealthy {
                            after: humantime::format_duration(deadline.timeout).to_string(),
                            objects: vec![format!(
                                "{r}: its kind is not served yet ({})",
                                answer(&e)
                            )],
                        });
                    }
                    Err(_) => {
                        progress.note(&format!("waiting for the cluster to serve {r}"));
                        deadline.sleep().await;
                    }
                }
            }
        }
        Ok(())
    }

    /// One object's health, with the reason its pods give when it is a
    /// workload that is not ready. A failed read (an API server that is
    /// restarting) is reported as not ready yet, not as a failure.
    async fn health_of(&self, r: &Resolved) -> Health {
        let live = match r.api(&self.client).get_opt(&r.written.name).await {
            Ok(Some(live)) => live,
            Ok(None) => return Health::Missing,
            Err(e) => return Health::InProgress(format!("cannot read it: {}", answer(&e))),
        };
        let live = serde_json::to_value(&live).expect("objects serialize");
        match health::judge(&r.resource.group, &r.resource.kind, &live) {
            Health::InProgress(why) => match self.pod_problem(r, &live).await {
                Some(p) => Health::InProgress(format!("{why}; {p}")),
                None => Health::InProgress(why),
            },
            h => h,
        }
    }

    /// The first problem a workload's pods show, found by its selector.
    async fn pod_problem(&self, r: &Resolved, live: &serde_json::Value) -> Option<String> {
        let ns = r.namespace.as_deref()?;
        let labels = live.pointer("/spec/selector/matchLabels")?.as_object()?;
        let selector: Vec<String> =
            labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let list = pods.list(&ListParams::default().labels(&selector.join(","))).await.ok()?;
        list.items.iter().find_map(|p| health::pod_problem(&serde_json::to_value(p).ok()?))
    }

    /// Wait until every object of `objects` is healthy, reporting what it
    /// waits for; fail at once when one has failed for good, or at the
    /// deadline, naming each object not ready and why.
    async fn await_ready(
        &self,
        objects: &[&Resolved],
        deadline: &Deadline,
        progress: &dyn Progress,
    ) -> Result<(), DeployError> {
        let total = objects.len();
        let mut pending: Vec<&Resolved> = objects.to_vec();
        loop {
            let mut waiting = Vec::new();
            for r in pending {
                let health = deadline.bound(self.health_of(r)).await.unwrap_or_else(|| {
                    Health::InProgress("no answer from the API server by the deadline".into())
                });
                match health {
                    Health::Ready => {}
                    Health::Failed(why) => {
                        return Err(DeployError::Failed { object: r.to_string(), reason: why });
                    }
                    h => waiting.push((r, h)),
                }
            }
            let Some((first, why)) = waiting.first() else { return Ok(()) };
            if deadline.passed() {
                return Err(DeployError::Unhealthy {
                    after: humantime::format_duration(deadline.timeout).to_string(),
                    objects: waiting.iter().map(|(r, h)| format!("{r}: {h}")).collect(),
                });
            }
            progress.note(&format!(
                "{} of {total} ready; waiting for {}: {why}",
                total - waiting.len(),
                first.short()
            ));
            deadline.sleep().await;
            pending = waiting.into_iter().map(|(r, _)| r).collect();
        }
    }

    /// Wait until every object of the plan is healthy.
    pub fn wait(
        &self,
        plan: &Plan,
        deadline: &Deadline,
        progress: &dyn Progress,
    ) -> Result<(), DeployError> {
        let objects: Vec<&Resolved> = plan.objects.iter().map(|(r, _)| r).collect();
        self.rt.block_on(self.await_ready(&objects, deadline, progress))
    }

    /// The health of each object of the plan, as it is now.
    pub fn health(&self, plan: &Plan) -> Vec<ObjectHealth> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            for (r, _) in &plan.objects {
                out.push(ObjectHealth { object: r.to_string(), health: self.health_of(r).await });
            }
            out
        })
    }

    /// Delete what the version applied before had and this one has not,
    /// dependents first, if tender made it for this stack (looked at
    /// again just before). Namespaces and PersistentVolumeClaims are left
    /// and reported: deleting one deletes data, or objects tender never
    /// applied.
    /// A delete that fails is reported, not raised: the new version is in
    /// force and healthy by then.
    pub fn prune(&self, plan: &Plan, report: &mut ClusterReport) {
        report.skipped.extend(plan.notes.iter().cloned());
        self.rt.block_on(async {
            for r in &plan.prune {
                if r.is_namespace() || r.is_claim() {
                    report.skipped.push(format!("{r}: left in place: {HOLDS_DATA}"));
                    continue;
                }
                match self.delete_ours(&plan.stack, r).await {
                    Ok(Deleted::Yes) => report.deleted.push(r.to_string()),
                    Ok(Deleted::Gone) => {}
                    Ok(Deleted::NotOurs) => report.skipped.push(format!(
                        "{r}: left in place: not labelled {STACK_LABEL}={} with field manager {FIELD_MANAGER}",
                        plan.stack
                    )),
                    Err(e) => report.skipped.push(format!("{r}: left in place: {e}")),
                }
            }
        })
    }

    /// Undo what applying `failed` created: delete, dependents first, each
    /// of its objects that was not live before it was applied and that
    /// `keep` (the version restored) does not have. A PersistentVolumeClaim,
    /// and a Namespace holding one, is left and reported.
    pub fn remove_created(
        &self,
        failed: &Plan,
        keep: &BTreeSet<Key>,
        report: &mut RestoreReport,
    ) -> Result<(), DeployError> {
        let claims_in: BTreeSet<&str> = failed
            .objects
            .iter()
            .filter(|(r, _)| r.is_claim())
            .filter_map(|(r, _)| r.namespace.as_deref())
            .collect();
        self.rt.block_on(async {
            for (r, _) in failed.objects.iter().rev() {
                let key = r.owned_key();
                if keep.contains(&key) {
                    continue;
                }
                if failed.existed.borrow().contains(&key) {
                    // Live before (adopted, or left by an older version):
                    // its earlier content was not kept, so it stays as the
                    // failed version made it.
                    report.left.push(format!(
                        "{r}: left in place with the failed version's content: it was live before this apply"
                    ));
                    continue;
                }
                if r.is_claim() || (r.is_namespace() && claims_in.contains(r.written.name.as_str()))
                {
                    report.left.push(format!("{r}: left in place: {HOLDS_DATA}"));
                    continue;
                }
                if !r.served {
                    // Its kind never came to be served: nothing was made.
                    continue;
                }
                if r.is_namespace() {
                    // Claims no manifest lists live there too (a
                    // StatefulSet's claim templates): look.
                    let claims: Api<PersistentVolumeClaim> =
                        Api::namespaced(self.client.clone(), &r.written.name);
                    match claims.list(&ListParams::default().limit(1)).await {
                        Ok(list) if list.items.is_empty() => {}
                        Ok(_) => {
                            report.left.push(format!("{r}: left in place: {HOLDS_DATA}"));
                            continue;
                        }
                        Err(e) => {
                            report.left.push(format!(
                                "{r}: left in place: cannot tell whether it holds claims: {}",
                                answer(&e)
                            ));
                            continue;
                        }
                    }
                }
                if let Deleted::Yes = self.delete_ours(&failed.stack, r).await? {
                    report.deleted.push(r.to_string());
                }
            }
            Ok(())
        })
    }

    /// Delete `r` if it is live and tender made it for `stack`.
    async fn delete_ours(&self, stack: &str, r: &Resolved) -> Result<Deleted, DeployError> {
        let api = r.api(&self.client);
        let cluster_err = |e: kube::Error| self.error(r.to_string(), &e);
        // Already gone is what we wanted.
        let Some(live) = api.get_opt(&r.written.name).await.map_err(cluster_err)? else {
            return Ok(Deleted::Gone);
        };
        if !made_for(stack, &live.metadata) {
            return Ok(Deleted::NotOurs);
        }
        match api.delete(&r.written.name, &DeleteParams::background()).await {
            Ok(_) => Ok(Deleted::Yes),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Deleted::Gone),
            Err(e) => Err(cluster_err(e)),
        }
    }
}

/// Why a Namespace or PersistentVolumeClaim is never deleted by tender.
const HOLDS_DATA: &str =
    "it may hold data (a Namespace deletes everything in it); delete it by hand when sure";

/// What [`Cluster::delete_ours`] found.
enum Deleted {
    Yes,
    Gone,
    NotOurs,
}

/// What is wrong with a kubeconfig, and where, without quoting it: the
/// parser's own message shows the offending text, which may be a token.
fn kubeconfig_problem(e: &KubeconfigError) -> String {
    use KubeconfigError as K;
    let data = |what: &str, e: &LoadDataError| match e {
        LoadDataError::DecodeBase64(_) => format!("{what}-data is not valid base64"),
        LoadDataError::ReadFile(io, path) => format!("{what} file {}: {io}", path.display()),
        LoadDataError::NoBase64DataOrFile => format!("{what}: neither data nor a file is given"),
    };
    match e {
        K::Parse(p) => match p.location() {
            Some(l) => format!(
                "not a valid kubeconfig: the error is at line {}, column {} (content not shown)",
                l.line(),
                l.column()
            ),
            None => "not a valid kubeconfig (content not shown)".into(),
        },
        K::ReadConfig(io, _) => format!("cannot be read: {io}"),
        K::CurrentContextNotSet => "no current-context is set".into(),
        K::KindMismatch | K::ApiVersionMismatch => {
            "its documents differ in kind or apiVersion and cannot be merged".into()
        }
        K::LoadContext(_) => "the current-context names no context of the file".into(),
        K::LoadClusterOfContext(_) => "the current context names no cluster of the file".into(),
        K::FindPath => "no kubeconfig path".into(),
        K::MissingClusterUrl => "the cluster has no server".into(),
        K::ParseClusterUrl(_) => "the cluster's server is not a valid URL".into(),
        K::ParseProxyUrl(_) => "the cluster's proxy-url is not a valid URL".into(),
        K::LoadCertificateAuthority(d) => data("certificate-authority", d),
        K::LoadClientCertificate(d) => data("client-certificate", d),
        K::LoadClientKey(d) => data("client-key", d),
        K::ParseCertificates(_) => "a certificate is not valid PEM".into(),
    }
}

/// What a credential plugin or token failure was, without what it printed
/// or what the kubeconfig holds.
fn auth_problem(e: &AuthError) -> String {
    match e {
        AuthError::ReadTokenFile(io, path) => format!("token file {}: {io}", path.display()),
        AuthError::AuthExecStart(io) => format!("the exec credential plugin did not start: {io}"),
        AuthError::AuthExecRun { out, .. } => format!(
            "the exec credential plugin failed ({}); its output is not shown",
            out.status
        ),
        AuthError::InvalidBearerToken(_) | AuthError::InvalidBasicAuth(_) => {
            "the user's credentials cannot be sent as an HTTP header".into()
        }
        _ => "authenticating with the kubeconfig's user failed (details not shown: they may quote credentials)".into(),
    }
}

/// A kube error as text that never quotes credentials: the API server's
/// answers and connection errors as they are, authentication failures
/// described.
fn answer(e: &kube::Error) -> String {
    match e {
        kube::Error::Auth(a) => auth_problem(a),
        kube::Error::InferKubeconfig(k) => kubeconfig_problem(k),
        kube::Error::Service(inner) => match inner.downcast_ref::<AuthError>() {
            Some(a) => auth_problem(a),
            None => match inner.downcast_ref::<kube::Error>() {
                Some(k) => answer(k),
                None => e.to_string(),
            },
        },
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    fn resolved(kind: &str, group: &str, namespace: Option<&str>, name: &str) -> Resolved {
        let api_version = if group.is_empty() { "v1".into() } else { format!("{group}/v1") };
        Resolved {
            written: ObjectRef {
                api_version: api_version.clone(),
                kind: kind.into(),
                namespace: namespace.map(String::from),
                name: name.into(),
            },
            resource: ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind)),
            namespace: namespace.map(String::from),
            served: true,
        }
    }

    fn meta(label: Option<&str>, managers: &[&str]) -> ObjectMeta {
        ObjectMeta {
            labels: label.map(|l| [(STACK_LABEL.to_string(), l.to_string())].into()),
            managed_fields: Some(
                managers
                    .iter()
                    .map(|m| ManagedFieldsEntry {
                        manager: Some(m.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn adopt_parses_once_and_round_trips() {
        let a: Adopt = "Secret/kube-system/registry-auth".parse().unwrap();
        assert_eq!(a.namespace.as_deref(), Some("kube-system"));
        assert_eq!(a.to_string(), "Secret/kube-system/registry-auth");
        let c: Adopt = "ClusterRole/reader".parse().unwrap();
        assert_eq!(
            (c.kind.as_str(), c.namespace, c.name.as_str()),
            ("ClusterRole", None, "reader")
        );
        for bad in ["Secret", "Secret//x", "a/b/c/d", "/x", ""] {
            assert!(bad.parse::<Adopt>().is_err(), "{bad}");
        }
    }

    #[test]
    fn live_objects_are_judged_by_label_and_field_manager() {
        let secret = resolved("Secret", "", Some("kube-system"), "s");
        let adopt: Vec<Adopt> = vec!["secret/kube-system/s".parse().unwrap()];
        // Tender's own, for this stack.
        assert!(!judge_live("a", &secret, &meta(Some("a"), &["tender"]), &[]).unwrap());
        // Someone else's: refused, unless adopted.
        for m in [meta(None, &["kubectl"]), meta(Some("a"), &["kubectl"]), meta(None, &["tender"])]
        {
            let e = judge_live("a", &secret, &m, &[]).unwrap_err().to_string();
            assert!(
                e.contains("Secret kube-system/s") && e.contains("--adopt Secret/kube-system/s"),
                "{e}"
            );
            assert!(judge_live("a", &secret, &m, &adopt).unwrap());
        }
        // Another stack's: refused even when adopted.
        let e = judge_live("a", &secret, &meta(Some("b"), &["tender"]), &adopt).unwrap_err();
        assert!(e.to_string().contains("belongs to stack b"), "{e}");
        // An adopt for the same name in another namespace does not match.
        let other: Vec<Adopt> = vec!["Secret/default/s".parse().unwrap()];
        assert!(judge_live("a", &secret, &meta(None, &[]), &other).is_err());
    }

    #[test]
    fn cluster_scope_needs_a_grant_but_namespaces_do_not() {
        let plan = |objects: Vec<Resolved>| Plan {
            stack: "radar".into(),
            objects: objects.into_iter().map(|r| (r, Value::Null)).collect(),
            existed: Default::default(),
            adopt: vec![],
            prune: vec![],
            notes: vec![],
            adopted: vec![],
        };
        let ns = resolved("Namespace", "", None, "radar");
        let cm = resolved("ConfigMap", "", Some("radar"), "c");
        let crb = resolved("ClusterRoleBinding", "rbac.authorization.k8s.io", None, "admin");
        let own = plan(vec![ns.clone(), cm.clone()]);
        assert_eq!(own.namespaces(), BTreeSet::from(["radar".to_string()]));
        own.check_scope(ClusterScope::NamespacesOnly, "1").unwrap();
        let wide = plan(vec![ns, cm, crb]);
        let e = wide.check_scope(ClusterScope::NamespacesOnly, "1").unwrap_err().to_string();
        assert!(e.contains("ClusterRoleBinding admin"), "{e}");
        wide.check_scope(ClusterScope::Granted, "1").unwrap();
    }
}
