//! Fault injection through the real binaries, with the figures printed:
//! truncations and bit flips of a bundle, and `import` killed with SIGKILL at
//! random moments. (Figures also in docs/reliability.md.)

mod support;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Env, SHIP, Tmpfs};

/// A small deterministic generator (xorshift), so a failure can be replayed
/// from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const SEED: u64 = 0x7e4d_e2b0_5eed_0001;

#[test]
fn every_truncation_and_single_bit_flip_is_refused() {
    let env = Env::new();
    let bundle = env.pack(1, "ci.key", 1, "good.tender");
    let bytes = fs::read(&bundle).unwrap();
    let len = bytes.len();

    // 200 truncation points spread over the whole file, into a store.
    for i in 0..200 {
        let cut = len * i / 200 + (i % 7);
        fs::write(env.path().join("cut.tender"), &bytes[..cut.min(len - 1)]).unwrap();
        let r = env.ship(&["import", "cut.tender"]);
        assert_ne!(r.code, 0, "cut at {cut} of {len} accepted");
    }
    env.assert_store_sound(0);

    // 1,000 single-bit flips at random offsets: verify refuses each. (The
    // store can only change through import, which runs the same reader.)
    let mut rng = Rng(SEED);
    let mut refused = 0;
    for _ in 0..1000 {
        let at = (rng.next() % len as u64) as usize;
        let bit = rng.next() % 8;
        let mut flipped = bytes.clone();
        flipped[at] ^= 1 << bit;
        fs::write(env.path().join("flip.tender"), &flipped).unwrap();
        let r = env.ship(&["verify", "flip.tender"]);
        assert_ne!(r.code, 0, "flip of bit {bit} at byte {at} accepted (seed {SEED:#x})");
        refused += 1;
    }
    env.ship(&["import", "good.tender"]).ok();
    env.assert_store_sound(1);
    println!(
        "faults: {len}-byte bundle; 200 truncations refused; {refused} of 1000 bit flips refused (seed {SEED:#x})"
    );
}

/// `tender-ship` on a store other than the Env's.
fn ship_at(store: &std::path::Path, cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(SHIP).arg("--store").arg(store).args(args).current_dir(cwd).output().unwrap()
}

/// Release 1 of the fleet fixture (58 MB), packed in `env`.
fn fleet_bundle(env: &Env) -> std::path::PathBuf {
    let stack = support::fleet().join("tender-faults.yaml");
    fs::write(
        &stack,
        "name: awareness\nversion: 1.0.0\nmanifests: [stack/v1/*.yaml]\n\
         sources:\n  - prefix: shore.registry.example/fleet/\n    oci-layout: layouts/\n",
    )
    .unwrap();
    let bundle = env.path().join("fleet.tender");
    let (stack, out) = (stack.to_str().unwrap(), bundle.to_str().unwrap());
    env.shore(&["pack", stack, "--key", "ci.key", "--sequence", "1", "--out", out]).ok();
    bundle
}

#[test]
fn import_killed_at_random_moments_then_repair_and_rerun_completes() {
    let env = Env::new();
    let bundle = fleet_bundle(&env);

    // An uninterrupted import: how long it takes, and what it leaves.
    let reference = Env::new();
    fs::copy(env.path().join("ci.pub"), reference.path().join("shore.pub")).unwrap();
    reference.ship(&["trust", "add", "shore.pub"]).ok();
    let start = Instant::now();
    reference.ship(&["import", bundle.to_str().unwrap()]).ok();
    let full = start.elapsed();

    let mut rng = Rng(SEED ^ 0x9);
    let mut killed_mid = 0;
    for round in 0..30 {
        let store = env.path().join(format!("store-{round}"));
        let ship = |args: &[&str]| ship_at(&store, env.path(), args);
        assert!(ship(&["trust", "add", "ci.pub"]).status.success());
        let at = Duration::from_micros(rng.next() % (full.as_micros() as u64 * 12 / 10 + 1));
        let mut child = Command::new(SHIP)
            .arg("--store")
            .arg(&store)
            .args(["import", bundle.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !finished {
            killed_mid += 1;
        }
        // fsck finds no damage: only complete, verified blobs are under their digests.
        let fsck = ship(&["--json", "fsck"]);
        let report: serde_json::Value = serde_json::from_slice(&fsck.stdout).unwrap();
        assert_eq!(report["corrupt"], serde_json::json!([]), "round {round}, killed at {at:?}");
        assert_eq!(report["incomplete_versions"], serde_json::json!([]), "round {round}");
        assert!(ship(&["fsck", "--repair"]).status.success(), "round {round}");
        assert_eq!(fs::read_dir(store.join("staging")).unwrap().count(), 0);
        let again = ship(&["import", bundle.to_str().unwrap()]);
        assert!(
            again.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert_eq!(
            support::blob_names(&store),
            reference.blobs(),
            "round {round}: store equals an uninterrupted import"
        );
        fs::remove_dir_all(&store).unwrap();
    }
    println!(
        "faults: import of {} bytes ({full:?}) killed at 30 random moments ({killed_mid} mid-import): fsck clean, rerun complete each time",
        fs::metadata(&bundle).unwrap().len()
    );
}

#[test]
fn a_full_disk_is_refused_before_any_write_and_import_completes_after() {
    let env = Env::new();
    let bundle = fleet_bundle(&env);
    let size = fs::metadata(&bundle).unwrap().len();
    // A store on a filesystem with room for less than half the bundle.
    let disk = Tmpfs::mount(&env.path().join("small"), &format!("{}k", size / 2048));
    let store = disk.0.join("store");
    let ship = |args: &[&str]| ship_at(&store, env.path(), args);
    assert!(ship(&["trust", "add", "ci.pub"]).status.success());
    let r = ship(&["import", bundle.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not enough space for awareness 1.0.0") && stderr.contains("available"),
        "says what and where: {stderr}"
    );
    assert_eq!(fs::read_dir(store.join("blobs/sha256")).unwrap().count(), 0, "nothing written");
    let fsck: serde_json::Value =
        serde_json::from_slice(&ship(&["--json", "fsck"]).stdout).unwrap();
    assert_eq!(fsck["corrupt"], serde_json::json!([]));
    assert_eq!(fsck["staging_leftovers"], serde_json::json!([]), "nothing half-written");
    let list: serde_json::Value =
        serde_json::from_slice(&ship(&["--json", "list"]).stdout).unwrap();
    assert_eq!(list, serde_json::json!([]), "no version recorded");
    // Space freed: the same import completes.
    disk.resize(&format!("{}k", size * 2 / 1024));
    let r = ship(&["--json", "import", bundle.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(ship(&["fsck"]).status.success());
    println!(
        "faults: full disk at {} KiB of a {size}-byte bundle: refused before any write, completed after resize",
        size / 2048
    );
}

#[test]
fn status_shows_the_free_space_of_the_stores_filesystem() {
    let env = Env::new();
    let bundle = env.pack(1, "ci.key", 1, "v1.tender");
    let disk = Tmpfs::mount(&env.path().join("small"), "4m");
    let store = disk.0.join("store");
    let ship = |args: &[&str]| ship_at(&store, env.path(), args);
    assert!(ship(&["trust", "add", "ci.pub"]).status.success());
    assert!(ship(&["import", bundle.to_str().unwrap()]).status.success());
    let free = |out: std::process::Output| -> u64 {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v[0]["stack"], "awareness", "the old keys stay: {v}");
        v[0]["store_free_bytes"].as_u64().unwrap()
    };
    let before = free(ship(&["--json", "status"]));
    let held: u64 = support::blob_names(&store)
        .iter()
        .map(|b| fs::metadata(store.join("blobs/sha256").join(b)).unwrap().len())
        .sum();
    assert!(before > 0 && before + held <= 4 << 20, "{before} free of 4 MiB, {held} held");
    // It follows the filesystem, not a figure of tender's own.
    disk.resize("8m");
    let after = free(ship(&["--json", "status"]));
    assert_eq!(after, before + (4 << 20), "{before} then {after}");
    let text = String::from_utf8(ship(&["status"]).stdout).unwrap();
    assert!(text.starts_with(&format!("store {}: ", store.display())), "{text}");
    assert!(text.lines().next().unwrap().ends_with("MiB free"), "{text}");
}
