//! Hostile inputs from the security review, through the real binaries:
//! tar entries that other readers see differently, memory bombs before the
//! signature is checked, and a registry that streams an endless manifest.
//!
//! For every hostile bundle: `tender-ship verify` and `import` refuse it
//! (exit 3) naming the entry and the byte offset of its header, and
//! whatever tender accepts, `skopeo inspect --raw oci-archive:...` must
//! show as the signed descriptor lists it.

mod support;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::Env;
use support::oci::{Compression, ImageSpec, Types, build_image, sha256};
use support::rawtar::{Raw, offset_of, pax_record, raw_entries, tar_of};

const VERIFY_FAILED: i32 = 3;
/// Peak RSS allowed to a refusal of a memory bomb.
const RSS_CAP_KIB: u64 = 64 << 10;
/// The size of the bombs: 1.5 GiB.
const BOMB: u64 = 3 << 29;

/// The signed images of a bundle: (reference, digest).
fn signed_images(entries: &[Raw]) -> Vec<(String, String)> {
    let d: serde_json::Value = serde_json::from_slice(&entries[0].data).unwrap();
    d["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["reference"].as_str().unwrap().into(), i["digest"].as_str().unwrap().into()))
        .collect()
}

/// What `skopeo inspect --raw` reads from `file` for `reference`: the
/// digest of the manifest it shows, or its error.
fn skopeo_sees(file: &Path, reference: &str) -> Result<String, String> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", &format!("oci-archive:{}:{reference}", file.display())])
        .output()
        .expect("skopeo is needed (apt-get install skopeo)");
    if out.status.success() {
        Ok(sha256(&out.stdout))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// An env with `good.tender` packed; its entries.
fn good() -> (Env, Vec<Raw>) {
    let env = Env::new();
    let bundle = env.pack(1, "ci.key", 1, "good.tender");
    let entries = raw_entries(&fs::read(bundle).unwrap());
    assert_eq!(entries[3].name(), "index.json");
    assert!(entries[4].name().starts_with("blobs/sha256/"));
    (env, entries)
}

/// `bytes` as `bad.tender`: whatever tender accepts, skopeo must read as
/// signed; then `verify` and `import` must refuse it (exit 3), naming
/// `needle` and the byte offset `at`, and keep the store sound.
#[track_caller]
fn refused(env: &Env, signed: &[(String, String)], bytes: &[u8], needle: &str, at: u64) {
    let bad = env.path().join("bad.tender");
    fs::write(&bad, bytes).unwrap();
    let before = env.snapshot();
    let verify = env.ship(&["verify", "bad.tender"]);
    assert_eq!(env.snapshot(), before, "verify writes nothing");
    for (reference, digest) in signed {
        let seen = skopeo_sees(&bad, reference);
        println!("skopeo reads {reference} as {seen:?}");
        assert!(
            verify.code != 0 || seen.is_err() || seen.as_ref() == Ok(digest),
            "tender-ship verify said OK, while skopeo reads {reference} as {seen:?}, not the signed {digest}"
        );
    }
    let where_ = format!("at byte {at}");
    let verify = verify.fails(VERIFY_FAILED, needle);
    assert!(verify.stderr.contains(&where_), "{where_} in: {}", verify.stderr);
    let import = env.ship(&["import", "bad.tender"]).fails(VERIFY_FAILED, needle);
    assert!(import.stderr.contains(&where_), "{where_} in: {}", import.stderr);
    env.assert_store_sound(0);
    env.ship(&["import", "good.tender"]).ok();
    env.assert_store_sound(1);
}

#[test]
fn the_good_bundle_reads_the_same_in_skopeo() {
    let (env, entries) = good();
    for (reference, digest) in signed_images(&entries) {
        assert_eq!(skopeo_sees(&env.path().join("good.tender"), &reference), Ok(digest));
    }
}

#[test]
fn directory_with_data_hiding_a_second_layout() {
    let (env, mut entries) = good();
    let signed = signed_images(&entries);
    // The attacker's image under the same reference, in an OCI layout...
    let (reference, _) = &signed[0];
    let evil = env.path().join("evil");
    build_image(
        &evil,
        &ImageSpec {
            tag: reference,
            arches: &["amd64"],
            layers: vec![vec![("bin/app", "#!/bin/sh\necho owned\n".into())]],
            compression: Compression::Gzip,
            types: Types::Oci,
        },
    );
    let mut hidden = vec![Raw::file("index.json", fs::read(evil.join("index.json")).unwrap())];
    for blob in fs::read_dir(evil.join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap();
        let name = format!("blobs/sha256/{}", blob.file_name().to_string_lossy());
        hidden.push(Raw::file(&name, fs::read(blob.path()).unwrap()));
    }
    // ...as the data of a directory entry: tar readers that take a
    // directory as header-only (Go's, GNU tar) read it as entries, which
    // replace the real index.json when the archive is unpacked.
    let data = tar_of(&hidden);
    let at = offset_of(&entries, entries.len());
    entries.push(Raw::of_type("blobs/", data, tar::EntryType::Directory));
    refused(&env, &signed, &tar_of(&entries), "is a directory", at);
}

#[test]
fn pax_header_naming_an_entry() {
    let (env, mut entries) = good();
    let signed = signed_images(&entries);
    // A reader that ignores pax sees `index.jsom`, the others `index.json`.
    let pax = Raw::of_type(
        "PaxHeaders/index.json",
        pax_record("path", "index.json"),
        tar::EntryType::XHeader,
    );
    entries[3] = entries[3].clone().edit(|h| h[9] = b'm');
    entries.insert(3, pax);
    let at = offset_of(&entries, 3);
    refused(&env, &signed, &tar_of(&entries), "pax extended header", at);
}

#[test]
fn gnu_long_name() {
    let (env, mut entries) = good();
    let signed = signed_images(&entries);
    let long = Raw::of_type("././@LongLink", b"index.json\0".to_vec(), tar::EntryType::GNULongName);
    entries[3] = entries[3].clone().edit(|h| h[9] = b'm');
    entries.insert(3, long);
    let at = offset_of(&entries, 3);
    refused(&env, &signed, &tar_of(&entries), "GNU long name", at);
}

#[test]
fn type_flag_nul() {
    let (env, mut entries) = good();
    let signed = signed_images(&entries);
    entries[4] = entries[4].clone().edit(|h| h[156] = 0);
    let at = offset_of(&entries, 4);
    refused(&env, &signed, &tar_of(&entries), "type flag NUL", at);
}

#[test]
fn name_split_into_the_prefix_field() {
    let (env, mut entries) = good();
    let signed = signed_images(&entries);
    // ustar readers join `blobs` and `sha256/<hex>`; old ones do not.
    entries[4] = entries[4].clone().edit(|h| {
        let name = h[..100].to_vec();
        h[..100].fill(0);
        h[..100 - 6].copy_from_slice(&name[6..]);
        h[345..350].copy_from_slice(b"blobs");
    });
    let at = offset_of(&entries, 4);
    refused(&env, &signed, &tar_of(&entries), "prefix field is not empty", at);
}

#[test]
fn gnu_magic() {
    let (env, mut entries) = good();
    let signed = signed_images(&entries);
    entries[4] = entries[4].clone().edit(|h| h[257..265].copy_from_slice(b"ustar  \0"));
    let at = offset_of(&entries, 4);
    refused(&env, &signed, &tar_of(&entries), "not POSIX ustar", at);
}

#[test]
fn extra_fields_in_oci_layout() {
    let (env, mut entries) = good();
    let signed = signed_images(&entries);
    let data = br#"{"imageLayoutVersion":"1.0.0","x-evil":"nobody signed this"}"#.to_vec();
    entries[2] = Raw::file("oci-layout", data);
    let at = offset_of(&entries, 2);
    refused(&env, &signed, &tar_of(&entries), "oci-layout at byte", at);
}

/// Entry 4 (a blob) made a link of type `t` to /etc/shadow.
fn link(t: tar::EntryType, needle: &str) {
    let (env, mut entries) = good();
    let signed = signed_images(&entries);
    entries[4].data.clear();
    entries[4] = entries[4].clone().edit(|h| {
        h[124..136].copy_from_slice(b"00000000000\0");
        h[156] = t.as_byte();
        h[157..168].copy_from_slice(b"/etc/shadow");
    });
    refused(&env, &signed, &tar_of(&entries), needle, offset_of(&entries, 4));
}

#[test]
fn symlink() {
    link(tar::EntryType::Symlink, "is a symlink");
}

#[test]
fn hard_link() {
    link(tar::EntryType::Link, "is a hard link");
}

/// A sparse `bad.tender`: one header of type `t` declaring [`BOMB`] bytes,
/// then (past the zeros it declares) the good bundle.
fn bomb(env: &Env, t: tar::EntryType, name: &str) {
    let good = fs::read(env.path().join("good.tender")).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(t);
    h.set_size(BOMB);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    let mut f = fs::File::create(env.path().join("bad.tender")).unwrap();
    f.write_all(h.as_bytes()).unwrap();
    f.seek(SeekFrom::Start(512 + BOMB)).unwrap();
    f.write_all(&good).unwrap();
    assert!(
        f.metadata().unwrap().len() > BOMB,
        "sparse file of {} bytes",
        f.metadata().unwrap().len()
    );
}

/// `tender-ship ARGS` fails with `code` naming `needle`, in bounded memory.
#[track_caller]
fn refused_in_bounded_memory(env: &Env, args: &[&str], code: i32, needle: &str) {
    let (run, rss) = env.ship_measured(args);
    println!("tender-ship {args:?}: exit {}, peak RSS {} KiB", run.code, rss);
    run.fails(code, needle);
    assert!(rss < RSS_CAP_KIB, "peak RSS {rss} KiB refusing {args:?}");
}

#[test]
fn pax_header_of_1_5_gib_before_the_descriptor() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "good.tender");
    bomb(&env, tar::EntryType::XHeader, "PaxHeaders/tender/descriptor.json");
    for cmd in ["verify", "import"] {
        refused_in_bounded_memory(&env, &[cmd, "bad.tender"], VERIFY_FAILED, "pax extended header");
    }
    env.assert_store_sound(0);
}

#[test]
fn gnu_long_name_of_1_5_gib_before_the_descriptor() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "good.tender");
    bomb(&env, tar::EntryType::GNULongName, "././@LongLink");
    for cmd in ["verify", "import"] {
        refused_in_bounded_memory(&env, &[cmd, "bad.tender"], VERIFY_FAILED, "GNU long name");
    }
    env.assert_store_sound(0);
}

#[test]
fn detached_signatures_file_of_1_5_gib() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "good.tender");
    fs::File::create(env.path().join("good.tender.sig")).unwrap().set_len(BOMB).unwrap();
    for cmd in ["verify", "import"] {
        refused_in_bounded_memory(
            &env,
            &[cmd, "good.tender"],
            VERIFY_FAILED,
            "good.tender.sig is 1610612736 bytes, more than the limit of 65536",
        );
    }
    env.assert_store_sound(0);
}

#[test]
fn detached_signatures_file_linked_to_dev_zero() {
    let env = Env::new();
    env.pack(1, "ci.key", 1, "good.tender");
    std::os::unix::fs::symlink("/dev/zero", env.path().join("good.tender.sig")).unwrap();
    for cmd in ["verify", "import"] {
        refused_in_bounded_memory(
            &env,
            &[cmd, "good.tender"],
            VERIFY_FAILED,
            "good.tender.sig: a symlink, not a regular file",
        );
    }
    env.assert_store_sound(0);
}

/// How the hostile registry sends a manifest.
#[derive(Clone, Copy)]
enum Endless {
    /// Chunked transfer encoding, chunk after chunk.
    Chunked,
    /// A `Content-Length` of 1 TiB, then bytes.
    Declared,
}

/// Most bytes the hostile registry sends on one connection (bounded, but
/// far beyond what a pull may hold).
const SERVER_CAP: u64 = 1 << 30;

/// A registry on 127.0.0.1 answering `/v2/` and, for any manifest, an
/// endless body. Stops when `stop` is set, or after 5 minutes.
fn hostile_registry(mode: Endless, stop: Arc<AtomicBool>) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let start = Instant::now();
        while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(300) {
            match listener.accept() {
                Ok((conn, _)) => serve(conn, mode),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    });
    (port, handle)
}

/// Answer one request on `conn`, then close it.
fn serve(mut conn: TcpStream, mode: Endless) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 << 10 {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("");
    let _ = if path == "/v2/" {
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    } else if path.contains("/manifests/") {
        let ct = "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close";
        let chunk = vec![b' '; 64 << 10];
        let mut sent = 0u64;
        match mode {
            Endless::Chunked => {
                let r = conn.write_all(
                    format!("HTTP/1.1 200 OK\r\n{ct}\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .as_bytes(),
                );
                let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                while r.is_ok() && sent < SERVER_CAP && conn.write_all(&frame).is_ok() {
                    sent += chunk.len() as u64;
                }
            }
            Endless::Declared => {
                let r = conn.write_all(
                    format!("HTTP/1.1 200 OK\r\n{ct}\r\nContent-Length: {}\r\n\r\n", 1u64 << 40)
                        .as_bytes(),
                );
                while r.is_ok() && sent < SERVER_CAP && conn.write_all(&chunk).is_ok() {
                    sent += chunk.len() as u64;
                }
            }
        }
        Ok(())
    } else {
        conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    };
}

fn endless_manifest(mode: Endless) {
    let env = Env::new();
    let stop = Arc::new(AtomicBool::new(false));
    let (port, server) = hostile_registry(mode, stop.clone());
    let target = format!("127.0.0.1:{port}/fleet/awareness:1.0.0");
    refused_in_bounded_memory(
        &env,
        &["pull", &target],
        1,
        &format!("fetching the manifest of {target}: larger than 16777216 bytes"),
    );
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    env.assert_store_sound(0);
}

#[test]
fn registry_streaming_an_endless_manifest() {
    endless_manifest(Endless::Chunked);
}

#[test]
fn registry_declaring_a_1_tib_manifest() {
    endless_manifest(Endless::Declared);
}
