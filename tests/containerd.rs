//! `load` and `apply` straight into containerd (`--containerd SOCKET`):
//! Debian's real containerd with its own root, state and socket, read back
//! with `ctr` and `skopeo`.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::containerd::Containerd;
use support::oci::sha256;
use support::ship::Ship;
use support::{Env, SHIP};

const IMAGES: [&str; 3] = ["sensor-fusion", "bridge-ui", "ais-gateway"];

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// The raw index of the demo stack's `image:1.0.0` as the shore's layout
/// holds it (the bundle keeps every platform, so it signs this digest).
fn source_index(env: &Env, image: &str) -> (String, Value) {
    let layout = format!("oci:{}:1.0.0", env.path().join("layouts/fleet").join(image).display());
    let out = Command::new("skopeo").args(["inspect", "--raw", &layout]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (sha256(&out.stdout), json(&String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn load_into_containerd_names_every_image_twice_keeps_every_blob_and_a_second_load_writes_nothing()
{
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    let c = Containerd::start(&env.path().join("containerd"));

    let r = json(&env.ship(&["--json", "load", "awareness", "--containerd", &c.sock]).ok().stdout);
    assert!(r["push"]["blobs_pushed"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["push"]["blobs_present"], 0, "{r}");

    let names: BTreeSet<String> =
        c.k8s(&["images", "ls", "-q"]).lines().map(String::from).collect();
    let content = c.k8s(&["content", "ls", "-q"]);
    let content: BTreeSet<&str> = content.lines().collect();
    for image in IMAGES {
        let (digest, index) = source_index(&env, image);
        let repo = format!("shore.registry.example/fleet/{image}");
        assert!(names.contains(&format!("{repo}:1.0.0")), "{names:?}");
        assert!(names.contains(&format!("{repo}@{digest}")), "{names:?}");
        // Every blob of every platform: index, manifests, configs, layers.
        assert!(content.contains(digest.as_str()));
        let manifests = index["manifests"].as_array().unwrap();
        if image == "sensor-fusion" {
            assert_eq!(manifests.len(), 2, "both platforms: {index}");
        }
        for m in manifests {
            let md = m["digest"].as_str().unwrap();
            assert!(content.contains(md), "{image}: manifest {md} missing");
            let raw = c.k8s(&["content", "get", md]);
            let manifest = json(&raw);
            assert!(content.contains(manifest["config"]["digest"].as_str().unwrap()));
            for l in manifest["layers"].as_array().unwrap() {
                assert!(content.contains(l["digest"].as_str().unwrap()), "{image}: layer {l}");
            }
        }
        // Exported by containerd and read by skopeo: the digests the bundle signs.
        let tar = env.path().join(format!("{image}.tar"));
        let reference = format!("{repo}:1.0.0");
        c.k8s(&["images", "export", "--all-platforms", tar.to_str().unwrap(), &reference]);
        let archive = format!("oci-archive:{}", tar.display());
        let out = Command::new("skopeo").args(["inspect", "--raw", &archive]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(sha256(&out.stdout), digest, "{image}: the exported index");
        let copy = format!("oci:{}:x", env.path().join(format!("copy-{image}")).display());
        let out =
            Command::new("skopeo").args(["copy", "-q", "--all", &archive, &copy]).output().unwrap();
        assert!(
            out.status.success(),
            "every blob verifies: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The lease is gone, and a full collection keeps everything: the image
    // records and the GC labels reference every blob.
    assert_eq!(c.k8s(&["leases", "ls", "-q"]).trim(), "");
    let any = format!("shore.registry.example/fleet/{}:1.0.0", IMAGES[0]);
    c.k8s(&["images", "tag", &any, "example.com/gc-trigger:1"]);
    c.k8s(&["images", "rm", "--sync", "example.com/gc-trigger:1"]);
    let after = c.k8s(&["content", "ls", "-q"]);
    let after: BTreeSet<&str> = after.lines().collect();
    assert_eq!(after, content, "a collection took loaded content");

    // Again: nothing written.
    let again =
        json(&env.ship(&["--json", "load", "awareness", "--containerd", &c.sock]).ok().stdout);
    assert_eq!(again["push"]["blobs_pushed"], 0, "{again}");
    assert_eq!(again["push"]["blobs_present"], r["push"]["blobs_pushed"], "{again}");
    let text = env.ship(&["load", "awareness", "--containerd", &c.sock]).ok().stdout;
    assert!(text.contains("wrote 0 B in 0 blobs"), "{text}");
    assert!(text.contains(&c.sock), "{text}");
    let h = json(&env.ship(&["--json", "status"]).ok().stdout);
    assert_eq!(h[0]["history"][0]["outcome"], "loaded", "{h}");
}

#[test]
fn containerd_gone_names_the_socket() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    let sock = env.path().join("no-containerd.sock").display().to_string();
    env.ship(&["load", "awareness", "--containerd", &sock]).fails(1, &sock);
    // Not both ways at once.
    let r = env.ship(&["load", "awareness", "--containerd", &sock, "--registry", "x:5000"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn containerd_killed_mid_load_names_the_socket_and_a_rerun_completes() {
    let env = Env::new();
    let bundle = env.path().join("fleet.tender");
    support::pack_fleet(&env, 1, bundle.to_str().unwrap(), &[]).ok();
    env.ship(&["import", bundle.to_str().unwrap()]).ok();
    let mut c = Containerd::start(&env.path().join("containerd"));
    let child = Command::new(SHIP)
        .arg("--store")
        .arg(env.store())
        .args(["load", "awareness", "--containerd", &c.sock])
        .current_dir(env.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill containerd while a blob streams: some megabytes in an ingest.
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.ingest_bytes() < 2 << 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let partial = c.ingest_bytes();
    c.stop();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("load: containerd killed with {partial} bytes in an ingest: {}", stderr.trim());
    assert!(partial >= 2 << 20, "no big blob was seen streaming");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&c.sock), "names the socket: {stderr}");
    let st = json(&env.ship(&["--json", "status"]).ok().stdout);
    assert_eq!(st[0]["history"][0]["outcome"], "failed", "{st}");

    c.restart();
    let r = json(&env.ship(&["--json", "load", "awareness", "--containerd", &c.sock]).ok().stdout);
    assert!(r["push"]["blobs_present"].as_u64().unwrap() > 0, "what landed is kept: {r}");
    let names = c.k8s(&["images", "ls", "-q"]);
    for image in IMAGES {
        assert!(names.contains(&format!("shore.registry.example/fleet/{image}:1.0.0")), "{names}");
    }
    let check = c.k8s(&["images", "check"]);
    assert_eq!(check.matches("complete").count(), 2 * IMAGES.len(), "{check}");
}

#[test]
fn apply_containerd_pins_the_shore_repository_by_digest() {
    let s = Ship::new();
    s.env.ship(&["import", "v1.tender"]).ok();
    let c = Containerd::start(&s.env.path().join("containerd"));
    let pinned = |image: &str| {
        let (digest, _) = source_index(&s.env, image);
        format!("shore.registry.example/fleet/{image}@{digest}")
    };
    let dry = s
        .env
        .ship(&[
            "apply",
            "awareness",
            "--containerd",
            &c.sock,
            "--kubeconfig",
            "kubeconfig",
            "--dry-run",
        ])
        .ok();
    assert!(dry.stdout.contains(&pinned("sensor-fusion")), "{}", dry.stdout);
    s.env.ship(&["apply", "awareness", "--containerd", &c.sock, "--kubeconfig", "kubeconfig"]).ok();
    let reqs = s.api.take();
    let deploy = reqs
        .iter()
        .find(|p| {
            p.method == "PATCH"
                && p.path == "/apis/apps/v1/namespaces/awareness/deployments/sensor-fusion"
        })
        .unwrap_or_else(|| panic!("{reqs:#?}"));
    let body = json(&deploy.body);
    let image = body["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap();
    assert_eq!(image, pinned("sensor-fusion"));
    // The kubelet finds it under that name.
    assert!(c.k8s(&["images", "ls", "-q"]).lines().any(|l| l == image));
    assert_eq!(json(&s.env.ship(&["--json", "status"]).ok().stdout)[0]["applied"], "1.0.0");
}
