//! Writes hostile variants of a signed bundle as fuzz seeds (`fuzz/make-seeds.sh`):
//! every tar entry type, pax and GNU headers, and every header field a
//! reader checks, each after the signed descriptor and signatures so that
//! the fuzzer starts past the signature check.
//!
//!     cargo run --example fuzz-seeds -- BUNDLE OUTDIR

#[path = "../tests/support/rawtar.rs"]
mod rawtar;

use rawtar::{Raw, pax_record, raw_entries, tar_of};

/// An edit of a header block.
type Edit = Box<dyn Fn(&mut [u8; 512])>;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(bundle), Some(out)) = (args.next(), args.next()) else {
        eprintln!("usage: fuzz-seeds BUNDLE OUTDIR");
        std::process::exit(2);
    };
    let bytes = std::fs::read(&bundle).unwrap_or_else(|e| panic!("{bundle}: {e}"));
    let good = raw_entries(&bytes);
    let out = std::path::Path::new(&out);
    std::fs::create_dir_all(out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    let mut seeds: Vec<(String, Vec<Raw>)> = Vec::new();
    // Entry 4 is the first blob: turn it into each other type.
    for (name, flag) in [
        ("nul", 0u8),
        ("hardlink", b'1'),
        ("symlink", b'2'),
        ("chardev", b'3'),
        ("blockdev", b'4'),
        ("directory", b'5'),
        ("fifo", b'6'),
        ("contiguous", b'7'),
        ("gnu-sparse", b'S'),
    ] {
        let mut e = good.clone();
        e[4] = e[4].clone().edit(|h| h[156] = flag);
        seeds.push((format!("type-{name}"), e));
    }
    for (name, flag, header_name, data) in [
        ("pax", b'x', "PaxHeaders/index.json", pax_record("path", "index.json")),
        ("pax-global", b'g', "GlobalHead.0", pax_record("comment", "x")),
        ("gnu-longname", b'L', "././@LongLink", b"index.json\0".to_vec()),
        ("gnu-longlink", b'K', "././@LongLink", b"index.json\0".to_vec()),
    ] {
        let mut e = good.clone();
        let t = tar::EntryType::new(flag);
        e.insert(3, Raw::of_type(header_name, data, t));
        seeds.push((name.into(), e));
    }
    let edits: Vec<(&str, Edit)> = vec![
        ("gnu-magic", Box::new(|h| h[257..265].copy_from_slice(b"ustar  \0"))),
        ("prefix", Box::new(|h| h[345..350].copy_from_slice(b"blobs"))),
        ("linkname", Box::new(|h| h[157..162].copy_from_slice(b"index"))),
        (
            "size-base256",
            Box::new(|h| h[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
        ),
        ("size-spaces", Box::new(|h| h[124] = b' ')),
    ];
    for (name, edit) in edits {
        let mut e = good.clone();
        e[4] = e[4].clone().edit(|h| edit(h));
        seeds.push((format!("header-{name}"), e));
    }
    // A directory whose data is a second layout, as tar readers that take a
    // directory as header-only would read it.
    let mut e = good.clone();
    let hidden = tar_of(&[Raw::file("index.json", good[3].data.clone())]);
    e.push(Raw::of_type("blobs/", hidden, tar::EntryType::Directory));
    seeds.push(("directory-with-data".into(), e));
    let mut e = good.clone();
    e[2] = Raw::file("oci-layout", br#"{"imageLayoutVersion":"1.0.0","x":1}"#.to_vec());
    seeds.push(("oci-layout-extra".into(), e));
    for (name, entries) in seeds {
        let path = out.join(format!("hostile-{name}.tender"));
        std::fs::write(&path, tar_of(&entries))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    println!("wrote hostile seeds into {}", out.display());
}
