//! The last-mile scenarios against a real cluster (microk8s or k3s), run
//! only when `TENDER_TEST_KUBECONFIG` names its kubeconfig; skipped, and
//! saying so, otherwise (no API server can be installed where CI runs: the
//! same scenarios run there against the stand-in, in `tests/rollout.rs`).
//!
//! - `TENDER_TEST_KUBECONFIG`: a kubeconfig whose user may create
//!   namespaces and apply Deployments, Services and ConfigMaps;
//! - `TENDER_TEST_REGISTRY`: the registry the cluster pulls from, reachable
//!   from here (default `localhost:32000`, microk8s's registry add-on; plain
//!   HTTP on loopback; set `TENDER_TEST_REGISTRY_INSECURE=1` for plain HTTP
//!   elsewhere, e.g. k3s with a `registries.yaml` mirror).
//!
//! Each test works in a namespace of its own (`tender-e2e-...`), and
//! deletes it at the end with `kubectl` when there is one (tender itself
//! never deletes a Namespace). The images are the fleet fixture's, which
//! carry busybox: the pods run `busybox sleep`.

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::{Env, Run};

struct RealCluster {
    env: Env,
    kubeconfig: PathBuf,
    registry: String,
    insecure: bool,
    namespace: String,
}

/// The cluster, or None after saying why the test is skipped.
fn cluster(test: &str) -> Option<RealCluster> {
    let Some(kubeconfig) = std::env::var_os("TENDER_TEST_KUBECONFIG") else {
        // Straight to stderr: the test harness captures eprintln!, and a
        // skip must be seen.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipped {test}: TENDER_TEST_KUBECONFIG is not set (it names a real cluster's kubeconfig; see docs/ship.md)"
        );
        return None;
    };
    let registry =
        std::env::var("TENDER_TEST_REGISTRY").unwrap_or_else(|_| "localhost:32000".into());
    let insecure = std::env::var("TENDER_TEST_REGISTRY_INSECURE").is_ok_and(|v| v == "1");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let namespace = format!("tender-e2e-{}-{}", std::process::id(), nanos.subsec_micros());
    Some(RealCluster {
        env: Env::new(),
        kubeconfig: kubeconfig.into(),
        registry,
        insecure,
        namespace,
    })
}

/// What a release of the test stack holds.
struct Release<'a> {
    version: &'a str,
    image_tag: &'a str,
    /// The container's command: `sleep` comes up, `false` crash-loops.
    command: &'a str,
    configmap: &'a str,
    /// An object the API server refuses (a Deployment with -1 replicas).
    refused: bool,
}

impl RealCluster {
    /// Write, pack (sequence `seq`) and import `release` as `out`.
    fn release(&self, r: &Release, seq: u64, out: &str) {
        let ns = &self.namespace;
        let dir = self.env.path().join(format!("manifests/{out}"));
        fs::create_dir_all(&dir).unwrap();
        // The worst file order: the Deployment first, its Namespace last.
        fs::write(
            dir.join("a-deployment.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: probe, namespace: {ns}}}\nspec:\n  replicas: 1\n  \
                 selector: {{matchLabels: {{app: probe}}}}\n  template:\n    metadata: {{labels: {{app: probe}}}}\n    spec:\n      \
                 containers:\n      - name: probe\n        image: shore.registry.example/fleet/sensor-fusion:{}\n        \
                 command: [/bin/busybox, {}]\n",
                r.image_tag,
                if r.command == "sleep" { "sleep, \"100000\"" } else { r.command }
            ),
        )
        .unwrap();
        fs::write(
            dir.join("b-config.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {}, namespace: {ns}}}\ndata: {{release: \"{}\"}}\n", r.configmap, r.version),
        )
        .unwrap();
        if r.refused {
            fs::write(
                dir.join("c-refused.yaml"),
                format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: refused, namespace: {ns}}}\nspec:\n  replicas: -1\n  \
                         selector: {{matchLabels: {{app: refused}}}}\n  template:\n    metadata: {{labels: {{app: refused}}}}\n    spec:\n      \
                         containers: [{{name: c, image: shore.registry.example/fleet/sensor-fusion:{}}}]\n", r.image_tag),
            )
            .unwrap();
        }
        fs::write(
            dir.join("z-namespace.yaml"),
            format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"),
        )
        .unwrap();
        let layouts = support::fleet().join("layouts");
        let stack = self.env.path().join(format!("{out}.yaml"));
        fs::write(
            &stack,
            format!(
                "name: e2e\nversion: {}\nmanifests: [manifests/{out}/*.yaml]\nsources:\n  - prefix: shore.registry.example/fleet/\n    oci-layout: {}/\n",
                r.version,
                layouts.display()
            ),
        )
        .unwrap();
        let seq = seq.to_string();
        let file = format!("{out}.tender");
        self.env
            .shore(&[
                "pack",
                &format!("{out}.yaml"),
                "--key",
                "ci.key",
                "--sequence",
                &seq,
                "--out",
                &file,
            ])
            .ok();
        self.env.ship(&["import", &file]).ok();
    }

    fn ship(&self, args: &[&str]) -> Run {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let kube = self.kubeconfig.display().to_string();
        let cmd = args.iter().find(|a| !a.starts_with("--")).copied().unwrap_or("");
        if matches!(cmd, "apply" | "rollback") {
            a.extend(["--registry".into(), self.registry.clone(), "--kubeconfig".into(), kube]);
            if self.insecure {
                a.extend(["--insecure-registry".into(), self.registry.clone()]);
            }
        } else if cmd == "status" {
            a.extend(["--kubeconfig".into(), kube]);
        }
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        self.env.ship(&a)
    }

    /// `status e2e --cluster --json`: (version in force, objects not ready, last outcome).
    fn state(&self) -> (Value, Vec<String>, Value) {
        let out = self.ship(&["--json", "status", "e2e", "--cluster"]).ok();
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        let s = &v[0];
        let not_ready = s["cluster"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["health"]["state"] != "ready")
            .map(|o| o.to_string())
            .collect();
        let last = s["history"].as_array().unwrap().last().unwrap()["outcome"].clone();
        (s["applied"].clone(), not_ready, last)
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        let deleted = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["delete", "namespace", &self.namespace, "--wait=false"])
            .output();
        if !deleted.is_ok_and(|o| o.status.success()) {
            eprintln!("namespace {} is left in the cluster: delete it by hand", self.namespace);
        }
    }
}

const GOOD_1: Release = Release {
    version: "1.0.0",
    image_tag: "1.0.0",
    command: "sleep",
    configmap: "old-config",
    refused: false,
};
const GOOD_2: Release = Release {
    version: "1.1.0",
    image_tag: "1.1.0",
    command: "sleep",
    configmap: "new-config",
    refused: false,
};

#[test]
fn real_worst_order_applies_waits_and_prunes() {
    let Some(c) = cluster("real_worst_order_applies_waits_and_prunes") else { return };
    c.release(&GOOD_1, 1, "v1");
    c.ship(&["apply", "e2e", "--timeout", "5m"]).ok();
    assert_eq!(c.state(), ("1.0.0".into(), vec![], "applied".into()));
    c.release(&GOOD_2, 2, "v2");
    let r = c.ship(&["apply", "e2e", "--timeout", "5m"]).ok();
    assert!(
        r.stdout.contains("all healthy, 1 deleted"),
        "old-config pruned once healthy: {}",
        r.stdout
    );
    assert_eq!(c.state(), ("1.1.0".into(), vec![], "applied".into()));
}

#[test]
fn real_never_ready_is_restored_with_exit_5() {
    let Some(c) = cluster("real_never_ready_is_restored_with_exit_5") else { return };
    c.release(&GOOD_1, 1, "v1");
    c.ship(&["apply", "e2e", "--timeout", "5m"]).ok();
    c.release(&Release { command: "false", ..GOOD_2 }, 2, "v2");
    let r = c.ship(&["apply", "e2e", "--timeout", "90s"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("CrashLoopBackOff"), "the pods' reason is named: {}", r.stderr);
    assert_eq!(c.state(), ("1.0.0".into(), vec![], "rolled-back".into()));
}

#[test]
fn real_refused_object_leaves_nothing_of_the_new_version() {
    let Some(c) = cluster("real_refused_object_leaves_nothing_of_the_new_version") else { return };
    c.release(&GOOD_1, 1, "v1");
    c.ship(&["apply", "e2e", "--timeout", "5m"]).ok();
    c.release(&Release { refused: true, ..GOOD_2 }, 2, "v2");
    let r = c.ship(&["apply", "e2e", "--timeout", "3m"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("removed ConfigMap"), "new-config removed: {}", r.stderr);
    assert_eq!(c.state(), ("1.0.0".into(), vec![], "rolled-back".into()));
}

#[test]
fn real_failed_restore_exits_6() {
    let Some(c) = cluster("real_failed_restore_exits_6") else { return };
    // A release 1 that never comes up, applied without waiting: restoring
    // it cannot succeed.
    c.release(&Release { command: "false", ..GOOD_1 }, 1, "v1");
    c.ship(&["apply", "e2e", "--no-wait"]).ok();
    c.release(&Release { command: "false", ..GOOD_2 }, 2, "v2");
    let r = c.ship(&["apply", "e2e", "--timeout", "60s"]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("tender-ship rollback e2e 1.0.0"), "{}", r.stderr);
}
