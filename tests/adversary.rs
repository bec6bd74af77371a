//! Attacks from the adversarial review, each through the real binaries: an
//! old bundle on a stick that would roll the cluster back, a bundle dated
//! 9999 that would move the ship's clock, a revoked key's huge sequence,
//! one stolen root installing the first keyring, a store others can write,
//! a lock others can hold.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::apiserver::ApiServer;
use support::{Env, Registry, SHIP, pack_with, rooted_env};

/// `env`'s ship with a real registry and the stand-in API server.
fn cluster_args<'a>(registry: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut a = args.to_vec();
    a.extend(["--registry", registry, "--kubeconfig", "kubeconfig"]);
    a
}

fn applied(env: &Env) -> String {
    let status: serde_json::Value =
        serde_json::from_str(&env.ship(&["--json", "status"]).ok().stdout).unwrap();
    status[0]["applied"].as_str().unwrap_or("").to_owned()
}

#[test]
fn a_stick_with_an_older_bundle_does_not_roll_the_cluster_back() {
    let env = Env::new();
    let (registry, api) = (Registry::start(), ApiServer::start());
    fs::write(env.path().join("kubeconfig"), api.kubeconfig()).unwrap();
    let host = registry.host();
    fs::create_dir_all(env.path().join("old-stick")).unwrap();
    fs::create_dir_all(env.path().join("both")).unwrap();
    env.pack(1, "ci.key", 1, "old-stick/awareness-1.0.0.tender");
    env.pack(2, "ci.key", 2, "both/awareness-1.1.0.tender");
    fs::copy(
        env.path().join("old-stick/awareness-1.0.0.tender"),
        env.path().join("both/awareness-1.0.0.tender"),
    )
    .unwrap();
    env.ship(&cluster_args(&host, &["apply", "old-stick"])).ok();
    env.ship(&cluster_args(&host, &["apply", "both/awareness-1.1.0.tender"])).ok();
    assert_eq!(applied(&env), "1.1.0");
    api.take();

    // The store holds 1.0.0 already: that must not skip the downgrade check.
    env.ship(&cluster_args(&host, &["apply", "old-stick"])).fails(3, "sequence 1 is lower than 2");
    let sent = api.take();
    assert!(sent.iter().all(|r| r.method != "PATCH" && r.method != "DELETE"), "{sent:#?}");
    assert_eq!(applied(&env), "1.1.0", "the cluster stays on the version in force");
    // Old next to new: the old one is reported and kept; the newest is what
    // is applied.
    let r = env.ship(&cluster_args(&host, &["apply", "both"])).ok();
    assert!(r.stderr.contains("is held and older than sequence 2"), "{}", r.stderr);
    assert_eq!(applied(&env), "1.1.0");

    // The captain may go back on purpose.
    env.ship(&cluster_args(&host, &["apply", "old-stick", "--allow-downgrade"])).ok();
    assert_eq!(applied(&env), "1.0.0");
}

#[test]
fn a_bundle_dated_9999_does_not_make_every_later_bundle_look_expired() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    support::resigned(&env, "v1.tender", "ci.key", "future.tender", |d| {
        d["created"] = "9999-01-01T00:00:00Z".into();
    });
    let r = env.ship(&["import", "future.tender"]).ok();
    assert!(
        r.stderr.contains("9999-01-01T00:00:00Z") && r.stderr.contains("clock"),
        "{}",
        r.stderr
    );
    let time = fs::read_to_string(env.store().join("time.json")).unwrap();
    assert!(!time.contains("9999"), "the ship's time is its clock's: {time}");
    // The next bundle, valid for 30 days by the clock, is fresh.
    env.pack_with_flags(2, "ci.key", 2, "v2.tender", &["--expires-in", "30days"]).ok();
    env.ship(&["import", "--require-fresh", "v2.tender"]).ok();
}

#[test]
fn a_revoked_keys_huge_sequence_neither_blocks_the_next_bundle_nor_gets_applied() {
    let env = rooted_env();
    let key_id = |f: &str| {
        let pem = fs::read_to_string(env.path().join(f)).unwrap();
        tender_keys::PublicKey::from_pem(&pem).unwrap().key_id().to_string()
    };
    env.shore(&["keyring", "init", "--root", "root.pub", "--out", "kr.json"]).ok();
    for k in ["ci.pub", "ci2.pub"] {
        env.shore(&["keyring", "add-signer", "kr.json", k, "--stacks", "awareness"]).ok();
    }
    env.shore(&["keyring", "add-signer", "kr.json", "ci3.pub", "--stacks", "radar"]).ok();
    env.shore(&["keyring", "sign", "kr.json", "--key", "root.key"]).ok();
    pack_with(&env, 1, "ci2.key", 1, "kr.json", "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    // A stolen ci key signs the highest sequence there is.
    pack_with(&env, 2, "ci.key", u64::MAX, "kr.json", "stolen.tender");
    // A key allowed only for radar signs it too: it has no say over awareness.
    env.shore(&["sign", "stolen.tender", "--key", "ci3.key"]).ok();
    env.ship(&["import", "stolen.tender"]).ok();
    // The root revokes it; the next legitimate bundle must still go in.
    env.shore(&["keyring", "revoke", "kr.json", &key_id("ci.pub")]).ok();
    env.shore(&["keyring", "sign", "kr.json", "--key", "root.key"]).ok();
    env.ship(&["trust", "keyring", "kr.json"]).ok();
    let mut text = fs::read_to_string(env.path().join("stack-v1.yaml")).unwrap();
    text = text.replace("version: 1.0.0", "version: 1.0.1");
    fs::write(env.path().join("stack-v3.yaml"), text).unwrap();
    pack_with(&env, 3, "ci2.key", 2, "kr.json", "next.tender");
    env.ship(&["import", "next.tender"]).ok();
    // The revoked key's version is neither picked nor applied by name.
    let r = env.ship(&["apply", "awareness", "--dry-run"]).ok();
    assert!(r.stderr.contains("awareness 1.0.1"), "{}", r.stderr);
    env.ship(&["apply", "awareness", "1.1.0", "--dry-run"]).fails(3, "no longer trusted");
    env.ship(&["load", "awareness", "1.1.0"]).fails(3, "no longer trusted");
    // gc counts only versions that still count: the revoked one is kept
    // aside and never takes the newest trusted one's place.
    let gc: serde_json::Value =
        serde_json::from_str(&env.ship(&["--json", "gc", "--keep", "1"]).ok().stdout).unwrap();
    assert_eq!(gc["versions_removed"], serde_json::json!([["awareness", "1.0.0"]]), "{gc}");
    assert_eq!(gc["untrusted_kept"], serde_json::json!([["awareness", "1.1.0"]]), "{gc}");
    let r = env.ship(&["apply", "awareness", "--dry-run"]).ok();
    assert!(r.stderr.contains("awareness 1.0.1"), "{}", r.stderr);
}

#[test]
fn the_first_keyring_needs_a_majority_of_the_pinned_roots() {
    let env = rooted_env();
    env.shore(&["keygen", "--out", "root3"]).ok();
    env.ship(&["trust", "add", "root2.pub", "--root"]).ok();
    env.ship(&["trust", "add", "root3.pub", "--root"]).ok();
    // One stolen root writes a keyring naming only the attacker's key.
    env.shore(&["keyring", "init", "--root", "root2.pub", "--out", "evil.json"]).ok();
    env.shore(&["keyring", "add-signer", "evil.json", "ci3.pub", "--stacks", "*"]).ok();
    env.shore(&["keyring", "sign", "evil.json", "--key", "root2.key"]).ok();
    env.ship(&["trust", "keyring", "evil.json"])
        .fails(3, "1 valid signature(s) by trusted keys, 2 required");
    pack_with(&env, 1, "ci3.key", 1, "evil.json", "evil.tender");
    env.ship(&["import", "evil.tender"]).fails(3, "2 required");
    let list = env.ship(&["trust", "list"]).ok().stdout;
    assert!(list.contains("the first keyring needs 2 of these roots"), "{list}");
    // Two of the three roots: in force.
    env.shore(&["keyring", "sign", "evil.json", "--key", "root.key"]).ok();
    env.ship(&["trust", "keyring", "evil.json"]).ok();
    // The engineer may lower the bar on purpose.
    let env = rooted_env();
    env.ship(&["trust", "add", "root2.pub", "--root"]).ok();
    env.shore(&["keyring", "init", "--root", "root2.pub", "--out", "one.json"]).ok();
    env.shore(&["keyring", "sign", "one.json", "--key", "root2.key"]).ok();
    env.ship(&["trust", "keyring", "one.json"]).fails(3, "2 required");
    env.ship(&["trust", "root-threshold", "3"]).fails(1, "between 1 and 2");
    env.ship(&["trust", "root-threshold", "1"]).ok();
    env.ship(&["trust", "keyring", "one.json"]).ok();
}

/// Run tender-ship under `umask`.
fn ship_with_umask(env: &Env, umask: &str, args: &str) -> std::process::Output {
    let script = format!("umask {umask}; exec {SHIP} --store {} {args}", env.store().display());
    Command::new("sh").arg("-c").arg(script).current_dir(env.path()).output().unwrap()
}

/// Every path under `root` whose mode gives group or others any access.
fn not_private(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(p) = todo.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        if m.permissions().mode() & 0o077 != 0 {
            out.push(format!("{} {:o}", p.display(), m.permissions().mode() & 0o7777));
        }
        if m.is_dir() {
            todo.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

#[test]
fn the_store_is_private_whatever_the_umask_and_refused_when_others_can_write() {
    let env = Env::new();
    fs::remove_dir_all(env.store()).unwrap();
    env.pack(1, "ci.key", 1, "v1.tender");
    for args in ["trust add ci.pub", "import v1.tender", "keygen", "trust threshold awareness 1"] {
        let o = ship_with_umask(&env, "000", args);
        assert!(o.status.success(), "{args}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let loose: Vec<String> =
        not_private(&env.store()).into_iter().filter(|p| !p.contains("ship.pub")).collect();
    assert!(loose.is_empty(), "under umask 000: {loose:#?}");

    // Another user could plant a key: refused, naming the path and mode.
    let trust = env.store().join("trust");
    fs::set_permissions(&trust, fs::Permissions::from_mode(0o777)).unwrap();
    env.ship(&["verify", "v1.tender"]).fails(1, &format!("{}: mode 0777", trust.display()));
    fs::set_permissions(&trust, fs::Permissions::from_mode(0o700)).unwrap();
    let planted = trust.join("0000.pub");
    fs::copy(env.path().join("ci.pub"), &planted).unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o666)).unwrap();
    env.ship(&["import", "v1.tender"]).fails(1, &format!("{}: mode 0666", planted.display()));
    fs::remove_file(&planted).unwrap();
    fs::set_permissions(env.store(), fs::Permissions::from_mode(0o757)).unwrap();
    env.ship(&["list"]).fails(1, "mode 0757");
    fs::set_permissions(env.store(), fs::Permissions::from_mode(0o700)).unwrap();
    env.ship(&["list"]).ok();
}

#[test]
fn no_other_user_can_hold_the_store_lock() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    // Let another user reach the store's directory, as on a ship where
    // /var/lib is world-readable.
    fs::set_permissions(env.path(), fs::Permissions::from_mode(0o755)).unwrap();
    env.ship(&["list"]).ok();
    let lock = env.store().join("lock");
    let other = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "flock", "-s", "-n"])
        .arg(&lock)
        .args(["sleep", "20"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let r = env.ship(&["import", "v1.tender"]);
    let mut other = other;
    let _ = other.kill();
    let status = other.wait().unwrap();
    r.ok();
    assert!(!status.success(), "user 65534 must not be able to open the lock");
    assert_eq!(fs::metadata(&lock).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_version_name_reissued_keeps_the_record_of_the_one_in_force() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    // 1.0.0 re-issued with other content and a higher sequence.
    let text = fs::read_to_string(env.path().join("stack-v1.yaml")).unwrap();
    fs::write(env.path().join("stack-v4.yaml"), text.replace("v1/", "v2/")).unwrap();
    env.pack(4, "ci.key", 3, "reissued.tender");
    env.ship(&["import", "reissued.tender"]).ok();
    let list: serde_json::Value =
        serde_json::from_str(&env.ship(&["--json", "list"]).ok().stdout).unwrap();
    let held: Vec<(String, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap().to_owned(), v["sequence"].as_u64().unwrap()))
        .collect();
    assert_eq!(held, [("1.0.0".to_owned(), 1), ("1.0.0".to_owned(), 3)], "{list}");
}
