//! Sneakernet media: a bundle split into parts that each verify on their
//! own, imported in any order across runs and from a directory (a mounted
//! stick), with what is missing reported.

mod support;

use std::fs;
use std::path::PathBuf;

use support::{Env, read_entries, write_entries};

/// Pack release 1 split into exactly three parts; returns their paths.
fn three_parts(env: &Env) -> Vec<PathBuf> {
    for kib in 20..200 {
        let split = format!("{kib}K");
        let r = env.shore(&[
            "--json",
            "pack",
            "stack-v1.yaml",
            "--key",
            "ci.key",
            "--sequence",
            "1",
            "--split",
            &split,
            "--out",
            "v1.tender",
        ]);
        if r.code != 0 {
            continue; // too small for a part's own overhead
        }
        let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let files: Vec<PathBuf> = report["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| PathBuf::from(f.as_str().unwrap()))
            .collect();
        for f in &files {
            assert!(
                fs::metadata(env.path().join(f)).unwrap().len() <= (kib << 10),
                "{} exceeds {split}",
                f.display()
            );
        }
        if files.len() == 3 {
            return files.iter().map(|f| env.path().join(f)).collect();
        }
        for f in files {
            fs::remove_file(env.path().join(f)).unwrap();
        }
    }
    panic!("no split size gives three parts");
}

fn status(env: &Env) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&env.ship(&["--json", "status"]).ok().stdout).unwrap()
        [0]["versions"][0]
        .clone()
}

#[test]
fn parts_verify_alone_and_import_in_any_order_across_runs() {
    let env = Env::new();
    let parts = three_parts(&env);
    for p in &parts {
        assert!(
            p.to_string_lossy().ends_with(&format!(
                ".tender.00{}",
                parts.iter().position(|x| x == p).unwrap() + 1
            ))
        );
        env.ship(&["verify", p.to_str().unwrap()]).ok();
    }
    let out = env.ship(&["import", parts[2].to_str().unwrap()]).ok();
    assert!(out.stdout.contains("awareness 1.0.0 part 3 of 3"), "{}", out.stdout);
    assert!(out.stdout.contains("1 of 3 parts"), "{}", out.stdout);
    let st = status(&env);
    assert_eq!(st["complete"], false);
    assert_eq!(st["parts_missing"], serde_json::json!([1, 2]));
    assert!(st["bytes_missing"].as_u64().unwrap() > 0);
    env.ship(&["apply", "awareness", "1.0.0", "--dry-run"]).fails(1, "not complete");

    env.ship(&["import", parts[0].to_str().unwrap()]).ok();
    assert_eq!(status(&env)["parts_missing"], serde_json::json!([2]));
    let out = env.ship(&["import", parts[1].to_str().unwrap()]).ok();
    assert!(out.stdout.contains("complete (3 parts)"), "{}", out.stdout);
    assert_eq!(status(&env)["complete"], true);
    env.assert_store_sound(1);

    // Every blob the signed descriptor lists, and nothing else.
    let d: serde_json::Value = serde_json::from_slice(&read_entries(&parts[0])[0].2).unwrap();
    let mut want: Vec<_> = d["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap()[7..].to_string())
        .collect();
    want.sort();
    assert_eq!(env.blobs(), want);
}

#[test]
fn directory_import_reports_what_is_missing() {
    let env = Env::new();
    let parts = three_parts(&env);
    let stick = env.path().join("usb");
    fs::create_dir(&stick).unwrap();
    for i in [0, 2] {
        fs::copy(&parts[i], stick.join(parts[i].file_name().unwrap())).unwrap();
    }
    let before: Vec<_> = fs::read_dir(&stick)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().modified().unwrap())
        .collect();
    let out = env.ship(&["import", stick.to_str().unwrap()]).ok();
    assert!(out.stdout.contains("awareness 1.0.0: 2 of 3 parts,"), "{}", out.stdout);
    assert!(out.stdout.contains("missing"), "{}", out.stdout);
    let after: Vec<_> = fs::read_dir(&stick)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().modified().unwrap())
        .collect();
    assert_eq!(before, after, "import never writes to the stick");
    assert_eq!(fs::read_dir(&stick).unwrap().count(), 2);
    let text = env.ship(&["status"]).ok().stdout;
    assert!(text.contains("INCOMPLETE") && text.contains("part(s) 2 of 3"), "{text}");
}

#[test]
fn a_stick_sorted_into_folders_is_walked_and_reported_per_version() {
    let env = Env::new();
    let parts = three_parts(&env);
    let v2 = env.pack(2, "ci.key", 2, "v2.tender");
    let stick = env.path().join("usb");
    let put = |from: &PathBuf, to: &str| {
        let to = stick.join(to);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(from, to).unwrap();
    };
    put(&parts[0], "awareness/2026-10/awareness-1.0.0.tender.001");
    put(&parts[2], "awareness/2026-11/late/awareness-1.0.0.tender.003");
    put(&v2, "awareness/2026-12/awareness-1.1.0.tender");
    // What a stick also holds: its trash, and a link back to its top.
    put(&parts[1], ".Trashes/501/awareness-1.0.0.tender.002");
    std::os::unix::fs::symlink(&stick, stick.join("awareness/top")).unwrap();
    let out = env.ship(&["import", stick.to_str().unwrap()]).ok();
    assert!(out.stdout.contains("imported awareness 1.1.0 (sequence 2)"), "{}", out.stdout);
    assert!(out.stdout.contains("awareness 1.0.0: 2 of 3 parts,"), "{}", out.stdout);
    let at = |needle: &str| {
        out.stdout.find(needle).unwrap_or_else(|| panic!("{needle}: {}", out.stdout))
    };
    let order = [
        at("imported awareness 1.0.0 part 1 of 3"),
        at("imported awareness 1.0.0 part 3 of 3"),
        at("imported awareness 1.1.0"),
    ];
    assert!(order.is_sorted(), "depth first, in name order: {}", out.stdout);
    assert!(!out.stdout.contains("part 2 of 3"), "the trash left alone: {}", out.stdout);
}

#[test]
fn corrupted_part_is_refused_while_the_others_blobs_stay() {
    let env = Env::new();
    let parts = three_parts(&env);
    let stick = env.path().join("usb");
    fs::create_dir(&stick).unwrap();
    for p in &parts {
        fs::copy(p, stick.join(p.file_name().unwrap())).unwrap();
    }
    let bad = stick.join(parts[1].file_name().unwrap());
    let mut entries = read_entries(&bad);
    let last = entries.len() - 1;
    let n = entries[last].2.len();
    entries[last].2[n / 2] ^= 0x04;
    write_entries(&bad, &entries);
    let r = env.ship(&["import", stick.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(".tender.002") && r.stderr.contains("digest mismatch"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("2 of 3 parts"), "parts 1 and 3 went in: {}", r.stdout);
    let st = status(&env);
    assert_eq!(st["parts_missing"], serde_json::json!([2]));
    // The good part 2 completes it.
    env.ship(&["import", parts[1].to_str().unwrap()]).ok();
    assert_eq!(status(&env)["complete"], true);
    env.assert_store_sound(1);
}

#[test]
fn a_blob_from_another_part_is_refused() {
    let env = Env::new();
    let parts = three_parts(&env);
    let mut one = read_entries(&parts[0]);
    let three = read_entries(&parts[2]);
    one.push(three.last().unwrap().clone());
    write_entries(&env.path().join("mixed.tender"), &one);
    env.ship(&["verify", "mixed.tender"]).fails(3, "descriptor puts it in part 3");
}

#[test]
fn a_blob_larger_than_a_part_travels_in_chunks() {
    let env = Env::new();
    // The largest blob of the demo stack; find a split that must chunk it.
    env.pack(1, "ci.key", 1, "whole.tender");
    let d: serde_json::Value =
        serde_json::from_slice(&read_entries(&env.path().join("whole.tender"))[0].2).unwrap();
    let largest =
        d["blobs"].as_array().unwrap().iter().max_by_key(|b| b["size"].as_u64()).unwrap().clone();
    let mut chunked = None;
    for bytes in (16 << 10..64 << 10).step_by(256) {
        let split = bytes.to_string();
        let r = env.shore(&[
            "--json",
            "pack",
            "stack-v1.yaml",
            "--key",
            "ci.key",
            "--sequence",
            "1",
            "--split",
            &split,
            "--out",
            "c.tender",
        ]);
        if r.code != 0 {
            continue;
        }
        let files: Vec<String> =
            serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
        let desc: serde_json::Value =
            serde_json::from_slice(&read_entries(&env.path().join(&files[0]))[0].2).unwrap();
        let big = desc["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["digest"] == largest["digest"])
            .unwrap()
            .clone();
        if big["chunks"].as_array().is_some_and(|c| c.len() >= 2) {
            for f in &files {
                assert!(
                    fs::metadata(env.path().join(f)).unwrap().len() <= bytes,
                    "{f} exceeds {split}"
                );
            }
            chunked = Some(files);
            break;
        }
        for f in files {
            fs::remove_file(env.path().join(f)).unwrap();
        }
    }
    let files = chunked.expect("some split chunks the largest blob");
    // Every part verifies alone; import them last to first.
    for f in &files {
        env.ship(&["verify", f]).ok();
    }
    for (i, f) in files.iter().rev().enumerate() {
        env.ship(&["import", f]).ok();
        let fsck = env.ship(&["fsck"]).ok();
        assert!(fsck.stdout.contains("store is clean") || i + 1 < files.len(), "{}", fsck.stdout);
    }
    assert_eq!(status(&env)["complete"], true);
    env.assert_store_sound(1);
    let blob = env.store().join("blobs/sha256").join(&largest["digest"].as_str().unwrap()[7..]);
    assert_eq!(fs::metadata(blob).unwrap().len(), largest["size"].as_u64().unwrap());
    assert!(
        !env.store()
            .join("staging/chunks")
            .join(&largest["digest"].as_str().unwrap()[7..])
            .exists()
    );
}

/// A stack of one image whose layer (about 300 KiB, uncompressed, no two
/// 64 KiB stretches alike) is larger than a 64K or 100K part.
fn big_layer_stack(env: &Env) {
    let content: String = (0..34_000).map(|i| format!("{i:08}\n")).collect();
    support::oci::build_image(
        &env.path().join("layouts/fleet/big"),
        &support::oci::ImageSpec {
            tag: "1.0.0",
            arches: &["amd64"],
            layers: vec![vec![("data/numbers", content)]],
            compression: support::oci::Compression::None,
            types: support::oci::Types::Oci,
        },
    );
    fs::create_dir_all(env.path().join("stack/big")).unwrap();
    fs::write(
        env.path().join("stack/big/pod.yaml"),
        "kind: Pod\nmetadata: {name: big}\nspec: {containers: [{name: big, image: shore.registry.example/fleet/big:1.0.0}]}\n",
    )
    .unwrap();
    fs::write(
        env.path().join("big.yaml"),
        "name: big\nversion: 1.0.0\nmanifests: [stack/big/*.yaml]\nplatforms: [linux/amd64]\n\
         sources:\n  - prefix: shore.registry.example/fleet/\n    oci-layout: layouts/fleet/\n",
    )
    .unwrap();
}

/// `big.yaml` packed with `--split split` and `sequence` into `out`: its
/// parts, and the part carrying the last chunk of the chunked blob.
fn split_big(env: &Env, split: &str, sequence: u64, out: &str) -> (Vec<String>, u64) {
    let seq = sequence.to_string();
    let r = env
        .shore(&[
            "--json",
            "pack",
            "big.yaml",
            "--key",
            "ci.key",
            "--sequence",
            &seq,
            "--split",
            split,
            "--out",
            out,
        ])
        .ok();
    let files: Vec<String> = serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let d: serde_json::Value =
        serde_json::from_slice(&read_entries(&env.path().join(&files[0]))[0].2).unwrap();
    let chunked: Vec<_> = d["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["chunks"].as_array().is_some_and(|c| c.len() >= 2))
        .collect();
    assert_eq!(chunked.len(), 1, "one blob chunked at {split}: {d}");
    let last = chunked[0]["chunks"].as_array().unwrap().last().unwrap()["part"].as_u64().unwrap();
    (files, last)
}

#[test]
fn a_blob_split_two_ways_takes_only_its_own_chunks() {
    // Some parts of one split (leaving chunks staged), then every part of
    // another split of the same blob: a staged chunk of the first split at
    // the same offset must not stand in for the second's.
    for (first, second) in [("64K", "100K"), ("100K", "64K")] {
        let env = Env::new();
        big_layer_stack(&env);
        let (a, a_last) = split_big(&env, first, 1, "a.tender");
        let (b, _) = split_big(&env, second, 2, "b.tender");
        for (i, f) in a.iter().enumerate() {
            if i as u64 + 1 != a_last {
                env.ship(&["import", f]).ok();
            }
        }
        let staged = fs::read_dir(env.store().join("staging/chunks")).unwrap().count();
        assert_eq!(staged, 1, "the chunked blob waits for its last chunk");
        for f in &b {
            env.ship(&["import", f]).ok();
        }
        let st: serde_json::Value =
            serde_json::from_str(&env.ship(&["--json", "status"]).ok().stdout).unwrap();
        // Both splits are records of their own (their descriptors differ),
        // and both are whole now.
        for v in st[0]["versions"].as_array().unwrap() {
            assert_eq!(v["complete"], true, "{first} then {second}: {st}");
        }
        env.assert_store_sound(2);
    }
}
