//! One fixture per failure mode. Each ends with a non-zero exit, a clear
//! message, and a store holding nothing new but complete, verified blobs: no
//! version recorded, no trust changed.

mod support;

use std::fs;

use support::{Entries, Env, read_entries, write_entries};

const VERIFY_FAILED: i32 = 3;

/// Pack release 1, apply `tamper` to its entries, write `bad.tender`.
fn tampered(env: &Env, tamper: impl FnOnce(&mut Entries)) {
    let bundle = env.pack(1, "ci.key", 1, "good.tender");
    let mut entries = read_entries(&bundle);
    tamper(&mut entries);
    write_entries(&env.path().join("bad.tender"), &entries);
}

/// `verify` and `import` of bad.tender both fail with `needle`; the store is untouched
/// (`untouched`) or holds only verified blobs.
#[track_caller]
fn refused(env: &Env, code: i32, needle: &str, untouched: bool) {
    let before = env.snapshot();
    env.ship(&["verify", "bad.tender"]).fails(code, needle);
    assert_eq!(env.snapshot(), before, "verify writes nothing");
    env.ship(&["import", "bad.tender"]).fails(code, needle);
    if untouched {
        assert_eq!(env.snapshot(), before, "nothing written");
    }
    env.assert_store_sound(0);
    // And the good bundle still imports over whatever was kept.
    env.ship(&["import", "good.tender"]).ok();
    env.assert_store_sound(1);
}

#[test]
fn unknown_key_is_refused_before_any_write() {
    let env = Env::new();
    env.shore(&["keygen", "--out", "stranger"]).ok();
    env.pack(1, "stranger.key", 1, "bad.tender");
    env.pack(1, "ci.key", 1, "good.tender");
    refused(&env, VERIFY_FAILED, "no signature by a trusted key", true);
}

#[test]
fn signature_that_does_not_match() {
    let env = Env::new();
    // A real signature by the trusted key, over another descriptor.
    let other = env.pack(2, "ci.key", 5, "other.tender");
    let other_sigs = read_entries(&other)[1].2.clone();
    tampered(&env, |e| e[1].2 = other_sigs);
    refused(&env, VERIFY_FAILED, "does not match", true);
}

#[test]
fn flipped_byte_in_descriptor() {
    let env = Env::new();
    tampered(&env, |e| {
        let d = &mut e[0].2;
        let i = d.len() / 2;
        d[i] ^= 0x01;
    });
    refused(&env, VERIFY_FAILED, "signature", true);
}

#[test]
fn flipped_byte_in_kubernetes_manifest() {
    let env = Env::new();
    let yaml = fs::read(env.path().join("stack/v1/bridge-ui.yaml")).unwrap();
    tampered(&env, |e| {
        let i = e.iter().position(|(_, _, d)| *d == yaml).unwrap();
        e[i].2[10] ^= 0x20;
    });
    refused(&env, VERIFY_FAILED, "digest mismatch", false);
}

#[test]
fn flipped_byte_in_layer() {
    let env = Env::new();
    tampered(&env, |e| {
        // The largest blob is a layer (the model file).
        let i = (4..e.len()).max_by_key(|&i| e[i].2.len()).unwrap();
        let n = e[i].2.len();
        e[i].2[n - 3] ^= 0x80;
    });
    refused(&env, VERIFY_FAILED, "digest mismatch", false);
}

#[test]
fn blob_not_listed_in_descriptor() {
    let env = Env::new();
    tampered(&env, |e| {
        let mut h = e[4].0.clone();
        let data = b"smuggled".to_vec();
        let name = format!("blobs/sha256/{}", &support::oci::sha256(&data)[7..]).into_bytes();
        h.set_size(data.len() as u64);
        e.insert(5, (h, name, data));
    });
    refused(&env, VERIFY_FAILED, "not listed in the signed descriptor", false);
}

#[test]
fn entry_with_dot_dot() {
    let env = Env::new();
    tampered(&env, |e| e[4].1 = b"blobs/sha256/../../../etc/passwd".to_vec());
    refused(&env, VERIFY_FAILED, "unexpected entry", false);
}

#[test]
fn entry_with_absolute_path() {
    let env = Env::new();
    tampered(&env, |e| e[2].1 = b"/oci-layout".to_vec());
    refused(&env, VERIFY_FAILED, "unexpected entry", true);
}

#[test]
fn symlink_entry() {
    let env = Env::new();
    tampered(&env, |e| {
        let (h, _, d) = &mut e[5];
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_link_name("/etc/shadow").unwrap();
        d.clear();
    });
    refused(&env, VERIFY_FAILED, "symlink", false);
}

#[test]
fn hard_link_entry() {
    let env = Env::new();
    tampered(&env, |e| {
        let (h, _, d) = &mut e[3];
        h.set_entry_type(tar::EntryType::Link);
        h.set_link_name("oci-layout").unwrap();
        d.clear();
    });
    refused(&env, VERIFY_FAILED, "hard link", true);
}

#[test]
fn descriptor_over_the_limit_is_refused_unread() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "good.tender");
    // A header claiming a 1 GiB descriptor, and no data behind it: refused
    // from the header alone, in bounded memory.
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_path("tender/descriptor.json").unwrap();
    h.set_size(1 << 30);
    h.set_cksum();
    fs::write(env.path().join("bad.tender"), h.as_bytes()).unwrap();
    refused(&env, VERIFY_FAILED, "more than the limit", true);
}

#[test]
fn blob_before_descriptor_is_refused() {
    let env = Env::new();
    tampered(&env, |e| e.swap(0, 6));
    refused(&env, VERIFY_FAILED, "expected tender/descriptor.json", true);
}

#[test]
fn duplicate_blob_entry() {
    let env = Env::new();
    tampered(&env, |e| {
        let dup = e[5].clone();
        e.push(dup);
    });
    refused(&env, VERIFY_FAILED, "appears twice", false);
}

#[test]
fn truncated_anywhere_keeps_only_verified_blobs_and_rerun_completes() {
    let env = Env::new();
    let bundle = env.pack(1, "ci.key", 1, "good.tender");
    let bytes = fs::read(&bundle).unwrap();
    // A stick pulled out mid-import: the reader sees a short file.
    let cuts: Vec<usize> =
        (1..40).map(|i| bytes.len() * i / 40).chain([512, 1024, bytes.len() - 1024]).collect();
    for cut in cuts {
        fs::write(env.path().join("bad.tender"), &bytes[..cut]).unwrap();
        let r = env.ship(&["import", "bad.tender"]);
        assert_ne!(r.code, 0, "cut at {cut} of {} accepted", bytes.len());
        assert!(!r.stderr.is_empty());
        env.assert_store_sound(0);
    }
    env.ship(&["import", "good.tender"]).ok();
    env.assert_store_sound(1);
}

#[test]
fn stack_file_that_is_not_yaml() {
    let env = Env::new();
    fs::write(env.path().join("bad.yaml"), "name: [unclosed\n  version: {").unwrap();
    env.shore(&["pack", "bad.yaml", "--key", "ci.key"]).fails(1, "not a valid stack file");
}

#[test]
fn stack_file_naming_no_manifests() {
    let env = Env::new();
    fs::write(env.path().join("empty.yaml"), "name: awareness\nversion: 1.0.0\n").unwrap();
    env.shore(&["pack", "empty.yaml", "--key", "ci.key"]).fails(1, "names no manifests");
    fs::write(
        env.path().join("nomatch.yaml"),
        "name: awareness\nversion: 1.0.0\nmanifests: [nope/*.yaml]\n",
    )
    .unwrap();
    env.shore(&["pack", "nomatch.yaml", "--key", "ci.key"]).fails(1, "matches no file");
}

#[test]
fn manifest_that_is_not_yaml() {
    let env = Env::new();
    fs::write(env.path().join("stack/v1/broken.yaml"), "kind: Deployment\nspec: [unclosed\n")
        .unwrap();
    env.shore(&["pack", "stack-v1.yaml", "--key", "ci.key"]).fails(1, "broken.yaml");
}

#[test]
fn image_that_no_source_supplies_names_file_and_reference() {
    let env = Env::new();
    fs::write(
        env.path().join("stack/v1/extra.yaml"),
        "kind: Pod\nspec: {containers: [{name: x, image: other.example/x:1}]}\n",
    )
    .unwrap();
    let r = env.shore(&["pack", "stack-v1.yaml", "--key", "ci.key"]).fails(1, "other.example/x:1");
    assert!(r.stderr.contains("stack/v1/extra.yaml"), "{}", r.stderr);
}

#[test]
fn source_blob_corrupted_on_shore_is_refused_and_no_output() {
    let env = Env::new();
    let good = env.pack(1, "ci.key", 1, "good.tender");
    let d: serde_json::Value = serde_json::from_slice(&read_entries(&good)[0].2).unwrap();
    let layer = d["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["mediaType"].as_str().unwrap().contains("layer"))
        .max_by_key(|b| b["size"].as_u64())
        .unwrap();
    let hex = &layer["digest"].as_str().unwrap()[7..];
    for image in ["sensor-fusion", "bridge-ui", "ais-gateway"] {
        let p = env.path().join("layouts/fleet").join(image).join("blobs/sha256").join(hex);
        if let Ok(mut b) = fs::read(&p) {
            b[100] ^= 1;
            fs::write(&p, b).unwrap();
        }
    }
    env.shore(&["pack", "stack-v1.yaml", "--key", "ci.key", "--out", "x.tender"])
        .fails(3, "digest mismatch");
    assert!(!env.path().join("x.tender").exists());
    let leftovers: Vec<_> = fs::read_dir(env.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".tender-pack"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn store_without_trusted_keys_refuses() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "good.tender");
    let id = fs::read_dir(env.store().join("trust")).unwrap().next().unwrap().unwrap().file_name();
    let id = id.to_string_lossy().trim_end_matches(".pub").to_string();
    env.ship(&["trust", "remove", &id]).ok();
    env.ship(&["import", "good.tender"]).fails(VERIFY_FAILED, "no trusted keys");
}

#[test]
fn device_file_entry() {
    let env = Env::new();
    tampered(&env, |e| {
        let (h, _, d) = &mut e[5];
        h.set_entry_type(tar::EntryType::Char);
        d.clear();
    });
    refused(&env, VERIFY_FAILED, "character device", false);
}

#[test]
fn size_field_far_beyond_the_file() {
    let env = Env::new();
    let bundle = env.pack(1, "ci.key", 1, "good.tender");
    let mut entries = read_entries(&bundle);
    entries.truncate(6);
    write_entries(&env.path().join("bad.tender"), &entries);
    // Rewrite the last header to claim 1 TiB, with a valid checksum.
    let mut bytes = fs::read(env.path().join("bad.tender")).unwrap();
    let header_at = bytes.len() - 1024 - entries[5].2.len().div_ceil(512) * 512 - 512;
    let mut h = tar::Header::from_byte_slice(&bytes[header_at..header_at + 512]).clone();
    h.set_size(1 << 40);
    h.set_cksum();
    bytes[header_at..header_at + 512].copy_from_slice(h.as_bytes());
    fs::write(env.path().join("bad.tender"), bytes).unwrap();
    refused(&env, VERIFY_FAILED, "size mismatch", false);
}

#[test]
fn deeply_nested_json_signed_by_a_trusted_key() {
    let env = Env::new();
    tampered(&env, |e| {
        // Even signed bytes are parsed with bounds: 100,000 nested arrays.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
        let key = tender_keys::SigningKey::from_pem(
            &fs::read_to_string(env.path().join("ci.key")).unwrap(),
        )
        .unwrap();
        let sig = key.sign(&tender_bundle::signing_message(&deep));
        // (in the form the writer writes: nothing else reaches the descriptor)
        e[1].2 = serde_json::to_vec_pretty(&serde_json::json!({"signatures": [sig]})).unwrap();
        e[0].2 = deep;
    });
    refused(&env, VERIFY_FAILED, "invalid descriptor", true);
}
