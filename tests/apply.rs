//! Load and apply, when the captain asks: images into a real
//! `docker-registry` (Debian's CNCF distribution), manifests to a stand-in
//! API server that records what it was sent; rollback, status, gc, and the
//! faults (registry down, API server refusing, incomplete version).

mod support;

use std::fs;
use std::process::Command;

use support::apiserver::ApiServer;
use support::{Env, Registry};

struct Ship {
    env: Env,
    registry: Registry,
    api: ApiServer,
}

impl Ship {
    /// Release 1 carries an extra ConfigMap that release 2 drops.
    fn new() -> Ship {
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

    fn ship(&self, args: &[&str]) -> support::Run {
        let host = self.registry.host();
        let mut a: Vec<&str> = args.to_vec();
        let cmd = args.iter().find(|a| !a.starts_with("--")).copied().unwrap_or("");
        if matches!(cmd, "apply" | "rollback" | "load") {
            a.extend(["--registry", &host]);
        }
        if matches!(cmd, "apply" | "rollback") {
            a.extend(["--kubeconfig", "kubeconfig"]);
        }
        self.env.ship(&a)
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.env.ship(&["--json", "status"]).ok().stdout).unwrap()
    }
}

fn skopeo_inspect(reference: &str) -> bool {
    Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{reference}")])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn apply_from_a_bundle_then_upgrade_prune_and_roll_back() {
    let s = Ship::new();
    // The engineer's one command: a bundle path imports, verifies, applies.
    s.ship(&["apply", "v1.tender"]).ok();
    let reqs = s.api.take();
    let patches: Vec<_> = reqs.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 4, "{reqs:#?}");
    for p in &patches {
        assert!(p.query.contains("fieldManager=tender"), "{}", p.query);
        assert!(p.query.contains("force=true"), "{}", p.query);
        assert_eq!(p.content_type, "application/apply-patch+yaml");
        let body: serde_json::Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(body["metadata"]["labels"]["tender.io/stack"], "awareness", "{body}");
    }
    let deploy = patches
        .iter()
        .find(|p| p.path == "/apis/apps/v1/namespaces/awareness/deployments/sensor-fusion")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&deploy.body).unwrap();
    let image = body["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap();
    assert!(
        image.starts_with(&format!("{}/fleet/sensor-fusion@sha256:", s.registry.host())),
        "{image}"
    );
    assert!(skopeo_inspect(image), "the pinned image is in the ship's registry");
    assert!(
        skopeo_inspect(&format!("{}/fleet/sensor-fusion:1.0.0", s.registry.host())),
        "and its tag"
    );
    assert!(skopeo_inspect(&format!("{}/fleet/ais-gateway:1.0.0", s.registry.host())));
    assert_eq!(s.status()[0]["applied"], "1.0.0");

    // Release 2: applied by name after import; the ConfigMap it dropped is deleted.
    s.env.ship(&["import", "v2.tender"]).ok();
    s.ship(&["apply", "awareness"]).ok();
    let reqs = s.api.take();
    let deletes: Vec<_> =
        reqs.iter().filter(|r| r.method == "DELETE").map(|r| r.path.clone()).collect();
    assert_eq!(deletes, ["/api/v1/namespaces/awareness/configmaps/old-config"]);
    assert_eq!(s.status()[0]["applied"], "1.1.0");

    // Rollback: release 1 again, from the store, with nothing fetched.
    s.ship(&["rollback", "awareness"]).ok();
    let reqs = s.api.take();
    assert!(reqs.iter().any(|r| r.method == "PATCH" && r.path.ends_with("/configmaps/old-config")));
    let st = s.status();
    assert_eq!(st[0]["applied"], "1.0.0");
    let outcomes: Vec<_> =
        st[0]["history"].as_array().unwrap().iter().map(|h| h["outcome"].clone()).collect();
    assert_eq!(outcomes, ["applied", "applied", "applied"]);
}

#[test]
fn dry_run_prints_pinned_manifests_and_changes_nothing() {
    let s = Ship::new();
    s.env.ship(&["import", "v1.tender"]).ok();
    let r = s.ship(&["apply", "awareness", "--dry-run"]).ok();
    assert!(
        r.stdout.contains(&format!("image: {}/fleet/bridge-ui@sha256:", s.registry.host())),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("shore.registry.example"), "{}", r.stdout);
    assert!(
        r.stderr.contains("push shore.registry.example/fleet/sensor-fusion:1.0.0 ->"),
        "{}",
        r.stderr
    );
    assert!(s.api.take().is_empty(), "no request to the cluster");
    assert!(
        !skopeo_inspect(&format!("{}/fleet/sensor-fusion:1.0.0", s.registry.host())),
        "nothing pushed"
    );
    assert_eq!(s.status()[0]["applied"], serde_json::Value::Null);
}

#[test]
fn registry_down_mid_apply_then_rerun_continues() {
    let mut s = Ship::new();
    s.env.ship(&["import", "v1.tender"]).ok();
    s.registry.stop();
    let r = s.ship(&["apply", "awareness"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&s.registry.host()), "names the registry: {}", r.stderr);
    assert!(
        !s.api.take().iter().any(|r| r.method != "GET"),
        "nothing applied without the images (only looked at)"
    );
    let st = s.status();
    assert_eq!(st[0]["applied"], serde_json::Value::Null);
    assert_eq!(st[0]["history"][0]["outcome"], "failed");
    s.registry.restart();
    s.ship(&["apply", "awareness"]).ok();
    assert_eq!(s.status()[0]["applied"], "1.0.0");
}

#[test]
fn load_only_pushes_and_skips_what_the_registry_holds() {
    let s = Ship::new();
    s.env.ship(&["import", "v1.tender"]).ok();
    let first: serde_json::Value =
        serde_json::from_str(&s.ship(&["--json", "load", "awareness"]).ok().stdout).unwrap();
    assert!(first["push"]["blobs_pushed"].as_u64().unwrap() > 0);
    let again: serde_json::Value =
        serde_json::from_str(&s.ship(&["--json", "load", "awareness"]).ok().stdout).unwrap();
    assert_eq!(again["push"]["blobs_pushed"], 0, "{again}");
    assert!(s.api.take().is_empty());
    assert_eq!(s.status()[0]["applied"], serde_json::Value::Null, "load applies nothing");
}

#[test]
fn api_server_refusal_is_recorded_and_rollback_still_works() {
    let s = Ship::new();
    s.ship(&["apply", "v1.tender"]).ok();
    s.env.ship(&["import", "v2.tender"]).ok();
    s.api.refuse.lock().unwrap().push("sensor-fusion".into());
    let r = s.ship(&["apply", "awareness"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Deployment awareness/sensor-fusion"), "{}", r.stderr);
    assert!(r.stderr.contains("spec.replicas: Invalid value"), "{}", r.stderr);
    let st = s.status();
    assert_eq!(st[0]["applied"], "1.0.0", "the failed version is not in force");
    assert_eq!(st[0]["history"].as_array().unwrap().last().unwrap()["outcome"], "failed");
    s.api.refuse.lock().unwrap().clear();
    s.ship(&["rollback", "awareness", "1.0.0"]).ok();
    assert_eq!(s.status()[0]["applied"], "1.0.0");
}

#[test]
fn incomplete_version_names_missing_blobs() {
    let s = Ship::new();
    s.env.ship(&["import", "v1.tender"]).ok();
    let blob =
        fs::read_dir(s.env.store().join("blobs/sha256")).unwrap().next().unwrap().unwrap().path();
    fs::remove_file(&blob).unwrap();
    let name = blob.file_name().unwrap().to_string_lossy().to_string();
    s.ship(&["apply", "awareness", "1.0.0"]).fails(1, &name);
    assert!(s.api.take().is_empty());
}

#[test]
fn gc_keeps_newest_and_applied() {
    let s = Ship::new();
    s.ship(&["apply", "v1.tender"]).ok();
    s.env.ship(&["import", "v2.tender"]).ok();
    // Keep 1: 1.1.0 is newest, 1.0.0 is applied: both stay.
    s.env.ship(&["gc", "--keep", "1"]).ok();
    assert_eq!(s.status()[0]["versions"].as_array().unwrap().len(), 2);
    s.ship(&["apply", "awareness"]).ok();
    let r: serde_json::Value =
        serde_json::from_str(&s.env.ship(&["--json", "gc", "--keep", "1"]).ok().stdout).unwrap();
    assert_eq!(r["versions_removed"][0][1], "1.0.0");
    assert!(r["blobs_removed"].as_u64().unwrap() > 0);
    s.env.assert_store_sound(1);
    // Still applies with no connection needed beyond the ship's registry.
    s.ship(&["apply", "awareness"]).ok();
}

/// Bytes under `dir`, recursively.
fn du(dir: &std::path::Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.map(|e| {
        let p = e.unwrap().path();
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => du(&p),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    })
    .sum()
}

#[test]
fn registry_killed_mid_push_then_rerun_completes() {
    let mut s = Ship::new();
    let bundle = s.env.path().join("fleet.tender");
    support::pack_fleet(&s.env, 1, bundle.to_str().unwrap(), &[]).ok();
    s.env.ship(&["import", bundle.to_str().unwrap()]).ok();
    let host = s.registry.host();
    let child = std::process::Command::new(support::SHIP)
        .arg("--store")
        .arg(s.env.store())
        .args(["apply", "awareness", "--registry", &host, "--kubeconfig", "kubeconfig"])
        .current_dir(s.env.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the registry once some megabytes of the push have landed.
    let data = s.registry.root.path().join("data");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while du(&data) < 8 << 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let landed = du(&data);
    s.registry.stop();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("apply: registry killed with {landed} bytes landed: {}", stderr.trim());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&host), "names the registry: {stderr}");
    assert!(
        !s.api.take().iter().any(|r| r.method == "PATCH"),
        "nothing applied without every image"
    );
    let st = s.status();
    assert_eq!(st[0]["applied"], serde_json::Value::Null);
    assert_eq!(st[0]["history"][0]["outcome"], "failed");
    let fsck = s.env.ship(&["fsck"]).ok();
    assert!(fsck.stdout.contains("store is clean"), "{}", fsck.stdout);

    s.registry.restart();
    s.ship(&["apply", "awareness"]).ok();
    assert_eq!(s.status()[0]["applied"], "1.0.0");
    assert!(s.api.take().iter().any(|r| r.method == "PATCH"));
}
