//! Debian's real containerd, started with its own root, state and socket
//! (the CRI plugin off: nothing here runs containers).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub struct Containerd {
    pub dir: PathBuf,
    pub sock: String,
    config: PathBuf,
    child: Option<Child>,
}

impl Containerd {
    /// Start containerd in `dir` (made if missing); returns once `ctr` reaches it.
    pub fn start(dir: &Path) -> Containerd {
        fs::create_dir_all(dir).unwrap();
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
        let mut c = Containerd { dir: dir.to_owned(), sock, config, child: None };
        c.restart();
        c
    }

    /// Start it again (same root and state) after `stop`.
    pub fn restart(&mut self) {
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("containerd is needed (apt-get install containerd)");
        self.child = Some(child);
        for _ in 0..100 {
            if self.ctr(&["version"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("containerd did not start");
    }

    /// Kill it (SIGKILL: no clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `ctr --address SOCK ARGS`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .args(["--address", &self.sock])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ctr is needed: {e}"))
    }

    /// `ctr -n k8s.io ARGS`, which must succeed; its stdout.
    #[track_caller]
    pub fn k8s(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", "k8s.io"];
        a.extend_from_slice(args);
        let out = self.ctr(&a);
        assert!(out.status.success(), "ctr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The bytes of the ingests in progress (partial writes).
    pub fn ingest_bytes(&self) -> u64 {
        let ingest = self.dir.join("root/io.containerd.content.v1.content/ingest");
        let mut total = 0;
        for e in fs::read_dir(ingest).into_iter().flatten().flatten() {
            total += fs::metadata(e.path().join("data")).map(|m| m.len()).unwrap_or(0);
        }
        total
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}
