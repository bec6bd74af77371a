//! K of N signatures: a stack that needs CI and a release manager; the
//! release manager signs the bundle afterwards without repacking it.

mod support;

use std::fs;

use support::Env;

#[test]
fn threshold_needs_a_second_signature_added_by_sign() {
    let env = Env::new();
    env.shore(&["keygen", "--out", "rm"]).ok();
    env.ship(&["trust", "add", "rm.pub"]).ok();
    env.ship(&["trust", "threshold", "awareness", "2"]).ok();
    let bundle = env.pack(1, "ci.key", 1, "v1.tender");
    let before = env.snapshot();
    env.ship(&["verify", "v1.tender"]).fails(3, "1 valid signature(s) by trusted keys, 2 required");
    env.ship(&["import", "v1.tender"]).fails(3, "2 required");
    assert_eq!(env.snapshot(), before, "refused before any write");

    // A signature by a key the ship does not trust does not count.
    env.shore(&["keygen", "--out", "stranger"]).ok();
    env.shore(&["sign", "v1.tender", "--key", "stranger.key"]).ok();
    env.ship(&["import", "v1.tender"]).fails(3, "2 required");

    let unchanged = fs::read(&bundle).unwrap();
    let out = env.shore(&["sign", "v1.tender", "--key", "rm.key"]).ok();
    assert!(out.stdout.contains("v1.tender.sig"), "{}", out.stdout);
    assert_eq!(fs::read(&bundle).unwrap(), unchanged, "the bundle itself is not rewritten");
    env.ship(&["verify", "v1.tender"]).ok();
    env.ship(&["import", "v1.tender"]).ok();
    env.assert_store_sound(1);
}

#[test]
fn a_forged_detached_signature_is_refused() {
    let env = Env::new();
    env.shore(&["keygen", "--out", "rm"]).ok();
    env.ship(&["trust", "add", "rm.pub"]).ok();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.pack(2, "ci.key", 2, "v2.tender");
    // rm's real signature over another descriptor, presented for this one.
    env.shore(&["sign", "v2.tender", "--key", "rm.key"]).ok();
    fs::copy(env.path().join("v2.tender.sig"), env.path().join("v1.tender.sig")).unwrap();
    env.ship(&["import", "v1.tender"]).fails(3, "does not match");
    env.assert_store_sound(0);
}

#[test]
fn parts_share_one_detached_signature_file() {
    let env = Env::new();
    env.shore(&["keygen", "--out", "rm"]).ok();
    env.ship(&["trust", "add", "rm.pub"]).ok();
    env.ship(&["trust", "threshold", "awareness", "2"]).ok();
    env.shore(&[
        "pack",
        "stack-v1.yaml",
        "--key",
        "ci.key",
        "--sequence",
        "1",
        "--split",
        "40K",
        "--out",
        "v1.tender",
    ])
    .ok();
    env.shore(&["sign", "v1.tender.001", "--key", "rm.key"]).ok();
    assert!(env.path().join("v1.tender.sig").exists());
    let parts: Vec<_> = fs::read_dir(env.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("v1.tender.0"))
        .collect();
    assert!(!parts.is_empty());
    for p in parts {
        env.ship(&["import", &p]).ok();
    }
    env.assert_store_sound(1);
}

#[test]
fn expired_bundle_warns_by_default_and_is_refused_when_fresh_is_required() {
    let env = Env::new();
    env.shore(&[
        "pack",
        "stack-v1.yaml",
        "--key",
        "ci.key",
        "--sequence",
        "1",
        "--expires",
        "2020-01-01T00:00:00Z",
        "--out",
        "old.tender",
    ])
    .ok();
    let before = env.snapshot();
    env.ship(&["verify", "--require-fresh", "old.tender"])
        .fails(3, "expired at 2020-01-01T00:00:00Z");
    env.ship(&["import", "--require-fresh", "old.tender"]).fails(3, "fresh bundles are required");
    assert_eq!(env.snapshot(), before, "refused before any write");
    let r = env.ship(&["import", "old.tender"]).ok();
    assert!(r.stderr.contains("warning") && r.stderr.contains("expired"), "{}", r.stderr);
    env.assert_store_sound(1);
    // A bundle that expires in the future is fresh.
    env.shore(&[
        "pack",
        "stack-v2.yaml",
        "--key",
        "ci.key",
        "--sequence",
        "2",
        "--expires-in",
        "30days",
        "--out",
        "new.tender",
    ])
    .ok();
    let r = env.ship(&["import", "--require-fresh", "new.tender"]).ok();
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

#[test]
fn a_clock_set_back_is_warned_about_and_does_not_make_stale_bundles_fresh() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    // As if this ship had once seen a time far ahead of its clock now.
    fs::write(env.store().join("time.json"), r#"{"latest_seen": "2099-01-01T00:00:00Z"}"#).unwrap();
    env.shore(&[
        "pack",
        "stack-v2.yaml",
        "--key",
        "ci.key",
        "--sequence",
        "2",
        "--expires-in",
        "30days",
        "--out",
        "v2.tender",
    ])
    .ok();
    let r = env.ship(&["import", "--require-fresh", "v2.tender"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("expired"), "{}", r.stderr);
    let r = env.ship(&["import", "v2.tender"]).ok();
    assert!(r.stderr.contains("set back"), "{}", r.stderr);
}
