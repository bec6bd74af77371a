//! Helpers for tests that run the real binaries.
#![allow(dead_code)]

pub mod apiserver;
pub mod containerd;
pub mod oci;
pub mod rawtar;
pub mod ship;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const SHORE: &str = env!("CARGO_BIN_EXE_tender-shore");
pub const SHIP: &str = env!("CARGO_BIN_EXE_tender-ship");

/// A scratch directory with the demo stack, a CI key trusted by a ship store.
pub struct Env {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails(self, code: i32, needle: &str) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(self.stderr.contains(needle), "stderr should mention {needle:?}:\n{}", self.stderr);
        self
    }
}

impl Env {
    /// Demo stack (both releases), `ci.key`/`ci.pub`, and a store trusting ci.pub.
    pub fn new() -> Env {
        let env = Env { dir: tempfile::tempdir().unwrap() };
        oci::write_demo_stack(env.path(), 1);
        oci::write_demo_stack(env.path(), 2);
        env.shore(&["keygen", "--out", "ci"]).ok();
        env.ship(&["trust", "add", "ci.pub"]).ok();
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn store(&self) -> PathBuf {
        self.path().join("store")
    }

    pub fn shore(&self, args: &[&str]) -> Run {
        Run::from(
            Command::new(SHORE)
                .args(args)
                .current_dir(self.path())
                .env_remove("TENDER_SIGNING_KEY")
                // Default sequences are kept here, not in the user's home.
                .env("TENDER_SHORE_STATE", self.path().join("shore-state"))
                .output()
                .unwrap(),
        )
    }

    pub fn ship(&self, args: &[&str]) -> Run {
        Run::from(
            Command::new(SHIP)
                .arg("--store")
                .arg(self.store())
                .args(args)
                .current_dir(self.path())
                .output()
                .unwrap(),
        )
    }

    /// `tender-ship --store DIR/STORE ARGS`: another ship in the same
    /// directory.
    pub fn ship_in(&self, store: &str, args: &[&str]) -> Run {
        Run::from(
            Command::new(SHIP)
                .arg("--store")
                .arg(self.path().join(store))
                .args(args)
                .current_dir(self.path())
                .output()
                .unwrap(),
        )
    }

    /// `tender-ship ARGS` with its peak RSS (KiB), from `wait4`.
    pub fn ship_measured(&self, args: &[&str]) -> (Run, u64) {
        let mut cmd = Command::new(SHIP);
        cmd.arg("--store").arg(self.store()).args(args).current_dir(self.path());
        measured(cmd)
    }

    /// Pack release `rel` with `key` and `sequence` into `out`.
    pub fn pack(&self, rel: u32, key: &str, sequence: u64, out: &str) -> PathBuf {
        self.pack_with_flags(rel, key, sequence, out, &[]).ok();
        self.path().join(out)
    }

    /// [`Env::pack`] with more `pack` flags; returns the run.
    pub fn pack_with_flags(
        &self,
        rel: u32,
        key: &str,
        sequence: u64,
        out: &str,
        extra: &[&str],
    ) -> Run {
        let stack = format!("stack-v{rel}.yaml");
        let seq = sequence.to_string();
        let mut args = vec!["pack", &stack, "--key", key, "--sequence", &seq, "--out", out];
        args.extend_from_slice(extra);
        self.shore(&args)
    }

    /// Every file of the store but the lock, with its content.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        walk(&self.store(), &self.store(), &mut out);
        out.remove(Path::new("lock"));
        out
    }

    /// The store holds only complete, verified blobs and no version beyond
    /// those in `versions`, and trusts exactly what it did.
    #[track_caller]
    pub fn assert_store_sound(&self, versions: usize) {
        let fsck = self.ship(&["fsck"]).ok();
        assert!(fsck.stdout.contains("store is clean"), "{}", fsck.stdout);
        let list: serde_json::Value =
            serde_json::from_str(&self.ship(&["--json", "list"]).ok().stdout).unwrap();
        assert_eq!(list.as_array().unwrap().len(), versions, "{list}");
        let staging: Vec<_> = fs::read_dir(self.store().join("staging")).unwrap().collect();
        assert!(staging.is_empty(), "staging must be empty: {staging:?}");
    }

    /// The store's blob names (hex digests), sorted.
    pub fn blobs(&self) -> Vec<String> {
        blob_names(&self.store())
    }

    pub fn blob_count(&self) -> usize {
        fs::read_dir(self.store().join("blobs/sha256")).unwrap().count()
    }
}

/// Run `cmd` to its end; its output and peak RSS in KiB (from `wait4` on
/// its pid, which also reaps it).
pub fn measured(mut cmd: Command) -> (Run, u64) {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    // Reaped by wait4 below, which also gives the peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid with valid out-pointers.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(r, child.id() as i32, "wait4: {}", std::io::Error::last_os_error());
    let read = |mut f: fs::File| {
        use std::io::{Read, Seek};
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    };
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    (Run { code, stdout: read(out), stderr: read(err) }, usage.ru_maxrss as u64)
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.insert(p.strip_prefix(root).unwrap().to_owned(), fs::read(&p).unwrap());
        }
    }
}

/// A bundle's entries: (header, path bytes, data).
pub type Entries = Vec<(tar::Header, Vec<u8>, Vec<u8>)>;

/// The bundle `bundle` (in `env`) with its descriptor changed by `edit` and
/// signed again by the key file `key` (what a hostile signer could do),
/// written to `out` (which may be `bundle`).
pub fn resigned(
    env: &Env,
    bundle: &str,
    key: &str,
    out: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    let mut entries = read_entries(&env.path().join(bundle));
    let mut d: serde_json::Value = serde_json::from_slice(&entries[0].2).unwrap();
    edit(&mut d);
    let raw = serde_json::to_vec(&d).unwrap();
    let pem = fs::read_to_string(env.path().join(key)).unwrap();
    let sig = tender_keys::SigningKey::from_pem(&pem)
        .unwrap()
        .sign(&tender_bundle::signing_message(&raw));
    entries[0].2 = raw;
    entries[1].2 = serde_json::to_vec_pretty(&serde_json::json!({ "signatures": [sig] })).unwrap();
    write_entries(&env.path().join(out), &entries);
}

pub fn read_entries(bundle: &Path) -> Entries {
    let mut a = tar::Archive::new(fs::File::open(bundle).unwrap());
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.push((e.header().clone(), e.path_bytes().into_owned(), data));
    }
    out
}

/// Write entries back as a tar, raw: names are set byte for byte (so `..` and
/// absolute paths can be written), sizes from the data unless `keep_size`.
pub fn write_entries(path: &Path, entries: &Entries) {
    let mut b = tar::Builder::new(Vec::new());
    for (h, name, data) in entries {
        let mut h = h.clone();
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..name.len()].copy_from_slice(name);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    fs::write(path, b.into_inner().unwrap()).unwrap();
}

/// A free TCP port on 127.0.0.1.
/// The blob names (hex digests) of the store at `store`, sorted.
pub fn blob_names(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Debian's `docker-registry` (the CNCF distribution registry) on
/// 127.0.0.1, stopped by PID when dropped.
pub struct Registry {
    pub port: u16,
    pub root: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl Registry {
    pub fn start() -> Registry {
        let mut r = Registry { port: free_port(), root: tempfile::tempdir().unwrap(), child: None };
        r.restart();
        r
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Start (again) on the same port and storage.
    pub fn restart(&mut self) {
        let config = self.root.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{}}}\n",
                self.root.path().join("data").display(),
                self.port
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry is needed (apt-get install docker-registry)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("docker-registry did not start on port {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The fleet fixture (real Debian binaries layered by umoci, from
/// ../shared/fixtures/make-fleet.sh), built once and cached under target/.
/// Test binaries run in parallel: a lock directory keeps it to one build.
pub fn fleet() -> PathBuf {
    let script = workspace_root().join("../shared/fixtures/make-fleet.sh");
    assert!(script.exists(), "the fleet fixture script {} is missing", script.display());
    let out = workspace_root().join("target/fleet-fixture");
    let lock = workspace_root().join("target/fleet-fixture.lock");
    fs::create_dir_all(workspace_root().join("target")).unwrap();
    let start = std::time::Instant::now();
    loop {
        match fs::create_dir(&lock) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                assert!(
                    start.elapsed().as_secs() < 900,
                    "waited 15 min for {}; remove it if stale",
                    lock.display()
                );
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => panic!("{}: {e}", lock.display()),
        }
    }
    let built = out.join("SUMMARY").exists()
        || Command::new("bash")
            .arg(&script)
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let _ = fs::remove_dir(&lock);
    assert!(built, "make-fleet.sh failed");
    out
}

/// Release `rel` (1 or 2) of the fleet fixture packed in `env` with
/// sequence `rel` into `out`, with `extra` flags (e.g. `--base`).
pub fn pack_fleet(env: &Env, rel: u32, out: &str, extra: &[&str]) -> Run {
    let (version, dir) = if rel == 1 { ("1.0.0", "v1") } else { ("1.1.0", "v2") };
    // One stack file per release and test binary: binaries run in parallel.
    let name = std::env::current_exe().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    let stack = fleet().join(format!("tender-{name}-v{rel}.yaml"));
    // Tests of one binary run on threads at once and write the same bytes
    // here: each writes its own file and renames it in, so none ever reads
    // one half written.
    let tmp = fleet().join(format!("tender-{name}-v{rel}.{:?}.tmp", std::thread::current().id()));
    fs::write(
        &tmp,
        format!(
            "name: awareness\nversion: {version}\nmanifests: [stack/{dir}/*.yaml]\n\
             sources:\n  - prefix: shore.registry.example/fleet/\n    oci-layout: layouts/\n"
        ),
    )
    .unwrap();
    fs::rename(&tmp, &stack).unwrap();
    let seq = rel.to_string();
    let mut args =
        vec!["pack", stack.to_str().unwrap(), "--key", "ci.key", "--sequence", &seq, "--out", out];
    args.extend_from_slice(extra);
    env.shore(&args)
}

/// The demo stack's release 1 images pushed (by skopeo) into the registry
/// at `host`, and `reg.yaml` in `env`: the same manifests naming that
/// registry, with no `sources`, so every image comes from it.
pub fn registry_stack(env: &Env, host: &str) {
    for (image, tag) in
        [("sensor-fusion", "1.0.0"), ("bridge-ui", "1.0.0"), ("ais-gateway", "1.0.0")]
    {
        let src = format!("oci:{}:{tag}", env.path().join("layouts/fleet").join(image).display());
        let dst = format!("docker://{host}/fleet/{image}:{tag}");
        let out = Command::new("skopeo")
            .args(["copy", "-q", "--all", "--dest-tls-verify=false", &src, &dst])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    fs::create_dir_all(env.path().join("stack/reg")).unwrap();
    for f in ["sensor-fusion.yaml", "bridge-ui.yaml"] {
        let text = fs::read_to_string(env.path().join("stack/v1").join(f)).unwrap();
        fs::write(
            env.path().join("stack/reg").join(f),
            text.replace("shore.registry.example", host),
        )
        .unwrap();
    }
    fs::write(
        env.path().join("reg.yaml"),
        "name: awareness\nversion: 1.0.0\nmanifests: [stack/reg/*.yaml]\n",
    )
    .unwrap();
}

/// A ship that pins only a root key (`root.pub`); CI keys come to it in
/// keyrings. Also makes `ci2`, `root2` and `ci3` key pairs.
pub fn rooted_env() -> Env {
    let env = Env::new();
    let id = env.shore(&["keygen", "--out", "root"]).ok().stdout.trim().to_owned();
    assert_eq!(id.len(), 64);
    let ci = fs::read_to_string(env.path().join("ci.pub")).unwrap();
    let ci_id = env.ship(&["--json", "trust", "list"]).ok().stdout;
    let ci_id: serde_json::Value = serde_json::from_str(&ci_id).unwrap();
    env.ship(&["trust", "remove", ci_id["keys"][0].as_str().unwrap()]).ok();
    assert!(!ci.is_empty());
    env.ship(&["trust", "add", "root.pub", "--root"]).ok();
    for k in ["ci2", "root2", "ci3"] {
        env.shore(&["keygen", "--out", k]).ok();
    }
    env
}

/// Release `rel` packed with `key`, sequence `seq`, carrying `keyring`.
pub fn pack_with(env: &Env, rel: u32, key: &str, seq: u64, keyring: &str, out: &str) {
    let (stack, seq) = (format!("stack-v{rel}.yaml"), seq.to_string());
    env.shore(&[
        "pack",
        &stack,
        "--key",
        key,
        "--sequence",
        &seq,
        "--keyring",
        keyring,
        "--out",
        out,
    ])
    .ok();
}

/// A tmpfs mounted by the test (as root), unmounted when dropped.
pub struct Tmpfs(pub std::path::PathBuf);

impl Tmpfs {
    pub fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs needs root");
        Tmpfs(dir.to_owned())
    }

    pub fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A second stack, `radar`, as `{file}.yaml` at `version` with `manifests`
/// (YAML text) as its one manifest file. It may name its own image
/// `shore.registry.example/radar/tracker:1.0.0` and
/// `shore.registry.example/fleet/sensor-fusion:1.0.0`, built here with
/// other content than awareness's image of that name. Returns the digest
/// of that other sensor-fusion image.
pub fn write_radar_stack(dir: &Path, file: &str, version: &str, manifests: &str) -> String {
    use oci::{Compression, ImageSpec, Types, build_image};
    let layouts = dir.join("layouts-radar");
    let spec = |content: &str| ImageSpec {
        tag: "1.0.0",
        arches: &["amd64", "arm64"],
        layers: vec![vec![("bin/app", format!("#!/bin/sh\necho {content} {{arch}}\n"))]],
        compression: Compression::Gzip,
        types: Types::Oci,
    };
    build_image(&layouts.join("radar/tracker"), &spec("tracker"));
    let hijack = build_image(&layouts.join("fleet/sensor-fusion"), &spec("not sensor fusion"));
    let mdir = dir.join("stack").join(file);
    fs::create_dir_all(&mdir).unwrap();
    fs::write(mdir.join("objects.yaml"), manifests).unwrap();
    fs::write(
        dir.join(format!("{file}.yaml")),
        format!(
            "name: radar\nversion: {version}\nmanifests: [stack/{file}/*.yaml]\n\
             sources:\n  - prefix: shore.registry.example/radar/\n    oci-layout: layouts-radar/radar/\n\
             \x20 - prefix: shore.registry.example/fleet/\n    oci-layout: layouts-radar/fleet/\n"
        ),
    )
    .unwrap();
    hijack
}

/// A Deployment `name` in `namespace` (None: written without one) running `image`.
pub fn deployment(name: &str, namespace: Option<&str>, image: &str) -> String {
    let ns = namespace.map_or(String::new(), |n| format!(", namespace: {n}"));
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}{ns}}}\nspec:\n  \
         selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    \
         spec:\n      containers:\n      - {{name: main, image: \"{image}\"}}\n"
    )
}

/// `out`: awareness 1.0.0 (sequence 1), signed by `ci.key`, whose
/// sensor-fusion image names as its amd64 manifest a 5 MiB layer of the
/// bundle: the signer may craft any descriptor. Returns that layer's digest.
pub fn big_manifest_bundle(env: &Env, out: &str) -> String {
    use oci::{Compression, ImageSpec, Types, build_image};
    let big = "weights!".repeat(5 << 17);
    build_image(
        &env.path().join("layouts-big/fleet/sensor-fusion"),
        &ImageSpec {
            tag: "1.0.0",
            arches: &["amd64"],
            layers: vec![vec![("opt/model.bin", big)]],
            compression: Compression::None,
            types: Types::Oci,
        },
    );
    fs::create_dir_all(env.path().join("stack/big")).unwrap();
    fs::write(
        env.path().join("stack/big/sf.yaml"),
        deployment(
            "sensor-fusion",
            Some("awareness"),
            "shore.registry.example/fleet/sensor-fusion:1.0.0",
        ),
    )
    .unwrap();
    fs::write(
        env.path().join("big.yaml"),
        "name: awareness\nversion: 1.0.0\nmanifests: [stack/big/*.yaml]\nplatforms: [linux/amd64]\n\
         sources:\n  - prefix: shore.registry.example/fleet/\n    oci-layout: layouts-big/fleet/\n",
    )
    .unwrap();
    env.shore(&["pack", "big.yaml", "--key", "ci.key", "--sequence", "1", "--out", out]).ok();
    let mut layer = String::new();
    resigned(env, out, "ci.key", out, |d| {
        let digest = d["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["size"].as_u64().unwrap() > 4 << 20)
            .expect("the 5 MiB layer")["digest"]
            .clone();
        layer = digest.as_str().unwrap().to_owned();
        d["images"][0]["platforms"][0]["manifest"] = digest;
    });
    layer
}
