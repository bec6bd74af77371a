//! A stand-in for the Kubernetes API server (no real one can be installed
//! here; `tests/real_cluster.rs` runs the same scenarios against a real
//! cluster when one is named). It records every request, and models:
//!
//! - discovery (`/api/v1`, `/apis/apps/v1`, `/apis/batch/v1`,
//!   `/apis/rbac.authorization.k8s.io/v1`, `/apis/apiextensions.k8s.io/v1`)
//!   for the kinds the tests use, each with its scope; and, for every
//!   CustomResourceDefinition stored and Established, its group and version
//!   with the kind it defines (a kind is not served before that);
//! - objects stored by server-side apply (`PATCH`, `application/apply-patch+yaml`):
//!   the applied body becomes the object, except that labels it already had
//!   and the body does not set are kept, `status` is kept, and
//!   `metadata.managedFields` holds one `Apply` entry per field manager (the
//!   others' kept); `uid`, `resourceVersion` and `creationTimestamp` are set;
//!   `metadata.generation` starts at 1 and rises when `spec` changes;
//! - the NamespaceLifecycle admission: a namespaced object in a namespace
//!   that does not exist is refused with 404 (`default`, `kube-system`,
//!   `kube-public` and `kube-node-lease` exist from the start);
//! - controllers, as far as health depends on them: on `GET`, a Deployment,
//!   StatefulSet, DaemonSet or Job gets the status its controller would
//!   write. By default it is ready at once; [`ApiServer::behave`] picks, by
//!   the images of its pod template, one that is ready only after N reads
//!   since its last spec change, or never ready with its pods in
//!   CrashLoopBackOff, ImagePullBackOff or Unschedulable. A CRD becomes
//!   Established on its second read ([`ApiServer::crd_reads`] changes it);
//!   a PersistentVolumeClaim is Bound;
//! - `GET` of one object (a 404 `Status` when absent), the list of pods of a
//!   namespace by `labelSelector` (one synthesized pod per workload the
//!   selector matches, with the state its behaviour gives), and `DELETE` of
//!   one object (404 when absent);
//! - objects someone else left there ([`ApiServer::put`], as kubectl would);
//! - refusing the apply of named objects, or of bodies that contain a
//!   text (an image digest), with a 422 ([`ApiServer::refuse`],
//!   [`ApiServer::refuse_body`]);
//! - an API server that stops answering (etcd stuck: the connection is
//!   accepted and the request read, no answer ever comes): a `GET` of an
//!   object whose stored form contains a text of [`ApiServer::stall_when`];
//! - the list of PersistentVolumeClaims of a namespace (every claim stored
//!   there, whoever made it: a StatefulSet's claim templates included).
//!
//! It does not model: field-level ownership or conflicts (an apply without
//! `force` is never refused), merging of nested fields and lists, watch
//! (tender polls), lists of kinds other than pods and claims, ReplicaSets and real
//! pods, admission other than NamespaceLifecycle, authentication (the
//! token is not checked), RBAC, garbage collection (deleting a Namespace or
//! a Deployment deletes nothing else), or a CRD's schema.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: String,
}

/// How a workload's controller and pods behave (see the header).
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Ready after this many reads since its spec last changed.
    ReadyAfter(u32),
    /// Never ready; its pods in this state.
    Never(PodState),
}

/// Why a pod does not come up.
#[derive(Clone, Debug)]
pub enum PodState {
    /// The container exits; `message` is its last termination message.
    CrashLoop { message: String },
    /// The image cannot be pulled.
    ImagePull,
    /// No node fits.
    Unschedulable,
}

type Rule = Box<dyn Fn(&str) -> Option<Behaviour> + Send>;

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    /// Reads of each object since its generation last changed.
    reads: HashMap<String, u32>,
    version: u64,
}

pub struct ApiServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// Objects (by name) whose apply is refused with 422.
    pub refuse: Arc<Mutex<Vec<String>>>,
    /// Applies whose body contains one of these are refused with 422.
    pub refuse_body: Arc<Mutex<Vec<String>>>,
    /// A `GET` of an object whose stored form contains one of these is
    /// never answered.
    pub stall_when: Arc<Mutex<Vec<String>>>,
    rules: Arc<Mutex<Vec<Rule>>>,
    crd_reads: Arc<Mutex<u32>>,
    state: Arc<Mutex<State>>,
}

#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Request>>>,
    refuse: Arc<Mutex<Vec<String>>>,
    refuse_body: Arc<Mutex<Vec<String>>>,
    stall_when: Arc<Mutex<Vec<String>>>,
    rules: Arc<Mutex<Vec<Rule>>>,
    crd_reads: Arc<Mutex<u32>>,
    state: Arc<Mutex<State>>,
}

const BUILTIN_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// (group/version, resource, kind, namespaced)
const KINDS: &[(&str, &str, &str, bool)] = &[
    ("v1", "namespaces", "Namespace", false),
    ("v1", "configmaps", "ConfigMap", true),
    ("v1", "secrets", "Secret", true),
    ("v1", "services", "Service", true),
    ("v1", "pods", "Pod", true),
    ("v1", "serviceaccounts", "ServiceAccount", true),
    ("v1", "persistentvolumeclaims", "PersistentVolumeClaim", true),
    ("apps/v1", "deployments", "Deployment", true),
    ("apps/v1", "daemonsets", "DaemonSet", true),
    ("apps/v1", "statefulsets", "StatefulSet", true),
    ("batch/v1", "jobs", "Job", true),
    ("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", false),
    ("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", false),
    ("rbac.authorization.k8s.io/v1", "roles", "Role", true),
    ("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding", true),
    ("apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition", false),
];

fn resource_list(group_version: &str, resources: Vec<Value>) -> String {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
           "resources": resources})
    .to_string()
}

fn resource(name: &str, kind: &str, namespaced: bool) -> Value {
    json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": namespaced,
           "kind": kind, "verbs": ["get", "list", "patch", "delete"]})
}

impl ApiServer {
    pub fn start() -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Shared {
            requests: Arc::default(),
            refuse: Arc::default(),
            refuse_body: Arc::default(),
            stall_when: Arc::default(),
            rules: Arc::default(),
            crd_reads: Arc::new(Mutex::new(2)),
            state: Arc::default(),
        };
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let s = s.clone();
                std::thread::spawn(move || serve(stream, s));
            }
        });
        ApiServer {
            port,
            requests: shared.requests,
            refuse: shared.refuse,
            refuse_body: shared.refuse_body,
            stall_when: shared.stall_when,
            rules: shared.rules,
            crd_reads: shared.crd_reads,
            state: shared.state,
        }
    }

    /// A kubeconfig for this server whose context's namespace is `default`.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_in("default")
    }

    /// A kubeconfig for this server whose context's namespace is `ns`.
    pub fn kubeconfig_in(&self, ns: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: standin, cluster: {{server: \"http://127.0.0.1:{}\"}}}}]\n\
             users: [{{name: u, user: {{token: test-token}}}}]\n\
             contexts: [{{name: c, context: {{cluster: standin, user: u, namespace: {ns}}}}}]\ncurrent-context: c\n",
            self.port
        )
    }

    pub fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }

    /// Workloads whose pod template has an image for which `rule` returns
    /// a behaviour behave so (the first rule that answers wins; no answer:
    /// ready at once).
    pub fn behave(&self, rule: impl Fn(&str) -> Option<Behaviour> + Send + 'static) {
        self.rules.lock().unwrap().push(Box::new(rule));
    }

    /// Forget every rule: workloads are ready at once again.
    pub fn behave_well(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// A CRD is Established from its `n`th read on.
    pub fn crd_reads(&self, n: u32) {
        *self.crd_reads.lock().unwrap() = n;
    }

    /// Leave `object` at `path` as another tool would: no tender label,
    /// field manager `manager`.
    pub fn put(&self, path: &str, mut object: Value, manager: &str) {
        object["metadata"]["managedFields"] = json!([{"manager": manager, "operation": "Update", "apiVersion": object["apiVersion"]}]);
        object["metadata"]["uid"] = json!(format!("uid-{path}"));
        self.state.lock().unwrap().objects.insert(path.to_owned(), object);
    }

    /// The live object at `path`.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// Every live object: path -> (labels, spec or data), without what the
    /// server sets (uid, resourceVersion, managedFields, generation, status).
    pub fn contents(&self) -> BTreeMap<String, Value> {
        let state = self.state.lock().unwrap();
        state
            .objects
            .iter()
            .map(|(path, o)| {
                let mut o = o.clone();
                if let Some(m) = o["metadata"].as_object_mut() {
                    for k in [
                        "uid",
                        "resourceVersion",
                        "managedFields",
                        "generation",
                        "creationTimestamp",
                    ] {
                        m.remove(k);
                    }
                }
                if let Some(m) = o.as_object_mut() {
                    m.remove("status");
                }
                (path.clone(), o)
            })
            .collect()
    }
}

fn status(code: u16, reason: &str, message: &str) -> String {
    json!({"kind": "Status", "apiVersion": "v1", "status": if code < 300 { "Success" } else { "Failure" },
           "reason": reason, "message": message, "code": code})
    .to_string()
}

/// The namespace a namespaced object's path names.
fn namespace_of(path: &str) -> Option<&str> {
    let rest = path.split("/namespaces/").nth(1)?;
    let mut parts = rest.split('/');
    let ns = parts.next()?;
    // `/api/v1/namespaces/NAME` is the Namespace itself.
    parts.next().map(|_| ns)
}

fn namespace_exists(state: &State, ns: &str) -> bool {
    BUILTIN_NAMESPACES.contains(&ns)
        || state.objects.contains_key(&format!("/api/v1/namespaces/{ns}"))
}

fn serve(stream: TcpStream, s: Shared) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let (path, query) = target
            .split_once('?')
            .map_or((target.clone(), String::new()), |(p, q)| (p.into(), q.into()));
        let (mut len, mut content_type) = (0usize, String::new());
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "content-type" => content_type = v.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        if method == "GET" && stalls(&s, &path) {
            s.requests.lock().unwrap().push(Request { method, path, query, content_type, body });
            // Never answered; the connection stays open.
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        let (code, answer) = answer(&s, &method, &path, &query, &content_type, &body);
        s.requests.lock().unwrap().push(Request { method, path, query, content_type, body });
        let reason = if code == 200 { "OK" } else { "Error" };
        let _ = write!(
            out,
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
    }
}

fn answer(
    s: &Shared,
    method: &str,
    path: &str,
    query: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let name = path.rsplit('/').next().unwrap_or("").to_string();
    let not_found = || (404, status(404, "NotFound", &format!("{path} not found")));
    if method == "GET" {
        if let Some(list) = discovery(s, path) {
            return (200, list);
        }
        if path.ends_with("/pods") {
            return (200, pods(s, path, query));
        }
        if path.ends_with("/persistentvolumeclaims") {
            return (200, claims(s, path));
        }
        let mut state = s.state.lock().unwrap();
        let Some(mut obj) = state.objects.get(path).cloned() else { return not_found() };
        let reads = {
            let r = state.reads.entry(path.to_owned()).or_insert(0);
            *r += 1;
            *r
        };
        let crd_reads = *s.crd_reads.lock().unwrap();
        controller(&mut obj, reads, crd_reads, &s.rules.lock().unwrap());
        state.objects.insert(path.to_owned(), obj.clone());
        return (200, obj.to_string());
    }
    let refused_body = s.refuse_body.lock().unwrap().iter().any(|t| body.contains(t.as_str()));
    if method == "PATCH" && (refused_body || s.refuse.lock().unwrap().contains(&name)) {
        return (
            422,
            status(422, "Invalid", &format!("{name} is invalid: spec.replicas: Invalid value")),
        );
    }
    if method == "PATCH" && content_type == "application/apply-patch+yaml" {
        let manager = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("fieldManager="))
            .unwrap_or("")
            .to_string();
        let applied: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => return (400, status(400, "BadRequest", &e.to_string())),
        };
        let mut state = s.state.lock().unwrap();
        if let Some(ns) = namespace_of(path)
            && !namespace_exists(&state, ns)
        {
            return (404, status(404, "NotFound", &format!("namespaces \"{ns}\" not found")));
        }
        state.version += 1;
        let old = state.objects.get(path).cloned();
        let stored = server_side_apply(old.as_ref(), applied, &manager, state.version, path);
        if old.as_ref().map(|o| &o["metadata"]["generation"])
            != Some(&stored["metadata"]["generation"])
        {
            state.reads.remove(path);
        }
        state.objects.insert(path.to_owned(), stored.clone());
        return (200, stored.to_string());
    }
    if method == "DELETE" {
        let mut state = s.state.lock().unwrap();
        state.reads.remove(path);
        return match state.objects.remove(path) {
            Some(_) => (200, status(200, "", "deleted")),
            None => not_found(),
        };
    }
    not_found()
}

/// Whether a `GET` of `path` is never answered (see [`ApiServer::stall_when`]).
fn stalls(s: &Shared, path: &str) -> bool {
    let texts = s.stall_when.lock().unwrap();
    let state = s.state.lock().unwrap();
    state.objects.get(path).is_some_and(|o| {
        let o = o.to_string();
        texts.iter().any(|t| o.contains(t.as_str()))
    })
}

/// Every claim stored in the namespace `path` names.
fn claims(s: &Shared, path: &str) -> String {
    let prefix = format!("{path}/");
    let state = s.state.lock().unwrap();
    let items: Vec<Value> = state
        .objects
        .iter()
        .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
        .map(|(_, o)| o.clone())
        .collect();
    json!({"kind": "PersistentVolumeClaimList", "apiVersion": "v1",
           "metadata": {"resourceVersion": "1"}, "items": items})
    .to_string()
}

/// The resource list of a group version, built-in or CRD-defined.
fn discovery(s: &Shared, path: &str) -> Option<String> {
    let gv = match path {
        "/api/v1" => "v1",
        p => p.strip_prefix("/apis/").filter(|gv| gv.matches('/').count() == 1)?,
    };
    let mut resources: Vec<Value> =
        KINDS.iter().filter(|(g, ..)| *g == gv).map(|(_, r, k, n)| resource(r, k, *n)).collect();
    let state = s.state.lock().unwrap();
    for crd in state.objects.values().filter(|o| o["kind"] == "CustomResourceDefinition") {
        let established = crd["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Established" && c["status"] == "True"));
        let spec = &crd["spec"];
        let serves = spec["versions"].as_array().into_iter().flatten().any(|v| {
            format!("{}/{}", spec["group"].as_str().unwrap_or(""), v["name"].as_str().unwrap_or(""))
                == gv
        });
        if established && serves {
            resources.push(resource(
                spec["names"]["plural"].as_str().unwrap_or(""),
                spec["names"]["kind"].as_str().unwrap_or(""),
                spec["scope"] != "Cluster",
            ));
        }
    }
    (!resources.is_empty()).then(|| resource_list(gv, resources))
}

/// The images of a workload's pod template.
fn images(obj: &Value) -> Vec<String> {
    let spec = &obj["spec"]["template"]["spec"];
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[k].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["image"].as_str().map(String::from))
        .collect()
}

fn behaviour(obj: &Value, rules: &[Rule]) -> Option<Behaviour> {
    images(obj).iter().find_map(|i| rules.iter().find_map(|r| r(i)))
}

/// Write the status a controller would, given how many times the object
/// was read since its spec changed.
fn controller(obj: &mut Value, reads: u32, crd_reads: u32, rules: &[Rule]) {
    let kind = obj["kind"].as_str().unwrap_or("").to_string();
    let generation = obj["metadata"]["generation"].clone();
    let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let ready = match behaviour(obj, rules) {
        None => true,
        Some(Behaviour::ReadyAfter(n)) => reads >= n,
        Some(Behaviour::Never(_)) => false,
    };
    let n = if ready { want } else { 0 };
    obj["status"] = match kind.as_str() {
        "Deployment" => json!({"observedGeneration": generation, "replicas": want,
            "updatedReplicas": want, "readyReplicas": n, "availableReplicas": n}),
        "StatefulSet" => json!({"observedGeneration": generation, "replicas": want,
            "readyReplicas": n, "updatedReplicas": want,
            "currentRevision": "r", "updateRevision": "r"}),
        "DaemonSet" => json!({"observedGeneration": generation, "desiredNumberScheduled": 1,
            "currentNumberScheduled": 1, "updatedNumberScheduled": 1,
            "numberAvailable": n.min(1), "numberReady": n.min(1)}),
        "Job" if ready => {
            json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
        }
        "Job" => json!({"active": 1}),
        "PersistentVolumeClaim" => json!({"phase": "Bound"}),
        "CustomResourceDefinition" if reads >= crd_reads => json!({"conditions": [
            {"type": "NamesAccepted", "status": "True"},
            {"type": "Established", "status": "True"}]}),
        "CustomResourceDefinition" => {
            json!({"conditions": [{"type": "NamesAccepted", "status": "True"}]})
        }
        _ => return,
    };
}

/// The pods of a namespace's workloads whose selector the query names.
fn pods(s: &Shared, path: &str, query: &str) -> String {
    let ns = path.split('/').nth(4).unwrap_or("");
    let selector = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("labelSelector="))
        .unwrap_or("")
        .replace("%3D", "=")
        .replace("%2C", ",");
    let state = s.state.lock().unwrap();
    let rules = s.rules.lock().unwrap();
    let mut items = Vec::new();
    for (p, o) in &state.objects {
        if namespace_of(p) != Some(ns) || !o["spec"]["template"].is_object() {
            continue;
        }
        let labels = o["spec"]["selector"]["matchLabels"].as_object().cloned().unwrap_or_default();
        let mine: Vec<String> =
            labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
        if mine.join(",") != selector {
            continue;
        }
        let name = format!("{}-7c9d-x2x4q", o["metadata"]["name"].as_str().unwrap_or(""));
        let container = o["spec"]["template"]["spec"]["containers"][0]["name"].clone();
        let pod_status = match behaviour(o, &rules) {
            Some(Behaviour::Never(PodState::CrashLoop { message })) => json!({"phase": "Running",
                "containerStatuses": [{"name": container, "ready": false, "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": message}}}]}),
            Some(Behaviour::Never(PodState::ImagePull)) => json!({"phase": "Pending",
                "containerStatuses": [{"name": container, "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ImagePullBackOff",
                        "message": "Back-off pulling image"}}}]}),
            Some(Behaviour::Never(PodState::Unschedulable)) => json!({"phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."}]}),
            _ => json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
        };
        items.push(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels}, "status": pod_status}));
    }
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})
        .to_string()
}

/// The object after `manager` applied `applied` over `old` (see the header
/// for what is modelled).
fn server_side_apply(
    old: Option<&Value>,
    mut applied: Value,
    manager: &str,
    version: u64,
    path: &str,
) -> Value {
    let old_meta = old.map(|o| o["metadata"].clone()).unwrap_or(json!({}));
    let mut labels = old_meta["labels"].as_object().cloned().unwrap_or_default();
    if let Some(new) = applied["metadata"]["labels"].as_object() {
        labels.extend(new.clone());
    }
    let mut managed: Vec<Value> = old_meta["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["manager"] != manager)
        .collect();
    managed.push(json!({
        "manager": manager, "operation": "Apply", "apiVersion": applied["apiVersion"],
        "fieldsType": "FieldsV1", "fieldsV1": {}, "time": "2026-01-01T00:00:00Z",
    }));
    let old_generation = old_meta["generation"].as_i64().unwrap_or(0);
    let spec_changed = old.is_none_or(|o| o["spec"] != applied["spec"]);
    let generation = if spec_changed { old_generation + 1 } else { old_generation.max(1) };
    if let Some(status) = old.and_then(|o| o.get("status")) {
        applied["status"] = status.clone();
    }
    let meta = &mut applied["metadata"];
    meta["labels"] = Value::Object(labels);
    meta["managedFields"] = Value::Array(managed);
    meta["generation"] = json!(generation);
    meta["uid"] = old_meta.get("uid").cloned().unwrap_or_else(|| json!(format!("uid-{path}")));
    meta["resourceVersion"] = json!(version.to_string());
    meta["creationTimestamp"] =
        old_meta.get("creationTimestamp").cloned().unwrap_or_else(|| json!("2026-01-01T00:00:00Z"));
    applied
}
