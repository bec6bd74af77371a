//! The last mile under attack (a review with the real binaries): a flaky or
//! stuck API server, a restore that would land where the version in force
//! never was, and an undo that would delete data the failed version's
//! controllers made. The cluster is the stand-in in
//! `tests/support/apiserver.rs`; each test failed before its fix.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Run;
use support::apiserver::{Behaviour, PodState};
use support::ship::Ship;

const DEPLOY_SF: &str = "/apis/apps/v1/namespaces/awareness/deployments/sensor-fusion";

fn image_of(s: &Ship, path: &str) -> String {
    let o = s.api.object(path).unwrap();
    o["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_string()
}

/// Release 1 applied; release 2 imported; its sensor-fusion image pinned.
fn upgraded_ship() -> (Ship, String) {
    let s = Ship::new();
    s.ship(&["apply", "v1.tender"]).ok();
    s.env.ship(&["import", "v2.tender"]).ok();
    let v2 = s.pinned("1.1.0", "sensor-fusion");
    s.api.take();
    (s, v2)
}

/// `tender-ship apply ARGS` against the ship's registry and kubeconfig,
/// killed after `limit`; the run and how long it took.
fn apply_within(s: &Ship, args: &[&str], limit: Duration) -> (Option<Run>, Duration) {
    let host = s.registry.host();
    let mut child = Command::new(support::SHIP)
        .arg("--store")
        .arg(s.env.store())
        .arg("apply")
        .args(args)
        .args(["--registry", &host, "--kubeconfig", "kubeconfig"])
        .current_dir(s.env.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let run = Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            };
            return (Some(run), start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    (None, start.elapsed())
}

#[test]
fn an_api_server_that_stops_answering_cannot_hold_apply_past_its_timeout() {
    let (s, v2) = upgraded_ship();
    // Once release 2's sensor-fusion is stored, reading it gets no answer
    // (an API server whose etcd is stuck accepts and never answers).
    s.api.stall_when.lock().unwrap().push(v2.clone());
    let (r, took) = apply_within(&s, &["awareness", "--timeout", "3s"], Duration::from_secs(90));
    let r = r.unwrap_or_else(|| panic!("apply --timeout 3s still running after {took:?}"));
    assert!(took < Duration::from_secs(30), "--timeout 3s took {took:?}: {}", r.stderr);
    // The unanswered read counts as not healthy. Restoring reads the
    // object again before applying over it, gets no answer by its own
    // deadline either, and applies nothing it could not look at: exit 6,
    // release 1 still the version in force in history.
    assert_eq!(r.code, 6, "{}", r.stderr);
    for said in [
        "not healthy after 3s",
        "no answer from the API server by the deadline",
        "restoring 1.0.0 failed too",
        "no answer from the API server within --timeout 3s",
    ] {
        assert!(r.stderr.contains(said), "{said:?} in {}", r.stderr);
    }
    assert_eq!(image_of(&s, DEPLOY_SF), v2);
    assert_eq!(s.status()[0]["applied"], "1.0.0");
}

#[test]
fn a_restore_never_lands_in_another_stacks_namespace_or_over_its_objects() {
    let s = Ship::new();
    // Release 1 writes a ConfigMap without a namespace: it lands in the
    // kubeconfig's default namespace, awareness, when it is applied.
    std::fs::write(
        s.env.path().join("stack/v1/settings.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: awareness}\n",
    )
    .unwrap();
    s.env.pack(1, "ci.key", 1, "v1.tender");
    std::fs::write(s.env.path().join("kubeconfig"), s.api.kubeconfig_in("awareness")).unwrap();
    s.ship(&["apply", "v1.tender"]).ok();
    assert!(s.api.object("/api/v1/namespaces/awareness/configmaps/settings").is_some());

    // Stack radar's namespace and its own ConfigMap `settings`, made by
    // tender for radar.
    let radar_cm = "/api/v1/namespaces/radar/configmaps/settings";
    s.api.put(
        "/api/v1/namespaces/radar",
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "radar", "labels": {"tender.io/stack": "radar"}}}),
        "tender",
    );
    let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "radar", "labels": {"tender.io/stack": "radar"}},
        "data": {"mode": "radar"}});
    s.api.put(radar_cm, theirs, "tender");
    let before = s.api.object(radar_cm).unwrap();

    // The engineer now works with a kubeconfig whose default namespace is
    // radar. Release 2 (every object with its namespace) passes every
    // check, then never becomes ready: restoring release 1 must not put
    // its namespace-less ConfigMap into radar over radar's.
    std::fs::write(s.env.path().join("kubeconfig"), s.api.kubeconfig_in("radar")).unwrap();
    s.env.ship(&["import", "v2.tender"]).ok();
    let v2 = s.pinned("1.1.0", "sensor-fusion");
    s.api.behave(move |image| (image == v2).then_some(Behaviour::Never(PodState::ImagePull)));
    let r = s.ship(&["apply", "awareness", "--timeout", "2s"]);
    assert_eq!(
        s.api.object(radar_cm).unwrap(),
        before,
        "radar's ConfigMap untouched: {}",
        r.stderr
    );
    assert!(
        !s.api.take().iter().any(|q| q.method == "PATCH" && q.path == radar_cm),
        "nothing applied over radar's ConfigMap"
    );
    // The restore could not be done as it was: exit 6, naming why.
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("ConfigMap radar/settings"), "{}", r.stderr);
    assert!(r.stderr.contains("belongs to stack radar"), "{}", r.stderr);
    assert_eq!(s.status()[0]["applied"], "1.0.0");
}

#[test]
fn undoing_a_first_install_never_deletes_a_namespace_holding_a_claim_its_controllers_made() {
    let s = Ship::new();
    s.api.behave(|image| {
        image.contains("/fleet/sensor-fusion@").then_some(Behaviour::Never(PodState::Unschedulable))
    });
    let ns = "/api/v1/namespaces/awareness";
    let claim = "/api/v1/namespaces/awareness/persistentvolumeclaims/data-db-0";
    let r = std::thread::scope(|scope| {
        // A StatefulSet's controller (or anyone) makes a claim in the new
        // namespace while the release is waited for: no manifest lists it.
        scope.spawn(|| {
            let start = Instant::now();
            while s.api.object(ns).is_none() && start.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(10));
            }
            s.api.put(
                claim,
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                       "metadata": {"name": "data-db-0", "namespace": "awareness"},
                       "spec": {"accessModes": ["ReadWriteOnce"]}, "status": {"phase": "Bound"}}),
                "kube-controller-manager",
            );
        });
        s.ship(&["apply", "v1.tender", "--timeout", "3s"])
    });
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(s.api.object(claim).is_some());
    assert!(
        s.api.object(ns).is_some(),
        "the Namespace holds a claim: deleting it deletes the claim's data: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Namespace awareness (v1): left in place: it may hold data"),
        "{}",
        r.stderr
    );
    assert_eq!(s.status()[0]["applied"], Value::Null);
}

#[test]
fn a_timeout_beyond_the_clocks_range_is_not_a_crash_after_the_push() {
    let (s, _) = upgraded_ship();
    // humantime accepts it; adding it to the monotonic clock overflows.
    let r = s.ship(&["apply", "awareness", "--timeout", "300000000000y", "--no-wait"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(s.status()[0]["applied"], "1.1.0");
}
