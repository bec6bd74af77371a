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

/// The settings file carries local patches, which may add any field to a
/// pod (a privileged container, a host mount): like the trust files, it is
/// refused when another user could write it, or when it is not a regular
/// file, naming it; a corrupted one is refused naming it too.
#[test]
fn a_settings_file_another_user_could_write_is_refused_naming_it() {
    let s = ship_with_settings();
    s.env.ship(&["import", "v1.tender"]).ok();
    s.env.ship(&["settings", "set", "awareness", "VESSEL_NAME=MV Aurora", "AIS_TOKEN=t"]).ok();
    let file = s.env.store().join("settings/awareness.json");
    let shown = file.display().to_string();

    fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
    s.env.ship(&["settings", "list", "awareness"]).fails(1, &shown);
    s.api.take();
    let r = s.ship(&["apply", "awareness"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(&shown) && r.stderr.contains("another user could change it"),
        "{}",
        r.stderr
    );
    assert!(s.api.take().iter().all(|q| q.method == "GET"), "nothing applied");
    // Nor does `settings set` write over it as if it were sound.
    s.env.ship(&["settings", "set", "awareness", "VESSEL_NAME=MV Borealis"]).fails(1, &shown);

    // A symbolic link in its place is not followed.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let elsewhere = s.env.path().join("elsewhere.json");
    fs::rename(&file, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
    s.env.ship(&["settings", "list", "awareness"]).fails(1, &shown);
    fs::remove_file(&file).unwrap();

    // Corrupted: named, with what is wrong.
    fs::write(&file, "{\"values\": {\"VESSEL_NAME\": ").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    s.env.ship(&["settings", "list", "awareness"]).fails(1, &shown);
}

/// A value (or patch) too large for the settings file is refused when it
/// is set, and the file stays usable; before, it was written, and every
/// later read (list, apply, even unset) failed calling it "a manifest".
#[test]
fn a_value_too_large_for_the_settings_file_is_refused_when_set() {
    let s = ship_with_settings();
    s.env.ship(&["import", "v1.tender"]).ok();
    s.env.ship(&["settings", "set", "awareness", "VESSEL_NAME=MV Aurora", "AIS_TOKEN=t"]).ok();
    let huge = "x".repeat(5 << 20);
    fs::write(s.env.path().join("huge.yaml"), format!("AIS_TOKEN: {huge}\n")).unwrap();
    let r = s.env.ship(&["settings", "set", "awareness", "--from-file", "huge.yaml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("settings/awareness.json"), "{}", r.stderr);
    assert!(!r.stderr.contains("xxxxxxxx"), "the value is not shown");
    let list = s.env.ship(&["settings", "list", "awareness"]).ok().stdout;
    assert!(list.contains("MV Aurora"), "the values before are kept: {list}");

    // An oversized file (written by hand) is refused naming it.
    let file = s.env.store().join("settings/awareness.json");
    fs::write(&file, format!("{{\"values\": {{\"AIS_TOKEN\": \"{huge}\"}}}}")).unwrap();
    let r = s.env.ship(&["settings", "list", "awareness"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&file.display().to_string()) && !r.stderr.contains("manifest"),
        "{}",
        r.stderr
    );
}

/// An object whose name a setting fills in is pruned when a later version
/// drops it: the version in force is compared as it was rendered, not as
/// signed (`cam-${VESSEL_ID}` is no object of the cluster).
#[test]
fn an_object_named_by_a_setting_is_pruned_when_the_next_version_drops_it() {
    let s = Ship::new();
    fs::write(
        s.env.path().join("stack/v1/camera.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 'cam-${VESSEL_ID}', namespace: awareness}\ndata: {a: b}\n",
    )
    .unwrap();
    for rel in [1, 2] {
        let file = s.env.path().join(format!("stack-v{rel}.yaml"));
        let mut text = fs::read_to_string(&file).unwrap();
        text.push_str(
            "settings:\n  - {name: VESSEL_ID, required: true, pattern: '[a-z0-9-]{1,20}'}\n",
        );
        fs::write(&file, text).unwrap();
    }
    s.env.pack(1, "ci.key", 1, "v1.tender");
    s.env.pack(2, "ci.key", 2, "v2.tender");
    s.env.ship(&["import", "v1.tender"]).ok();
    s.env.ship(&["settings", "set", "awareness", "VESSEL_ID=aurora"]).ok();
    s.ship(&["apply", "awareness"]).ok();
    let cam = "/api/v1/namespaces/awareness/configmaps/cam-aurora";
    assert!(s.api.object(cam).is_some());

    s.env.ship(&["import", "v2.tender"]).ok();
    let r = s.ship(&["apply", "awareness"]).ok();
    assert!(s.api.object("/api/v1/namespaces/awareness/configmaps/old-config").is_none());
    assert!(
        s.api.object(cam).is_none(),
        "the object v1 rendered and v2 drops is pruned: {}\n{}",
        r.stdout,
        r.stderr
    );
}

/// A secret typed without its `NAME=` (a space after `=`, a colon) is not
/// echoed in the error.
#[test]
fn a_malformed_setting_argument_is_not_echoed() {
    let s = ship_with_settings();
    s.env.ship(&["import", "v1.tender"]).ok();
    for args in [["AIS_TOKEN=", TOKEN], ["AIS_TOKEN:", TOKEN]] {
        let mut a = vec!["settings", "set", "awareness"];
        a.extend(args);
        let r = s.env.ship(&a);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(!r.stderr.contains(TOKEN) && !r.stdout.contains(TOKEN), "{}", r.stderr);
    }
    s.env
        .ship(&["settings", "set", "awareness", "AIS_TOKEN"])
        .fails(1, "AIS_TOKEN: expected NAME=VALUE");
}

/// The hash history and `status` show of the values used is keyed with a
/// random key kept in the 0600 settings file: with the other values shown
/// by `settings list`, an unkeyed SHA-256 of a short secret (a PIN) gives
/// it away to a dictionary.
#[test]
fn the_hash_of_the_values_used_does_not_give_a_short_secret_away() {
    use sha2::{Digest, Sha256};
    let s = ship_with_settings();
    s.env.ship(&["import", "v1.tender"]).ok();
    s.env.ship(&["settings", "set", "awareness", "VESSEL_NAME=MV Aurora", "AIS_TOKEN=4711"]).ok();
    s.ship(&["apply", "awareness"]).ok();
    let status = s.status();
    let shown = status[0]["history"].as_array().unwrap().last().unwrap()["settings"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let guess = |pin: u32| {
        let text = format!(
            "AIS_TOKEN={pin:04}\nCAMERA_URL=rtsp://10.0.0.20/main\nVESSEL_NAME=MV Aurora\n"
        );
        Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert!((0..10_000).all(|pin| guess(pin) != shown), "the PIN is found from its hash");
    // Still a record of what changed: the same values, the same hash.
    s.ship(&["apply", "awareness"]).ok();
    let again =
        s.status()[0]["history"].as_array().unwrap().last().unwrap()["settings"]["sha256"].clone();
    assert_eq!(again, shown.as_str());
}

/// A signer's pattern is compiled aboard every time the descriptor is read;
/// one that compiles to more than 64 KiB is refused at pack (1000 of
/// `\w{20}`, each under the former 1 MiB bound, made `status` take 40 s).
#[test]
fn a_pattern_too_costly_to_compile_is_refused_at_pack() {
    let s = Ship::new();
    let file = s.env.path().join("stack-v1.yaml");
    let mut text = fs::read_to_string(&file).unwrap();
    text.push_str("settings:\n  - {name: CALLSIGN, pattern: '\\w{20}'}\n");
    fs::write(&file, text).unwrap();
    s.env
        .pack_with_flags(1, "ci.key", 1, "v1.tender", &[])
        .fails(1, "setting CALLSIGN: the pattern \"\\\\w{20}\" is not a regular expression");
}
