//! A stand-in for the Kubernetes API server (no real one can be installed
//! here): it answers discovery for the kinds the tests use, records every
//! request, and answers server-side apply and delete the way the API server
//! does. It checks nothing itself; the tests assert on what it recorded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

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
}

const CORE: &str = r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[
 {"name":"namespaces","singularName":"namespace","namespaced":false,"kind":"Namespace","verbs":["get","list","patch","delete"]},
 {"name":"configmaps","singularName":"configmap","namespaced":true,"kind":"ConfigMap","verbs":["get","list","patch","delete"]},
 {"name":"services","singularName":"service","namespaced":true,"kind":"Service","verbs":["get","list","patch","delete"]},
 {"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list","patch","delete"]}]}"#;
const APPS: &str = r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"apps/v1","resources":[
 {"name":"deployments","singularName":"deployment","namespaced":true,"kind":"Deployment","verbs":["get","list","patch","delete"]},
 {"name":"daemonsets","singularName":"daemonset","namespaced":true,"kind":"DaemonSet","verbs":["get","list","patch","delete"]}]}"#;

impl ApiServer {
    pub fn start() -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let refuse = Arc::new(Mutex::new(Vec::new()));
        let (r, f) = (requests.clone(), refuse.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (r, f) = (r.clone(), f.clone());
                std::thread::spawn(move || serve(stream, r, f));
            }
        });
        ApiServer { port, requests, refuse }
    }

    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: standin, cluster: {{server: \"http://127.0.0.1:{}\"}}}}]\n\
             users: [{{name: u, user: {{token: test-token}}}}]\n\
             contexts: [{{name: c, context: {{cluster: standin, user: u, namespace: default}}}}]\ncurrent-context: c\n",
            self.port
        )
    }

    pub fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

fn serve(stream: TcpStream, requests: Arc<Mutex<Vec<Request>>>, refuse: Arc<Mutex<Vec<String>>>) {
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
        let (status, answer) = match (method.as_str(), path.as_str()) {
            ("GET", "/api/v1") => (200, CORE.to_string()),
            ("GET", "/apis/apps/v1") => (200, APPS.to_string()),
            ("PATCH", _) if refuse.lock().unwrap().contains(&name) => (
                422,
                format!(r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"{name} is invalid: spec.replicas: Invalid value","reason":"Invalid","code":422}}"#),
            ),
            ("PATCH", _) => (200, echo(&body)),
            ("DELETE", _) => (200, r#"{"kind":"Status","apiVersion":"v1","status":"Success","code":200}"#.to_string()),
            _ => (404, r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#.to_string()),
        };
        requests.lock().unwrap().push(Request { method, path, query, content_type, body });
        let reason = if status == 200 { "OK" } else { "Error" };
        let _ = write!(
            out,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
    }
}

/// kube sends the apply body as JSON (which is YAML); echo it back.
fn echo(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .map_or_else(|_| r#"{"kind":"Unknown"}"#.to_string(), |v| v.to_string())
}
