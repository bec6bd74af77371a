//! `tender-shore pack` reading images from a real registry (Debian's
//! `docker-registry`, filled by `skopeo`) for references no `sources` entry
//! covers.

mod support;

use std::fs;
use std::process::Command;

use support::{Env, Registry, read_entries};

fn images(bundle: &std::path::Path) -> Vec<(String, String)> {
    let d: serde_json::Value = serde_json::from_slice(&read_entries(bundle)[0].2).unwrap();
    let mut v: Vec<(String, String)> = d["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let r = i["reference"].as_str().unwrap();
            (r.rsplit('/').next().unwrap().to_string(), i["digest"].as_str().unwrap().to_string())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn pack_from_registry_equals_pack_from_layouts() {
    let env = Env::new();
    let mut registry = Registry::start();
    let host = registry.host();
    // The same manifests, naming the registry; no sources: all from the registry.
    support::registry_stack(&env, &host);
    env.shore(&["pack", "reg.yaml", "--key", "ci.key", "--sequence", "1", "--out", "reg.tender"])
        .ok();
    // Each image is carried at the digest the registry serves for its tag.
    for (name, digest) in images(&env.path().join("reg.tender")) {
        let raw = Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{host}/fleet/{name}"),
            ])
            .output()
            .unwrap();
        assert!(raw.status.success());
        assert_eq!(support::oci::sha256(&raw.stdout), digest, "{name}");
    }
    // Where skopeo kept the bytes (the OCI images), the bundle equals one packed from the layouts.
    let from_layouts = images(&env.pack(1, "ci.key", 1, "layouts.tender"));
    let from_registry = images(&env.path().join("reg.tender"));
    assert_eq!(from_layouts[1..], from_registry[1..]);
    env.ship(&["verify", "reg.tender"]).ok();
    env.ship(&["import", "reg.tender"]).ok();
    let leftovers: Vec<_> = fs::read_dir(env.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tender-fetch"))
        .collect();
    assert!(leftovers.is_empty(), "the fetch cache is removed");

    // The registry gone: a clear error naming the image, no bundle written.
    registry.stop();
    let r = env.shore(&["pack", "reg.yaml", "--key", "ci.key", "--out", "down.tender"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{host}/fleet/")), "{}", r.stderr);
    assert!(r.stderr.contains("attempts"), "{}", r.stderr);
    assert!(!env.path().join("down.tender").exists());
}
