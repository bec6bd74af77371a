//! Pack and import throughput and peak memory on the fleet fixture, with
//! baselines measured in the same run:
//!
//! - `cat BLOBS > FILE; sync FILE` for pack and `cat BUNDLE > FILE; sync FILE`
//!   for import: the I/O limit with the same durability tender gives (it
//!   fsyncs what it writes);
//! - `skopeo copy --all oci:LAYOUT:TAG oci-archive:FILE` for pack;
//! - `skopeo copy --all` into and out of a fresh docker-registry for `load`,
//!   `publish` and `pull`;
//! - for `pull`, also the link's ceiling: the same blobs fetched from the
//!   same registry by four `curl`s at once (`xargs -P 4`, largest first);
//! - for the sub-layer delta (release 1 to 2), `cat LAYER > FILE; sync FILE`
//!   of the layer it rebuilds.
//!
//!     FLEET_MODEL_MIB=1024 cargo bench --bench fleet
//!
//! Each figure is the median of `BENCH_ROUNDS` (default 3) runs, warm cache.
//! `BENCH_SKIP=pack,load` leaves out those groups (their rows show 0).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SHORE: &str = env!("CARGO_BIN_EXE_tender-shore");
const SHIP: &str = env!("CARGO_BIN_EXE_tender-ship");

struct Measured {
    time: Duration,
    max_rss_kib: i64,
}

/// Run a shell command; wall time and the child's peak RSS (from wait4).
fn run(cmd: &str) -> Measured {
    let start = Instant::now();
    // Reaped by wait4 below, which also gives the peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new("bash").arg("-c").arg(cmd).spawn().expect("spawn");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid with valid out-pointers.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let time = start.elapsed();
    assert!(r > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "failed: {cmd}");
    Measured { time, max_rss_kib: usage.ru_maxrss }
}

fn median(cmd: &str, rounds: usize, before: &dyn Fn()) -> Measured {
    let mut v: Vec<Measured> = (0..rounds)
        .map(|_| {
            before();
            run(cmd)
        })
        .collect();
    v.sort_by_key(|m| m.time);
    v.swap_remove(rounds / 2)
}

/// Whether `BENCH_SKIP` (a comma list) names `group`.
fn skipped(group: &str) -> bool {
    std::env::var("BENCH_SKIP").is_ok_and(|v| v.split(',').any(|g| g.trim() == group))
}

/// [`median`], or nothing when `group` is skipped.
fn median_in(group: &str, cmd: &str, rounds: usize, before: &dyn Fn()) -> Measured {
    if skipped(group) {
        return Measured { time: Duration::ZERO, max_rss_kib: 0 };
    }
    median(cmd, rounds, before)
}

fn mbps(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e6
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let mib: u64 =
        std::env::var("FLEET_MODEL_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let rounds: usize =
        std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
    let fleet = root.join(format!("target/fleet-{mib}"));
    if !fleet.join("SUMMARY").exists() {
        let st = Command::new("bash")
            .arg(root.join("../shared/fixtures/make-fleet.sh"))
            .arg(&fleet)
            .env("FLEET_MODEL_MIB", mib.to_string())
            .status()
            .unwrap();
        assert!(st.success(), "make-fleet.sh failed");
    }
    let work = root.join("target/bench-work");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    let w = |p: &str| work.join(p).display().to_string();
    let stack = fleet.join("tender-bench.yaml");
    fs::write(
        &stack,
        "name: awareness\nversion: 1.1.0\nmanifests: [stack/v2/*.yaml]\n\
         sources:\n  - prefix: shore.registry.example/fleet/\n    oci-layout: layouts/\n",
    )
    .unwrap();
    run(&format!("{SHORE} keygen --out {} >/dev/null 2>&1", w("ci")));
    let bundle = w("fleet.tender");
    let pack = format!(
        "{SHORE} --json pack {} --key {} --out {bundle} >/dev/null",
        stack.display(),
        w("ci.key")
    );
    run(&pack); // warm the cache, and learn the blob list

    // The blobs the bundle carries, as files in the layouts.
    let mut a = tar::Archive::new(fs::File::open(&bundle).unwrap());
    let mut first = a.entries().unwrap().next().unwrap().unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut first, &mut raw).unwrap();
    let d: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut blob_bytes = 0u64;
    for b in d["blobs"].as_array().unwrap() {
        let hex = &b["digest"].as_str().unwrap()[7..];
        blob_bytes += b["size"].as_u64().unwrap();
        let found = fs::read_dir(fleet.join("layouts"))
            .unwrap()
            .map(|e| e.unwrap().path().join("blobs/sha256").join(hex))
            .find(|p| p.exists())
            .or_else(|| {
                fs::read_dir(fleet.join("stack/v2")).unwrap().map(|e| e.unwrap().path()).find(|p| {
                    let bytes = fs::read(p).unwrap();
                    let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
                    digest.iter().map(|b| format!("{b:02x}")).collect::<String>() == hex
                })
            })
            .unwrap_or_else(|| panic!("blob {hex} not found in the fixture"));
        files.push(found);
    }
    let list = files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ");
    let bundle_bytes = fs::metadata(&bundle).unwrap().len();
    let nothing = || {};

    let cat_pack =
        median_in("pack", &format!("cat {list} > {0} && sync {0}", w("cat.out")), rounds, &nothing);
    let cat_pack_nosync =
        median_in("pack", &format!("cat {list} > {}", w("cat.out")), rounds, &nothing);
    let pack_m = median_in("pack", &pack, rounds, &nothing);
    // skopeo writes one image per oci-archive: all three images, all platforms.
    let mut skopeo_cmd = Vec::new();
    for (image, tag) in
        [("sensor-fusion", "1.1.0"), ("bridge-ui", "1.0.0"), ("ais-gateway", "1.0.0")]
    {
        skopeo_cmd.push(format!(
            "rm -f {out} && skopeo copy -q --all oci:{}:{tag} oci-archive:{out}",
            fleet.join("layouts").join(image).display(),
            out = w(&format!("skopeo-{image}.tar"))
        ));
    }
    let skopeo = median_in("pack", &skopeo_cmd.join(" && "), rounds, &nothing);

    let cat_import =
        median(&format!("cat {bundle} > {0} && sync {0}", w("cat2.out")), rounds, &nothing);
    let store = w("store");
    let fresh_store = || {
        let _ = fs::remove_dir_all(&store);
        let st = Command::new(SHIP)
            .args(["--store", &store, "trust", "add", &w("ci.pub")])
            .output()
            .unwrap();
        assert!(st.status.success());
    };
    let import = median(
        &format!("{SHIP} --json --store {store} import {bundle} >/dev/null"),
        rounds,
        &fresh_store,
    );
    let verify = median(
        &format!("{SHIP} --json --store {store} verify {bundle} >/dev/null"),
        rounds,
        &nothing,
    );

    // Push into a fresh docker-registry: tender-ship load from the store vs
    // skopeo copy --all from the layouts, same images, same run.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let reg_root = work.join("registry");
    let config = work.join("registry.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            reg_root.display()
        ),
    )
    .unwrap();
    let registry: std::cell::RefCell<Option<std::process::Child>> = Default::default();
    let stop_registry = || {
        if let Some(mut c) = registry.borrow_mut().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    };
    let fresh_registry = || {
        stop_registry();
        let _ = fs::remove_dir_all(&reg_root);
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry");
        *registry.borrow_mut() = Some(child);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let load = format!(
        "{SHIP} --json --store {store} load awareness --registry 127.0.0.1:{port} >/dev/null"
    );
    fresh_registry();
    let load_m = median_in("load", &load, rounds, &fresh_registry);
    let load_again = median_in("load", &load, rounds, &nothing);
    let mut skopeo_push = Vec::new();
    for (image, tag) in
        [("sensor-fusion", "1.1.0"), ("bridge-ui", "1.0.0"), ("ais-gateway", "1.0.0")]
    {
        skopeo_push.push(format!(
            "skopeo copy -q --all --dest-tls-verify=false oci:{}:{tag} docker://127.0.0.1:{port}/fleet/{image}:{tag}",
            fleet.join("layouts").join(image).display()
        ));
    }
    let skopeo_push_m = median_in("load", &skopeo_push.join(" && "), rounds, &fresh_registry);

    // Links: publish the bundle into a fresh registry, pull it into a fresh
    // store; skopeo pulls the same images out of the same registry.
    let target = format!("127.0.0.1:{port}/fleet/awareness:1.1.0");
    let publish = format!("{SHORE} --json publish {bundle} --to {target} >/dev/null");
    let publish_m = median(&publish, rounds, &fresh_registry);
    run(&skopeo_push.join(" && "));
    let pull = format!("{SHIP} --json --store {store} pull {target} >/dev/null");
    let pull_m = median(&pull, rounds, &fresh_store);
    let mut skopeo_pull = Vec::new();
    for (image, tag) in
        [("sensor-fusion", "1.1.0"), ("bridge-ui", "1.0.0"), ("ais-gateway", "1.0.0")]
    {
        skopeo_pull.push(format!(
            "skopeo copy -q --all --src-tls-verify=false docker://127.0.0.1:{port}/fleet/{image}:{tag} oci:{}:{tag}",
            w(&format!("pulled-{image}"))
        ));
    }
    let clear_pulled = || {
        for image in ["sensor-fusion", "bridge-ui", "ais-gateway"] {
            let _ = fs::remove_dir_all(w(&format!("pulled-{image}")));
        }
    };
    let skopeo_pull_m = median(&skopeo_pull.join(" && "), rounds, &clear_pulled);
    // The link's ceiling: the bundle's blobs, as the pull fetches them from
    // the artifact's repository, by four curls at once, largest first.
    let mut by_size: Vec<(u64, String)> = d["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["size"].as_u64().unwrap(), b["digest"].as_str().unwrap().to_owned()))
        .collect();
    by_size.sort_by_key(|b| std::cmp::Reverse(b.0));
    let curled = work.join("curled");
    let curl_list = work.join("curl.list");
    fs::write(
        &curl_list,
        by_size
            .iter()
            .map(|(_, dg)| {
                format!(
                    "-o {}/{} http://127.0.0.1:{port}/v2/fleet/awareness/blobs/{dg}\n",
                    curled.display(),
                    &dg[7..]
                )
            })
            .collect::<String>(),
    )
    .unwrap();
    let clear_curled = || {
        let _ = fs::remove_dir_all(&curled);
        fs::create_dir_all(&curled).unwrap();
    };
    let curl4 = median(
        &format!("xargs -P 4 -L 1 curl -sfSL < {}", curl_list.display()),
        rounds,
        &clear_curled,
    );
    let curled_bytes: u64 =
        fs::read_dir(&curled).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert_eq!(curled_bytes, blob_bytes, "curl fetched every blob whole");
    stop_registry();

    // The sub-layer delta, release 1 to 2: its size against the whole bundle
    // and the layer delta, and the time to pack and to import it.
    let stack1 = fleet.join("tender-bench-v1.yaml");
    fs::write(
        &stack1,
        "name: awareness\nversion: 1.0.0\nmanifests: [stack/v1/*.yaml]\n\
         sources:\n  - prefix: shore.registry.example/fleet/\n    oci-layout: layouts/\n",
    )
    .unwrap();
    let v1 = w("v1.tender");
    run(&format!(
        "{SHORE} --json pack {} --key {} --sequence 1 --out {v1} >/dev/null",
        stack1.display(),
        w("ci.key")
    ));
    let delta = |extra: &str, out: &str| {
        format!(
            "{SHORE} --json pack {} --key {} --sequence 2 --base {v1} {extra} --out {} >/dev/null",
            stack.display(),
            w("ci.key"),
            w(out)
        )
    };
    run(&delta("--patches never", "layer.tender"));
    let sub_pack = median(&delta("", "sub.tender"), rounds, &nothing);
    let v1_store = || {
        fresh_store();
        run(&format!("{SHIP} --json --store {store} import {v1} >/dev/null"));
    };
    let sub_import = median(
        &format!("{SHIP} --json --store {store} import {} >/dev/null", w("sub.tender")),
        rounds,
        &v1_store,
    );
    // The layers the delta rebuilds, as the store keeps them.
    let sub_d: serde_json::Value = {
        let mut a = tar::Archive::new(fs::File::open(w("sub.tender")).unwrap());
        let mut first = a.entries().unwrap().next().unwrap().unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut first, &mut raw).unwrap();
        serde_json::from_slice(&raw).unwrap()
    };
    let rebuilt: Vec<String> = sub_d["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b.get("patch").is_some())
        .map(|b| format!("{store}/blobs/sha256/{}", &b["digest"].as_str().unwrap()[7..]))
        .collect();
    let rebuilt_bytes: u64 = sub_d["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b.get("patch").is_some())
        .map(|b| b["size"].as_u64().unwrap())
        .sum();
    let cat_rebuilt = median(
        &format!("cat {} > {1} && sync {1}", rebuilt.join(" "), w("cat3.out")),
        rounds,
        &nothing,
    );
    let size = |f: &str| fs::metadata(w(f)).unwrap().len();

    println!(
        "\nfleet: FLEET_MODEL_MIB={mib}, {} blobs, {:.1} MB of blobs, bundle {:.1} MB, median of {rounds}\n",
        files.len(),
        blob_bytes as f64 / 1e6,
        bundle_bytes as f64 / 1e6
    );
    println!("{:<34} {:>9} {:>10} {:>12}", "operation", "seconds", "MB/s", "peak RSS");
    let row = |name: &str, m: &Measured, bytes: u64| {
        println!(
            "{name:<34} {:>9.3} {:>10.0} {:>9} MiB",
            m.time.as_secs_f64(),
            mbps(bytes, m.time),
            m.max_rss_kib / 1024
        );
    };
    row("cat blobs > file; sync", &cat_pack, blob_bytes);
    row("cat blobs > file (no sync)", &cat_pack_nosync, blob_bytes);
    row("tender-shore pack", &pack_m, blob_bytes);
    row("skopeo copy --all oci-archive", &skopeo, blob_bytes);
    row("cat bundle > file; sync", &cat_import, bundle_bytes);
    row("tender-ship import", &import, bundle_bytes);
    row("tender-ship verify", &verify, bundle_bytes);
    row("tender-ship load (fresh registry)", &load_m, blob_bytes);
    row("tender-ship load (all present)", &load_again, blob_bytes);
    row("skopeo copy --all to registry", &skopeo_push_m, blob_bytes);
    row("tender-shore publish (fresh registry)", &publish_m, blob_bytes);
    row("tender-ship pull (fresh store)", &pull_m, blob_bytes);
    row("skopeo copy --all from registry", &skopeo_pull_m, blob_bytes);
    row("4 x curl from registry (ceiling)", &curl4, blob_bytes);
    row("tender-shore pack sub-layer delta", &sub_pack, rebuilt_bytes);
    row("tender-ship import sub-layer delta", &sub_import, rebuilt_bytes);
    row("cat rebuilt layers > file; sync", &cat_rebuilt, rebuilt_bytes);
    let r = |a: &Measured, b: &Measured| b.time.as_secs_f64() / a.time.as_secs_f64();
    println!("\nratios (rate of tender / rate of baseline; targets in brackets)");
    println!("pack   / cat+sync     {:>6.2}   [>= 0.8]", r(&pack_m, &cat_pack));
    println!("pack   / skopeo       {:>6.2}   [>= 2.0]", r(&pack_m, &skopeo));
    println!("import / cat+sync     {:>6.2}   [>= 0.9]", r(&import, &cat_import));
    println!("verify / cat+sync     {:>6.2}", r(&verify, &cat_import));
    println!(
        "load time / skopeo push time {:>6.2}   [< 1.0]; load with all blobs present: {:.3} s",
        load_m.time.as_secs_f64() / skopeo_push_m.time.as_secs_f64(),
        load_again.time.as_secs_f64()
    );
    println!(
        "publish time / skopeo push time {:>6.2}; pull time / skopeo pull time {:>6.2}",
        publish_m.time.as_secs_f64() / skopeo_push_m.time.as_secs_f64(),
        pull_m.time.as_secs_f64() / skopeo_pull_m.time.as_secs_f64()
    );
    println!(
        "pull time / 4 x curl time    {:>6.2}   [<= 1.1]",
        pull_m.time.as_secs_f64() / curl4.time.as_secs_f64()
    );
    println!(
        "sub-layer delta: {} bytes; layer delta {} bytes; whole bundle {} bytes ({:.4} % of the layer delta); import rebuilds {:.0} MB/s = {:.2} x cat+sync of the layers   [>= 0.8]",
        size("sub.tender"),
        size("layer.tender"),
        bundle_bytes,
        size("sub.tender") as f64 * 100.0 / size("layer.tender") as f64,
        mbps(rebuilt_bytes, sub_import.time),
        r(&sub_import, &cat_rebuilt)
    );
    println!(
        "peak RSS: pull {} MiB, publish {} MiB, sub-layer pack {} MiB, sub-layer import {} MiB",
        pull_m.max_rss_kib / 1024,
        publish_m.max_rss_kib / 1024,
        sub_pack.max_rss_kib / 1024,
        sub_import.max_rss_kib / 1024
    );
    println!(
        "peak RSS: pack {} MiB, import {} MiB, verify {} MiB   [< 64 MiB]",
        pack_m.max_rss_kib / 1024,
        import.max_rss_kib / 1024,
        verify.max_rss_kib / 1024
    );
}
