//! Thin links: `tender-shore publish` to a real docker-registry, and
//! `tender-ship pull` from it, directly or through a TCP relay that forwards
//! real traffic and cuts the connection after a set number of bytes.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Env, Registry, SHIP};

/// Forwards 127.0.0.1:port to a registry. Counts the bytes that come back
/// from the registry; while cuts are left, drops every connection each time
/// another `cut_every` bytes have come back.
struct Relay {
    port: u16,
    state: Arc<RelayState>,
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct RelayState {
    down_bytes: AtomicU64,
    since_cut: AtomicU64,
    cut_every: AtomicU64,
    cuts_left: AtomicU32,
    cuts: AtomicU32,
    first_byte: Mutex<Option<Instant>>,
    last_byte: Mutex<Option<Instant>>,
    /// Every live connection, so a cut drops them all.
    conns: Mutex<Vec<TcpStream>>,
}

impl Relay {
    fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(RelayState::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                {
                    let mut conns = st.conns.lock().unwrap();
                    conns.push(client.try_clone().unwrap());
                    conns.push(server.try_clone().unwrap());
                }
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                // Up: ship to registry, as is.
                std::thread::spawn(move || pump(c2, s2, None));
                // Down: registry to ship, counted and cut.
                let st2 = st.clone();
                std::thread::spawn(move || pump(server, client, Some(st2)));
            }
        });
        Relay { port, state, stop }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn cut(&self, every: u64, times: u32) {
        self.state.cut_every.store(every, Ordering::SeqCst);
        self.state.cuts_left.store(times, Ordering::SeqCst);
    }

    fn bytes(&self) -> u64 {
        self.state.down_bytes.load(Ordering::SeqCst)
    }

    fn reset(&self) {
        self.state.down_bytes.store(0, Ordering::SeqCst);
        self.state.since_cut.store(0, Ordering::SeqCst);
        *self.state.first_byte.lock().unwrap() = None;
        *self.state.last_byte.lock().unwrap() = None;
    }

    /// Bytes per second between the first and last byte that came back.
    fn rate(&self) -> f64 {
        let first = self.state.first_byte.lock().unwrap().unwrap();
        let last = self.state.last_byte.lock().unwrap().unwrap();
        self.bytes() as f64 / (last - first).as_secs_f64()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.state.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, count: Option<Arc<RelayState>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(st) = &count {
            let now = Instant::now();
            st.first_byte.lock().unwrap().get_or_insert(now);
            *st.last_byte.lock().unwrap() = Some(now);
            st.down_bytes.fetch_add(n as u64, Ordering::SeqCst);
            let since = st.since_cut.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            let every = st.cut_every.load(Ordering::SeqCst);
            if every > 0 && since >= every && st.cuts_left.load(Ordering::SeqCst) > 0 {
                // Forward what fits under the budget, then drop the line.
                let keep = n - (since - every).min(n as u64) as usize;
                let _ = to.write_all(&buf[..keep]);
                st.down_bytes.fetch_sub((n - keep) as u64, Ordering::SeqCst);
                st.since_cut.store(0, Ordering::SeqCst);
                st.cuts_left.fetch_sub(1, Ordering::SeqCst);
                st.cuts.fetch_add(1, Ordering::SeqCst);
                for c in st.conns.lock().unwrap().drain(..) {
                    let _ = c.shutdown(Shutdown::Both);
                }
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn json(run: &support::Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// The fleet fixture's release `rel` packed in `env` (sequence = rel).
fn fleet_bundle(env: &Env, rel: u32) -> PathBuf {
    let out = env.path().join(format!("fleet-v{rel}.tender"));
    support::pack_fleet(env, rel, out.to_str().unwrap(), &[]).ok();
    out
}

fn partial_bytes(store: &Path) -> u64 {
    match fs::read_dir(store.join("staging/partial")) {
        Ok(rd) => rd.map(|e| e.unwrap().metadata().unwrap().len()).sum(),
        Err(_) => 0,
    }
}

#[test]
fn publish_then_pull_fetches_only_what_the_ship_lacks() {
    let env = Env::new();
    let reg = Registry::start();
    let to1 = format!("{}/fleet/awareness:1.0.0", reg.host());
    // A stack file is packed, then published.
    let p1 = json(
        &env.shore(&[
            "--json",
            "publish",
            "stack-v1.yaml",
            "--key",
            "ci.key",
            "--sequence",
            "1",
            "--to",
            &to1,
        ])
        .ok(),
    );
    assert!(p1["blobs_pushed"].as_u64().unwrap() > 3, "{p1}");
    assert_eq!(p1["blobs_present"], 0, "{p1}");

    // The artifact is an OCI manifest skopeo reads like any other.
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{to1}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["artifactType"], "application/vnd.tender.bundle.v1");
    assert_eq!(m["config"]["mediaType"], "application/vnd.tender.descriptor.v1+json");

    let est = json(&env.ship(&["--json", "pull", &to1, "--estimate"]).ok());
    assert_eq!(est["blobs_held"], 0, "{est}");
    let needed = est["bytes_needed"].as_u64().unwrap();
    assert!(!env.store().join("stacks/awareness").exists(), "--estimate writes nothing");

    // Where two blobs' partials go, a symlink to a file outside the store
    // and a directory were planted (by hand, or a hostile process as the
    // store's owner): neither is followed or kept; each is replaced by a
    // regular file of the store's.
    let blobs: Vec<String> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["mediaType"] == "application/octet-stream")
        .map(|l| l["digest"].as_str().unwrap()["sha256:".len()..].to_owned())
        .collect();
    let partials = env.store().join("staging/partial");
    fs::create_dir_all(&partials).unwrap();
    let outside = env.path().join("outside.txt");
    fs::write(&outside, "not the store's\n").unwrap();
    std::os::unix::fs::symlink(&outside, partials.join(&blobs[0])).unwrap();
    fs::create_dir_all(partials.join(&blobs[1]).join("inside")).unwrap();

    let r = json(&env.ship(&["--json", "pull", &to1]).ok());
    assert_eq!(r["complete"], true, "{r}");
    assert_eq!(r["bytes_fetched"].as_u64().unwrap(), needed, "{r}");
    assert_eq!(fs::read_to_string(&outside).unwrap(), "not the store's\n");
    for hex in &blobs[..2] {
        let kept = env.store().join("blobs/sha256").join(hex);
        assert!(fs::symlink_metadata(&kept).unwrap().file_type().is_file(), "{hex}");
    }
    env.assert_store_sound(1);
    let again = env.ship(&["pull", &to1]).ok();
    assert!(again.stdout.contains("already held"), "{}", again.stdout);

    // Release 2 from a bundle file: what release 1 pushed is not pushed again,
    // and the ship fetches only what it lacks.
    let v2 = env.pack(2, "ci.key", 2, "v2.tender");
    let to2 = format!("{}/fleet/awareness:1.1.0", reg.host());
    let p2 = json(&env.shore(&["--json", "publish", v2.to_str().unwrap(), "--to", &to2]).ok());
    assert!(p2["blobs_present"].as_u64().unwrap() > 0, "{p2}");
    let est = json(&env.ship(&["--json", "pull", &to2, "--estimate"]).ok());
    assert!(est["blobs_held"].as_u64().unwrap() > 0, "{est}");
    let r = json(&env.ship(&["--json", "pull", &to2]).ok());
    assert_eq!(r["bytes_fetched"], est["bytes_needed"], "{r}");
    assert_eq!(r["bytes_new"], est["bytes_needed"], "{r}");
    env.assert_store_sound(2);

    // The same store as importing the bundle.
    let other = Env::new();
    fs::copy(env.path().join("ci.pub"), other.path().join("shore.pub")).unwrap();
    other.ship(&["trust", "add", "shore.pub"]).ok();
    other.ship(&["import", env.pack(1, "ci.key", 1, "v1.tender").to_str().unwrap()]).ok();
    other.ship(&["import", v2.to_str().unwrap()]).ok();
    // v1 was packed again for `other` (a new creation time): compare blobs only.
    assert_eq!(env.blobs(), other.blobs());
}

#[test]
fn a_published_delta_needs_its_base_and_bad_artifacts_are_refused() {
    let env = Env::new();
    let reg = Registry::start();
    let v1 = env.pack(1, "ci.key", 1, "v1.tender");
    let to = format!("{}/fleet/awareness:delta", reg.host());
    env.shore(&[
        "publish",
        "stack-v2.yaml",
        "--key",
        "ci.key",
        "--sequence",
        "2",
        "--base",
        "v1.tender",
        "--to",
        &to,
    ])
    .ok();
    // Without the base: refused before anything is fetched or written.
    let before = env.snapshot();
    env.ship(&["pull", &to])
        .fails(1, "import first the version(s) it was made against: awareness 1.0.0");
    assert_eq!(before, env.snapshot());
    env.ship(&["import", v1.to_str().unwrap()]).ok();
    let r = json(&env.ship(&["--json", "pull", &to]).ok());
    assert_eq!(r["complete"], true, "{r}");
    env.assert_store_sound(2);

    // Signed by a key the ship does not trust: exit 3, nothing written.
    env.shore(&["keygen", "--out", "rogue"]).ok();
    let rogue = format!("{}/fleet/awareness:rogue", reg.host());
    env.shore(&[
        "publish",
        "stack-v2.yaml",
        "--key",
        "rogue.key",
        "--sequence",
        "9",
        "--to",
        &rogue,
    ])
    .ok();
    let before = env.snapshot();
    env.ship(&["pull", &rogue]).fails(3, "");
    assert_eq!(before, env.snapshot());

    // No such tag; an image that is not a tender bundle; a part of a split bundle.
    env.ship(&["pull", &format!("{}/fleet/awareness:nope", reg.host())]).fails(1, "awareness:nope");
    let image = format!("{}/fleet/plain:1", reg.host());
    let src = env.path().join("layouts/fleet/bridge-ui");
    let copied = Command::new("skopeo")
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:1.0.0", src.display()))
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    env.ship(&["pull", &image]).fails(1, "not a tender bundle");
    env.shore(&["pack", "stack-v1.yaml", "--key", "ci.key", "--split", "20K", "--out", "s.tender"])
        .ok();
    env.shore(&["publish", "s.tender.001", "--to", &to]).fails(1, "publish the whole bundle");
    env.ship(&["pull", "awareness:1"]).fails(1, "expected REGISTRY/REPO:TAG");
}

#[test]
fn a_pull_cut_ten_times_completes_having_fetched_at_most_five_percent_more() {
    let env = Env::new();
    let reg = Registry::start();
    let bundle = fleet_bundle(&env, 1);
    let to = format!("{}/fleet/awareness:1.0.0", reg.host());
    env.shore(&["publish", bundle.to_str().unwrap(), "--to", &to]).ok();
    let relay = Relay::start(reg.host());
    let via = format!("{}/fleet/awareness:1.0.0", relay.host());
    let est = json(&env.ship(&["--json", "pull", &via, "--estimate"]).ok());
    let needed = est["bytes_needed"].as_u64().unwrap();
    relay.reset();
    relay.cut(needed / 12, 10);
    let start = Instant::now();
    let r = json(&env.ship(&["--json", "pull", &via]).ok());
    let took = start.elapsed();
    let total = relay.bytes();
    let over = total as f64 / needed as f64 - 1.0;
    println!(
        "link: {needed} bytes needed; cut {} times; {total} bytes came over the relay ({:+.2} %), {} resumed requests, {:.1} s",
        relay.state.cuts.load(Ordering::SeqCst),
        over * 100.0,
        r["resumed_requests"],
        took.as_secs_f64()
    );
    assert_eq!(relay.state.cuts.load(Ordering::SeqCst), 10);
    assert!(r["resumed_requests"].as_u64().unwrap() >= 5, "{r}");
    assert!(over <= 0.05, "fetched {total} for {needed} needed");
    assert_eq!(r["complete"], true);
    env.assert_store_sound(1);
}

#[test]
fn a_killed_pull_resumes_without_fetching_again_and_the_rate_cap_holds() {
    let env = Env::new();
    let reg = Registry::start();
    let v1 = fleet_bundle(&env, 1);
    let v2 = fleet_bundle(&env, 2);
    let (to1, to2) = (
        format!("{}/fleet/awareness:1.0.0", reg.host()),
        format!("{}/fleet/awareness:1.1.0", reg.host()),
    );
    env.shore(&["publish", v1.to_str().unwrap(), "--to", &to1]).ok();
    env.shore(&["publish", v2.to_str().unwrap(), "--to", &to2]).ok();
    let relay = Relay::start(reg.host());
    let via1 = format!("{}/fleet/awareness:1.0.0", relay.host());
    let est = json(&env.ship(&["--json", "pull", &via1, "--estimate"]).ok());
    let needed = est["bytes_needed"].as_u64().unwrap();

    // Killed with SIGKILL once a third has come over, then run again.
    relay.reset();
    let mut child = Command::new(SHIP)
        .arg("--store")
        .arg(env.store())
        .args(["pull", &via1, "--limit-rate", "16M"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while relay.bytes() < needed / 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first = relay.bytes();
    let kept = partial_bytes(&env.store())
        + fs::read_dir(env.store().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum::<u64>();
    assert!(kept > 0 && first < needed, "kept {kept}, fetched {first} of {needed}");
    let fsck = env.ship(&["fsck"]).ok();
    assert!(fsck.stdout.contains("store is clean"), "{}", fsck.stdout);
    let r = json(&env.ship(&["--json", "pull", &via1]).ok());
    let rerun = relay.bytes() - first;
    // What was in flight when the process died (socket buffers) was never
    // the ship's; what it had written, it does not fetch again.
    println!(
        "link: killed after {first} of {needed} bytes had come over ({kept} written, {} in flight); the rerun fetched {rerun} (resumed from {}), {:+.2} % over the {} it lacked",
        first.saturating_sub(kept),
        r["bytes_resumed"],
        (rerun as f64 / (needed - kept) as f64 - 1.0) * 100.0,
        needed - kept
    );
    assert!(r["bytes_resumed"].as_u64().unwrap() > 0 || r["blobs_held"].as_u64().unwrap() > 0);
    assert!(
        rerun as f64 <= (needed - kept) as f64 * 1.05,
        "the rerun fetched {rerun} for {} lacking",
        needed - kept
    );
    env.assert_store_sound(1);

    // Release 2 over the ship's release 1, capped at 4 MiB/s.
    let via2 = format!("{}/fleet/awareness:1.1.0", relay.host());
    let cap = 4u64 << 20;
    relay.reset();
    let r = json(&env.ship(&["--json", "pull", &via2, "--limit-rate", "4M"]).ok());
    let rate = relay.rate();
    println!(
        "link: release 2 over release 1: {} bytes fetched in {:.2} s; {:.0} B/s on the relay under a cap of {cap} B/s ({:.3} of the cap)",
        r["bytes_fetched"],
        r["seconds"].as_f64().unwrap(),
        rate,
        rate / cap as f64
    );
    assert!(r["bytes_fetched"].as_u64().unwrap() > 4 * cap / 2, "{r}");
    assert!(rate <= cap as f64 * 1.10, "rate {rate} over the cap {cap}");
    assert!(rate >= cap as f64 * 0.90, "rate {rate} well under the cap {cap}");
    env.assert_store_sound(2);
}

#[test]
fn a_registry_gone_mid_pull_gives_up_keeping_progress_and_a_rerun_completes() {
    let env = Env::new();
    let mut reg = Registry::start();
    let bundle = fleet_bundle(&env, 1);
    let to = format!("{}/fleet/awareness:1.0.0", reg.host());
    env.shore(&["publish", bundle.to_str().unwrap(), "--to", &to]).ok();
    let relay = Relay::start(reg.host());
    let via = format!("{}/fleet/awareness:1.0.0", relay.host());
    let needed = json(&env.ship(&["--json", "pull", &via, "--estimate"]).ok())["bytes_needed"]
        .as_u64()
        .unwrap();
    relay.reset();
    let child = Command::new(SHIP)
        .arg("--store")
        .arg(env.store())
        .args(["pull", &via, "--limit-rate", "16M"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while relay.bytes() < needed / 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    reg.stop();
    let gave_up = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "link: registry stopped mid-pull; the pull gave up after {:.1} s: {stderr}",
        gave_up.elapsed().as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("gave up") && stderr.contains("a rerun resumes"), "{stderr}");
    let kept = partial_bytes(&env.store())
        + fs::read_dir(env.store().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum::<u64>();
    assert!(kept > 0, "progress is kept");
    let fsck = env.ship(&["fsck"]).ok();
    assert!(fsck.stdout.contains("store is clean"), "{}", fsck.stdout);
    assert!(
        !env.store().join("stacks/awareness/versions").exists(),
        "no version before it is whole"
    );

    // A byte of the largest partial goes bad while the ship waits (a torn
    // write before a power cut): the rerun reads back and hashes what the
    // partial held before going on, so once the rest has arrived the blob
    // does not match and is fetched once afresh.
    // (The pull may have stopped between blobs, leaving no partial.)
    let largest = fs::read_dir(env.store().join("staging/partial"))
        .map(|d| d.map(|e| e.unwrap().path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| fs::metadata(p).unwrap().len() > 0)
        .max_by_key(|p| fs::metadata(p).unwrap().len());
    let spoiled = match &largest {
        None => 0,
        Some(largest) => {
            let mut bytes = fs::read(largest).unwrap();
            bytes[0] ^= 0xff;
            fs::write(largest, &bytes).unwrap();
            // Fetched again whole after its rest arrives: its signed size more.
            let hex = format!("sha256:{}", largest.file_name().unwrap().to_str().unwrap());
            let d: serde_json::Value =
                serde_json::from_slice(&support::read_entries(&bundle)[0].2).unwrap();
            d["blobs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["digest"] == hex.as_str() || b["patch"]["digest"] == hex.as_str())
                .map(|b| b["patch"]["size"].as_u64().or(b["size"].as_u64()).unwrap())
                .expect("the partial is one of the bundle's blobs")
        }
    };

    reg.restart();
    let first = relay.bytes();
    json(&env.ship(&["--json", "pull", &via]).ok());
    let rerun = relay.bytes() - first;
    assert!(
        rerun as f64 <= (needed - kept + spoiled) as f64 * 1.05,
        "the rerun fetched {rerun} for {} lacking and {spoiled} spoiled",
        needed - kept
    );
    if spoiled > 0 {
        assert!(rerun > needed - kept, "the spoiled partial was fetched again: {rerun}");
    }
    env.assert_store_sound(1);
}

#[test]
fn a_published_sub_layer_delta_pulls_only_the_patch() {
    let env = Env::new();
    let reg = Registry::start();
    let v1 = fleet_bundle(&env, 1);
    let sub = env.path().join("sub.tender");
    support::pack_fleet(&env, 2, sub.to_str().unwrap(), &["--base", v1.to_str().unwrap()]).ok();
    let to = format!("{}/fleet/awareness:1.1.0-delta", reg.host());
    env.shore(&["publish", sub.to_str().unwrap(), "--to", &to]).ok();
    env.ship(&["import", v1.to_str().unwrap()]).ok();
    let r = json(&env.ship(&["--json", "pull", &to]).ok());
    println!("link: the sub-layer delta pulled with {} bytes over the link", r["bytes_fetched"]);
    assert_eq!(r["complete"], true, "{r}");
    assert!(r["bytes_fetched"].as_u64().unwrap() < 100_000, "{r}");
    env.assert_store_sound(2);
}

/// The rate in a progress line (`..., 15.9 MiB/s, about 2s left`), in bytes per second.
fn line_rate(line: &str) -> Option<f64> {
    let part = line.split(", ").find(|p| p.ends_with("/s"))?.strip_suffix("/s")?;
    let (n, unit) = part.split_once(' ')?;
    let shift = ["B", "KiB", "MiB", "GiB"].iter().position(|u| *u == unit)?;
    Some(n.parse::<f64>().ok()? * (1u64 << (10 * shift)) as f64)
}

#[test]
fn a_piped_pull_logs_its_stage_with_rate_and_time_left_and_json_stays_quiet() {
    let env = Env::new();
    let reg = Registry::start();
    let bundle = fleet_bundle(&env, 1);
    let to = format!("{}/fleet/awareness:1.0.0", reg.host());
    env.shore(&["publish", bundle.to_str().unwrap(), "--to", &to]).ok();
    let cap = 16u64 << 20;
    // stderr is a pipe: lines, not a bar.
    let r = env.ship(&["pull", &to, "--limit-rate", "16M"]).ok();
    println!("link: a piped pull at 16M logs:\n{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("pull: ")).collect();
    assert!(lines.first().is_some_and(|l| l.ends_with(" to go")), "{lines:#?}");
    let middle: Vec<&str> = lines.iter().copied().filter(|l| l.ends_with(" left")).collect();
    assert!((2..=10).contains(&middle.len()), "a line a second at most: {lines:#?}");
    for l in &middle {
        let rate = line_rate(l).unwrap_or_else(|| panic!("no rate in {l:?}"));
        assert!(rate >= cap as f64 * 0.6 && rate <= cap as f64 * 1.1, "{l:?}: {rate} B/s");
        assert!(l.contains(" of ") && l.contains(", about "), "{l:?}");
    }
    let last = lines.last().unwrap();
    let rate = line_rate(last).unwrap();
    assert!(last.contains(" in ") && rate <= cap as f64 * 1.1, "{last:?}");
    env.assert_store_sound(1);
    // --json: stdout is the report alone, and no progress on stderr.
    let fresh = Env::new();
    fs::copy(env.path().join("ci.pub"), fresh.path().join("shore.pub")).unwrap();
    fresh.ship(&["trust", "add", "shore.pub"]).ok();
    let r = fresh.ship(&["--json", "pull", &to]).ok();
    assert!(!r.stderr.contains("pull: "), "{}", r.stderr);
    assert_eq!(json(&r)["complete"], true);
}

#[test]
fn a_pull_learns_the_keyring_from_the_artifact() {
    let env = Env::new();
    let reg = Registry::start();
    // The ship pins only a root key; the keyring naming ci travels with the bundle.
    env.shore(&["keygen", "--out", "root"]).ok();
    let keys: serde_json::Value = json(&env.ship(&["--json", "trust", "list"]).ok());
    env.ship(&["trust", "remove", keys["keys"][0].as_str().unwrap()]).ok();
    env.ship(&["trust", "add", "root.pub", "--root"]).ok();
    env.shore(&["keyring", "init", "--root", "root.pub", "--out", "kr.json"]).ok();
    env.shore(&["keyring", "add-signer", "kr.json", "ci.pub", "--stacks", "awareness"]).ok();
    env.shore(&["keyring", "sign", "kr.json", "--key", "root.key"]).ok();
    let to = format!("{}/fleet/awareness:1.0.0", reg.host());
    let args =
        ["publish", "stack-v1.yaml", "--key", "ci.key", "--sequence", "1", "--keyring", "kr.json"];
    env.shore(&[&args[..], &["--to", &to]].concat()).ok();
    // --estimate judges the keyring without installing it.
    json(&env.ship(&["--json", "pull", &to, "--estimate"]).ok());
    assert!(json(&env.ship(&["--json", "trust", "list"]).ok())["keyring"].is_null());
    json(&env.ship(&["--json", "pull", &to]).ok());
    assert_eq!(json(&env.ship(&["--json", "trust", "list"]).ok())["keyring"]["version"], 1);
    env.assert_store_sound(1);
}

#[test]
fn publish_mounts_what_the_registry_holds_for_the_stacks_images() {
    let env = Env::new();
    let reg = Registry::start();
    let host = reg.host();
    // The stack's images are in this registry already (as on a shore whose
    // CI pushes images, then publishes the bundle to the same registry).
    support::registry_stack(&env, &host);
    let to = format!("{host}/fleet/awareness:1.0.0");
    let p = json(
        &env.shore(&[
            "--json",
            "publish",
            "reg.yaml",
            "--key",
            "ci.key",
            "--sequence",
            "1",
            "--to",
            &to,
        ])
        .ok(),
    );
    println!("link: publish next to the images: {p}");
    // Every config and layer (13 here) is mounted; what is uploaded is small:
    // the Kubernetes manifests, and image manifests and indexes, which
    // distribution keeps as manifests, not as blobs it would mount.
    assert!(p["blobs_mounted"].as_u64().unwrap() >= 13, "{p}");
    assert!(p["bytes_pushed"].as_u64().unwrap() < 10_000, "{p}");
    let r = json(&env.ship(&["--json", "pull", &to]).ok());
    assert_eq!(r["complete"], true, "{r}");
    env.assert_store_sound(1);
}

/// A registry on 127.0.0.1 that refuses every manifest with `status`, as
/// docker-registry does: 401 with a Basic challenge (an htpasswd-protected
/// registry and no credentials), or 404 (no such tag). Counts the manifest
/// requests; stops with the test.
struct Refusing {
    port: u16,
    manifests: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
}

impl Refusing {
    fn start(status: u16) -> Refusing {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let (manifests, stop) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicBool::new(false)));
        let (count, sp) = (manifests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => Refusing::answer(conn, status, &count),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Refusing { port, manifests, stop }
    }

    /// Answer one request, then close.
    fn answer(mut conn: TcpStream, status: u16, manifests: &AtomicU32) {
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        let path = head.split(' ').nth(1).unwrap_or("");
        let (code, extra, body) = match status {
            401 => (
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"tender-test\"\r\n",
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            ),
            _ => (
                "404 Not Found",
                "",
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            ),
        };
        if path.contains("/manifests/") {
            manifests.fetch_add(1, Ordering::SeqCst);
        } else if status != 401 {
            // `/v2/` of a registry without auth.
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
            return;
        }
        let _ = write!(
            conn,
            "HTTP/1.1 {code}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

impl Drop for Refusing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_pull_refused_401_or_404_fails_at_once_without_trying_again() {
    let env = Env::new();
    for (status, needle) in [(401, "authentication required"), (404, "manifest unknown")] {
        let reg = Refusing::start(status);
        let target = format!("127.0.0.1:{}/fleet/awareness:1.0.0", reg.port);
        let start = Instant::now();
        env.ship(&["pull", &target]).fails(1, needle);
        // Trying again would ask for the manifest 6 times, waiting 7.75 s.
        assert_eq!(reg.manifests.load(Ordering::SeqCst), 1, "{status}");
        println!("link: HTTP {status}: failed after {:.2} s", start.elapsed().as_secs_f64());
        env.ship(&["pull", &target, "--estimate"]).fails(1, needle);
        assert_eq!(reg.manifests.load(Ordering::SeqCst), 2, "{status}");
    }
    env.assert_store_sound(0);
}

#[test]
fn a_blob_the_registry_lost_fails_the_pull_at_once() {
    let env = Env::new();
    let reg = Registry::start();
    let to = format!("{}/fleet/awareness:1.0.0", reg.host());
    let args = ["publish", "stack-v1.yaml", "--key", "ci.key", "--sequence", "1", "--to", &to];
    env.shore(&args).ok();
    // The registry loses the data of the artifact's last blob.
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{to}")])
        .output()
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lost = m["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap();
    let hex = &lost["sha256:".len()..];
    let data = reg.root.path().join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]);
    fs::remove_file(data.join(hex).join("data")).unwrap();

    let r = env.ship(&["pull", &to]).fails(1, &format!("fetching blob {lost}"));
    assert!(!r.stderr.contains("gave up"), "a 404 is not tried again: {}", r.stderr);
    assert!(r.stderr.contains("blob unknown"), "{}", r.stderr);
    let fsck = env.ship(&["fsck"]).ok();
    assert!(fsck.stdout.contains("store is clean"), "{}", fsck.stdout);
    assert!(!env.store().join("stacks/awareness/versions").exists());
}
