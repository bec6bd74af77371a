//! Load and apply, when the captain asks: images into a real
//! `docker-registry` (Debian's CNCF distribution), manifests to a stand-in
//! API server that records what it was sent; rollback, status, gc, and the
//! faults (registry down, API server refusing, incomplete version).

mod support;

use std::fs;

use support::ship::{Ship, skopeo_inspect};

#[test]
fn apply_from_a_bundle_then_upgrade_prune_and_roll_back() {
    let s = Ship::new();
    // The engineer's one command: a bundle path imports, verifies, applies.
    s.ship(&["apply", "v1.tender"]).ok();
    let reqs = s.api.take();
    let patches: Vec<_> = reqs.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 5, "{reqs:#?}");
    assert_eq!(patches[0].path, "/api/v1/namespaces/awareness", "the Namespace first: {reqs:#?}");
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
    // Refused in the restore too: nothing of either version can be applied.
    let r = s.ship(&["apply", "awareness", "--no-rollback"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("Deployment awareness/sensor-fusion"), "{}", r.stderr);
    assert!(r.stderr.contains("spec.replicas: Invalid value"), "{}", r.stderr);
    assert!(r.stderr.contains("left in place for diagnosis (--no-rollback)"), "{}", r.stderr);
    assert!(
        r.stderr.contains("`tender-ship rollback awareness 1.0.0` restores it"),
        "{}",
        r.stderr
    );
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
fn gc_keeps_newest_applied_and_rollback_target() {
    let s = Ship::new();
    s.ship(&["apply", "v1.tender"]).ok();
    s.env.ship(&["import", "v2.tender"]).ok();
    // Keep 1: 1.1.0 is newest, 1.0.0 is applied: both stay.
    s.env.ship(&["gc", "--keep", "1"]).ok();
    assert_eq!(s.status()[0]["versions"].as_array().unwrap().len(), 2);
    s.ship(&["apply", "awareness"]).ok();
    // 1.1.0 in force: 1.0.0 is what rollback returns to, so gc keeps it.
    let r: serde_json::Value =
        serde_json::from_str(&s.env.ship(&["--json", "gc", "--keep", "1"]).ok().stdout).unwrap();
    assert_eq!(r["versions_removed"], serde_json::json!([]), "{r}");
    assert_eq!(r["rollback_kept"], serde_json::json!([["awareness", "1.0.0"]]), "{r}");
    let text = s.env.ship(&["gc", "--keep", "1"]).ok().stdout;
    assert!(text.contains("kept awareness 1.0.0: rollback returns to it"), "{text}");
    s.ship(&["rollback", "awareness"]).ok();
    assert_eq!(s.status()[0]["applied"], "1.0.0");
    s.ship(&["apply", "awareness"]).ok();
    // Told by name, gc lets the rollback target go.
    let r: serde_json::Value = serde_json::from_str(
        &s.env.ship(&["--json", "gc", "--keep", "1", "--rollback-target", "drop"]).ok().stdout,
    )
    .unwrap();
    assert_eq!(r["versions_removed"][0][1], "1.0.0");
    assert!(r["blobs_removed"].as_u64().unwrap() > 0);
    s.env.assert_store_sound(1);
    s.ship(&["rollback", "awareness"]).fails(1, "no longer holds");
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

// --- A signer trusted for one stack only: what its stack may touch. ---

const DEPLOY_SF: &str = "/apis/apps/v1/namespaces/awareness/deployments/sensor-fusion";

impl Ship {
    /// Pack the radar stack file `file` (see `support::write_radar_stack`)
    /// with `key` at `sequence`, import it; returns the bundle's name.
    fn radar(&self, file: &str, key: &str, sequence: u64) -> String {
        let out = format!("{file}.tender");
        let seq = sequence.to_string();
        let stack = format!("{file}.yaml");
        self.env.shore(&["pack", &stack, "--key", key, "--sequence", &seq, "--out", &out]).ok();
        self.env.ship(&["import", &out]).ok();
        out
    }

    /// A root key pinned, and a keyring letting `radar-ci` sign radar only.
    fn radar_keyring(&self) {
        self.env.shore(&["keygen", "--out", "root"]).ok();
        self.env.shore(&["keygen", "--out", "radar-ci"]).ok();
        self.env.ship(&["trust", "add", "root.pub", "--root"]).ok();
        self.env.shore(&["keyring", "init", "--root", "root.pub", "--out", "kr.json"]).ok();
        let add = ["keyring", "add-signer", "kr.json", "radar-ci.pub", "--stacks", "radar"];
        self.env.shore(&add).ok();
        self.env.shore(&["keyring", "sign", "kr.json", "--key", "root.key"]).ok();
        self.env.ship(&["trust", "keyring", "kr.json"]).ok();
    }

    fn owners(&self) -> serde_json::Value {
        serde_json::from_slice(&fs::read(self.env.store().join("owners.json")).unwrap()).unwrap()
    }

    /// What the cluster and the registry were sent: no write of any kind.
    #[track_caller]
    fn assert_nothing_changed(&self) {
        let writes: Vec<_> = self.api.take().into_iter().filter(|r| r.method != "GET").collect();
        assert!(writes.is_empty(), "nothing applied or deleted: {writes:#?}");
        assert!(
            !skopeo_inspect(&format!("{}/radar/tracker:1.0.0", self.registry.host())),
            "nothing pushed"
        );
    }
}

#[test]
fn a_stack_cannot_apply_into_a_namespace_another_stack_owns() {
    let s = Ship::new();
    s.ship(&["apply", "v1.tender"]).ok();
    let before = s.api.object(DEPLOY_SF).unwrap();
    s.api.take();

    // radar force-applying over awareness's Deployment.
    let tracker = "shore.registry.example/radar/tracker:1.0.0";
    support::write_radar_stack(
        s.env.path(),
        "radar-over",
        "1.0.0",
        &support::deployment("sensor-fusion", Some("awareness"), tracker),
    );
    s.radar("radar-over", "ci.key", 1);
    s.ship(&["apply", "radar"])
        .fails(1, "namespace awareness belongs to stack awareness; stack radar may not touch it");
    s.assert_nothing_changed();
    assert_eq!(s.api.object(DEPLOY_SF).unwrap(), before, "awareness's Deployment untouched");
    let owners = s.owners();
    assert_eq!(owners["namespaces"]["awareness"], "awareness", "{owners}");
    assert_eq!(owners["repositories"]["fleet/sensor-fusion"], "awareness", "{owners}");

    // An object written without a namespace lands in the kubeconfig's
    // default namespace: that one counts.
    support::write_radar_stack(
        s.env.path(),
        "radar-default",
        "1.0.1",
        &support::deployment("tracker", None, tracker),
    );
    s.radar("radar-default", "ci.key", 2);
    fs::write(s.env.path().join("kubeconfig-awareness"), s.api.kubeconfig_in("awareness")).unwrap();
    let host = s.registry.host();
    s.env
        .ship(&["apply", "radar", "--registry", &host, "--kubeconfig", "kubeconfig-awareness"])
        .fails(1, "namespace awareness belongs to stack awareness");
    s.assert_nothing_changed();
    assert_eq!(s.owners(), owners, "a refused stack claims nothing");

    // In its own namespace it applies, and owns that namespace.
    s.ship(&["apply", "radar"]).ok();
    assert_eq!(s.owners()["namespaces"]["default"], "radar");
    assert!(s.api.object("/apis/apps/v1/namespaces/default/deployments/tracker").is_some());
}

#[test]
fn a_stack_cannot_move_another_stacks_image_tags() {
    let s = Ship::new();
    s.ship(&["apply", "v1.tender"]).ok();
    let tag = format!("{}/fleet/sensor-fusion:1.0.0", s.registry.host());
    let digest = |r: &str| {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{r}")])
            .output()
            .unwrap();
        support::oci::sha256(&out.stdout)
    };
    let awareness = digest(&tag);
    s.api.take();
    let hijack = support::write_radar_stack(
        s.env.path(),
        "radar-hijack",
        "1.0.0",
        &support::deployment(
            "tracker",
            Some("radar"),
            "shore.registry.example/fleet/sensor-fusion:1.0.0",
        ),
    );
    assert_ne!(hijack, awareness);
    s.radar("radar-hijack", "ci.key", 7);
    s.ship(&["load", "radar"]).fails(
        1,
        "repository fleet/sensor-fusion belongs to stack awareness; stack radar may not touch it",
    );
    s.ship(&["apply", "radar"])
        .fails(1, "repository fleet/sensor-fusion belongs to stack awareness");
    s.assert_nothing_changed();
    assert_eq!(digest(&tag), awareness, "the tag still names awareness's image");
    assert!(!s.env.ship(&["--json", "status"]).ok().stdout.contains("\"loaded\""));
}

#[test]
fn an_object_labelled_for_another_stack_is_refused_even_when_adopted() {
    let s = Ship::new();
    // awareness (signed by a key pinned by hand: full authority) applies a
    // cluster-scoped ClusterRole.
    let reader = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: sensor-reader}\n\
                  rules: [{apiGroups: [\"\"], resources: [configmaps], verbs: [get]}]\n";
    fs::write(s.env.path().join("stack/v1/reader.yaml"), reader).unwrap();
    s.env.pack(1, "ci.key", 1, "v1r.tender");
    s.ship(&["apply", "v1r.tender"]).ok();
    let path = "/apis/rbac.authorization.k8s.io/v1/clusterroles/sensor-reader";
    let before = s.api.object(path).unwrap();
    assert_eq!(before["metadata"]["labels"]["tender.io/stack"], "awareness");
    s.api.take();

    // radar names the same ClusterRole, in no namespace anyone owns.
    let mut manifests =
        support::deployment("tracker", Some("radar"), "shore.registry.example/radar/tracker:1.0.0");
    manifests.push_str("---\n");
    manifests.push_str(&reader.replace("verbs: [get]", "verbs: [get, list, watch]"));
    support::write_radar_stack(s.env.path(), "radar-role", "1.0.0", &manifests);
    s.radar("radar-role", "ci.key", 1);
    let needle = "ClusterRole sensor-reader (rbac.authorization.k8s.io/v1) is labelled tender.io/stack=awareness: it belongs to stack awareness";
    s.ship(&["apply", "radar"]).fails(1, needle);
    s.ship(&["apply", "radar", "--adopt", "ClusterRole/sensor-reader"]).fails(1, needle);
    s.assert_nothing_changed();
    assert_eq!(s.api.object(path).unwrap(), before);
}

#[test]
fn a_keyring_signer_without_the_grant_cannot_apply_cluster_scoped_objects() {
    let s = Ship::new();
    s.radar_keyring();
    let admin = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: radar-admin}\n\
                 roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n\
                 subjects: [{kind: ServiceAccount, name: default, namespace: radar}]\n";
    let own_ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: radar}\n";
    let tracker =
        support::deployment("tracker", Some("radar"), "shore.registry.example/radar/tracker:1.0.0");
    support::write_radar_stack(
        s.env.path(),
        "radar-admin",
        "1.0.0",
        &format!("{own_ns}---\n{tracker}---\n{admin}"),
    );
    s.radar("radar-admin", "radar-ci.key", 1);
    s.ship(&["apply", "radar"]).fails(
        1,
        "ClusterRoleBinding radar-admin (rbac.authorization.k8s.io/v1) is cluster-scoped",
    );
    s.assert_nothing_changed();
    // Its own Namespace needs no grant.
    support::write_radar_stack(
        s.env.path(),
        "radar-ns",
        "1.0.1",
        &format!("{own_ns}---\n{tracker}"),
    );
    s.radar("radar-ns", "radar-ci.key", 2);
    s.ship(&["apply", "radar"]).ok();
    assert!(s.api.object("/api/v1/namespaces/radar").is_some());
    // The root grants radar's key cluster scope: the binding may go in.
    support::write_radar_stack(
        s.env.path(),
        "radar-admin2",
        "1.0.2",
        &format!("{own_ns}---\n{tracker}---\n{admin}"),
    );
    s.radar("radar-admin2", "radar-ci.key", 3);
    s.ship(&["apply", "radar"]).fails(1, "is cluster-scoped");
    s.env
        .shore(&[
            "keyring",
            "add-signer",
            "kr.json",
            "radar-ci.pub",
            "--stacks",
            "radar",
            "--cluster-scope",
        ])
        .ok();
    s.env.shore(&["keyring", "sign", "kr.json", "--key", "root.key"]).ok();
    s.env.ship(&["trust", "keyring", "kr.json"]).ok();
    assert!(s.env.ship(&["trust", "list"]).ok().stdout.contains("cluster-scoped objects allowed"));
    s.ship(&["apply", "radar"]).ok();
    assert!(
        s.api
            .object("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/radar-admin")
            .is_some()
    );
}

const SECRET: &str = "/api/v1/namespaces/kube-system/secrets/someone-elses-secret";

fn someone_elses_secret(s: &Ship) {
    s.api.put(
        SECRET,
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "someone-elses-secret", "namespace": "kube-system"},
            "data": {"token": "c2VjcmV0"}}),
        "kubectl-client-side-apply",
    );
}

const SECRET_YAML: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: someone-elses-secret, namespace: kube-system}\n\
                           data: {token: b3Vycw==}\n";

#[test]
fn apply_takes_over_no_live_object_tender_did_not_create_unless_adopted() {
    let s = Ship::new();
    someone_elses_secret(&s);
    fs::write(s.env.path().join("stack/v1/secret.yaml"), SECRET_YAML).unwrap();
    s.env.pack(1, "ci.key", 1, "v1s.tender");
    s.env.ship(&["import", "v1s.tender"]).ok();
    let theirs = s.api.object(SECRET).unwrap();
    s.ship(&["apply", "awareness"]).fails(
        1,
        "Secret kube-system/someone-elses-secret (v1) exists and tender did not create it for stack awareness",
    );
    assert!(!s.api.take().iter().any(|r| r.method != "GET"), "nothing applied");
    assert!(
        !skopeo_inspect(&format!("{}/fleet/sensor-fusion:1.0.0", s.registry.host())),
        "nothing pushed"
    );
    assert_eq!(s.api.object(SECRET).unwrap(), theirs);
    assert!(!s.env.store().join("owners.json").exists(), "nothing claimed");
    // A typo in --adopt is refused rather than ignored.
    s.ship(&["apply", "awareness", "--adopt", "Secret/default/someone-elses-secret"])
        .fails(1, "--adopt Secret/default/someone-elses-secret names no object");
    // The engineer says so: it becomes part of the stack.
    let r =
        s.ship(&["apply", "awareness", "--adopt", "Secret/kube-system/someone-elses-secret"]).ok();
    assert!(r.stdout.contains("adopted Secret kube-system/someone-elses-secret"), "{}", r.stdout);
    let ours = s.api.object(SECRET).unwrap();
    assert_eq!(ours["metadata"]["labels"]["tender.io/stack"], "awareness");
    assert_eq!(ours["data"]["token"], "b3Vycw==");
    // From now on it is the stack's own: no --adopt needed.
    s.ship(&["apply", "awareness"]).ok();
}

#[test]
fn prune_compares_with_the_digest_applied_not_a_reissued_version_name() {
    let s = Ship::new();
    someone_elses_secret(&s);
    s.ship(&["apply", "v1.tender"]).ok();
    // 1.0.0 re-issued with a higher sequence, now naming the Secret; never applied.
    fs::write(s.env.path().join("stack/v1/secret.yaml"), SECRET_YAML).unwrap();
    s.env.pack(1, "ci.key", 3, "v1-reissued.tender");
    s.env.ship(&["import", "v1-reissued.tender"]).ok();
    s.env.pack(2, "ci.key", 4, "v2-next.tender");
    s.env.ship(&["import", "v2-next.tender"]).ok();
    s.api.take();
    let r = s.ship(&["apply", "awareness", "1.1.0"]).ok();
    assert!(s.api.object(SECRET).is_some(), "someone else's Secret is still there");
    // The record of the 1.0.0 in force is kept beside the re-issue: prune
    // compares with it, and drops only what it had (old-config).
    let deletes: Vec<String> =
        s.api.take().into_iter().filter(|r| r.method == "DELETE").map(|r| r.path).collect();
    assert_eq!(deletes, ["/api/v1/namespaces/awareness/configmaps/old-config"], "{}", r.stdout);
}

#[test]
fn prune_deletes_only_what_tender_made_for_the_stack() {
    let s = Ship::new();
    s.ship(&["apply", "v1.tender"]).ok();
    // Someone replaced the ConfigMap release 2 drops: no longer tender's.
    let old = "/api/v1/namespaces/awareness/configmaps/old-config";
    assert!(s.api.object(old).is_some());
    s.api.put(
        old,
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "old-config", "namespace": "awareness"}, "data": {"theirs": "now"}}),
        "kubectl-edit",
    );
    s.env.ship(&["import", "v2.tender"]).ok();
    s.api.take();
    let r = s.ship(&["apply", "awareness"]).ok();
    assert!(s.api.object(old).is_some(), "left in place");
    assert!(!s.api.take().iter().any(|r| r.method == "DELETE"));
    assert!(
        r.stdout.contains("not deleted: ConfigMap awareness/old-config (v1): left in place: not labelled tender.io/stack=awareness with field manager tender"),
        "{}",
        r.stdout
    );
}

const TOKEN: &str = "sekret-token-4f2a9c";

#[test]
fn kubeconfig_and_auth_file_contents_never_reach_errors_history_or_status() {
    let s = Ship::new();
    s.env.ship(&["import", "v1.tender"]).ok();
    // The token where the user's map should be.
    let bad = s.api.kubeconfig().replace("user: {token: test-token}", &format!("user: {TOKEN}"));
    assert!(bad.contains(TOKEN));
    fs::write(s.env.path().join("kubeconfig"), bad).unwrap();
    let r = s.ship(&["apply", "awareness"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("kubeconfig") && r.stderr.contains("line 4"), "{}", r.stderr);
    let history = fs::read_to_string(s.env.store().join("stacks/awareness/history.json")).unwrap();
    let status = s.env.ship(&["--json", "status"]).ok().stdout;
    assert!(status.contains("failed"), "{status}");
    for (what, text) in [("stderr", &r.stderr), ("history.json", &history), ("status", &status)] {
        assert!(!text.contains(TOKEN), "{what} quotes the kubeconfig: {text}");
    }

    // An auth file with the secret in a malformed spot: not base64, and not JSON.
    fs::write(s.env.path().join("kubeconfig"), s.api.kubeconfig()).unwrap();
    let host = s.registry.host();
    let auth_files = [
        format!(r#"{{"auths": {{"{host}": {{"auth": "user:{TOKEN}"}}}}}}"#),
        format!(r#"{{"auths": {{"{host}": {{"auth": {TOKEN}}}}}}}"#),
    ];
    for text in auth_files {
        fs::write(s.env.path().join("auth.json"), &text).unwrap();
        let r = s.ship(&["apply", "awareness", "--authfile", "auth.json"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("auth file auth.json"), "{}", r.stderr);
        let history =
            fs::read_to_string(s.env.store().join("stacks/awareness/history.json")).unwrap();
        let status = s.env.ship(&["--json", "status"]).ok().stdout;
        for (what, text) in [("stderr", &r.stderr), ("history.json", &history), ("status", &status)]
        {
            assert!(!text.contains(TOKEN), "{what} quotes the auth file: {text}");
        }
    }
}

#[test]
fn load_reads_manifests_with_the_import_bound() {
    let s = Ship::new();
    let big = support::big_manifest_bundle(&s.env, "big.tender");
    s.env.ship(&["import", "big.tender"]).ok();
    s.ship(&["load", "awareness"]).fails(
        1,
        &format!(
            "{}: larger than 4194304 bytes, the most a manifest may have",
            s.env.store().join("blobs/sha256").join(&big[7..]).display()
        ),
    );
    assert!(!skopeo_inspect(&format!("{}/fleet/sensor-fusion:1.0.0", s.registry.host())));
}

#[test]
fn a_one_stack_key_cannot_take_the_clusters_own_namespaces() {
    // Ownership is first come: kube-system, default and the like must not
    // be a one-stack key's to take.
    let s = Ship::new();
    s.radar_keyring();
    let binding = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
                   metadata: {name: radar-is-admin-here, namespace: kube-system}\n\
                   roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n\
                   subjects: [{kind: ServiceAccount, name: default, namespace: radar}]\n";
    let tracker =
        support::deployment("tracker", Some("radar"), "shore.registry.example/radar/tracker:1.0.0");
    support::write_radar_stack(
        s.env.path(),
        "radar-ks",
        "1.0.0",
        &format!("{tracker}---\n{binding}"),
    );
    s.radar("radar-ks", "radar-ci.key", 1);
    s.ship(&["apply", "radar"]).fails(1, "in a namespace shared by the cluster");
    s.assert_nothing_changed();
    assert!(!s.env.store().join("owners.json").exists(), "nothing claimed");
}
