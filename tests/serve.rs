//! `tender-ship serve`: a read-only registry over the store, read by real
//! clients: `skopeo copy` and containerd's `ctr` (containerd started here
//! with its own root, state and socket).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use support::containerd::Containerd;
use support::{Env, SHIP};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `serve` on a free port; returns the process and its address.
fn serve(env: &Env) -> (Killed, String) {
    let mut child = Command::new(SHIP)
        .arg("--store")
        .arg(env.store())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    (Killed(child), addr)
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} is needed: {e}"))
}

#[test]
fn skopeo_copies_from_serve_and_writes_are_refused() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    let (_server, addr) = serve(&env);
    let dest = format!("oci:{}:x", env.path().join("copied").display());
    for image in ["sensor-fusion", "bridge-ui", "ais-gateway"] {
        let src = format!("docker://{addr}/fleet/{image}:1.0.0");
        let out = run("skopeo", &["copy", "-q", "--all", "--src-tls-verify=false", &src, &dest]);
        assert!(out.status.success(), "{image}: {}", String::from_utf8_lossy(&out.stderr));
        let out = run("skopeo", &["inspect", "--tls-verify=false", &src]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Pushing to it is refused: it is read-only.
    let push = run(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &dest,
            &format!("docker://{addr}/fleet/other:1"),
        ],
    );
    assert!(!push.status.success());
    // Only what a complete version holds is served.
    let out = run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{addr}/fleet/sensor-fusion:9.9.9"),
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn ctr_pulls_from_serve() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    let (_server, addr) = serve(&env);
    let containerd = Containerd::start(&env.path().join("containerd"));
    let sock = containerd.sock.clone();
    let image = format!("{addr}/fleet/sensor-fusion:1.0.0");
    let out = run(
        "ctr",
        &["--address", &sock, "images", "pull", "--plain-http", "--all-platforms", &image],
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ls = run("ctr", &["--address", &sock, "images", "ls", "-q"]);
    assert!(String::from_utf8_lossy(&ls.stdout).contains(&image));
    let check = run("ctr", &["--address", &sock, "images", "check"]);
    let check = String::from_utf8_lossy(&check.stdout);
    assert!(check.contains("complete"), "{check}");
}

/// `GET http://addr/path`: (status, Docker-Content-Digest).
fn get(addr: &str, path: &str) -> (u16, Option<String>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    s.read_to_end(&mut head).unwrap();
    let text = String::from_utf8_lossy(&head);
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let digest = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("docker-content-digest: ")
                .or_else(|| l.strip_prefix("Docker-Content-Digest: "))
        })
        .map(|d| d.trim().to_string());
    (status, digest)
}

#[test]
fn serve_resolves_a_tag_only_within_the_stack_that_owns_the_repository() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    let tag = "/v2/fleet/sensor-fusion/manifests/1.0.0";
    let awareness = {
        let (_server, addr) = serve(&env);
        let (status, digest) = get(&addr, tag);
        assert_eq!(status, 200);
        digest.unwrap()
    };
    // radar, with a higher sequence, names the same repository and tag.
    let hijack = support::write_radar_stack(
        env.path(),
        "radar",
        "1.0.0",
        &support::deployment(
            "tracker",
            Some("radar"),
            "shore.registry.example/fleet/sensor-fusion:1.0.0",
        ),
    );
    env.shore(&[
        "pack",
        "radar.yaml",
        "--key",
        "ci.key",
        "--sequence",
        "9",
        "--out",
        "radar.tender",
    ])
    .ok();
    env.ship(&["import", "radar.tender"]).ok();
    {
        // No stack has loaded it: two name it, so the tag resolves to neither.
        let (_server, addr) = serve(&env);
        assert_eq!(get(&addr, tag).0, 404);
        assert_eq!(get(&addr, "/v2/fleet/sensor-fusion/tags/list").0, 404);
        // A repository only awareness names is still its own.
        assert_eq!(get(&addr, "/v2/fleet/bridge-ui/manifests/1.0.0").0, 200);
    }
    // awareness loads it into the ship's registry: it owns the repository.
    let registry = support::Registry::start();
    env.ship(&["load", "awareness", "--registry", &registry.host()]).ok();
    let (_server, addr) = serve(&env);
    let (status, digest) = get(&addr, tag);
    assert_eq!((status, digest.as_deref()), (200, Some(awareness.as_str())));
    assert_ne!(awareness, hijack);
    assert_eq!(get(&addr, &format!("/v2/fleet/sensor-fusion/manifests/{hijack}")).0, 404);
}

#[test]
fn serve_does_not_serve_a_manifest_larger_than_the_import_bound() {
    let env = Env::new();
    let big = support::big_manifest_bundle(&env, "big.tender");
    env.ship(&["import", "big.tender"]).ok();
    let (_server, addr) = serve(&env);
    assert_eq!(get(&addr, &format!("/v2/fleet/sensor-fusion/manifests/{big}")).0, 404);
}

#[test]
fn serve_does_not_serve_a_version_only_a_revoked_key_signed() {
    let env = support::rooted_env();
    env.shore(&["keyring", "init", "--root", "root.pub", "--out", "kr.json"]).ok();
    for k in ["ci.pub", "ci2.pub"] {
        env.shore(&["keyring", "add-signer", "kr.json", k, "--stacks", "awareness"]).ok();
    }
    env.shore(&["keyring", "sign", "kr.json", "--key", "root.key"]).ok();
    support::pack_with(&env, 1, "ci2.key", 1, "kr.json", "v1.tender");
    support::pack_with(&env, 2, "ci.key", u64::MAX, "kr.json", "stolen.tender");
    env.ship(&["import", "v1.tender"]).ok();
    env.ship(&["import", "stolen.tender"]).ok();
    let tag = "/v2/fleet/sensor-fusion/manifests/1.1.0";
    {
        let (_serve, addr) = serve(&env);
        assert_eq!(get(&addr, tag).0, 200, "before the revocation");
    }
    let pem = std::fs::read_to_string(env.path().join("ci.pub")).unwrap();
    let ci = tender_keys::PublicKey::from_pem(&pem).unwrap().key_id().to_string();
    env.shore(&["keyring", "revoke", "kr.json", &ci]).ok();
    env.shore(&["keyring", "sign", "kr.json", "--key", "root.key"]).ok();
    env.ship(&["trust", "keyring", "kr.json"]).ok();
    let (_serve, addr) = serve(&env);
    assert_eq!(get(&addr, tag).0, 404, "the revoked key's version is not served");
    assert_eq!(get(&addr, "/v2/fleet/sensor-fusion/manifests/1.0.0").0, 200);
}

/// A ship whose registry is `serve`: `apply --served-by` pins the images
/// at serve's address, pushes nothing, and rollback works the same way.
#[test]
fn apply_served_by_pins_at_serve_and_pushes_nothing() {
    let s = support::ship::Ship::new();
    s.env.ship(&["import", "v1.tender"]).ok();
    let (_server, addr) = serve(&s.env);
    let served = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--served-by", &addr, "--kubeconfig", "kubeconfig"]);
        s.env.ship(&a)
    };
    let dry = served(&["apply", "awareness", "--dry-run"]).ok();
    assert!(
        dry.stderr.contains(&format!(
            "serve shore.registry.example/fleet/sensor-fusion:1.0.0 -> {addr}/fleet/sensor-fusion@sha256:"
        )),
        "{}",
        dry.stderr
    );
    let r = served(&["apply", "awareness"]).ok();
    assert!(r.stdout.contains("pushed 0 B in 0 blobs"), "{}", r.stdout);
    let reqs = s.api.take();
    let deploy = reqs
        .iter()
        .find(|p| {
            p.method == "PATCH"
                && p.path == "/apis/apps/v1/namespaces/awareness/deployments/sensor-fusion"
        })
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&deploy.body).unwrap();
    let image = body["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap();
    assert!(image.starts_with(&format!("{addr}/fleet/sensor-fusion@sha256:")), "{image}");
    assert!(support::ship::skopeo_inspect(image), "serve resolves the pinned image");
    assert!(
        !support::ship::skopeo_inspect(&format!("{}/fleet/sensor-fusion:1.0.0", s.registry.host())),
        "nothing pushed to a registry"
    );
    // An upgrade and a rollback, the same way.
    s.env.ship(&["import", "v2.tender"]).ok();
    served(&["apply", "awareness"]).ok();
    assert_eq!(s.status()[0]["applied"], "1.1.0");
    served(&["rollback", "awareness"]).ok();
    assert_eq!(s.status()[0]["applied"], "1.0.0");
    // The flag does not mix with a registry or containerd.
    served(&["apply", "awareness", "--registry", "localhost:5000"]).fails(2, "cannot be used");
    // A version the store does not hold whole is refused before any change.
    for e in std::fs::read_dir(s.env.store().join("blobs/sha256")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    s.api.take();
    served(&["apply", "awareness", "1.0.0"]).fails(1, "is not complete");
    assert!(!s.api.take().iter().any(|r| r.method != "GET"), "nothing applied");
}
