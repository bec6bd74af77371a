//! The main path, end to end through the real binaries: keygen, pack,
//! trust, verify, import, list, fsck.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use support::{Env, SHIP, SHORE};

#[test]
fn keygen_writes_private_key_0600_and_refuses_to_overwrite() {
    let env = Env::new();
    let mode = fs::metadata(env.path().join("ci.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(fs::read_to_string(env.path().join("ci.pub")).unwrap().contains("PUBLIC KEY"));
    let before = fs::read(env.path().join("ci.key")).unwrap();
    env.shore(&["keygen", "--out", "ci"]).fails(1, "refusing to overwrite");
    assert_eq!(fs::read(env.path().join("ci.key")).unwrap(), before);
    let j: serde_json::Value =
        serde_json::from_str(&env.shore(&["--json", "keygen", "--out", "rm"]).ok().stdout).unwrap();
    assert_eq!(j["keyid"].as_str().unwrap().len(), 64);
}

#[test]
fn pack_verify_import_list_fsck() {
    let env = Env::new();
    let out = env
        .shore(&["--json", "pack", "stack-v1.yaml", "--key", "ci.key", "--out", "v1.tender"])
        .ok();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["images"], 3);
    assert_eq!(report["manifests"], 3);
    assert!(report["descriptor_digest"].as_str().unwrap().starts_with("sha256:"));

    let v = env.ship(&["verify", "v1.tender"]).ok();
    assert!(v.stdout.starts_with("OK awareness 1.0.0"), "{}", v.stdout);
    assert_eq!(env.blob_count(), 0, "verify writes nothing");

    let imp: serde_json::Value =
        serde_json::from_str(&env.ship(&["--json", "import", "v1.tender"]).ok().stdout).unwrap();
    assert_eq!(imp["already_imported"], false);
    assert_eq!(imp["blobs_held"], 0);
    let blobs = imp["blobs_new"].as_u64().unwrap() as usize;
    assert_eq!(env.blob_count(), blobs);

    // The same bundle again: a no-op that says so.
    let again = env.ship(&["import", "v1.tender"]).ok();
    assert!(again.stdout.contains("already imported"), "{}", again.stdout);

    // Release 2 shares everything but sensor-fusion's app layer and manifests.
    env.pack(2, "ci.key", u64::MAX / 2, "v2.tender");
    let imp2: serde_json::Value =
        serde_json::from_str(&env.ship(&["--json", "import", "v2.tender"]).ok().stdout).unwrap();
    assert!(imp2["blobs_held"].as_u64().unwrap() > 5, "{imp2}");
    assert!(imp2["blobs_new"].as_u64().unwrap() < blobs as u64, "{imp2}");

    let list: serde_json::Value =
        serde_json::from_str(&env.ship(&["--json", "list"]).ok().stdout).unwrap();
    let versions: Vec<_> =
        list.as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["1.0.0", "1.1.0"]);
    assert!(list.as_array().unwrap().iter().all(|v| v["complete"] == true));
    env.assert_store_sound(2);
}

#[test]
fn bundle_layout_is_descriptor_first_and_blobs_once() {
    let env = Env::new();
    let bundle = env.pack(1, "ci.key", 1, "v1.tender");
    let entries = support::read_entries(&bundle);
    let names: Vec<String> =
        entries.iter().map(|(_, p, _)| String::from_utf8_lossy(p).into_owned()).collect();
    assert_eq!(
        &names[..4],
        ["tender/descriptor.json", "tender/signatures.json", "oci-layout", "index.json"]
    );
    let mut blobs: Vec<&String> = names.iter().filter(|n| n.starts_with("blobs/sha256/")).collect();
    let n = blobs.len();
    blobs.sort();
    blobs.dedup();
    assert_eq!(blobs.len(), n, "every blob once");
    // sensor-fusion and bridge-ui share their base layer per arch.
    let d: serde_json::Value = serde_json::from_slice(&entries[0].2).unwrap();
    assert_eq!(d["blobs"].as_array().unwrap().len(), n);
    // Kubernetes manifests travel byte for byte.
    let yaml = fs::read(env.path().join("stack/v1/bridge-ui.yaml")).unwrap();
    assert!(entries.iter().any(|(_, _, data)| *data == yaml));
}

#[test]
fn signing_key_from_environment() {
    let env = Env::new();
    let key = fs::read_to_string(env.path().join("ci.key")).unwrap();
    let out = std::process::Command::new(SHORE)
        .args(["pack", "stack-v1.yaml", "--out", "env.tender"])
        .env("TENDER_SIGNING_KEY", key)
        .env("TENDER_SHORE_STATE", env.path().join("shore-state"))
        .current_dir(env.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.ship(&["verify", "env.tender"]).ok();
    // And without either: a clear error.
    env.shore(&["pack", "stack-v1.yaml"]).fails(1, "TENDER_SIGNING_KEY");
}

#[test]
fn two_packs_in_one_second_get_rising_sequences_and_both_import() {
    let env = Env::new();
    let seq = |out: &str| -> u64 {
        let entries = support::read_entries(&env.path().join(out));
        let d: serde_json::Value = serde_json::from_slice(&entries[0].2).unwrap();
        d["sequence"].as_u64().unwrap()
    };
    // Back to back, well within one second, without --sequence.
    for (stack, out) in [("stack-v1.yaml", "a.tender"), ("stack-v2.yaml", "b.tender")] {
        env.shore(&["pack", stack, "--key", "ci.key", "--out", out]).ok();
    }
    let (a, b) = (seq("a.tender"), seq("b.tender"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(b > a && a + 60 > now, "rising and near the clock: {a}, {b}, now {now}");
    env.ship(&["import", "a.tender"]).ok();
    env.ship(&["import", "b.tender"]).ok();
    // A delta of the release last packed carries its sequence.
    env.shore(&[
        "pack",
        "stack-v2.yaml",
        "--key",
        "ci.key",
        "--base",
        "a.tender",
        "--out",
        "d.tender",
    ])
    .ok();
    assert_eq!(seq("d.tender"), b);
    // Kept where --state-dir (TENDER_SHORE_STATE) says.
    let state = fs::read_to_string(env.path().join("shore-state/sequences.json")).unwrap();
    assert!(state.contains(&b.to_string()), "{state}");
}

#[test]
fn trust_add_list_remove() {
    let env = Env::new();
    env.shore(&["keygen", "--out", "rm"]).ok();
    let out = env.ship(&["trust", "add", "rm.pub"]).ok().stdout;
    assert!(out.contains("as a signing key"), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let list = env.ship(&["trust", "list"]).ok().stdout;
    assert_eq!(list.lines().count(), 2);
    assert!(list.contains(&id));
    env.ship(&["trust", "remove", &id]).ok();
    assert_eq!(env.ship(&["trust", "list"]).ok().stdout.lines().count(), 1);
    env.ship(&["trust", "remove", &id]).fails(1, "not in the trust store");
    env.ship(&["trust", "add", "rm.key"]).fails(1, "private key");
}

#[test]
fn downgrade_refused_unless_allowed() {
    let env = Env::new();
    env.pack(2, "ci.key", 20, "new.tender");
    env.pack(1, "ci.key", 10, "old.tender");
    env.ship(&["import", "new.tender"]).ok();
    env.ship(&["import", "old.tender"]).fails(3, "refusing downgrade");
    env.assert_store_sound(1);
    env.ship(&["import", "--allow-downgrade", "old.tender"]).ok();
    env.assert_store_sound(2);
}

#[test]
fn platforms_filter_reduces_the_index() {
    let env = Env::new();
    let stack = fs::read_to_string(env.path().join("stack-v1.yaml")).unwrap();
    fs::write(
        env.path().join("arm.yaml"),
        stack.replace("[linux/amd64, linux/arm64]", "[linux/arm64]"),
    )
    .unwrap();
    // ais-gateway is amd64 only: an arm64-only stack cannot carry it.
    env.shore(&["pack", "arm.yaml", "--key", "ci.key"]).fails(1, "ais-gateway");
    fs::write(
        env.path().join("amd.yaml"),
        stack.replace("[linux/amd64, linux/arm64]", "[linux/amd64]"),
    )
    .unwrap();
    env.shore(&["pack", "amd.yaml", "--key", "ci.key", "--out", "amd.tender"]).ok();
    let entries = support::read_entries(&env.path().join("amd.tender"));
    let d: serde_json::Value = serde_json::from_slice(&entries[0].2).unwrap();
    for image in d["images"].as_array().unwrap() {
        let plats: Vec<_> =
            image["platforms"].as_array().unwrap().iter().map(|p| p["platform"].clone()).collect();
        assert_eq!(plats, [serde_json::json!("linux/amd64")], "{image}");
        if image["reference"].as_str().unwrap().contains("ais-gateway") {
            assert_eq!(image["digest"], image["sourceDigest"], "nothing left out: index unchanged");
        } else {
            assert_ne!(image["digest"], image["sourceDigest"], "reduced index: {image}");
        }
    }
    env.ship(&["import", "amd.tender"]).ok();
}

#[test]
fn rollback_protection_survives_gc() {
    let env = Env::new();
    env.pack(2, "ci.key", 20, "new.tender");
    env.pack(1, "ci.key", 10, "old.tender");
    env.ship(&["import", "new.tender"]).ok();
    // Nothing applied: keep 0 removes every version and blob...
    let gc: serde_json::Value =
        serde_json::from_str(&env.ship(&["--json", "gc", "--keep", "0"]).ok().stdout).unwrap();
    assert_eq!(gc["versions_removed"].as_array().unwrap().len(), 1);
    assert_eq!(env.blob_count(), 0);
    // ...but not the highest sequence seen.
    env.ship(&["import", "old.tender"]).fails(3, "refusing downgrade");
}

/// The committed man pages are what the binaries make now: regenerate them
/// with `tender-ship man docs/man && tender-shore man docs/man` after a
/// change to the command line (README, Shell).
#[test]
fn committed_man_pages_match_the_cli_and_completions_are_made() {
    let dir = tempfile::tempdir().unwrap();
    for bin in [SHIP, SHORE] {
        let out = std::process::Command::new(bin).arg("man").arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let read = |d: &std::path::Path| -> std::collections::BTreeMap<String, Vec<u8>> {
        fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap()))
            .collect()
    };
    let made = read(dir.path());
    for page in ["tender-ship.1", "tender-ship-trust-add.1", "tender-shore-keyring-add-signer.1"] {
        assert!(made.contains_key(page), "{page} among {:?}", made.keys());
    }
    let committed = read(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/man"));
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        made.keys().collect::<Vec<_>>(),
        "docs/man lists other pages than the CLI has: regenerate"
    );
    for (name, roff) in &made {
        assert!(committed[name] == *roff, "docs/man/{name} differs from the CLI: regenerate");
    }
    for bin in [SHIP, SHORE] {
        for shell in ["bash", "zsh", "fish"] {
            let out =
                std::process::Command::new(bin).args(["completions", shell]).output().unwrap();
            let script = String::from_utf8(out.stdout).unwrap();
            assert!(out.status.success() && script.contains("completions"), "{bin} {shell}");
        }
    }
    let bash = std::process::Command::new(SHIP).args(["completions", "bash"]).output().unwrap();
    assert!(String::from_utf8_lossy(&bash.stdout).contains("--allow-downgrade"));
}
