//! Layer deltas: the ship's inventory (or an earlier bundle) as the base,
//! a delta that carries only what the ship lacks, refused before any write
//! where the base is missing, and the same store as the full bundle leaves.

mod support;

use std::fs;

use support::{Env, read_entries};

fn descriptor(env: &Env, file: &str) -> serde_json::Value {
    serde_json::from_slice(&read_entries(&env.path().join(file))[0].2).unwrap()
}

/// The first blob of `d` that travels as a patch.
fn patched(d: &mut serde_json::Value) -> &mut serde_json::Value {
    d["blobs"].as_array_mut().unwrap().iter_mut().find(|b| b.get("patch").is_some()).unwrap()
}

/// Pack release 2 (sequence 2) as a delta against `base`, with `extra` flags.
fn pack_delta(env: &Env, base: &str, out: &str, extra: &[&str]) -> support::Run {
    let mut args = vec![
        "pack",
        "stack-v2.yaml",
        "--key",
        "ci.key",
        "--sequence",
        "2",
        "--base",
        base,
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    env.shore(&args)
}

#[test]
fn delta_carries_only_what_changed_and_leaves_the_same_store() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.pack(2, "ci.key", 2, "v2.tender");
    // Whole layers here; sub-layer patches have their own tests below.
    let r = pack_delta(&env, "v1.tender", "delta.tender", &["--json", "--patches", "never"]).ok();
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(report["expected_blobs"].as_u64().unwrap() > 10, "{report}");
    let full_size = fs::metadata(env.path().join("v2.tender")).unwrap().len();
    let delta_size = fs::metadata(env.path().join("delta.tender")).unwrap().len();
    assert!(delta_size < full_size, "delta {delta_size} vs full {full_size}");
    let (total, held) =
        (report["blob_bytes"].as_u64().unwrap(), report["expected_bytes"].as_u64().unwrap());
    assert!(total - held < total / 2, "carries {} of {total} blob bytes", total - held);
    let d = descriptor(&env, "delta.tender");
    assert_eq!(d["bases"][0]["version"], "1.0.0");
    let expected = d["blobs"].as_array().unwrap().iter().filter(|b| b["part"] == 0).count();
    assert_eq!(expected as u64, report["expected_blobs"].as_u64().unwrap());

    // Ship A: release 1 then the delta. Ship B: release 1 then the full release 2.
    env.ship(&["import", "v1.tender"]).ok();
    let imp: serde_json::Value =
        serde_json::from_str(&env.ship(&["--json", "import", "delta.tender"]).ok().stdout).unwrap();
    assert_eq!(imp["complete"], true, "{imp}");
    env.assert_store_sound(2);
    let other = Env::new();
    fs::copy(env.path().join("ci.pub"), other.path().join("shore.pub")).unwrap();
    other.ship(&["trust", "add", "shore.pub"]).ok();
    other.ship(&["import", env.path().join("v1.tender").to_str().unwrap()]).ok();
    other.ship(&["import", env.path().join("v2.tender").to_str().unwrap()]).ok();
    assert_eq!(env.blobs(), other.blobs());
    // And it applies like any version (dry run: nothing else is needed).
    env.ship(&["apply", "awareness", "1.1.0", "--dry-run"]).ok();

    // The full bundle and the delta are one release under one sequence:
    // whichever comes second is the version already held, on either ship,
    // and `apply PATH` of it applies the held one.
    let again: serde_json::Value =
        serde_json::from_str(&env.ship(&["--json", "import", "v2.tender"]).ok().stdout).unwrap();
    assert_eq!(again["already_imported"], true, "{again}");
    assert_eq!(again["digest"], imp["digest"], "the version held is the delta's record");
    env.ship(&["apply", "v2.tender", "--dry-run"]).ok();
    let delta = env.path().join("delta.tender");
    let on_b: serde_json::Value = serde_json::from_str(
        &other.ship(&["--json", "import", delta.to_str().unwrap()]).ok().stdout,
    )
    .unwrap();
    assert_eq!(on_b["already_imported"], true, "{on_b}");
    let listed = other.ship(&["--json", "list"]).ok().stdout;
    assert_eq!(listed.matches("\"1.1.0\"").count(), 1, "{listed}");
}

#[test]
fn delta_against_the_ships_inventory() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    env.ship(&["inventory", "--out", "inventory.json"]).ok();
    let inv: serde_json::Value =
        serde_json::from_slice(&fs::read(env.path().join("inventory.json")).unwrap()).unwrap();
    assert_eq!(inv["format"], "tender-inventory/1");
    assert_eq!(inv["blobs"].as_array().unwrap().len(), env.blobs().len());
    // The estimate first: what a satellite pull would cost, nothing written.
    let est = env
        .shore(&[
            "pack",
            "stack-v2.yaml",
            "--base",
            "inventory.json",
            "--estimate",
            "--out",
            "never.tender",
        ])
        .ok();
    assert!(est.stdout.contains("would carry"), "{}", est.stdout);
    assert!(est.stdout.contains("held"), "{}", est.stdout);
    assert!(!env.path().join("never.tender").exists());
    pack_delta(&env, "inventory.json", "delta.tender", &[]).ok();
    env.ship(&["import", "delta.tender"]).ok();
    env.assert_store_sound(2);
}

#[test]
fn delta_whose_base_is_missing_is_refused_before_any_write() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    pack_delta(&env, "v1.tender", "delta.tender", &[]).ok();
    let before = env.snapshot();
    env.ship(&["import", "delta.tender"])
        .fails(1, "import first the version(s) it was made against: awareness 1.0.0 (sequence 1)");
    assert_eq!(env.snapshot(), before, "nothing written");
    env.ship(&["import", "v1.tender"]).ok();
    env.ship(&["import", "delta.tender"]).ok();
    env.assert_store_sound(2);
}

#[test]
fn a_base_that_is_not_one_is_a_clear_error() {
    let env = Env::new();
    fs::write(env.path().join("junk.json"), "{\"format\": \"something-else\"}").unwrap();
    env.shore(&["pack", "stack-v2.yaml", "--key", "ci.key", "--base", "junk.json"])
        .fails(1, "not a bundle, descriptor or inventory");
    fs::write(env.path().join("junk.txt"), "not json at all").unwrap();
    env.shore(&["pack", "stack-v2.yaml", "--key", "ci.key", "--base", "junk.txt"])
        .fails(1, "not JSON");
}

#[test]
fn a_signed_inventory_tells_the_shore_which_ship_it_came_from() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "v1.tender");
    env.ship(&["import", "v1.tender"]).ok();
    env.ship(&["keygen"]).ok();
    let ship_pub = env.store().join("ship.pub");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(env.store().join("ship.key")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    env.ship(&["keygen"]).fails(1, "refusing to overwrite");
    env.ship(&["inventory", "--out", "inventory.json"]).ok();
    let inv: serde_json::Value =
        serde_json::from_slice(&fs::read(env.path().join("inventory.json")).unwrap()).unwrap();
    assert_eq!(inv["signatures"].as_array().unwrap().len(), 1);

    let pack = |extra: &[&str]| pack_delta(&env, "inventory.json", "d.tender", extra);
    pack(&["--ship-key", ship_pub.to_str().unwrap()]).ok();
    // Signed, but by a ship the shore was not told about.
    pack(&[]).fails(1, "inventory signature");
    env.shore(&["keygen", "--out", "other-ship"]).ok();
    pack(&["--ship-key", "other-ship.pub"]).fails(1, "no signature by a trusted key");
    // Altered after signing.
    let mut altered = inv.clone();
    altered["blobs"].as_array_mut().unwrap().pop();
    fs::write(env.path().join("inventory.json"), serde_json::to_vec(&altered).unwrap()).unwrap();
    pack(&["--ship-key", ship_pub.to_str().unwrap()]).fails(1, "does not match");
    // Not an inventory at all.
    fs::write(env.path().join("inventory.json"), r#"{"format":"tender-inventory/1","blobs":"x"}"#)
        .unwrap();
    pack(&[]).fails(1, "base inventory.json");
}

#[track_caller]
fn tool(program: &str, args: &[&str], cwd: &std::path::Path) {
    let out = std::process::Command::new(program).args(args).current_dir(cwd).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file, directory and link under `root`: path -> (mode, content).
fn tree(root: &std::path::Path) -> std::collections::BTreeMap<String, (u32, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let content = if m.file_type().is_symlink() {
                fs::read_link(&p).unwrap().to_string_lossy().as_bytes().to_vec()
            } else if m.is_file() {
                fs::read(&p).unwrap()
            } else {
                stack.push(p.clone());
                vec![]
            };
            out.insert(rel, (m.mode(), content));
        }
    }
    out
}

#[test]
fn a_sub_layer_delta_is_tiny_and_rebuilds_release_2_exactly() {
    let env = Env::new();
    let (dir, p) = (env.path(), |f: &str| env.path().join(f).to_str().unwrap().to_owned());
    support::pack_fleet(&env, 1, &p("v1.tender"), &[]).ok();
    support::pack_fleet(&env, 2, &p("v2.tender"), &[]).ok();
    support::pack_fleet(
        &env,
        2,
        &p("layer.tender"),
        &["--base", &p("v1.tender"), "--patches", "never"],
    )
    .ok();
    let r =
        support::pack_fleet(&env, 2, &p("sub.tender"), &["--json", "--base", &p("v1.tender")]).ok();
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let size = |f: &str| fs::metadata(dir.join(f)).unwrap().len();
    let (whole, layer, sub) = (size("v2.tender"), size("layer.tender"), size("sub.tender"));
    println!(
        "delta: release 1 -> 2 on the fleet: whole bundle {whole} bytes, layer delta {layer} ({:.1} %), sub-layer delta {sub} ({:.3} % of the layer delta); patches: {}",
        layer as f64 * 100.0 / whole as f64,
        sub as f64 * 100.0 / layer as f64,
        report["patches"]
    );
    assert!(sub * 100 < layer, "sub-layer delta {sub} is not under 1 % of the layer delta {layer}");
    let rows = report["patches"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["used"] == true), "{rows:?}");
    assert!(!r.stderr.contains("patch:"), "--json stays quiet: {}", r.stderr);
    // Piped, making each patch is a stage of its own in the log: what it
    // will encode, then what it did and how fast.
    let piped = support::pack_fleet(&env, 2, &p("sub2.tender"), &["--base", &p("v1.tender")]).ok();
    let patch_lines: Vec<&str> =
        piped.stderr.lines().filter(|l| l.starts_with("patch: ")).collect();
    assert!(patch_lines.iter().any(|l| l.ends_with(" to go")), "{}", piped.stderr);
    assert!(patch_lines.iter().any(|l| l.contains(" in ")), "{}", piped.stderr);

    // Aboard: release 1, then the sub-layer delta; every layer is checked
    // against its DiffID, and the store is sound.
    env.ship(&["import", "v1.tender"]).ok();
    let before = env.snapshot();
    // Without release 1's layer the delta is refused before any write.
    let bare = Env::new();
    fs::copy(dir.join("ci.pub"), bare.path().join("shore.pub")).unwrap();
    bare.ship(&["trust", "add", "shore.pub"]).ok();
    let snap = bare.snapshot();
    bare.ship(&["import", &p("sub.tender")])
        .fails(1, "import first the version(s) it was made against: awareness 1.0.0");
    assert_eq!(snap, bare.snapshot());
    assert_eq!(before, env.snapshot());
    env.ship(&["import", "sub.tender"]).ok();
    env.assert_store_sound(2);

    // Apply it (a real registry; a stand-in API server records what the
    // cluster is told), pull the pinned image with skopeo, unpack it with
    // umoci: the files are release 2's, as the shore's layout has them.
    let reg = support::Registry::start();
    let api = support::apiserver::ApiServer::start();
    fs::write(dir.join("kubeconfig"), api.kubeconfig()).unwrap();
    env.ship(&[
        "apply",
        "awareness",
        "1.1.0",
        "--registry",
        &reg.host(),
        "--kubeconfig",
        "kubeconfig",
    ])
    .ok();
    let pinned = api
        .take()
        .iter()
        .filter(|r| r.method == "PATCH")
        .find_map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).ok()?;
            let image = body["spec"]["template"]["spec"]["containers"][0]["image"].as_str()?;
            image.contains("/fleet/sensor-fusion@sha256:").then(|| image.to_owned())
        })
        .expect("the sensor-fusion Deployment was applied, pinned by digest");
    let layout = support::fleet().join("layouts/sensor-fusion");
    for arch in ["arm64", "amd64"] {
        let from_ship = format!("oci:{}:{arch}", dir.join("pulled").display());
        tool(
            "skopeo",
            &[
                "copy",
                "-q",
                "--src-tls-verify=false",
                "--override-arch",
                arch,
                &format!("docker://{pinned}"),
                &from_ship,
            ],
            dir,
        );
        let from_shore = format!("oci:{}:{arch}", dir.join("shore").display());
        tool(
            "skopeo",
            &[
                "copy",
                "-q",
                "--override-arch",
                arch,
                &format!("oci:{}:1.1.0", layout.display()),
                &from_shore,
            ],
            dir,
        );
        for (image, out) in [("pulled", "u-ship"), ("shore", "u-shore")] {
            let img = format!("{}:{arch}", dir.join(image).display());
            tool(
                "umoci",
                &["unpack", "--rootless", "--image", &img, &p(&format!("{out}-{arch}"))],
                dir,
            );
        }
        let (a, b) = (
            tree(&dir.join(format!("u-ship-{arch}/rootfs"))),
            tree(&dir.join(format!("u-shore-{arch}/rootfs"))),
        );
        assert!(a.len() > 10, "{} files", a.len());
        assert!(a == b, "{arch}: the image the ship serves differs from release 2");
    }
}

#[test]
fn a_patch_that_does_not_rebuild_its_layer_is_refused_and_nothing_of_it_kept() {
    let env = Env::new();
    let p = |f: &str| env.path().join(f).to_str().unwrap().to_owned();
    support::pack_fleet(&env, 1, &p("v1.tender"), &[]).ok();
    support::pack_fleet(&env, 2, &p("sub.tender"), &["--base", &p("v1.tender")]).ok();
    env.ship(&["import", "v1.tender"]).ok();

    // Re-sign the descriptor with the patch's base pointed at another layer
    // the ship holds: signed, well-formed, and wrong.
    let v1 = descriptor(&env, "v1.tender");
    let mut base = String::new();
    support::resigned(&env, "sub.tender", "ci.key", "bad.tender", |d| {
        let patched = patched(d);
        base = patched["patch"]["base"].as_str().unwrap().to_owned();
        let other = v1["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| {
                b["mediaType"] == patched["patch"]["baseMediaType"] && b["digest"] != base.as_str()
            })
            .unwrap();
        patched["patch"]["base"] = other["digest"].clone();
    });
    let before = env.snapshot();
    env.ship(&["import", "bad.tender"]).fails(3, "patch for layer");
    assert_eq!(before, env.snapshot(), "nothing of the image is kept");

    // The right base, but a DiffID the patch does not rebuild.
    support::resigned(&env, "sub.tender", "ci.key", "bad2.tender", |d| {
        patched(d)["digest"] = format!("sha256:{}", "0".repeat(64)).into();
    });
    env.ship(&["import", "bad2.tender"]).fails(3, "not the layer's DiffID");
    assert_eq!(before, env.snapshot(), "nothing of the image is kept");
    env.assert_store_sound(1);

    // The honest delta over a base whose copy in the store changed on disk
    // since it came in (gzip's CRC, which would have caught it, is not
    // computed): named as the store's damage, not as the patch's fault.
    let base_path = env.store().join("blobs/sha256").join(base.trim_start_matches("sha256:"));
    let good = fs::read(&base_path).unwrap();
    let mut damaged = good.clone();
    let mid = damaged.len() / 2;
    damaged[mid..mid + 4096].iter_mut().for_each(|b| *b ^= 0x5a);
    let mode = fs::metadata(&base_path).unwrap().permissions();
    fs::set_permissions(&base_path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    fs::write(&base_path, &damaged).unwrap();
    let damaged_store = env.snapshot();
    env.ship(&["import", "sub.tender"]).fails(3, "in the store is damaged");
    assert_eq!(damaged_store, env.snapshot(), "nothing of the image is kept");
    fs::write(&base_path, &good).unwrap();
    fs::set_permissions(&base_path, mode).unwrap();

    // The honest delta still imports.
    env.ship(&["import", "sub.tender"]).ok();
    env.assert_store_sound(2);
}

#[test]
fn a_patch_whose_layer_the_disk_cannot_hold_is_refused_before_any_write() {
    // A few KB of signed patch can rebuild a layer of any signed size: the
    // import checks the room for every size it will write first.
    let env = Env::new();
    let p = |f: &str| env.path().join(f).to_str().unwrap().to_owned();
    support::pack_fleet(&env, 1, &p("v1.tender"), &[]).ok();
    support::pack_fleet(&env, 2, &p("sub.tender"), &["--base", &p("v1.tender")]).ok();
    let d = descriptor(&env, "sub.tender");
    let patched: Vec<&serde_json::Value> =
        d["blobs"].as_array().unwrap().iter().filter(|b| b.get("patch").is_some()).collect();
    let rebuilt: u64 = patched.iter().map(|b| b["size"].as_u64().unwrap()).sum();
    let patches: u64 = patched.iter().map(|b| b["patch"]["size"].as_u64().unwrap()).sum();
    assert!(rebuilt > 20 * patches, "patches {patches} rebuild {rebuilt} bytes");
    let v1 = fs::metadata(env.path().join("v1.tender")).unwrap().len();
    // Room for release 1 and the patches, not for the layers they rebuild.
    let disk = support::Tmpfs::mount(
        &env.path().join("small"),
        &format!("{}k", (v1 + rebuilt / 2) / 1024),
    );
    let store = disk.0.join("store");
    let ship = |args: &[&str]| {
        let o = std::process::Command::new(support::SHIP)
            .arg("--store")
            .arg(&store)
            .args(args)
            .current_dir(env.path())
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    assert_eq!(ship(&["trust", "add", "ci.pub"]).0, Some(0));
    assert_eq!(ship(&["import", "v1.tender"]).0, Some(0));
    let blobs = support::blob_names(&store);
    let (code, stderr) = ship(&["import", "sub.tender"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not enough space for awareness 1.1.0"), "{stderr}");
    assert_eq!(support::blob_names(&store), blobs, "nothing written");
    assert_eq!(fs::read_dir(store.join("staging")).unwrap().count(), 0, "nothing staged");
    disk.resize(&format!("{}k", (v1 + rebuilt * 3) / 1024));
    assert_eq!(ship(&["import", "sub.tender"]).0, Some(0));
}

/// `mib` MiB of text in which no stretch repeats (hex of a xorshift stream).
fn unique_text(seed: u64, mib: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut s = String::with_capacity(mib << 20);
    while s.len() < mib << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
    }
    s
}

#[test]
fn a_file_grown_by_more_than_the_margin_travels_as_its_growth_alone() {
    // Release 2 grows the layer's first file by 20 MiB, moving the 12 MiB
    // file after it further than a segment and its margin (4 MiB each).
    // The shore places each segment's window where its files were in
    // release 1, so the patch carries the growth, not that file again;
    // the ship rebuilds the layer exactly.
    let env = Env::new();
    let (head, growth, tail) = (unique_text(1, 1), unique_text(2, 20), unique_text(3, 12));
    for (release, first) in [(1, head.clone()), (2, format!("{head}{growth}"))] {
        support::oci::build_image(
            &env.path().join("layouts/fleet/grow"),
            &support::oci::ImageSpec {
                tag: &format!("1.{}.0", release - 1),
                arches: &["amd64"],
                layers: vec![vec![("opt/a.bin", first), ("opt/b.bin", tail.clone())]],
                compression: support::oci::Compression::Gzip,
                types: support::oci::Types::Oci,
            },
        );
        let stack = format!("stack/r{release}");
        fs::create_dir_all(env.path().join(&stack)).unwrap();
        fs::write(
            env.path().join(format!("{stack}/pod.yaml")),
            format!("kind: Pod\nmetadata: {{name: grow}}\nspec: {{containers: [{{name: grow, image: shore.registry.example/fleet/grow:1.{}.0}}]}}\n", release - 1),
        )
        .unwrap();
        fs::write(
            env.path().join(format!("grow-{release}.yaml")),
            format!(
                "name: grow\nversion: 1.{}.0\nmanifests: [{stack}/*.yaml]\nplatforms: [linux/amd64]\n\
                 sources:\n  - prefix: shore.registry.example/fleet/\n    oci-layout: layouts/fleet/\n",
                release - 1
            ),
        )
        .unwrap();
    }
    let pack = |stack: &str, sequence: &str, out: &str, extra: &[&str]| {
        let mut args = vec!["pack", stack, "--key", "ci.key", "--sequence", sequence, "--out", out];
        args.extend_from_slice(extra);
        env.shore(&args).ok();
    };
    pack("grow-1.yaml", "1", "v1.tender", &[]);
    pack("grow-2.yaml", "2", "sub.tender", &["--base", "v1.tender"]);
    let d = descriptor(&env, "sub.tender");
    let patch = d["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|b| b.get("patch"))
        .expect("the layer travels as a patch")
        .clone();
    let windows = patch["windows"].as_array().expect("windows placed");
    println!("windows {windows:?}");
    assert_eq!(windows.len(), patch["frames"].as_array().unwrap().len());
    let growth_packed = zstd::bulk::compress(growth.as_bytes(), 3).unwrap().len() as u64;
    let tail_packed = zstd::bulk::compress(tail.as_bytes(), 3).unwrap().len() as u64;
    let size = patch["size"].as_u64().unwrap();
    println!(
        "delta: 20 MiB growth before a 12 MiB file: patch {size} bytes; growth alone {growth_packed}, the file after it {tail_packed}"
    );
    assert!(size < growth_packed + tail_packed / 4, "patch {size}, growth {growth_packed}");
    env.ship(&["import", "v1.tender"]).ok();

    // A signer's patch records that would have the ship go back in the
    // base, read past it, or read far more of it than the layer it writes
    // (a base may be any length: a zstd bomb decompresses 32,768 times),
    // or move its window far more than it writes (a margin of many
    // segments): refused as the record is read, naming the rule, before
    // any write.
    let before = env.snapshot();
    let layer_size = patched(&mut descriptor(&env, "sub.tender"))["size"].as_u64().unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let hostile: [(&str, Edit, &str); 5] = [
        (
            "back.tender",
            Box::new(|p| {
                let w = p["windows"].as_array_mut().unwrap();
                let n = w.len();
                w[n - 2] = (w[n - 1].as_u64().unwrap() + 1).into();
            }),
            "window starts go back at frame",
        ),
        (
            "past.tender",
            Box::new(|p| {
                *p["windows"].as_array_mut().unwrap().last_mut().unwrap() = u64::MAX.into()
            }),
            "is past",
        ),
        (
            "fewer.tender",
            Box::new(|p| drop(p["windows"].as_array_mut().unwrap().pop())),
            "window starts for",
        ),
        (
            "far.tender",
            Box::new(move |p| {
                p["baseSize"] = (1u64 << 45).into();
                let far = 2 * layer_size + 1;
                *p["windows"].as_array_mut().unwrap().last_mut().unwrap() = far.into();
            }),
            "twice the layer's",
        ),
        (
            "margin.tender",
            Box::new(|p| p["margin"] = (5 * p["segment"].as_u64().unwrap()).into()),
            "out of bounds",
        ),
    ];
    for (name, edit, why) in hostile {
        support::resigned(&env, "sub.tender", "ci.key", name, |d| edit(&mut patched(d)["patch"]));
        let r = env.ship(&["import", name]).fails(3, why);
        assert!(r.stderr.contains("its patch: "), "{name}: {}", r.stderr);
        assert_eq!(before, env.snapshot(), "{name}: nothing written");
    }
    // Windows in order but in the wrong places (all at the base's end,
    // where nothing is): the patch does not rebuild the layer; nothing of
    // it is kept.
    support::resigned(&env, "sub.tender", "ci.key", "moved.tender", |d| {
        let p = &mut patched(d)["patch"];
        let end = p["baseSize"].clone();
        p["windows"].as_array_mut().unwrap().iter_mut().for_each(|w| *w = end.clone());
    });
    env.ship(&["import", "moved.tender"]).fails(3, "patch for layer");
    assert_eq!(before, env.snapshot(), "nothing of the image is kept");

    env.ship(&["import", "sub.tender"]).ok();
    env.assert_store_sound(2);
}
