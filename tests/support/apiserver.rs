//! A stand-in for the Kubernetes API server (no real one can be installed
//! here). It records every request, and models:
//!
//! - discovery (`/api/v1`, `/apis/apps/v1`, `/apis/rbac.authorization.k8s.io/v1`)
//!   for the kinds the tests use, each with its scope (namespaced or not);
//! - objects stored by server-side apply (`PATCH`, `application/apply-patch+yaml`):
//!   the applied body becomes the object, except that labels it already had
//!   and the body does not set are kept, and `metadata.managedFields` holds
//!   one `Apply` entry per field manager that applied it (the others'
//!   entries kept); `uid`, `resourceVersion` and `creationTimestamp` are set;
//! - `GET` of one object (a 404 `Status` when absent) with its labels and
//!   `managedFields`, and `DELETE` of one object (404 when absent);
//! - objects someone else left there ([`ApiServer::put`], as kubectl would);
//! - refusing the apply of named objects with a 422 ([`ApiServer::refuse`]).
//!
//! It does not model: field-level ownership or conflicts (an apply without
//! `force` is never refused), merging of nested fields and lists, namespaces
//! having to exist, list and watch, admission, authentication (the token is
//! not checked), RBAC, or the deletion of a Namespace's contents with it.
#![allow(dead_code)]

use std::collections::BTreeMap;
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

pub struct ApiServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// Objects (by name) whose apply is refused with 422.
    pub refuse: Arc<Mutex<Vec<String>>>,
    objects: Arc<Mutex<BTreeMap<String, Value>>>,
}

const CORE: &str = r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[
 {"name":"namespaces","singularName":"namespace","namespaced":false,"kind":"Namespace","verbs":["get","list","patch","delete"]},
 {"name":"configmaps","singularName":"configmap","namespaced":true,"kind":"ConfigMap","verbs":["get","list","patch","delete"]},
 {"name":"secrets","singularName":"secret","namespaced":true,"kind":"Secret","verbs":["get","list","patch","delete"]},
 {"name":"services","singularName":"service","namespaced":true,"kind":"Service","verbs":["get","list","patch","delete"]},
 {"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list","patch","delete"]}]}"#;
const APPS: &str = r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"apps/v1","resources":[
 {"name":"deployments","singularName":"deployment","namespaced":true,"kind":"Deployment","verbs":["get","list","patch","delete"]},
 {"name":"daemonsets","singularName":"daemonset","namespaced":true,"kind":"DaemonSet","verbs":["get","list","patch","delete"]}]}"#;
const RBAC: &str = r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"rbac.authorization.k8s.io/v1","resources":[
 {"name":"clusterroles","singularName":"clusterrole","namespaced":false,"kind":"ClusterRole","verbs":["get","list","patch","delete"]},
 {"name":"clusterrolebindings","singularName":"clusterrolebinding","namespaced":false,"kind":"ClusterRoleBinding","verbs":["get","list","patch","delete"]},
 {"name":"roles","singularName":"role","namespaced":true,"kind":"Role","verbs":["get","list","patch","delete"]},
 {"name":"rolebindings","singularName":"rolebinding","namespaced":true,"kind":"RoleBinding","verbs":["get","list","patch","delete"]}]}"#;

impl ApiServer {
    pub fn start() -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let refuse = Arc::new(Mutex::new(Vec::new()));
        let objects = Arc::new(Mutex::new(BTreeMap::new()));
        let version = Arc::new(Mutex::new(0u64));
        let (r, f, o) = (requests.clone(), refuse.clone(), objects.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (r, f, o, v) = (r.clone(), f.clone(), o.clone(), version.clone());
                std::thread::spawn(move || serve(stream, r, f, o, v));
            }
        });
        ApiServer { port, requests, refuse, objects }
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

    /// Leave `object` at `path` as another tool would: no tender label,
    /// field manager `manager`.
    pub fn put(&self, path: &str, mut object: Value, manager: &str) {
        object["metadata"]["managedFields"] = json!([{"manager": manager, "operation": "Update", "apiVersion": object["apiVersion"]}]);
        object["metadata"]["uid"] = json!(format!("uid-{path}"));
        self.objects.lock().unwrap().insert(path.to_owned(), object);
    }

    /// The live object at `path`.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }
}

fn status(code: u16, reason: &str, message: &str) -> String {
    json!({"kind": "Status", "apiVersion": "v1", "status": if code < 300 { "Success" } else { "Failure" },
           "reason": reason, "message": message, "code": code})
    .to_string()
}

fn serve(
    stream: TcpStream,
    requests: Arc<Mutex<Vec<Request>>>,
    refuse: Arc<Mutex<Vec<String>>>,
    objects: Arc<Mutex<BTreeMap<String, Value>>>,
    version: Arc<Mutex<u64>>,
) {
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
        let name = path.rsplit('/').next().unwrap_or("").to_string();
        let not_found = || (404, status(404, "NotFound", &format!("{path} not found")));
        let (code, answer) = match (method.as_str(), path.as_str()) {
            ("GET", "/api/v1") => (200, CORE.to_string()),
            ("GET", "/apis/apps/v1") => (200, APPS.to_string()),
            ("GET", "/apis/rbac.authorization.k8s.io/v1") => (200, RBAC.to_string()),
            ("GET", _) => match objects.lock().unwrap().get(&path) {
                Some(o) => (200, o.to_string()),
                None => not_found(),
            },
            ("PATCH", _) if refuse.lock().unwrap().contains(&name) => (
                422,
                status(422, "Invalid", &format!("{name} is invalid: spec.replicas: Invalid value")),
            ),
            ("PATCH", _) if content_type == "application/apply-patch+yaml" => {
                let manager = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("fieldManager="))
                    .unwrap_or("")
                    .to_string();
                match serde_json::from_str::<Value>(&body) {
                    Ok(applied) => {
                        let mut v = version.lock().unwrap();
                        *v += 1;
                        let stored = server_side_apply(
                            objects.lock().unwrap().get(&path),
                            applied,
                            &manager,
                            *v,
                            &path,
                        );
                        objects.lock().unwrap().insert(path.clone(), stored.clone());
                        (200, stored.to_string())
                    }
                    Err(e) => (400, status(400, "BadRequest", &e.to_string())),
                }
            }
            ("DELETE", _) => match objects.lock().unwrap().remove(&path) {
                Some(_) => (200, status(200, "", "deleted")),
                None => not_found(),
            },
            _ => not_found(),
        };
        requests.lock().unwrap().push(Request { method, path, query, content_type, body });
        let reason = if code == 200 { "OK" } else { "Error" };
        let _ = write!(
            out,
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
    }
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
    let meta = &mut applied["metadata"];
    meta["labels"] = Value::Object(labels);
    meta["managedFields"] = Value::Array(managed);
    meta["uid"] = old_meta.get("uid").cloned().unwrap_or_else(|| json!(format!("uid-{path}")));
    meta["resourceVersion"] = json!(version.to_string());
    meta["creationTimestamp"] =
        old_meta.get("creationTimestamp").cloned().unwrap_or_else(|| json!("2026-01-01T00:00:00Z"));
    applied
}
