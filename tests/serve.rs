//! `tender-ship serve`: a read-only registry over the store, read by real
//! clients: `skopeo copy` and containerd's `ctr` (containerd started here
//! with its own root, state and socket).

mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

fn containerd(dir: &Path) -> (Killed, String) {
    let sock = dir.join("containerd.sock").display().to_string();
    let config = dir.join("config.toml");
    fs::write(
        &config,
        format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{1}\"\n",
            dir.display(),
            sock
        ),
    )
    .unwrap();
    let child = Command::new("containerd")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("containerd is needed (apt-get install containerd)");
    let child = Killed(child);
    for _ in 0..100 {
        if run("ctr", &["--address", &sock, "version"]).status.success() {
            return (child, sock);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("containerd did not start");
}

#[test]
fn ctr_pulls_from_serve() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    let (_server, addr) = serve(&env);
    let cdir = env.path().join("containerd");
    fs::create_dir_all(&cdir).unwrap();
    let (_containerd, sock) = containerd(&cdir);
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
