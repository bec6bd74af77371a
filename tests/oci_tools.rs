//! Independent OCI tools read what tender writes: every image of a bundle
//! through `skopeo` (`oci-archive:BUNDLE:REF`, REF exactly as the manifests
//! write it), unpacked by `umoci`; and the realistic fleet fixture end to end.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::{Env, read_entries};

#[track_caller]
fn tool(program: &str, args: &[&str], cwd: &Path) -> String {
    let out = Command::new(program).args(args).current_dir(cwd).output().unwrap_or_else(|e| {
        panic!("{program} is needed for this test (apt-get install skopeo umoci): {e}")
    });
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn descriptor(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&read_entries(bundle)[0].2).unwrap()
}

/// Every image: skopeo inspects it at the digest the descriptor records and
/// copies all its platforms out.
fn check_with_skopeo(bundle: &Path, work: &Path) {
    let d = descriptor(bundle);
    let b = bundle.to_str().unwrap();
    for (i, image) in d["images"].as_array().unwrap().iter().enumerate() {
        let reference = image["reference"].as_str().unwrap();
        let src = format!("oci-archive:{b}:{reference}");
        let raw = tool("skopeo", &["inspect", "--raw", &src], work);
        assert_eq!(
            support::oci::sha256(raw.as_bytes()),
            image["digest"].as_str().unwrap(),
            "{reference}"
        );
        tool("skopeo", &["inspect", &src], work);
        let dest = format!("oci:{}:img{i}", work.join("copied").display());
        tool("skopeo", &["copy", "-q", "--all", &src, &dest], work);
    }
}

#[test]
fn skopeo_and_umoci_read_every_image() {
    let env = Env::new();
    let bundle = env.pack(1, "ci.key", 1, "v1.tender");
    check_with_skopeo(&bundle, env.path());

    // One platform out, unpacked by umoci: the files are the image's.
    let b = bundle.to_str().unwrap();
    let src = format!("oci-archive:{b}:shore.registry.example/fleet/sensor-fusion:1.0.0");
    for arch in ["arm64", "amd64"] {
        let dest = format!("oci:{}:{arch}", env.path().join("single").display());
        tool("skopeo", &["copy", "-q", "--override-arch", arch, &src, &dest], env.path());
        let unpacked = env.path().join(format!("unpacked-{arch}"));
        let image = format!("{}:{arch}", env.path().join("single").display());
        tool(
            "umoci",
            &["unpack", "--rootless", "--image", &image, unpacked.to_str().unwrap()],
            env.path(),
        );
        let os_release = fs::read_to_string(unpacked.join("rootfs/etc/os-release")).unwrap();
        assert!(os_release.contains(&format!("ARCH={arch}")), "{os_release}");
        let config = fs::read_to_string(unpacked.join("rootfs/opt/fusion/config.toml")).unwrap();
        assert_eq!(config, "release = 1\n");
    }
}

#[test]
fn fleet_fixture_packs_verifies_imports_and_reads_back() {
    let fleet = support::fleet();
    let env = Env::new();
    for rel in [1, 2] {
        let stack = format!(
            "name: awareness\nversion: 1.{}.0\nmanifests: [stack/v{rel}/*.yaml]\n\
             sources:\n  - prefix: shore.registry.example/fleet/\n    oci-layout: layouts/\n",
            rel - 1
        );
        fs::write(fleet.join(format!("tender-v{rel}.yaml")), stack).unwrap();
        let out = env.path().join(format!("fleet-v{rel}.tender"));
        let stack_path = fleet.join(format!("tender-v{rel}.yaml"));
        env.shore(&[
            "pack",
            stack_path.to_str().unwrap(),
            "--key",
            "ci.key",
            "--sequence",
            &rel.to_string(),
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
        env.ship(&["verify", out.to_str().unwrap()]).ok();
        let imp: serde_json::Value = serde_json::from_str(
            &env.ship(&["--json", "import", out.to_str().unwrap()]).ok().stdout,
        )
        .unwrap();
        if rel == 2 {
            // Only sensor-fusion changed: most bytes are already held.
            assert!(imp["bytes_held"].as_u64() > imp["bytes_new"].as_u64(), "{imp}");
        }
        check_with_skopeo(&out, env.path());
        let d = descriptor(&out);
        assert_eq!(d["images"].as_array().unwrap().len(), 3);
        // ais-gateway is amd64-only; the others carry both platforms.
        for image in d["images"].as_array().unwrap() {
            let n = image["platforms"].as_array().unwrap().len();
            let want =
                if image["reference"].as_str().unwrap().contains("ais-gateway") { 1 } else { 2 };
            assert_eq!(n, want, "{image}");
        }
    }
    env.assert_store_sound(2);
}
