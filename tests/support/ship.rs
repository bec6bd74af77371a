//! A ship for the cluster suites: the demo stack's two releases packed, a
//! real `docker-registry` for the images, and the stand-in API server.
//! Release 1 carries a ConfigMap `old-config` that release 2 drops.
#![allow(dead_code)]

use std::fs;
use std::process::Command;

use super::apiserver::ApiServer;
use super::{Env, Registry, Run};

pub struct Ship {
    pub env: Env,
    pub registry: Registry,
    pub api: ApiServer,
}

impl Ship {
    pub fn new() -> Ship {
        let env = Env::new();
        fs::write(
            env.path().join("stack/v1/old.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old-config, namespace: awareness}\ndata: {a: b}\n",
        )
        .unwrap();
        env.pack(1, "ci.key", 1, "v1.tender");
        env.pack(2, "ci.key", 2, "v2.tender");
        let api = ApiServer::start();
        fs::write(env.path().join("kubeconfig"), api.kubeconfig()).unwrap();
        Ship { env, registry: Registry::start(), api }
    }

    /// `tender-ship ARGS`, with the registry (and the kubeconfig) added
    /// for the commands that need them.
    pub fn ship(&self, args: &[&str]) -> Run {
        let host = self.registry.host();
        let mut a: Vec<&str> = args.to_vec();
        let cmd = args.iter().find(|a| !a.starts_with("--")).copied().unwrap_or("");
        if matches!(cmd, "apply" | "rollback" | "load") {
            a.extend(["--registry", &host]);
        }
        if matches!(cmd, "apply" | "rollback") || (cmd == "status" && args.contains(&"--cluster")) {
            a.extend(["--kubeconfig", "kubeconfig"]);
        }
        self.env.ship(&a)
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.env.ship(&["--json", "status"]).ok().stdout).unwrap()
    }

    /// The image `apply --dry-run` pins `name` of stack version `version` to.
    pub fn pinned(&self, version: &str, name: &str) -> String {
        let out = self.ship(&["apply", "awareness", version, "--dry-run"]).ok().stdout;
        let needle = format!("/fleet/{name}@sha256:");
        out.lines()
            .filter_map(|l| l.trim().strip_prefix("image: "))
            .map(|i| i.trim_matches(|c| c == '\'' || c == '"'))
            .find(|i| i.contains(&needle))
            .unwrap_or_else(|| panic!("no {name} image in {out}"))
            .to_string()
    }
}

pub fn skopeo_inspect(reference: &str) -> bool {
    Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{reference}")])
        .output()
        .unwrap()
        .status
        .success()
}
