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
//! Each figure is the median of `BENCH_ROUNDS` (default 3) runs, warm cache;
//! import, the sub-layer import and pull run in turn with their baselines
//! (`paired`), so both meet the machine's drift alike.
//! `BENCH_SKIP=pack,load` leaves out those groups (their rows show 0);
//! `BENCH_VERBOSE=1` prints every round of the paired measures.

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
    middle(
        (0..rounds)
            .map(|_| {
                before();
                run(cmd)
            })
            .collect(),
    )
}

/// The median round.
fn middle(mut v: Vec<Measured>) -> Measured {
    v.sort_by_key(|m| m.time);
    v.swap_remove(v.len() / 2)
}

/// `a` and `b` (each a command and what to do before it), `rounds` times
/// each, in turn, alternating which goes first, each from a `sync`ed disk;
/// the median of each. The machine drifts over a run (the page cache,
/// memory a virtual machine's host took back and hands out again slowly):
/// a tender figure and its baseline then meet the same drift instead of
/// one taking all of it.
fn paired(a: (&str, &dyn Fn()), b: (&str, &dyn Fn()), rounds: usize) -> (Measured, Measured) {
    let (mut va, mut vb) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let one = |(cmd, before): (&str, &dyn Fn()), into: &mut Vec<Measured>| {
            before();
            // What earlier steps left unwritten (the bundles packed for this
            // group) is flushed first: its writeback otherwise falls on
            // whichever side runs next.
            run("sync");
            into.push(run(cmd));
        };
        if i % 2 == 0 {
            one(a, &mut va);
            one(b, &mut vb);
        } else {
            one(b, &mut vb);
            one(a, &mut va);
        }
    }
    if std::env::var("BENCH_VERBOSE").is_ok_and(|v| !v.is_empty() && v != "0") {
        let secs = |v: &[Measured]| {
            v.iter().map(|m| format!("{:.3}", m.time.as_secs_f64())).collect::<Vec<_>>()
        };
        eprintln!("rounds, in turn: {:?} | {:?}", secs(&va), secs(&vb));
    }
    (middle(va), middle(vb))
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

/// The fixture, the work directory and the bundle every measure uses.
struct Bench {
    fleet: PathBuf,
    work: PathBuf,
    rounds: usize,
    mib: u64,
    stack: PathBuf,
    bundle: String,
    store: String,
    /// The bundle's descriptor.
    d: serde_json::Value,
    /// The blobs it carries, as files in the layouts.
    files: Vec<PathBuf>,
    blob_bytes: u64,
    bundle_bytes: u64,
}

impl Bench {
    fn w(&self, p: &str) -> String {
        self.work.join(p).display().to_string()
    }

    /// A path in the store.
    fn in_store(&self, name: &str) -> String {
        format!("{}/{name}", self.store)
    }

    fn fresh_store(&self) {
        let _ = fs::remove_dir_all(&self.store);
        let st = Command::new(SHIP)
            .args(["--store", &self.store, "trust", "add", &self.w("ci.pub")])
            .output()
            .unwrap();
        assert!(st.status.success());
    }
}

fn nothing() {}

fn setup() -> Bench {
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
    run(&pack_command(&stack, &w("ci.key"), &bundle)); // warm the cache, and learn the blob list
    let d = descriptor_of(&bundle);
    let mut files: Vec<PathBuf> = Vec::new();
    let mut blob_bytes = 0u64;
    for b in d["blobs"].as_array().unwrap() {
        blob_bytes += b["size"].as_u64().unwrap();
        files.push(fixture_file(&fleet, &b["digest"].as_str().unwrap()[7..]));
    }
    let bundle_bytes = fs::metadata(&bundle).unwrap().len();
    let store = w("store");
    Bench { fleet, work, rounds, mib, stack, bundle, store, d, files, blob_bytes, bundle_bytes }
}

fn pack_command(stack: &Path, key: &str, bundle: &str) -> String {
    format!("{SHORE} --json pack {} --key {key} --out {bundle} >/dev/null", stack.display())
}

/// A bundle's descriptor (its first entry).
fn descriptor_of(bundle: &str) -> serde_json::Value {
    let mut a = tar::Archive::new(fs::File::open(bundle).unwrap());
    let mut first = a.entries().unwrap().next().unwrap().unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut first, &mut raw).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

/// Where the fixture keeps blob `hex`: a layout's blob, or a manifest file.
fn fixture_file(fleet: &Path, hex: &str) -> PathBuf {
    fs::read_dir(fleet.join("layouts"))
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
        .unwrap_or_else(|| panic!("blob {hex} not found in the fixture"))
}

/// Pack, import and verify, against cat+sync and skopeo.
struct Local {
    cat_pack: Measured,
    cat_pack_nosync: Measured,
    pack_m: Measured,
    skopeo: Measured,
    cat_import: Measured,
    import: Measured,
    verify: Measured,
}

const IMAGES: [(&str, &str); 3] =
    [("sensor-fusion", "1.1.0"), ("bridge-ui", "1.0.0"), ("ais-gateway", "1.0.0")];

fn local(b: &Bench) -> Local {
    let (rounds, bundle, store) = (b.rounds, &b.bundle, &b.store);
    let list = b.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ");
    let pack = pack_command(&b.stack, &b.w("ci.key"), bundle);
    let cat_pack = median_in(
        "pack",
        &format!("cat {list} > {0} && sync {0}", b.w("cat.out")),
        rounds,
        &nothing,
    );
    let cat_pack_nosync =
        median_in("pack", &format!("cat {list} > {}", b.w("cat.out")), rounds, &nothing);
    let pack_m = median_in("pack", &pack, rounds, &nothing);
    // skopeo writes one image per oci-archive: all three images, all platforms.
    let skopeo_cmd: Vec<String> = IMAGES
        .iter()
        .map(|(image, tag)| {
            format!(
                "rm -f {out} && skopeo copy -q --all oci:{}:{tag} oci-archive:{out}",
                b.fleet.join("layouts").join(image).display(),
                out = b.w(&format!("skopeo-{image}.tar"))
            )
        })
        .collect();
    let skopeo = median_in("pack", &skopeo_cmd.join(" && "), rounds, &nothing);
    // The baseline writes a new file into the store just made, as import
    // does: see `sub_layer` for why.
    let (cat_import, import) = paired(
        (&format!("cat {bundle} > {0} && sync {0}", b.in_store("cat.out")), &|| b.fresh_store()),
        (&format!("{SHIP} --json --store {store} import {bundle} >/dev/null"), &|| b.fresh_store()),
        rounds,
    );
    let verify = median(
        &format!("{SHIP} --json --store {store} verify {bundle} >/dev/null"),
        rounds,
        &nothing,
    );
    Local { cat_pack, cat_pack_nosync, pack_m, skopeo, cat_import, import, verify }
}

/// A docker-registry on 127.0.0.1, started afresh on demand.
struct Registry {
    port: u16,
    root: PathBuf,
    config: PathBuf,
    child: std::cell::RefCell<Option<std::process::Child>>,
}

impl Registry {
    fn new(work: &Path) -> Registry {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let root = work.join("registry");
        let config = work.join("registry.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                root.display()
            ),
        )
        .unwrap();
        Registry { port, root, config, child: Default::default() }
    }

    fn stop(&self) {
        if let Some(mut c) = self.child.borrow_mut().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn fresh(&self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.root);
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry");
        *self.child.borrow_mut() = Some(child);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Load, publish and pull, against skopeo and four curls.
struct Links {
    load_m: Measured,
    load_again: Measured,
    skopeo_push_m: Measured,
    publish_m: Measured,
    pull_m: Measured,
    skopeo_pull_m: Measured,
    curl4: Measured,
}

fn links(b: &Bench) -> Links {
    let (rounds, bundle, store) = (b.rounds, &b.bundle, &b.store);
    // Push into a fresh docker-registry: tender-ship load from the store vs
    // skopeo copy --all from the layouts, same images, same run.
    let reg = Registry::new(&b.work);
    let port = reg.port;
    let load = format!(
        "{SHIP} --json --store {store} load awareness --registry 127.0.0.1:{port} >/dev/null"
    );
    reg.fresh();
    let load_m = median_in("load", &load, rounds, &|| reg.fresh());
    let load_again = median_in("load", &load, rounds, &nothing);
    let skopeo_push: Vec<String> = IMAGES
        .iter()
        .map(|(image, tag)| {
            format!(
                "skopeo copy -q --all --dest-tls-verify=false oci:{}:{tag} docker://127.0.0.1:{port}/fleet/{image}:{tag}",
                b.fleet.join("layouts").join(image).display()
            )
        })
        .collect();
    let skopeo_push_m = median_in("load", &skopeo_push.join(" && "), rounds, &|| reg.fresh());
    // Links: publish the bundle into a fresh registry, pull it into a fresh
    // store; skopeo pulls the same images out of the same registry.
    let target = format!("127.0.0.1:{port}/fleet/awareness:1.1.0");
    let publish = format!("{SHORE} --json publish {bundle} --to {target} >/dev/null");
    let publish_m = median(&publish, rounds, &|| reg.fresh());
    run(&skopeo_push.join(" && "));
    let pull = format!("{SHIP} --json --store {store} pull {target} >/dev/null");
    let (curl, clear_curled) = curl_ceiling(b, port);
    let (pull_m, curl4) = paired((&pull, &|| b.fresh_store()), (&curl, &clear_curled), rounds);
    let curled_bytes: u64 = fs::read_dir(b.work.join("curled"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(curled_bytes, b.blob_bytes, "curl fetched every blob whole");
    let skopeo_pull: Vec<String> = IMAGES
        .iter()
        .map(|(image, tag)| {
            format!(
                "skopeo copy -q --all --src-tls-verify=false docker://127.0.0.1:{port}/fleet/{image}:{tag} oci:{}:{tag}",
                b.w(&format!("pulled-{image}"))
            )
        })
        .collect();
    let clear_pulled = || {
        for (image, _) in IMAGES {
            let _ = fs::remove_dir_all(b.w(&format!("pulled-{image}")));
        }
    };
    let skopeo_pull_m = median(&skopeo_pull.join(" && "), rounds, &clear_pulled);
    reg.stop();
    Links { load_m, load_again, skopeo_push_m, publish_m, pull_m, skopeo_pull_m, curl4 }
}

/// The link's ceiling: the bundle's blobs, as the pull fetches them from
/// the artifact's repository, by four curls at once, largest first. The
/// command, and what clears its output before each round.
fn curl_ceiling(b: &Bench, port: u16) -> (String, impl Fn() + '_) {
    let mut by_size: Vec<(u64, String)> = b.d["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["size"].as_u64().unwrap(), b["digest"].as_str().unwrap().to_owned()))
        .collect();
    by_size.sort_by_key(|b| std::cmp::Reverse(b.0));
    let curled = b.work.join("curled");
    let curl_list = b.work.join("curl.list");
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
    let clear_curled = move || {
        let _ = fs::remove_dir_all(&curled);
        fs::create_dir_all(&curled).unwrap();
    };
    (format!("xargs -P 4 -L 1 curl -sfSL < {}", curl_list.display()), clear_curled)
}

/// The sub-layer delta, release 1 to 2.
struct Sub {
    sub_pack: Measured,
    sub_import: Measured,
    cat_rebuilt: Measured,
    rebuilt_bytes: u64,
}

fn sub_layer(b: &Bench) -> Sub {
    let (rounds, store) = (b.rounds, &b.store);
    let stack1 = b.fleet.join("tender-bench-v1.yaml");
    fs::write(
        &stack1,
        "name: awareness\nversion: 1.0.0\nmanifests: [stack/v1/*.yaml]\n\
         sources:\n  - prefix: shore.registry.example/fleet/\n    oci-layout: layouts/\n",
    )
    .unwrap();
    let v1 = b.w("v1.tender");
    run(&format!(
        "{SHORE} --json pack {} --key {} --sequence 1 --out {v1} >/dev/null",
        stack1.display(),
        b.w("ci.key")
    ));
    let delta = |extra: &str, out: &str| {
        format!(
            "{SHORE} --json pack {} --key {} --sequence 2 --base {v1} {extra} --out {} >/dev/null",
            b.stack.display(),
            b.w("ci.key"),
            b.w(out)
        )
    };
    run(&delta("--patches never", "layer.tender"));
    let sub_pack = median(&delta("", "sub.tender"), rounds, &nothing);
    let v1_store = || {
        b.fresh_store();
        run(&format!("{SHIP} --json --store {store} import {v1} >/dev/null"));
    };
    // The layers the delta rebuilds, as the store keeps them, copied out
    // once (each round starts from a store without them).
    let sub_d = descriptor_of(&b.w("sub.tender"));
    let patched: Vec<&serde_json::Value> =
        sub_d["blobs"].as_array().unwrap().iter().filter(|b| b.get("patch").is_some()).collect();
    v1_store();
    run(&format!("{SHIP} --json --store {store} import {} >/dev/null", b.w("sub.tender")));
    let rebuilt = b.w("rebuilt.bin");
    run(&format!(
        "cat {} > {rebuilt}",
        patched
            .iter()
            .map(|b| format!("{store}/blobs/sha256/{}", &b["digest"].as_str().unwrap()[7..]))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let rebuilt_bytes: u64 = patched.iter().map(|b| b["size"].as_u64().unwrap()).sum();
    let (sub_import, cat_rebuilt) = paired(
        (
            &format!("{SHIP} --json --store {store} import {} >/dev/null", b.w("sub.tender")),
            &v1_store,
        ),
        // From the same start as the import: the store just made afresh
        // with release 1, the file new in it. Overwriting its own output
        // of the round before instead, `cat` got back the page cache it
        // had just freed, while the import takes fresh pages: on a virtual
        // machine whose host reclaims freed memory, fresh pages cost their
        // first touch (a new 257 MiB file after 5 s idle took 0.84-1.34 s
        // with `dd`, the same bytes over cat's own file 0.30 s).
        (&format!("cat {rebuilt} > {0} && sync {0}", b.in_store("cat.out")), &v1_store),
        rounds,
    );
    Sub { sub_pack, sub_import, cat_rebuilt, rebuilt_bytes }
}

fn main() {
    let b = setup();
    let l = local(&b);
    let k = links(&b);
    let s = sub_layer(&b);
    print_table(&b, &l, &k, &s);
    print_ratios(&b, &l, &k, &s);
}

fn row(name: &str, m: &Measured, bytes: u64) {
    println!(
        "{name:<34} {:>9.3} {:>10.0} {:>9} MiB",
        m.time.as_secs_f64(),
        mbps(bytes, m.time),
        m.max_rss_kib / 1024
    );
}

fn print_table(b: &Bench, l: &Local, k: &Links, s: &Sub) {
    println!(
        "\nfleet: FLEET_MODEL_MIB={}, {} blobs, {:.1} MB of blobs, bundle {:.1} MB, median of {}\n",
        b.mib,
        b.files.len(),
        b.blob_bytes as f64 / 1e6,
        b.bundle_bytes as f64 / 1e6,
        b.rounds
    );
    println!("{:<34} {:>9} {:>10} {:>12}", "operation", "seconds", "MB/s", "peak RSS");
    let (blob_bytes, bundle_bytes) = (b.blob_bytes, b.bundle_bytes);
    row("cat blobs > file; sync", &l.cat_pack, blob_bytes);
    row("cat blobs > file (no sync)", &l.cat_pack_nosync, blob_bytes);
    row("tender-shore pack", &l.pack_m, blob_bytes);
    row("skopeo copy --all oci-archive", &l.skopeo, blob_bytes);
    row("cat bundle > file; sync", &l.cat_import, bundle_bytes);
    row("tender-ship import", &l.import, bundle_bytes);
    row("tender-ship verify", &l.verify, bundle_bytes);
    row("tender-ship load (fresh registry)", &k.load_m, blob_bytes);
    row("tender-ship load (all present)", &k.load_again, blob_bytes);
    row("skopeo copy --all to registry", &k.skopeo_push_m, blob_bytes);
    row("tender-shore publish (fresh registry)", &k.publish_m, blob_bytes);
    row("tender-ship pull (fresh store)", &k.pull_m, blob_bytes);
    row("skopeo copy --all from registry", &k.skopeo_pull_m, blob_bytes);
    row("4 x curl from registry (ceiling)", &k.curl4, blob_bytes);
    row("tender-shore pack sub-layer delta", &s.sub_pack, s.rebuilt_bytes);
    row("tender-ship import sub-layer delta", &s.sub_import, s.rebuilt_bytes);
    row("cat rebuilt layers > file; sync", &s.cat_rebuilt, s.rebuilt_bytes);
}

fn print_ratios(b: &Bench, l: &Local, k: &Links, s: &Sub) {
    let size = |f: &str| fs::metadata(b.w(f)).unwrap().len();
    let bundle_bytes = b.bundle_bytes;
    let (pack_m, cat_pack, skopeo, import, cat_import, verify) =
        (&l.pack_m, &l.cat_pack, &l.skopeo, &l.import, &l.cat_import, &l.verify);
    let (load_m, load_again, skopeo_push_m, publish_m, pull_m, skopeo_pull_m, curl4) = (
        &k.load_m,
        &k.load_again,
        &k.skopeo_push_m,
        &k.publish_m,
        &k.pull_m,
        &k.skopeo_pull_m,
        &k.curl4,
    );
    let (sub_pack, sub_import, cat_rebuilt, rebuilt_bytes) =
        (&s.sub_pack, &s.sub_import, &s.cat_rebuilt, s.rebuilt_bytes);
    let r = |a: &Measured, b: &Measured| b.time.as_secs_f64() / a.time.as_secs_f64();
    println!("\nratios (rate of tender / rate of baseline; targets in brackets)");
    println!("pack   / cat+sync     {:>6.2}   [>= 0.8]", r(pack_m, cat_pack));
    println!("pack   / skopeo       {:>6.2}   [>= 2.0]", r(pack_m, skopeo));
    println!("import / cat+sync     {:>6.2}   [>= 0.9]", r(import, cat_import));
    println!("verify / cat+sync     {:>6.2}", r(verify, cat_import));
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
        r(sub_import, cat_rebuilt)
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
