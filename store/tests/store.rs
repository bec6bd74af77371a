//! The store as a library, without a process: damaged stores, replays,
//! cut bundles and histories, through `Store`'s typed operations. (The
//! binaries' own tests, in `tests/`, cover the same paths end to end.)

#[path = "../../tests/support/memory_bundle.rs"]
mod memory_bundle;

use std::fs;
use std::path::{Path, PathBuf};

use tender_bundle::{Descriptor, Digest, ErrorKind, NoProgress};
use tender_keys::SigningKey;
use tender_store::{ImportPolicy, Outcome, Pick, Store, StoreError};

/// A signed bundle of stack `s`, `version`, `sequence`, carrying `blobs`.
fn bundle(key: &SigningKey, version: &str, sequence: u64, blobs: &[&[u8]]) -> Vec<u8> {
    memory_bundle::bundle(key, ("s", version, sequence), &[], blobs)
}

/// A store under `dir` that trusts `key`.
fn store(dir: &Path, key: &SigningKey) -> Store {
    let s = Store::init(&dir.join("store")).unwrap();
    s.trust_add(&key.public().to_pem().unwrap()).unwrap();
    s
}

fn import(s: &Store, bytes: &[u8]) -> Result<tender_store::ImportReport, StoreError> {
    s.import_with(bytes, Path::new("b.tender"), &[], ImportPolicy::default(), &NoProgress)
}

/// Every file under the store (name and digest), to show it did not change.
fn snapshot(root: &Path) -> Vec<(PathBuf, Digest)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.file_name().is_some_and(|n| n != "lock" && n != "time.json") {
                out.push((p.clone(), Digest::of(&fs::read(&p).unwrap())));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_damaged_blob_is_found_removed_by_repair_and_restored_by_importing_again() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let s = store(dir.path(), &key);
    let layer = vec![7u8; 100_000];
    let b = bundle(&key, "1.0.0", 1, &[&layer, b"config"]);
    assert!(import(&s, &b).unwrap().complete);
    assert!(s.fsck(&NoProgress).unwrap().is_clean());

    // A bit flips on the disk.
    let path = s.blob_path(&Digest::of(&layer));
    let mut bytes = fs::read(&path).unwrap();
    bytes[50_000] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let report = s.fsck(&NoProgress).unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.corrupt[0].0, path);

    // Repair removes it; the version is then incomplete, not damaged.
    s.repair(&report).unwrap();
    let after = s.fsck(&NoProgress).unwrap();
    assert!(after.is_clean(), "{after:?}");
    assert_eq!(after.incomplete_versions, vec![("s".into(), "1.0.0".into(), 1)]);

    // The same bundle again brings the blob back; nothing else changes.
    let again = import(&s, &b).unwrap();
    assert!(again.complete);
    assert_eq!(fs::read(&path).unwrap(), layer);
    assert!(s.fsck(&NoProgress).unwrap().incomplete_versions.is_empty());
}

#[test]
fn a_replayed_older_bundle_is_refused_and_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let s = store(dir.path(), &key);
    let old = bundle(&key, "1.0.0", 10, &[b"one"]);
    let new = bundle(&key, "1.1.0", 20, &[b"two"]);
    import(&s, &old).unwrap();
    import(&s, &new).unwrap();
    let before = snapshot(s.root());
    // The old one again is already held: nothing to do.
    assert!(import(&s, &old).unwrap().already_imported);
    // An older version signed anew (sequence below the newest) is a replay.
    let replay = bundle(&key, "1.0.1", 15, &[b"older"]);
    let e = import(&s, &replay).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Verification, "{e}");
    assert_eq!(snapshot(s.root()), before, "a refused bundle changes nothing");
}

#[test]
fn the_same_release_packed_again_is_held_and_another_release_of_its_sequence_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let s = store(dir.path(), &key);
    let first = bundle(&key, "1.0.0", 7, &[b"layer"]);
    let held = import(&s, &first).unwrap().digest;
    // Packed again later (a delta, or split parts, differ the same way:
    // only in how blobs travel and when they were packed).
    let again = memory_bundle::bundle_packed_at(
        &key,
        ("s", "1.0.0", 7),
        "2026-11-02T00:00:00Z",
        &[],
        &[b"layer"],
    );
    let r = import(&s, &again).unwrap();
    assert!(r.already_imported, "{r:?}");
    assert_eq!(r.digest, held, "the version is the one held");
    assert_eq!(s.list().unwrap().len(), 1);
    // Other content under the same sequence is still a conflict.
    let other = bundle(&key, "1.0.0", 7, &[b"other layer"]);
    let e = import(&s, &other).unwrap_err();
    assert!(matches!(e, StoreError::SequenceConflict { .. }), "{e}");
}

#[test]
fn a_cut_or_unsigned_bundle_records_no_version_and_keeps_only_verified_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let s = store(dir.path(), &key);
    let big = vec![3u8; 300_000];
    let b = bundle(&key, "1.0.0", 1, &[&big, b"small"]);
    for cut in [1000, b.len() / 2, b.len() - 1500] {
        let e = import(&s, &b[..cut]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Verification, "cut at {cut}: {e}");
        assert!(s.list().unwrap().is_empty(), "cut at {cut}: no version");
        // What was whole before the cut may stay (a rerun continues), but
        // only as blobs that hash to their names, and nothing in staging.
        let fsck = s.fsck(&NoProgress).unwrap();
        assert!(fsck.is_clean() && fsck.staging_leftovers.is_empty(), "cut at {cut}: {fsck:?}");
        for (path, digest) in snapshot(s.root()) {
            if path.starts_with(s.root().join("blobs")) {
                assert_eq!(path.file_name().unwrap().to_str(), Some(digest.hex()), "{path:?}");
            }
        }
    }
    // The first cut, inside the descriptor, wrote nothing at all.
    let fresh = Store::init(&dir.path().join("fresh")).unwrap();
    fresh.trust_add(&key.public().to_pem().unwrap()).unwrap();
    let untouched = snapshot(fresh.root());
    import(&fresh, &b[..1000]).unwrap_err();
    assert_eq!(snapshot(fresh.root()), untouched);
    let before = snapshot(s.root());
    // Signed by a key the store does not trust.
    let stranger = SigningKey::generate().unwrap();
    let e = import(&s, &bundle(&stranger, "1.0.0", 1, &[b"x"])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Verification, "{e}");
    assert_eq!(snapshot(s.root()), before);
    // After all that, the whole bundle imports.
    assert!(import(&s, &b).unwrap().complete);
}

#[test]
fn history_keeps_the_version_in_force_through_failures_and_names_the_one_before() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let s = store(dir.path(), &key);
    for (v, seq) in [("1.0.0", 1), ("1.1.0", 2), ("1.2.0", 3)] {
        import(&s, &bundle(&key, v, seq, &[v.as_bytes()])).unwrap();
    }
    let versions = s.versions().unwrap();
    let find =
        |v: &str| versions.iter().find(|(_, _, d)| d.stack.version.as_str() == v).cloned().unwrap();
    let (_, r1, d1) = find("1.0.0");
    let (_, r2, d2) = find("1.1.0");
    let (_, r3, d3) = find("1.2.0");
    s.record(&d1, &r1.digest, Outcome::Applied, None, None).unwrap();
    let e = s.pick(&d1.stack.name, &Pick::Previous).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "nothing applied before the first: {e}");
    s.record(&d2, &r2.digest, Outcome::Applied, None, None).unwrap();
    // 1.2.0 fails and is rolled back: 1.1.0 stays in force.
    s.record(&d3, &r3.digest, Outcome::RolledBack, Some("not healthy".into()), None).unwrap();
    let name = d1.stack.name.clone();
    let h = s.history(&name).unwrap();
    assert_eq!(h.current.as_ref().unwrap().version.as_str(), "1.1.0");
    assert_eq!(h.previous().unwrap().version.as_str(), "1.0.0");
    assert_eq!(h.entries.len(), 3);
    // A rollback takes the one applied before, by digest.
    let (rec, _) = s.pick(&name, &Pick::Previous).unwrap();
    assert_eq!(rec.digest, r1.digest);
    assert_eq!(s.pick(&name, &Pick::Named(None)).unwrap().0.digest, r3.digest, "newest");
    // Nothing older than the version in force may be applied from media.
    let older = |d: &Descriptor| {
        let policy = ImportPolicy::default();
        s.check_not_older_than_applied(&d.stack.name, &d.stack.version, d.sequence, policy)
    };
    let e = older(&d1).unwrap_err();
    assert!(matches!(e, StoreError::OlderThanApplied { .. }), "{e}");
    older(&d3).unwrap();
    // The store's own files stay private to its owner.
    use std::os::unix::fs::PermissionsExt as _;
    let history = s.root().join("stacks/s/history.json");
    assert_eq!(fs::metadata(&history).unwrap().permissions().mode() & 0o077, 0, "{history:?}");
}

#[test]
fn a_partial_that_is_not_a_regular_file_is_replaced_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let s = store(dir.path(), &key);
    let bytes = b"the blob a pull fetches".to_vec();
    let blob = tender_bundle::BlobRecord {
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
        media_type: "application/octet-stream".into(),
        part: 1,
        chunks: vec![],
        patch: None,
    };
    let path = s.partial_path(&blob.digest);
    fs::create_dir_all(path.parent().unwrap()).unwrap();

    // A symlink planted where the partial goes, to a file outside the
    // store: the file is left alone, the partial is a file of the store's.
    let outside = dir.path().join("outside");
    fs::write(&outside, b"not the store's").unwrap();
    std::os::unix::fs::symlink(&outside, &path).unwrap();
    assert_eq!(s.partials().unwrap(), vec![], "a link is nothing to resume from");
    let (mut f, have) = s.open_partial(&blob).unwrap();
    assert_eq!(have, 0);
    std::io::Write::write_all(&mut f, &bytes).unwrap();
    drop(f);
    assert_eq!(fs::read(&outside).unwrap(), b"not the store's");
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
    s.adopt_partial(&blob, &Digest::of(&bytes)).unwrap();
    let kept = s.blob_path(&blob.digest);
    assert!(fs::symlink_metadata(&kept).unwrap().file_type().is_file());
    assert_eq!(fs::read(&kept).unwrap(), bytes);

    // A directory there (which no rerun could get past before): replaced.
    let other = b"another blob".to_vec();
    let blob2 = tender_bundle::BlobRecord { digest: Digest::of(&other), size: 12, ..blob.clone() };
    let path2 = s.partial_path(&blob2.digest);
    fs::create_dir_all(path2.join("inside")).unwrap();
    let (mut f, have) = s.open_partial(&blob2).unwrap();
    assert_eq!(have, 0);
    assert!(fs::symlink_metadata(&path2).unwrap().file_type().is_file());
    std::io::Write::write_all(&mut f, &other).unwrap();
    drop(f);

    // Bytes that do not hash to the signed digest: refused, partial gone.
    let e = s.adopt_partial(&blob2, &Digest::of(b"other bytes")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert!(!path2.exists());
}
