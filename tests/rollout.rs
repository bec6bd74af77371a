//! The last mile, through the real binaries: objects applied in kind order
//! whatever the file order (CRDs waited for until served), health waited
//! for, prune only once healthy, and a failed version undone by itself:
//! exit 5 when the version before is back and healthy, 6 when restoring
//! failed too. The cluster is the stand-in in `tests/support/apiserver.rs`
//! (see its header for what it models); the images go to a real
//! `docker-registry`.

mod support;

use serde_json::Value;
use support::apiserver::{Behaviour, PodState};
use support::ship::Ship;

const DEPLOY_SF: &str = "/apis/apps/v1/namespaces/awareness/deployments/sensor-fusion";
const OLD_CONFIG: &str = "/api/v1/namespaces/awareness/configmaps/old-config";
/// A claim in awareness: its volume may hold data tender must never delete.
const CLAIM: &str = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: tracks, namespace: awareness}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n";

fn image_of(s: &Ship, path: &str) -> String {
    let o = s.api.object(path).unwrap();
    o["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_string()
}

fn last_history(s: &Ship) -> Value {
    s.status()[0]["history"].as_array().unwrap().last().unwrap().clone()
}

/// Release 1 applied; release 2 imported; its sensor-fusion image pinned.
fn upgraded_ship() -> (Ship, String) {
    let s = Ship::new();
    s.ship(&["apply", "v1.tender"]).ok();
    s.env.ship(&["import", "v2.tender"]).ok();
    let v2 = s.pinned("1.1.0", "sensor-fusion");
    assert_ne!(v2, image_of(&s, DEPLOY_SF), "the releases differ");
    s.api.take();
    (s, v2)
}

#[test]
fn objects_in_the_worst_file_order_apply_in_kind_order_and_crds_are_waited_for() {
    let s = Ship::new();
    // Every object before what it needs: the custom resource before its
    // definition, everything before the Namespace.
    let manifests = [
        "apiVersion: radar.example/v1\nkind: Track\nmetadata: {name: t1, namespace: radar}\nspec: {range: 12}\n",
        &support::deployment("tracker", Some("radar"), "shore.registry.example/radar/tracker:1.0.0"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: tracker, namespace: radar}\nspec: {ports: [{port: 80}]}\n",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb, namespace: radar}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\nsubjects: [{kind: ServiceAccount, name: sa, namespace: radar}]\n",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: radar}\nrules: []\n",
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: tracks, namespace: radar}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: radar}\ndata: {a: b}\n",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, namespace: radar}\n",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: tracks.radar.example}\nspec:\n  group: radar.example\n  scope: Namespaced\n  names: {kind: Track, plural: tracks, singular: track}\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]\n",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: radar}\n",
    ]
    .join("---\n");
    support::write_radar_stack(s.env.path(), "radar", "1.0.0", &manifests);
    s.env
        .shore(&["pack", "radar.yaml", "--key", "ci.key", "--sequence", "1", "--out", "r.tender"])
        .ok();
    s.api.crd_reads(3);

    // --dry-run shows the order without a cluster.
    s.env.ship(&["import", "r.tender"]).ok();
    let dry = s.ship(&["apply", "radar", "--dry-run"]).ok();
    let order: Vec<&str> = dry.stderr.lines().filter(|l| l.starts_with("  ")).collect();
    assert!(order[0].contains("1. Namespace radar"), "{}", dry.stderr);
    assert!(
        order[1].contains("2. CustomResourceDefinition tracks.radar.example"),
        "{}",
        dry.stderr
    );
    assert!(order[9].contains("10. Track radar/t1"), "{}", dry.stderr);

    s.ship(&["apply", "radar"]).ok();
    let reqs = s.api.take();
    let kinds: Vec<&str> = reqs
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.path.split('/').nth_back(1).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "namespaces",
            "customresourcedefinitions",
            "serviceaccounts",
            "roles",
            "rolebindings",
            "configmaps",
            "persistentvolumeclaims",
            "services",
            "deployments",
            "tracks"
        ]
    );
    // The CRD was read until Established, and the custom resource applied
    // only once discovery served its kind.
    let at = |pred: &dyn Fn(&support::apiserver::Request) -> bool| {
        reqs.iter().position(pred).unwrap_or_else(|| panic!("{reqs:#?}"))
    };
    let crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/tracks.radar.example";
    let track = at(&|r| r.method == "PATCH" && r.path.ends_with("/tracks/t1"));
    let before_track = &reqs[..track];
    let crd_reads = before_track.iter().filter(|r| r.method == "GET" && r.path == crd).count();
    assert!(crd_reads >= 3, "read until Established (the third read): {reqs:#?}");
    let discovery = before_track.iter().filter(|r| r.path == "/apis/radar.example/v1").count();
    assert_eq!(discovery, 2, "once at planning (not served), once served: {reqs:#?}");
    let st = s.status();
    let radar = st.as_array().unwrap().iter().find(|x| x["stack"] == "radar").unwrap();
    assert_eq!(radar["applied"], "1.0.0");
}

#[test]
fn a_version_that_never_becomes_ready_is_restored_by_itself() {
    let (s, v2) = upgraded_ship();
    let v1 = image_of(&s, DEPLOY_SF);
    let before = s.api.contents();
    let broken = v2.clone();
    s.api.behave(move |image| {
        (image == broken).then(|| {
            Behaviour::Never(PodState::CrashLoop { message: "no camera at /dev/video0".into() })
        })
    });
    let r = s.ship(&["apply", "awareness", "--timeout", "3s"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    for said in [
        "awareness 1.1.0 failed and was undone: 1.0.0 is back, healthy",
        "not healthy after 3s",
        "Deployment awareness/sensor-fusion",
        "0 of 1 ready",
        "CrashLoopBackOff (last termination: exit code 1: no camera at /dev/video0)",
    ] {
        assert!(r.stderr.contains(said), "{said:?} in {}", r.stderr);
    }
    // What it waited for was shown as it waited.
    assert!(r.stderr.contains("waiting for Deployment awareness/sensor-fusion"), "{}", r.stderr);
    // The cluster holds release 1 again, pinned to its digests; release
    // 2's prune (old-config) never ran.
    assert_eq!(image_of(&s, DEPLOY_SF), v1);
    assert_eq!(s.api.contents(), before);
    assert!(!s.api.take().iter().any(|q| q.method == "DELETE" && q.path == OLD_CONFIG));
    let st = s.status();
    assert_eq!(st[0]["applied"], "1.0.0", "the version in force stays the old one");
    let h = last_history(&s);
    assert_eq!(h["outcome"], "rolled-back");
    assert_eq!(h["version"], "1.1.0");
    let detail = h["detail"].as_str().unwrap();
    assert!(detail.contains("1.0.0 is back") && detail.contains("CrashLoopBackOff"), "{detail}");

    // Fixed: the same version applies, is waited for, then prunes.
    s.api.behave_well();
    let ok = s.ship(&["apply", "awareness"]).ok();
    assert!(ok.stdout.contains("all healthy, 1 deleted"), "{}", ok.stdout);
    assert_eq!(image_of(&s, DEPLOY_SF), v2);
    assert!(s.api.object(OLD_CONFIG).is_none());
    assert_eq!(s.status()[0]["applied"], "1.1.0");
}

#[test]
fn a_restore_that_fails_exits_6_and_says_what_to_run() {
    let (s, _) = upgraded_ship();
    // Neither release's sensor-fusion can pull its image any more.
    s.api.behave(|image| {
        image.contains("/fleet/sensor-fusion@").then_some(Behaviour::Never(PodState::ImagePull))
    });
    let r = s.ship(&["apply", "awareness", "--timeout", "2s"]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    for said in [
        "awareness 1.1.0 failed",
        "restoring 1.0.0 failed too",
        "tender-ship status awareness --cluster",
        "tender-ship rollback awareness 1.0.0",
        "ImagePullBackOff",
    ] {
        assert!(r.stderr.contains(said), "{said:?} in {}", r.stderr);
    }
    assert_eq!(last_history(&s)["outcome"], "failed");
    // status --cluster shows what is wrong, object by object.
    let st = s.ship(&["status", "awareness", "--cluster"]).ok();
    assert!(
        st.stdout.contains("Deployment awareness/sensor-fusion (apps/v1): in progress: 0 of 1 ready; pod sensor-fusion-7c9d-x2x4q: container fusion: ImagePullBackOff"),
        "{}",
        st.stdout
    );
    assert!(st.stdout.contains("Deployment awareness/bridge-ui (apps/v1): ready"), "{}", st.stdout);
    let json: Value =
        serde_json::from_str(&s.ship(&["--json", "status", "--cluster"]).ok().stdout).unwrap();
    let objects = json[0]["cluster"].as_array().unwrap();
    let sf =
        objects.iter().find(|o| o["object"].as_str().unwrap().contains("sensor-fusion")).unwrap();
    assert_eq!(sf["health"]["state"], "in-progress", "{sf}");
}

#[test]
fn a_refused_object_mid_apply_leaves_nothing_of_the_new_version() {
    let s = Ship::new();
    std::fs::write(
        s.env.path().join("stack/v2/new.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: new-config, namespace: awareness}\ndata: {c: d}\n",
    )
    .unwrap();
    s.env.pack(2, "ci.key", 2, "v2.tender");
    s.ship(&["apply", "v1.tender"]).ok();
    s.env.ship(&["import", "v2.tender"]).ok();
    let before = s.api.contents();
    let v2 = s.pinned("1.1.0", "sensor-fusion");
    s.api.take();
    // Release 2's sensor-fusion, the last object in its order, is refused:
    // by then its new ConfigMap, the changed objects and the other
    // Deployment are applied.
    s.api.refuse_body.lock().unwrap().push(v2.clone());
    let r = s.ship(&["apply", "awareness"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("spec.replicas: Invalid value"), "{}", r.stderr);
    assert!(r.stderr.contains("removed ConfigMap awareness/new-config"), "{}", r.stderr);
    let reqs = s.api.take();
    assert!(reqs.iter().any(|q| q.method == "PATCH" && q.path.ends_with("/new-config")));
    assert_eq!(s.api.contents(), before, "release 1 exactly, and nothing of release 2");
    assert_eq!(s.status()[0]["applied"], "1.0.0");
    assert_eq!(last_history(&s)["outcome"], "rolled-back");
}

#[test]
fn a_first_install_that_fails_removes_what_it_created_but_not_data() {
    let s = Ship::new();
    std::fs::write(s.env.path().join("stack/v1/pvc.yaml"), CLAIM).unwrap();
    s.env.pack(1, "ci.key", 1, "v1.tender");
    s.api.behave(|image| {
        image.contains("/fleet/sensor-fusion@").then_some(Behaviour::Never(PodState::Unschedulable))
    });
    let r = s.ship(&["apply", "v1.tender", "--timeout", "2s"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("nothing was in force before it"), "{}", r.stderr);
    assert!(r.stderr.contains("Unschedulable: 0/2 nodes are available"), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "PersistentVolumeClaim awareness/tracks (v1): left in place: it may hold data"
        ),
        "{}",
        r.stderr
    );
    let left: Vec<String> = s.api.contents().into_keys().collect();
    assert_eq!(
        left,
        [
            "/api/v1/namespaces/awareness",
            "/api/v1/namespaces/awareness/persistentvolumeclaims/tracks"
        ],
        "the claim, and the Namespace that holds it, stay"
    );
    assert_eq!(s.status()[0]["applied"], Value::Null);
    assert_eq!(last_history(&s)["outcome"], "rolled-back");
}

#[test]
fn prune_runs_only_once_the_new_version_is_healthy() {
    let (s, v2) = upgraded_ship();
    s.api.behave(move |image| (image == v2).then_some(Behaviour::ReadyAfter(3)));
    let r = s.ship(&["apply", "awareness", "--timeout", "20s"]).ok();
    assert!(r.stderr.contains("0 of 1 ready"), "progress names what it waits for: {}", r.stderr);
    let reqs = s.api.take();
    let delete = reqs.iter().position(|q| q.method == "DELETE" && q.path == OLD_CONFIG).unwrap();
    let reads: Vec<usize> = reqs
        .iter()
        .enumerate()
        .filter(|(_, q)| q.method == "GET" && q.path == DEPLOY_SF)
        .map(|(i, _)| i)
        .collect();
    assert!(reads.len() >= 3, "{reqs:#?}");
    assert!(reads.iter().all(|&i| i < delete), "the delete comes after the last read: {reqs:#?}");
    assert_eq!(s.status()[0]["applied"], "1.1.0");
}

#[test]
fn no_rollback_leaves_the_failed_version_and_no_wait_does_not_wait() {
    let (s, v2) = upgraded_ship();
    let broken = v2.clone();
    s.api.behave(move |image| (image == broken).then_some(Behaviour::Never(PodState::ImagePull)));
    let r = s.ship(&["apply", "awareness", "--timeout", "1s", "--no-rollback"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("left in place for diagnosis"), "{}", r.stderr);
    assert_eq!(image_of(&s, DEPLOY_SF), v2, "the failed version stays for diagnosis");
    assert!(s.api.object(OLD_CONFIG).is_some(), "and nothing was pruned");
    assert_eq!(s.status()[0]["applied"], "1.0.0");
    assert_eq!(last_history(&s)["outcome"], "failed");

    // --no-wait: applied and pruned at once, recorded as not waited for.
    let r = s.ship(&["apply", "awareness", "--no-wait"]).ok();
    assert!(r.stdout.contains("health not waited for"), "{}", r.stdout);
    assert!(s.api.object(OLD_CONFIG).is_none());
    let h = last_history(&s);
    assert_eq!(h["outcome"], "applied");
    assert_eq!(h["detail"], "not waited for health (--no-wait)");
}

#[test]
fn rollback_takes_the_same_path_and_is_undone_when_it_fails() {
    let (s, v2) = upgraded_ship();
    s.ship(&["apply", "awareness"]).ok();
    assert_eq!(image_of(&s, DEPLOY_SF), v2);
    let v1 = s.pinned("1.0.0", "sensor-fusion");
    s.api.behave(move |image| {
        (image == v1)
            .then(|| Behaviour::Never(PodState::CrashLoop { message: "old firmware".into() }))
    });
    let r = s.ship(&["rollback", "awareness", "--timeout", "2s"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("awareness 1.0.0 failed and was undone: 1.1.0 is back"),
        "{}",
        r.stderr
    );
    assert_eq!(image_of(&s, DEPLOY_SF), v2);
    assert_eq!(s.status()[0]["applied"], "1.1.0");
}

#[test]
fn a_version_that_drops_its_namespace_or_claim_deletes_neither() {
    let s = Ship::new();
    std::fs::write(s.env.path().join("stack/v1/pvc.yaml"), CLAIM).unwrap();
    s.env.pack(1, "ci.key", 1, "v1.tender");
    // Release 2 no longer lists its Namespace (nor the claim): deleting the
    // Namespace would delete everything in it, what tender never applied
    // included; deleting the claim, its data.
    std::fs::remove_file(s.env.path().join("stack/v2/namespace.yaml")).unwrap();
    s.env.pack(2, "ci.key", 2, "v2.tender");
    s.ship(&["apply", "v1.tender"]).ok();
    let r = s.ship(&["apply", "v2.tender"]).ok();
    for kept in [
        "not deleted: Namespace awareness (v1): left in place: it may hold data",
        "not deleted: PersistentVolumeClaim awareness/tracks (v1): left in place: it may hold data",
    ] {
        assert!(r.stdout.contains(kept), "{kept:?} in {}", r.stdout);
    }
    assert!(s.api.object("/api/v1/namespaces/awareness").is_some());
    assert!(s.api.object("/api/v1/namespaces/awareness/persistentvolumeclaims/tracks").is_some());
    assert!(s.api.object(OLD_CONFIG).is_none(), "the rest of the prune ran");
}

#[test]
fn a_restore_deletes_nothing_that_was_live_before_the_failed_apply() {
    let (s, v2) = upgraded_ship();
    // Release 2 takes over a Secret someone else made, by the engineer's
    // --adopt; then never becomes ready. Undoing it must not delete the
    // Secret: tender did not create it.
    let secret = "/api/v1/namespaces/awareness/secrets/camera-auth";
    s.api.put(
        secret,
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "camera-auth", "namespace": "awareness"}, "data": {"k": "dg=="}}),
        "kubectl",
    );
    std::fs::write(
        s.env.path().join("stack/v2/secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: camera-auth, namespace: awareness}\ndata: {k: dg==}\n",
    )
    .unwrap();
    s.env.pack(2, "ci.key", 3, "v2b.tender");
    s.env.ship(&["import", "v2b.tender"]).ok();
    let broken = v2.clone();
    s.api.behave(move |image| (image == broken).then_some(Behaviour::Never(PodState::ImagePull)));
    let r = s.ship(&[
        "apply",
        "awareness",
        "--adopt",
        "Secret/awareness/camera-auth",
        "--timeout",
        "2s",
    ]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(s.api.object(secret).is_some(), "live before the apply: never deleted by the restore");
}

#[test]
fn a_custom_resource_of_a_kind_not_yet_served_is_judged_before_it_is_applied() {
    let s = Ship::new();
    let manifests = [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: radar}\n",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: tracks.radar.example}\nspec:\n  group: radar.example\n  scope: Namespaced\n  names: {kind: Track, plural: tracks, singular: track}\n  versions: [{name: v1, served: true, storage: true}]\n",
        "apiVersion: radar.example/v1\nkind: Track\nmetadata: {name: t1, namespace: radar}\nspec: {range: 12}\n",
        &support::deployment("tracker", Some("radar"), "shore.registry.example/radar/tracker:1.0.0"),
    ]
    .join("---\n");
    support::write_radar_stack(s.env.path(), "radar", "1.0.0", &manifests);
    s.env
        .shore(&["pack", "radar.yaml", "--key", "ci.key", "--sequence", "1", "--out", "r.tender"])
        .ok();
    // Someone's Track is already there (its kind not served when the plan
    // was checked, so it could not be read then).
    let theirs = "/apis/radar.example/v1/namespaces/radar/tracks/t1";
    s.api.put(
        theirs,
        serde_json::json!({"apiVersion": "radar.example/v1", "kind": "Track",
            "metadata": {"name": "t1", "namespace": "radar"}, "spec": {"range": 99}}),
        "kubectl",
    );
    let r = s.ship(&["apply", "r.tender"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("Track radar/t1") && r.stderr.contains("--adopt Track/radar/t1"),
        "{}",
        r.stderr
    );
    let t = s.api.object(theirs).unwrap();
    assert_eq!(t["spec"]["range"], 99, "not taken over");
    assert!(t["metadata"]["labels"].get("tender.io/stack").is_none(), "{t}");
}
