//! K of N signatures: a stack that needs CI and a release manager; the
//! release manager signs the bundle afterwards without repacking it.

mod support;

use std::fs;

use support::{Env, pack_with, rooted_env};

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
    env.pack_with_flags(2, "ci.key", 2, "new.tender", &["--expires-in", "30days"]).ok();
    let r = env.ship(&["import", "--require-fresh", "new.tender"]).ok();
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

#[test]
fn a_clock_reading_far_ahead_is_warned_about_and_does_not_lock_the_ship_out() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    // As if this ship's clock had once run far ahead (or been set back since).
    fs::write(env.store().join("time.json"), r#"{"latest_seen": "2099-01-01T00:00:00Z"}"#).unwrap();
    env.pack_with_flags(2, "ci.key", 2, "v2.tender", &["--expires-in", "30days"]).ok();
    // Expiry is judged by the clock: fresh, with a warning about the clock.
    let r = env.ship(&["import", "--require-fresh", "v2.tender"]).ok();
    assert!(r.stderr.contains("set back"), "{}", r.stderr);
}

#[test]
fn keyrings_name_signers_restrict_them_rotate_and_revoke() {
    let env = rooted_env();
    let key_id = |f: &str| {
        let pem = fs::read_to_string(env.path().join(f)).unwrap();
        tender_keys::PublicKey::from_pem(&pem).unwrap().key_id().to_string()
    };
    // Version 1: the root lets ci sign awareness.
    env.shore(&["keyring", "init", "--root", "root.pub", "--out", "kr.json"]).ok();
    env.shore(&[
        "keyring",
        "add-signer",
        "kr.json",
        "ci.pub",
        "--stacks",
        "awareness",
        "--expires-in",
        "365days",
    ])
    .ok();
    env.shore(&["keyring", "sign", "kr.json", "--key", "root.key"]).ok();
    fs::copy(env.path().join("kr.json"), env.path().join("kr-v1.json")).unwrap();
    // Without the keyring the ship trusts nobody but its root.
    env.pack(1, "ci.key", 1, "plain.tender");
    env.ship(&["import", "plain.tender"]).fails(3, "no signature by a trusted key");
    pack_with(&env, 1, "ci.key", 1, "kr.json", "v1.tender");
    env.ship(&["verify", "v1.tender"]).ok();
    env.ship(&["import", "v1.tender"]).ok();
    let list = env.ship(&["trust", "list"]).ok().stdout;
    assert!(list.contains("keyring  version 1"), "{list}");
    assert!(list.contains(&format!("signer  {}  stacks awareness", key_id("ci.pub"))), "{list}");

    // Version 2 lets ci sign only radar: its awareness bundles are refused.
    env.shore(&["keyring", "add-signer", "kr.json", "ci.pub", "--stacks", "radar"]).ok();
    env.shore(&["keyring", "sign", "kr.json", "--key", "root.key"]).ok();
    pack_with(&env, 2, "ci.key", 2, "kr.json", "v2-ci.tender");
    env.ship(&["import", "v2-ci.tender"]).fails(3, "may sign stack awareness");
    env.assert_store_sound(1);

    // Version 3 revokes ci and names ci2: ci2's bundle imports.
    env.shore(&["keyring", "revoke", "kr.json", &key_id("ci.pub")]).ok();
    env.shore(&["keyring", "add-signer", "kr.json", "ci2.pub", "--stacks", "*"]).ok();
    env.shore(&["keyring", "sign", "kr.json", "--key", "root.key"]).ok();
    pack_with(&env, 2, "ci2.key", 2, "kr.json", "v2.tender");
    env.ship(&["import", "v2.tender"]).ok();
    env.assert_store_sound(2);
    // A bundle by the revoked key carrying the old keyring: the old keyring
    // is ignored (older than the one in force) and ci is trusted no more.
    pack_with(&env, 2, "ci.key", 3, "kr-v1.json", "replay.tender");
    env.ship(&["import", "replay.tender"]).fails(3, "no signature by a trusted key");
    // Pinned directly, a revoked key is still refused.
    env.ship(&["trust", "add", "ci.pub"]).ok();
    env.ship(&["import", "replay.tender"]).fails(3, "no signature by a trusted key");
    let list = env.ship(&["trust", "list"]).ok().stdout;
    assert!(list.contains("REVOKED by the keyring"), "{list}");

    // Root rotation: the new keyring must be signed by the old root and the new.
    env.shore(&["keyring", "set-roots", "kr.json", "--root", "root2.pub"]).ok();
    env.shore(&["keyring", "sign", "kr.json", "--key", "root2.key"]).ok();
    env.ship(&["trust", "keyring", "kr.json"]).fails(3, "by the roots in force");
    env.shore(&["keyring", "sign", "kr.json", "--key", "root.key"]).ok();
    env.ship(&["trust", "keyring", "kr.json"]).ok();
    assert!(env.ship(&["trust", "list"]).ok().stdout.contains("keyring  version 4"));
    // The old root alone can no longer change anything.
    env.shore(&[
        "keyring",
        "add-signer",
        "kr.json",
        "ci3.pub",
        "--stacks",
        "*",
        "--expires",
        "2020-01-01T00:00:00Z",
    ])
    .ok();
    env.shore(&["keyring", "sign", "kr.json", "--key", "root.key"]).ok();
    env.ship(&["trust", "keyring", "kr.json"]).fails(3, "by the roots in force");
    // Signed by the new root: in force, but ci3 expired long ago.
    let mut k: serde_json::Value =
        serde_json::from_slice(&fs::read(env.path().join("kr.json")).unwrap()).unwrap();
    k["signatures"] = serde_json::json!([]);
    fs::write(env.path().join("kr.json"), serde_json::to_vec(&k).unwrap()).unwrap();
    env.shore(&["keyring", "sign", "kr.json", "--key", "root2.key"]).ok();
    env.ship(&["trust", "keyring", "kr.json"]).ok();
    pack_with(&env, 2, "ci3.key", 5, "kr.json", "expired.tender");
    env.ship(&["import", "expired.tender"]).fails(3, "no signature by a trusted key");

    // A keyring altered after signing, in a bundle: refused before anything else.
    let mut k: serde_json::Value =
        serde_json::from_slice(&fs::read(env.path().join("kr.json")).unwrap()).unwrap();
    k["signed"]["version"] = 99.into();
    fs::write(env.path().join("forged.json"), serde_json::to_vec(&k).unwrap()).unwrap();
    let mut entries = support::read_entries(&env.path().join("v2.tender"));
    let at = entries.iter().position(|e| e.1 == b"tender/keyring.json").unwrap();
    entries[at].2 = serde_json::to_vec(&k).unwrap();
    support::write_entries(&env.path().join("forged.tender"), &entries);
    let before = env.snapshot();
    env.ship(&["import", "forged.tender"]).fails(3, "keyring");
    assert_eq!(before, env.snapshot());
    env.assert_store_sound(2);
}
