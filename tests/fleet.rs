//! The way back to shore: ships report signed receipts, the shore's fleet
//! ingests them, shows each ship's state and packs for each the bundle
//! that completes it. And every bad receipt or fleet entry refused, naming
//! the file, with nothing kept and the rest of the fleet unchanged.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::ship::Ship;
use support::{Env, Run};

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

/// Every file under `dir` with its content (the fleet, before and after).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().unwrap() != "lock" {
                out.insert(p.clone(), fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn ship_row<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["ships"].as_array().unwrap().iter().find(|s| s["ship"] == name).unwrap()
}

#[test]
fn three_ships_report_and_each_gets_the_bundle_that_completes_it() {
    let s = Ship::new();
    let a1 = three_ships_report(&s);
    let env = &s.env;
    shore_sees_each_ship(env);
    estimates_are_the_smallest_bundles(env);
    each_imports_its_own_and_not_anothers(env);
    they_report_again(&s, &a1);
}

/// Three ships with different histories, each its first receipt; returns
/// MV Aurora's.
fn three_ships_report(s: &Ship) -> Value {
    let env = &s.env;
    // MV Aurora (the default store): release 1 applied, healthy, fsck run.
    s.ship(&["apply", "v1.tender"]).ok();
    env.ship(&["fsck"]).ok();
    env.ship(&["keygen", "--name", "MV Aurora"]).ok();
    // Borealis: release 1 whole, release 2 only its first part.
    env.pack_with_flags(2, "ci.key", 2, "split.tender", &["--split", "40K"]).ok();
    assert!(env.path().join("split.tender.002").exists());
    for args in [
        &["trust", "add", "ci.pub"][..],
        &["import", "v1.tender"],
        &["import", "split.tender.001"],
        &["keygen", "--name", "Borealis"],
    ] {
        env.ship_in("store-b", args).ok();
    }
    // Cape Horn: a new ship, nothing held yet.
    env.ship_in("store-c", &["trust", "add", "ci.pub"]).ok();
    env.ship_in("store-c", &["keygen", "--name", "Cape Horn"]).ok();

    s.ship(&["report", "--out", "a1.json", "--kubeconfig", "kubeconfig"]).ok();
    env.ship_in("store-b", &["report", "--out", "b1.json"]).ok();
    env.ship_in("store-c", &["report", "--out", "c1.json"]).ok();
    let a1 = read_json(&env.path().join("a1.json"));
    assert_eq!(a1["format"], "tender-receipt/1");
    assert_eq!(a1["stacks"][0]["history"].as_array().unwrap().len(), 1, "{a1}");
    let size = fs::metadata(env.path().join("a1.json")).unwrap().len();
    assert!(size < 64 << 10, "a receipt is small: {size} bytes");
    eprintln!("receipt of MV Aurora: {size} bytes");

    a1
}

fn shore_sees_each_ship(env: &Env) {
    // The shore (fleet dir: ./fleet by default).
    for (store, name) in [("store", "MV Aurora"), ("store-b", "Borealis"), ("store-c", "Cape Horn")]
    {
        env.shore(&["fleet", "add", &format!("{store}/ship.pub"), "--name", name]).ok();
    }
    env.shore(&["fleet", "ingest", "a1.json", "b1.json", "c1.json"]).ok();
    let status = json(&env.shore(&["--json", "fleet", "status"]).ok());
    let a = ship_row(&status, "MV Aurora");
    assert_eq!(a["stacks"][0]["in_force"], "1.0.0", "{a}");
    assert_eq!(a["stacks"][0]["health"], "healthy", "{a}");
    assert_eq!(a["stacks"][0]["waiting"].as_array().unwrap().len(), 0, "{a}");
    assert_eq!(a["fsck"]["clean"], true, "{a}");
    assert_eq!(a["stale"], false);
    let b = ship_row(&status, "Borealis");
    assert_eq!(b["stacks"][0]["in_force"], Value::Null, "{b}");
    let waiting = b["stacks"][0]["waiting"].as_array().unwrap();
    let v2 = waiting.iter().find(|w| w["version"] == "1.1.0").unwrap();
    assert_eq!(v2["complete"], false, "{b}");
    assert!(!v2["parts_missing"].as_array().unwrap().is_empty(), "{b}");
    let c = ship_row(&status, "Cape Horn");
    assert_eq!(c["stacks"].as_array().unwrap().len(), 0, "{c}");
    assert!(c["free_bytes"].as_u64().unwrap() > 0);
    // A ship not heard of within --stale is marked.
    let stale = json(&env.shore(&["--json", "fleet", "status", "--stale", "0s"]).ok());
    assert!(stale["ships"].as_array().unwrap().iter().all(|s| s["stale"] == true), "{stale}");
}

/// What each would get: the least that completes it.
fn estimates_are_the_smallest_bundles(env: &Env) {
    let est =
        json(&env.shore(&["--json", "pack", "stack-v2.yaml", "--for", "all", "--estimate"]).ok());
    let bytes = |n: &str| {
        est["ships"].as_array().unwrap().iter().find(|s| s["ship"] == n).unwrap()["carried_bytes"]
            .as_u64()
            .unwrap()
    };
    let (ea, eb, ec) = (bytes("MV Aurora"), bytes("Borealis"), bytes("Cape Horn"));
    eprintln!(
        "estimate: MV Aurora {ea}, Borealis {eb}, Cape Horn {ec}, total {}",
        est["total_bytes"]
    );
    assert_eq!(est["total_bytes"].as_u64().unwrap(), ea + eb + ec);
    assert!(ea < ec && eb < ea, "{est}");
    // The delta for Aurora is exactly what a delta against release 1
    // carries: whole layers, or with release 1's bundle to read
    // predecessors from, sub-layer patches.
    let against_v1 = |patches: &str| {
        let args = [
            "--json",
            "pack",
            "stack-v2.yaml",
            "--base",
            "v1.tender",
            "--estimate",
            "--patches",
            patches,
        ];
        json(&env.shore(&args).ok())["carried_bytes"].as_u64().unwrap()
    };
    assert_eq!(ea, against_v1("never"));
    let with_patches = json(
        &env.shore(&[
            "--json",
            "pack",
            "stack-v2.yaml",
            "--for",
            "MV Aurora",
            "--base",
            "v1.tender",
            "--estimate",
        ])
        .ok(),
    );
    assert_eq!(
        with_patches["ships"][0]["carried_bytes"].as_u64().unwrap(),
        against_v1("where-smaller")
    );
    // Cape Horn holds nothing: the whole release.
    let whole = json(&env.shore(&["--json", "pack", "stack-v2.yaml", "--estimate"]).ok());
    assert_eq!(ec, whole["carried_bytes"].as_u64().unwrap());
}

fn each_imports_its_own_and_not_anothers(env: &Env) {
    let packed = json(
        &env.shore(&[
            "--json",
            "pack",
            "stack-v2.yaml",
            "--key",
            "ci.key",
            "--for",
            "all",
            "--out",
            "out",
        ])
        .ok(),
    );
    assert_eq!(packed["ships"].as_array().unwrap().len(), 3, "{packed}");
    let bundle = |slug: &str| format!("out/awareness-1.1.0-for-{slug}.tender");
    for slug in ["mv-aurora", "borealis", "cape-horn"] {
        assert!(env.path().join(bundle(slug)).exists(), "{slug}");
    }

    // Another ship's delta does not fit a ship without its base: refused
    // before anything is written.
    let before = support::blob_names(&env.path().join("store-c"));
    env.ship_in("store-c", &["import", &bundle("mv-aurora")]).fails(1, "the store does not hold");
    assert_eq!(support::blob_names(&env.path().join("store-c")), before);
    // Each imports its own, whole.
    for (store, slug) in [("store", "mv-aurora"), ("store-b", "borealis"), ("store-c", "cape-horn")]
    {
        let imp = json(&env.ship_in(store, &["--json", "import", &bundle(slug)]).ok());
        assert_eq!(imp["complete"], true, "{store}: {imp}");
        env.ship_in(store, &["fsck"]).ok();
    }
}

fn they_report_again(s: &Ship, a1: &Value) {
    let env = &s.env;
    // They report again: nothing more to send, and only what happened
    // since the first receipt.
    s.ship(&["report", "--out", "a2.json", "--kubeconfig", "kubeconfig"]).ok();
    env.ship_in("store-b", &["report", "--out", "b2.json"]).ok();
    env.ship_in("store-c", &["report", "--out", "c2.json"]).ok();
    let a2 = read_json(&env.path().join("a2.json"));
    assert_eq!(a2["sequence"], 2);
    assert_eq!(a2["previous"], a1["created"]);
    assert_eq!(a2["stacks"][0]["history"].as_array().unwrap().len(), 0, "{a2}");
    env.shore(&["fleet", "ingest", "a2.json", "b2.json", "c2.json"]).ok();
    let est =
        json(&env.shore(&["--json", "pack", "stack-v2.yaml", "--for", "all", "--estimate"]).ok());
    assert_eq!(est["total_bytes"], 0, "{est}");
    assert!(est["ships"].as_array().unwrap().iter().all(|s| s["bundle"] == "none"), "{est}");
    let status = json(&env.shore(&["--json", "fleet", "status"]).ok());
    let b = ship_row(&status, "Borealis");
    let v2 = b["stacks"][0]["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|w| w["version"] == "1.1.0")
        .unwrap();
    assert_eq!(v2["complete"], true, "{b}");
}

/// A fleet with one ship, "Aurora" (the default store), and its first
/// receipt `r1.json`.
fn one_ship() -> Env {
    let env = Env::new();
    env.ship(&["keygen", "--name", "Aurora"]).ok();
    env.ship(&["report", "--out", "r1.json"]).ok();
    env.shore(&["fleet", "add", "store/ship.pub", "--name", "Aurora"]).ok();
    env
}

/// Ingest `file`: refused with `code` naming the file and `needle`, and
/// the fleet directory exactly as it was.
#[track_caller]
fn refused(env: &Env, file: &str, code: i32, needle: &str) {
    let before = snapshot(&env.path().join("fleet"));
    let r = env.shore(&["fleet", "ingest", file]).fails(code, needle);
    assert!(r.stderr.contains(file), "names the file: {}", r.stderr);
    assert_eq!(snapshot(&env.path().join("fleet")), before, "the fleet must be unchanged");
}

fn edit(env: &Env, from: &str, to: &str, f: impl FnOnce(&mut Value)) {
    let mut v = read_json(&env.path().join(from));
    f(&mut v);
    fs::write(env.path().join(to), serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn altered_receipt_refused() {
    let env = one_ship();
    edit(&env, "r1.json", "altered.json", |v| v["free_bytes"] = (1u64 << 50).into());
    refused(&env, "altered.json", 3, "forged or altered");
}

#[test]
fn forged_receipt_refused() {
    let env = one_ship();
    // Another key's signature under the ship's key id.
    env.ship_in("other", &["trust", "add", "ci.pub"]).ok();
    env.ship_in("other", &["keygen", "--name", "Aurora"]).ok();
    env.ship_in("other", &["report", "--out", "other.json"]).ok();
    let theirs = read_json(&env.path().join("other.json"));
    edit(&env, "r1.json", "forged.json", |v| {
        v["signatures"][0]["sig"] = theirs["signatures"][0]["sig"].clone();
    });
    refused(&env, "forged.json", 3, "forged or altered");
    // A receipt naming the ship but signed by a key the fleet does not
    // hold for it.
    refused(&env, "other.json", 3, "not the key the fleet holds");
}

#[test]
fn unknown_ship_refused() {
    let env = one_ship();
    env.ship_in("stranger", &["trust", "add", "ci.pub"]).ok();
    env.ship_in("stranger", &["keygen", "--name", "Flying Dutchman"]).ok();
    env.ship_in("stranger", &["report", "--out", "stranger.json"]).ok();
    refused(&env, "stranger.json", 3, "not in the fleet");
}

#[test]
fn replayed_receipt_refused_and_the_same_one_again_changes_nothing() {
    let env = one_ship();
    env.ship(&["report", "--out", "r2.json"]).ok();
    env.shore(&["fleet", "ingest", "r2.json"]).ok();
    refused(&env, "r1.json", 3, "replay");
    let again = env.shore(&["fleet", "ingest", "r2.json"]).ok();
    assert!(again.stdout.contains("kept already"), "{}", again.stdout);
}

#[test]
fn truncated_receipt_refused() {
    let env = one_ship();
    let bytes = fs::read(env.path().join("r1.json")).unwrap();
    fs::write(env.path().join("cut.json"), &bytes[..bytes.len() / 2]).unwrap();
    refused(&env, "cut.json", 3, "invalid receipt");
}

#[test]
fn oversized_receipt_refused() {
    let env = one_ship();
    let f = fs::File::create(env.path().join("huge.json")).unwrap();
    f.set_len((16 << 20) + 1).unwrap();
    refused(&env, "huge.json", 3, "more than the limit");
}

#[test]
fn future_dated_receipt_kept_with_a_warning() {
    let env = one_ship();
    let pem = fs::read_to_string(env.store().join("ship.key")).unwrap();
    let key = tender_keys::SigningKey::from_pem(&pem).unwrap();
    let bytes = fs::read(env.path().join("r1.json")).unwrap();
    let mut r = tender_bundle::receipt::Receipt::parse(&bytes).unwrap();
    r.created = "2099-01-01T00:00:00Z".into();
    r.sign(&key);
    fs::write(env.path().join("future.json"), r.to_bytes()).unwrap();
    let run = env.shore(&["fleet", "ingest", "future.json"]).ok();
    assert!(run.stderr.contains("warning") && run.stderr.contains("ahead"), "{}", run.stderr);
    // Ordered by the ship's counter, so the next real receipt still counts.
    env.ship(&["report", "--out", "r2.json"]).ok();
    env.shore(&["fleet", "ingest", "r2.json"]).ok();
}

#[test]
fn damaged_fleet_entry_named_and_the_rest_unchanged() {
    let env = one_ship();
    env.ship_in("b", &["trust", "add", "ci.pub"]).ok();
    env.ship_in("b", &["keygen", "--name", "Borealis"]).ok();
    env.ship_in("b", &["report", "--out", "b1.json"]).ok();
    env.shore(&["fleet", "add", "b/ship.pub", "--name", "Borealis"]).ok();
    let entry = env.path().join("fleet/ships/aurora/ship.json");
    fs::write(&entry, b"{\"name\": \"Aurora\", \"keyid\": ").unwrap();
    refused(&env, "r1.json", 1, "fleet/ships/aurora/ship.json");
    // The other ship is unaffected: its receipt is kept, its row shown.
    env.shore(&["fleet", "ingest", "b1.json"]).ok();
    let st = env.shore(&["--json", "fleet", "status"]).fails(1, "fleet/ships/aurora/ship.json");
    let status = json(&st);
    assert_eq!(status["ships"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(status["ships"][0]["ship"], "Borealis");
    // Nothing is packed for all while an entry is damaged.
    env.shore(&["pack", "stack-v1.yaml", "--key", "ci.key", "--for", "all", "--out", "out"])
        .fails(1, "fleet/ships/aurora/ship.json");
    assert!(!env.path().join("out").exists());
    // A kept receipt altered on disk is damage too.
    let kept = env.path().join("fleet/ships/borealis/receipt.json");
    let mut v = read_json(&kept);
    v["free_bytes"] = 1.into();
    fs::write(&kept, serde_json::to_vec(&v).unwrap()).unwrap();
    env.shore(&["fleet", "list"]).fails(1, "fleet/ships/borealis/receipt.json");
    // And a damaged entry can be removed.
    env.shore(&["fleet", "remove", "aurora"]).ok();
}

#[test]
fn a_ship_short_of_room_is_named_before_anything_is_written() {
    let env = one_ship();
    env.shore(&["fleet", "ingest", "r1.json"]).ok();
    // The kept receipt is the ship's word; fake a small disk by a receipt
    // the ship signs saying so.
    let pem = fs::read_to_string(env.store().join("ship.key")).unwrap();
    let key = tender_keys::SigningKey::from_pem(&pem).unwrap();
    let mut r =
        tender_bundle::receipt::Receipt::parse(&fs::read(env.path().join("r1.json")).unwrap())
            .unwrap();
    r.sequence += 1;
    r.free_bytes = 1000;
    r.sign(&key);
    fs::write(env.path().join("small.json"), r.to_bytes()).unwrap();
    env.shore(&["fleet", "ingest", "small.json"]).ok();
    env.shore(&["pack", "stack-v1.yaml", "--key", "ci.key", "--for", "all", "--out", "out"])
        .fails(1, "Aurora needs");
    assert!(
        !env.path().join("out").exists()
            || fs::read_dir(env.path().join("out")).unwrap().count() == 0
    );
    let est = env.shore(&["pack", "stack-v1.yaml", "--for", "Aurora", "--estimate"]).ok();
    assert!(est.stderr.contains("Aurora needs"), "{}", est.stderr);
}

#[test]
fn fleet_add_list_remove() {
    let env = Env::new();
    env.ship(&["keygen", "--name", "MV Aurora"]).ok();
    env.shore(&["fleet", "--fleet", "f", "add", "store/ship.pub", "--name", "MV Aurora"]);
    env.shore(&["fleet", "add", "store/ship.pub", "--name", "MV Aurora", "--fleet", "f"]).ok();
    env.shore(&["fleet", "add", "store/ship.pub", "--name", "mv aurora", "--fleet", "f"])
        .fails(1, "named MV Aurora");
    env.shore(&["fleet", "add", "store/ship.pub", "--name", "Other", "--fleet", "f"])
        .fails(1, "MV Aurora's already");
    env.shore(&["fleet", "add", "ci.key", "--name", "X", "--fleet", "f"]).fails(1, "ci.key");
    env.shore(&["fleet", "add", "store/ship.pub", "--name", "../x", "--fleet", "f"])
        .fails(2, "ship name");
    let list = json(&env.shore(&["--json", "fleet", "list", "--fleet", "f"]).ok());
    assert_eq!(list[0]["slug"], "mv-aurora");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &str| fs::metadata(env.path().join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("f/ships/mv-aurora"), 0o700);
    assert_eq!(mode("f/ships/mv-aurora/ship.json"), 0o600);
    env.shore(&["fleet", "remove", "MV Aurora", "--fleet", "f"]).ok();
    env.shore(&["fleet", "remove", "MV Aurora", "--fleet", "f"]).fails(1, "no ship");
    assert!(
        json(&env.shore(&["--json", "fleet", "list", "--fleet", "f"]).ok())
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The ship's name is kept with its key and never replaced.
    env.ship(&["keygen", "--name", "Other"]).fails(1, "refusing to overwrite");
}

#[test]
fn receipts_over_a_link() {
    let env = one_ship();
    env.ship_in("b", &["trust", "add", "ci.pub"]).ok();
    env.ship_in("b", &["keygen", "--name", "Borealis"]).ok();
    env.shore(&["fleet", "add", "b/ship.pub", "--name", "Borealis"]).ok();
    let registry = support::Registry::start();
    let repo = format!("{}/fleet/receipts", registry.host());
    let pushed = env.ship(&["report", "--to", &format!("{repo}:aurora-2")]).ok();
    assert!(pushed.stdout.is_empty(), "with --to only, nothing on stdout: {}", pushed.stdout);
    env.ship_in("b", &["report", "--to", &format!("{repo}:borealis-1"), "--out", "b1.json"]).ok();
    let r = env.shore(&["--json", "fleet", "ingest", "--from", &repo]).ok();
    assert_eq!(json(&r).as_array().unwrap().len(), 2, "{}", r.stdout);
    let status = json(&env.shore(&["--json", "fleet", "status"]).ok());
    assert_eq!(ship_row(&status, "Aurora")["receipt_sequence"], 2, "{status}");
    assert_eq!(ship_row(&status, "Borealis")["receipt_sequence"], 1, "{status}");
    // The same again: kept already, nothing changes.
    let before = snapshot(&env.path().join("fleet"));
    env.shore(&["fleet", "ingest", "--from", &repo]).ok();
    assert_eq!(snapshot(&env.path().join("fleet")), before);
    // A receipt of a ship the fleet does not know, pushed there: refused,
    // named by its reference; the others stand.
    env.ship_in("x", &["trust", "add", "ci.pub"]).ok();
    env.ship_in("x", &["keygen", "--name", "Stranger"]).ok();
    env.ship_in("x", &["report", "--to", &format!("{repo}:stranger-1")]).ok();
    env.shore(&["fleet", "ingest", "--from", &repo]).fails(3, "stranger-1");
    assert_eq!(snapshot(&env.path().join("fleet")), before);
}
