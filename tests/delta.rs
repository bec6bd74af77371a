//! Layer deltas: the ship's inventory (or an earlier bundle) as the base,
//! a delta that carries only what the ship lacks, refused before any write
//! where the base is missing, and the same store as the full bundle leaves.

mod support;

use std::fs;

use support::{Env, read_entries};

fn descriptor(env: &Env, file: &str) -> serde_json::Value {
    serde_json::from_slice(&read_entries(&env.path().join(file))[0].2).unwrap()
}

/// Pack release 2 (sequence 2) as a delta against `base`, with `extra` flags.
fn pack_delta(env: &Env, base: &str, out: &str, extra: &[&str]) -> support::Run {
    let mut args = vec![
        "pack",
        "stack-v2.yaml",
        "--key",
        "ci.key",
        "--sequence",
        "2",
        "--base",
        base,
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    env.shore(&args)
}

fn blobs(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(env.store().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn delta_carries_only_what_changed_and_leaves_the_same_store() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.pack(2, "ci.key", 2, "v2.tender");
    let r = pack_delta(&env, "v1.tender", "delta.tender", &["--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(report["expected_blobs"].as_u64().unwrap() > 10, "{report}");
    let full_size = fs::metadata(env.path().join("v2.tender")).unwrap().len();
    let delta_size = fs::metadata(env.path().join("delta.tender")).unwrap().len();
    assert!(delta_size < full_size, "delta {delta_size} vs full {full_size}");
    let (total, held) =
        (report["blob_bytes"].as_u64().unwrap(), report["expected_bytes"].as_u64().unwrap());
    assert!(total - held < total / 2, "carries {} of {total} blob bytes", total - held);
    let d = descriptor(&env, "delta.tender");
    assert_eq!(d["bases"][0]["version"], "1.0.0");
    let expected = d["blobs"].as_array().unwrap().iter().filter(|b| b["part"] == 0).count();
    assert_eq!(expected as u64, report["expected_blobs"].as_u64().unwrap());

    // Ship A: release 1 then the delta. Ship B: release 1 then the full release 2.
    env.ship(&["import", "v1.tender"]).ok();
    let imp: serde_json::Value =
        serde_json::from_str(&env.ship(&["--json", "import", "delta.tender"]).ok().stdout).unwrap();
    assert_eq!(imp["complete"], true, "{imp}");
    env.assert_store_sound(2);
    let other = Env::new();
    fs::copy(env.path().join("ci.pub"), other.path().join("shore.pub")).unwrap();
    other.ship(&["trust", "add", "shore.pub"]).ok();
    other.ship(&["import", env.path().join("v1.tender").to_str().unwrap()]).ok();
    other.ship(&["import", env.path().join("v2.tender").to_str().unwrap()]).ok();
    assert_eq!(blobs(&env), blobs(&other));
    // And it applies like any version (dry run: nothing else is needed).
    env.ship(&["apply", "awareness", "1.1.0", "--dry-run"]).ok();
}

#[test]
fn delta_against_the_ships_inventory() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    env.ship(&["inventory", "--out", "inventory.json"]).ok();
    let inv: serde_json::Value =
        serde_json::from_slice(&fs::read(env.path().join("inventory.json")).unwrap()).unwrap();
    assert_eq!(inv["format"], "tender-inventory/1");
    assert_eq!(inv["blobs"].as_array().unwrap().len(), blobs(&env).len());
    // The estimate first: what a satellite pull would cost, nothing written.
    let est = env
        .shore(&[
            "pack",
            "stack-v2.yaml",
            "--base",
            "inventory.json",
            "--estimate",
            "--out",
            "never.tender",
        ])
        .ok();
    assert!(est.stdout.contains("would carry"), "{}", est.stdout);
    assert!(est.stdout.contains("held"), "{}", est.stdout);
    assert!(!env.path().join("never.tender").exists());
    pack_delta(&env, "inventory.json", "delta.tender", &[]).ok();
    env.ship(&["import", "delta.tender"]).ok();
    env.assert_store_sound(2);
}

#[test]
fn delta_whose_base_is_missing_is_refused_before_any_write() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    pack_delta(&env, "v1.tender", "delta.tender", &[]).ok();
    let before = env.snapshot();
    env.ship(&["import", "delta.tender"])
        .fails(1, "import first the version(s) it was made against: awareness 1.0.0 (sequence 1)");
    assert_eq!(env.snapshot(), before, "nothing written");
    env.ship(&["import", "v1.tender"]).ok();
    env.ship(&["import", "delta.tender"]).ok();
    env.assert_store_sound(2);
}

#[test]
fn a_base_that_is_not_one_is_a_clear_error() {
    let env = Env::new();
    fs::write(env.path().join("junk.json"), "{\"format\": \"something-else\"}").unwrap();
    env.shore(&["pack", "stack-v2.yaml", "--key", "ci.key", "--base", "junk.json"])
        .fails(1, "not a bundle, descriptor or inventory");
    fs::write(env.path().join("junk.txt"), "not json at all").unwrap();
    env.shore(&["pack", "stack-v2.yaml", "--key", "ci.key", "--base", "junk.txt"])
        .fails(1, "not JSON");
}

#[test]
fn a_signed_inventory_tells_the_shore_which_ship_it_came_from() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    env.ship(&["keygen"]).ok();
    let ship_pub = env.store().join("ship.pub");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(env.store().join("ship.key")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    env.ship(&["keygen"]).fails(1, "refusing to overwrite");
    env.ship(&["inventory", "--out", "inventory.json"]).ok();
    let inv: serde_json::Value =
        serde_json::from_slice(&fs::read(env.path().join("inventory.json")).unwrap()).unwrap();
    assert_eq!(inv["signatures"].as_array().unwrap().len(), 1);

    let pack = |extra: &[&str]| pack_delta(&env, "inventory.json", "d.tender", extra);
    pack(&["--ship-key", ship_pub.to_str().unwrap()]).ok();
    // Signed, but by a ship the shore was not told about.
    pack(&[]).fails(1, "inventory signature");
    env.shore(&["keygen", "--out", "other-ship"]).ok();
    pack(&["--ship-key", "other-ship.pub"]).fails(1, "no signature by a trusted key");
    // Altered after signing.
    let mut altered = inv.clone();
    altered["blobs"].as_array_mut().unwrap().pop();
    fs::write(env.path().join("inventory.json"), serde_json::to_vec(&altered).unwrap()).unwrap();
    pack(&["--ship-key", ship_pub.to_str().unwrap()]).fails(1, "does not match");
    // Not an inventory at all.
    fs::write(env.path().join("inventory.json"), r#"{"format":"tender-inventory/1","blobs":"x"}"#)
        .unwrap();
    pack(&[]).fails(1, "base inventory.json");
}
