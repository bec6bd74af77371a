//! Per-ship settings and local patches, through the real binaries: declared
//! by the stack file and signed with it, set aboard, checked before
//! anything changes, substituted only where declared, secrets never shown,
//! recorded as names and a hash; patches merged onto the signed objects.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use support::ship::{Ship, skopeo_inspect};

const CM: &str = "/api/v1/namespaces/awareness/configmaps/vessel";
const SECRET: &str = "/api/v1/namespaces/awareness/secrets/ais";
const DEPLOY_SF: &str = "/apis/apps/v1/namespaces/awareness/deployments/sensor-fusion";
const TOKEN: &str = "tok-9f8e7d6c5b";

/// Both releases declare the settings and use them.
fn ship_with_settings() -> Ship {
    let s = Ship::new();
    for rel in [1, 2] {
        fs::write(
            s.env.path().join(format!("stack/v{rel}/vessel.yaml")),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vessel, namespace: awareness}\n\
             data: {name: '${VESSEL_NAME}', camera: '${CAMERA_URL}', literal: '$${VESSEL_NAME}', other: '${NOT_DECLARED}'}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata: {name: ais, namespace: awareness}\nstringData: {token: '${AIS_TOKEN}'}\n",
        )
        .unwrap();
        let file = s.env.path().join(format!("stack-v{rel}.yaml"));
        let mut text = fs::read_to_string(&file).unwrap();
        text.push_str(
            "settings:\n\
             \x20 - {name: VESSEL_NAME, description: shown on the bridge UI, required: true, pattern: '[A-Za-z0-9 .-]{1,40}'}\n\
             \x20 - {name: CAMERA_URL, default: 'rtsp://10.0.0.20/main'}\n\
             \x20 - {name: AIS_TOKEN, secret: true, required: true}\n",
        );
        fs::write(&file, text).unwrap();
    }
    let packed = s.env.pack_with_flags(1, "ci.key", 1, "v1.tender", &[]).ok();
    assert!(
        packed.stderr.contains("stack/v1/vessel.yaml: ${NOT_DECLARED} is not a declared setting"),
        "pack reports an undeclared reference: {}",
        packed.stderr
    );
    s.env.pack(2, "ci.key", 2, "v2.tender");
    s
}

#[test]
fn a_version_that_needs_settings_is_refused_until_they_are_set_then_rendered() {
    let s = ship_with_settings();
    let imported = s.env.ship(&["import", "v1.tender"]).ok();
    for name in ["VESSEL_NAME", "AIS_TOKEN"] {
        assert!(
            imported.stderr.contains(&format!("needs setting {name}, which is not set")),
            "{}",
            imported.stderr
        );
    }
    // Refused before anything is pushed or applied.
    let r = s.ship(&["apply", "awareness"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("awareness 1.0.0 cannot be applied: VESSEL_NAME is required and not set; AIS_TOKEN is required and not set"),
        "{}",
        r.stderr
    );
    assert!(s.api.take().iter().all(|q| q.method == "GET"), "nothing applied");
    assert!(!skopeo_inspect(&format!("{}/fleet/sensor-fusion:1.0.0", s.registry.host())));

    // A value its pattern refuses: warned when set, refused at apply,
    // never shown.
    let w = s
        .env
        .ship(&[
            "settings",
            "set",
            "awareness",
            "VESSEL_NAME=MV Aurora; rm -rf /",
            &format!("AIS_TOKEN={TOKEN}"),
        ])
        .ok();
    assert!(w.stderr.contains("VESSEL_NAME: the value does not match the pattern"), "{}", w.stderr);
    let r = s.ship(&["apply", "awareness"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("does not match the pattern") && !r.stderr.contains("rm -rf"),
        "{}",
        r.stderr
    );

    fs::write(s.env.path().join("values.yaml"), "VESSEL_NAME: MV Aurora\n").unwrap();
    s.env.ship(&["settings", "set", "awareness", "--from-file", "values.yaml"]).ok();
    let list = s.env.ship(&["settings", "list", "awareness"]).ok().stdout;
    assert!(list.contains("VESSEL_NAME") && list.contains("MV Aurora"), "{list}");
    assert!(list.contains("CAMERA_URL") && list.contains("default"), "{list}");
    assert!(list.contains("AIS_TOKEN") && list.contains("***") && !list.contains(TOKEN), "{list}");
    let json: Value =
        serde_json::from_str(&s.env.ship(&["--json", "settings", "list", "awareness"]).ok().stdout)
            .unwrap();
    let token =
        json["declared"].as_array().unwrap().iter().find(|d| d["name"] == "AIS_TOKEN").unwrap();
    assert_eq!((token["state"].as_str(), token["value"].as_str()), (Some("set"), Some("***")));
    let file = s.env.store().join("settings/awareness.json");
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    // --dry-run shows the rendered manifests, the secret masked.
    let dry = s.ship(&["apply", "awareness", "--dry-run"]).ok().stdout;
    assert!(dry.contains("name: MV Aurora") && dry.contains("token: '***'"), "{dry}");
    assert!(!dry.contains(TOKEN), "{dry}");

    s.ship(&["apply", "awareness"]).ok();
    let cm = s.api.object(CM).unwrap();
    assert_eq!(cm["data"]["name"], "MV Aurora");
    assert_eq!(cm["data"]["camera"], "rtsp://10.0.0.20/main", "the default");
    assert_eq!(
        cm["data"]["literal"], "${VESSEL_NAME}",
        "an escaped reference is written as a reference"
    );
    assert_eq!(cm["data"]["other"], "${NOT_DECLARED}", "undeclared: left alone");
    assert_eq!(s.api.object(SECRET).unwrap()["stringData"]["token"], TOKEN);

    // History: which settings, and a hash; never a value.
    let history = fs::read_to_string(s.env.store().join("stacks/awareness/history.json")).unwrap();
    assert!(!history.contains(TOKEN) && !history.contains("MV Aurora"), "{history}");
    let status = s.status();
    let used = &status[0]["history"].as_array().unwrap().last().unwrap()["settings"];
    assert_eq!(used["names"], serde_json::json!(["AIS_TOKEN", "CAMERA_URL", "VESSEL_NAME"]));
    assert_eq!(used["sha256"].as_str().unwrap().len(), 64);
    assert!(!s.env.ship(&["status"]).ok().stdout.contains(TOKEN));

    // The values survive an update.
    s.env.ship(&["import", "v2.tender"]).ok();
    s.ship(&["apply", "awareness"]).ok();
    assert_eq!(s.status()[0]["applied"], "1.1.0");
    assert_eq!(s.api.object(CM).unwrap()["data"]["name"], "MV Aurora");
}

#[test]
fn local_patches_merge_onto_signed_objects_and_one_naming_nothing_stops_the_apply() {
    let s = ship_with_settings();
    s.env.ship(&["import", "v1.tender"]).ok();
    s.env.ship(&["settings", "set", "awareness", "VESSEL_NAME=MV Aurora", "AIS_TOKEN=t"]).ok();
    fs::write(
        s.env.path().join("camera.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: sensor-fusion, namespace: awareness}\n\
         spec: {replicas: 2, template: {spec: {nodeSelector: {tender.io/vessel: aurora}}}}\n",
    )
    .unwrap();
    s.env.ship(&["settings", "patch", "awareness", "camera.yaml"]).ok();
    assert!(
        s.env
            .ship(&["settings", "list", "awareness"])
            .ok()
            .stdout
            .contains("patch camera.yaml: Deployment awareness/sensor-fusion (apps/v1)")
    );
    s.ship(&["apply", "awareness"]).ok();
    let d = s.api.object(DEPLOY_SF).unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["template"]["spec"]["nodeSelector"]["tender.io/vessel"], "aurora");
    // The signed fields the patch does not name are as signed (merged, not replaced).
    assert_eq!(d["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/arch"], "arm64");
    assert!(
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .contains("@sha256:")
    );
    let history = s.status()[0]["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(history["settings"]["patches"], serde_json::json!(["camera.yaml"]));

    // A patch naming an object the version does not have: refused before
    // anything changes, naming it.
    fs::write(
        s.env.path().join("typo.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: sensor-fusoin, namespace: awareness}\nspec: {replicas: 3}\n",
    )
    .unwrap();
    s.env.ship(&["settings", "patch", "awareness", "typo.yaml"]).ok();
    s.api.take();
    let r = s.ship(&["apply", "awareness"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("local patch typo.yaml names Deployment awareness/sensor-fusoin (apps/v1), which awareness 1.0.0 does not have"),
        "{}",
        r.stderr
    );
    assert!(s.api.take().iter().all(|q| q.method == "GET"));
    s.env.ship(&["settings", "unpatch", "awareness", "typo.yaml"]).ok();
    s.ship(&["apply", "awareness"]).ok();

    // A patch may change fields, never which object it is (here: another
    // version of the API, which the merge would write over the object's).
    fs::write(
        s.env.path().join("move.yaml"),
        "apiVersion: apps/v1beta2\nkind: Deployment\nmetadata: {name: sensor-fusion, namespace: awareness}\nspec: {replicas: 1}\n",
    )
    .unwrap();
    s.env.ship(&["settings", "patch", "awareness", "move.yaml"]).ok();
    s.api.take();
    let r = s.ship(&["apply", "awareness"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("local patch move.yaml: it would change the identity"),
        "{}",
        r.stderr
    );
    assert!(s.api.take().iter().all(|q| q.method == "GET"));
}
