//! The cluster step, kept thin: server-side apply of each object with the
//! `kube` crate (discovery per kind), and deletion of what the stack no
//! longer has.

use std::path::Path;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::{Client, Config};
use serde::Serialize;
use serde_yaml::Value;

use crate::DeployError;

/// The field manager tender applies with.
pub const FIELD_MANAGER: &str = "tender";
/// The label that marks an object as part of a stack.
pub const STACK_LABEL: &str = "tender.io/stack";

/// Identity of an object: what apply and prune address.
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

/// What the cluster step did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClusterReport {
    /// Objects applied.
    pub applied: Vec<String>,
    /// Objects deleted because the new version no longer has them.
    pub deleted: Vec<String>,
}

async fn api_for(client: &Client, obj: &ObjectRef) -> Result<Api<DynamicObject>, DeployError> {
    let (ar, caps) = pinned_kind(client, &obj.gvk()).await.map_err(|e| DeployError::Cluster {
        object: obj.to_string(),
        answer: format!("discovery: {e}"),
    })?;
    Ok(match (caps.scope, &obj.namespace) {
        (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &ar),
    })
}

/// Server-side apply `objects` (labelled with the stack) as field manager
/// `tender`, then delete `prune` (objects of the previous version that this
/// one no longer has). Stops at the first failure, naming the object and the
/// API server's answer.
pub fn apply(
    kubeconfig: &Path,
    stack: &str,
    objects: &[Value],
    prune: &[ObjectRef],
) -> Result<ClusterReport, DeployError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DeployError::Runtime)?;
    rt.block_on(async {
        let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| DeployError::Kubeconfig {
            path: kubeconfig.to_owned(),
            reason: e.to_string(),
        })?;
        let config =
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.map_err(
                |e| DeployError::Kubeconfig { path: kubeconfig.to_owned(), reason: e.to_string() },
            )?;
        let client = Client::try_from(config).map_err(|e| DeployError::Kubeconfig {
            path: kubeconfig.to_owned(),
            reason: e.to_string(),
        })?;
        let mut report = ClusterReport::default();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for obj in objects {
            let id = ObjectRef::of(obj).map_err(|reason| DeployError::BadObject { reason })?;
            let mut obj = obj.clone();
            obj["metadata"]["labels"][STACK_LABEL] = Value::String(stack.to_owned());
            let api = api_for(&client, &id).await?;
            api.patch(&id.name, &params, &Patch::Apply(&obj)).await.map_err(|e| {
                DeployError::Cluster { object: id.to_string(), answer: e.to_string() }
            })?;
            report.applied.push(id.to_string());
        }
        for id in prune {
            let api = api_for(&client, id).await?;
            match api.delete(&id.name, &DeleteParams::default()).await {
                Ok(_) => report.deleted.push(id.to_string()),
                // Already gone is what we wanted.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(DeployError::Cluster {
                        object: id.to_string(),
                        answer: e.to_string(),
                    });
                }
            }
        }
        Ok(report)
    })
}
