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
