//! The cluster step, kept thin: resolve each object's API and namespace by
//! discovery, look at what is live before anything changes, server-side
//! apply with the `kube` crate, and delete what the stack no longer has,
//! but only what tender made for this stack.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::client::AuthError;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError, LoadDataError};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::{Client, Config};
use serde::Serialize;
use serde_yaml::Value;

use crate::DeployError;

/// Namespaces no stack may claim without a cluster-scope grant: the
/// cluster's own, and `default`, which every namespace-less object of any
/// tool lands in.
pub const SHARED_NAMESPACES: [&str; 4] =
    ["kube-system", "kube-public", "kube-node-lease", "default"];

/// The field manager tender applies with.
pub const FIELD_MANAGER: &str = "tender";
/// The label that marks an object as part of a stack.
pub const STACK_LABEL: &str = "tender.io/stack";

/// Identity of an object as a manifest writes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    /// `group/version` or `version`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace as written (None: the default, or cluster-scoped).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{} ({})", self.kind, ns, self.name, self.api_version),
            None => write!(f, "{} {} ({})", self.kind, self.name, self.api_version),
        }
    }
}

impl ObjectRef {
    /// The identity of a manifest object.
    pub fn of(obj: &Value) -> Result<ObjectRef, String> {
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(String::from);
        let api_version = s(obj.get("apiVersion")).ok_or("an object without apiVersion")?;
        let kind = s(obj.get("kind")).ok_or("an object without kind")?;
        let meta = obj.get("metadata");
        let name = s(meta.and_then(|m| m.get("name")))
            .ok_or_else(|| format!("a {kind} without metadata.name"))?;
        Ok(ObjectRef {
            api_version,
            kind,
            namespace: s(meta.and_then(|m| m.get("namespace"))),
            name,
        })
    }

    fn gvk(&self) -> GroupVersionKind {
        let (group, version) = self.api_version.split_once('/').unwrap_or(("", &self.api_version));
        GroupVersionKind::gvk(group, version, &self.kind)
    }
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
}

impl Resolved {
    /// Kind, group, namespace and name: the same object whatever version
    /// of its API a manifest names.
    fn key(&self) -> (&str, &str, Option<&str>, &str) {
        (&self.resource.group, &self.resource.kind, self.namespace.as_deref(), &self.written.name)
    }

    /// A core Namespace object.
    fn is_namespace(&self) -> bool {
        self.resource.group.is_empty() && self.resource.kind == "Namespace"
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
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = &self.written;
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{} ({})", w.kind, ns, w.name, w.api_version),
            None => write!(f, "{} {} ({})", w.kind, w.name, w.api_version),
        }
    }
}

/// What a version would do to the cluster, resolved by discovery before
/// anything changes.
#[derive(Debug)]
pub struct Plan {
    stack: String,
    /// Objects to apply, labelled with the stack, in manifest order.
    objects: Vec<(Resolved, Value)>,
    /// Objects of the version applied before that this one no longer has.
    prune: Vec<Resolved>,
    /// Why prune will leave something alone, found while planning.
    notes: Vec<String>,
    /// Live objects taken over because the engineer said `--adopt`.
    adopted: Vec<String>,
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
    /// (apiVersion, kind) -> resource and whether it is namespaced.
    discovered: Mutex<HashMap<(String, String), (ApiResource, Scope)>>,
    rt: tokio::runtime::Runtime,
}

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
            let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| err(kubeconfig_problem(&e)))?;
            Client::try_from(config).map_err(|e| err(answer(&e)))
        })?;
        Ok(Cluster { client, discovered: Mutex::new(HashMap::new()), rt })
    }

    /// The namespace objects written without one land in.
    pub fn default_namespace(&self) -> &str {
        self.client.default_namespace()
    }

    async fn resolve(&self, obj: &ObjectRef) -> Result<Resolved, DeployError> {
        let key = (obj.api_version.clone(), obj.kind.clone());
        let cached = self.discovered.lock().expect("discovery cache").get(&key).cloned();
        let (resource, scope) = match cached {
            Some(hit) => hit,
            None => {
                let (ar, caps) = pinned_kind(&self.client, &obj.gvk()).await.map_err(|e| {
                    DeployError::Cluster {
                        object: obj.to_string(),
                        answer: format!("discovery: {}", answer(&e)),
                    }
                })?;
                let hit = (ar, caps.scope);
                self.discovered.lock().expect("discovery cache").insert(key, hit.clone());
                hit
            }
        };
        let namespace = match scope {
            Scope::Cluster => None,
            Scope::Namespaced => {
                Some(obj.namespace.clone().unwrap_or_else(|| self.default_namespace().to_owned()))
            }
        };
        Ok(Resolved { written: obj.clone(), resource, namespace })
    }

    /// Resolve `objects` (to apply for `stack`) and `before` (the objects
    /// of the version applied before, None if it is not known) by
    /// discovery. Reads only.
    pub fn plan(
        &self,
        stack: &str,
        objects: &[Value],
        before: Option<&[Value]>,
    ) -> Result<Plan, DeployError> {
        self.rt.block_on(async {
            let mut plan = Plan {
                stack: stack.to_owned(),
                objects: Vec::new(),
                prune: Vec::new(),
                notes: Vec::new(),
                adopted: Vec::new(),
            };
            for obj in objects {
                let id = ObjectRef::of(obj).map_err(|reason| DeployError::BadObject { reason })?;
                let resolved = self.resolve(&id).await?;
                let mut obj = obj.clone();
                obj["metadata"]["labels"][STACK_LABEL] = Value::String(stack.to_owned());
                plan.objects.push((resolved, obj));
            }
            let Some(before) = before else { return Ok(plan) };
            let now: BTreeSet<_> = plan.objects.iter().map(|(r, _)| r.key()).collect();
            let mut prune = Vec::new();
            for obj in before {
                let id = ObjectRef::of(obj).map_err(|reason| DeployError::BadObject { reason })?;
                match self.resolve(&id).await {
                    Ok(r) if !now.contains(&r.key()) => prune.push(r),
                    Ok(_) => {}
                    // A kind the cluster no longer serves has nothing to delete.
                    Err(e) => plan.notes.push(format!("{id}: left in place: {e}")),
                }
            }
            plan.prune = prune;
            Ok(plan)
        })
    }

    /// Look at every object the plan would apply: refuse, naming it, one
    /// labelled for another stack, and one that tender did not make for
    /// this stack unless `adopt` names it; refuse an `adopt` that names no
    /// object of the plan. Reads only.
    pub fn check_live(&self, plan: &mut Plan, adopt: &[Adopt]) -> Result<(), DeployError> {
        if let Some(a) = adopt.iter().find(|a| !plan.objects.iter().any(|(r, _)| r.matches(a))) {
            return Err(DeployError::AdoptNothing { adopt: a.clone(), stack: plan.stack.clone() });
        }
        self.rt.block_on(async {
            let mut adopted = Vec::new();
            for (r, _) in &plan.objects {
                let live = r.api(&self.client).get_opt(&r.written.name).await.map_err(|e| {
                    DeployError::Cluster { object: r.to_string(), answer: answer(&e) }
                })?;
                if let Some(live) = live
                    && judge_live(&plan.stack, r, &live.metadata, adopt)?
                {
                    adopted.push(r.to_string());
                }
            }
            plan.adopted = adopted;
            Ok(())
        })
    }

    /// Server-side apply the plan's objects as field manager `tender`, then
    /// delete what the version applied before had and this one has not, if
    /// tender made it for this stack (looked at again just before). Stops at
    /// the first failure, naming the object and the API server's answer.
    pub fn apply(&self, plan: &Plan) -> Result<ClusterReport, DeployError> {
        self.rt.block_on(async {
            let mut report = ClusterReport {
                adopted: plan.adopted.clone(),
                skipped: plan.notes.clone(),
                ..ClusterReport::default()
            };
            // Force: fields another manager holds are taken over; check_live
            // has made sure the object is this stack's or adopted.
            let params = PatchParams::apply(FIELD_MANAGER).force();
            for (r, obj) in &plan.objects {
                r.api(&self.client).patch(&r.written.name, &params, &Patch::Apply(obj)).await.map_err(
                    |e| DeployError::Cluster { object: r.to_string(), answer: answer(&e) },
                )?;
                report.applied.push(r.to_string());
            }
            for r in &plan.prune {
                let api = r.api(&self.client);
                let cluster_err = |e: kube::Error| DeployError::Cluster {
                    object: r.to_string(),
                    answer: answer(&e),
                };
                // Already gone is what we wanted.
                let Some(live) = api.get_opt(&r.written.name).await.map_err(cluster_err)? else {
                    continue;
                };
                if !made_for(&plan.stack, &live.metadata) {
                    report.skipped.push(format!(
                        "{r}: left in place: not labelled {STACK_LABEL}={} with field manager {FIELD_MANAGER}",
                        plan.stack
                    ));
                    continue;
                }
                match api.delete(&r.written.name, &DeleteParams::default()).await {
                    Ok(_) => report.deleted.push(r.to_string()),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(cluster_err(e)),
                }
            }
            Ok(report)
        })
    }
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
