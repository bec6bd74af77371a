//! Default sequences that rise strictly between any two packs on one shore.
//!
//! A ship refuses a lower sequence than one it accepted, and the same
//! sequence with other content, so the pack time in seconds was not enough:
//! two packs in one second collided aboard. The shore keeps, per stack, the
//! last sequence it gave in a small state file (`sequences.json` in a state
//! directory) and gives `max(now in seconds, last + 1)`. A delta of the
//! version the last full pack was of carries that pack's sequence: a full
//! bundle and its deltas (one per ship) are one release, and a ship takes
//! whichever reaches it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tender_bundle::{StackName, Version};

use crate::StackError;

/// The file the state lives in, inside the state directory.
pub const STATE_FILE: &str = "sequences.json";
/// Held (flock) while the state is read and replaced, so concurrent packs
/// on one shore never get the same sequence.
const LOCK_FILE: &str = "sequences.lock";

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    stacks: BTreeMap<String, StackState>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StackState {
    /// The highest sequence given for the stack.
    last: u64,
    /// The version of the last release (a full pack, or a delta of a
    /// version no full pack was made of) ...
    version: String,
    /// ... and the sequence it got, which its deltas carry.
    sequence: u64,
}

/// What is being packed, for [`next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole bundle: always a new sequence.
    Full,
    /// A delta against a base: the sequence of its version's release.
    Delta,
}

/// The default sequence for packing `version` of `stack`, recorded in
/// `dir` (created 0700 if missing) before it is returned.
pub fn next(
    dir: &Path,
    stack: &StackName,
    version: &Version,
    kind: Kind,
    now: SystemTime,
) -> Result<u64, StackError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| StackError::Io { path, source }
    };
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    let path = dir.join(STATE_FILE);
    let mut state = match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<State>(&bytes).map_err(|e| {
            StackError::BadSequenceState { path: path.clone(), reason: e.to_string() }
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(StackError::Io { path, source: e }),
    };
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let held = state.stacks.get(stack.as_str());
    if kind == Kind::Delta
        && let Some(s) = held.filter(|s| s.version == version.as_str())
    {
        return Ok(s.sequence);
    }
    let sequence = match held {
        Some(s) => s.last.checked_add(1).ok_or_else(|| StackError::BadSequenceState {
            path: path.clone(),
            reason: format!("stack {stack} has reached the last sequence; give --sequence"),
        })?,
        None => 0,
    }
    .max(secs);
    state.stacks.insert(
        stack.to_string(),
        StackState { last: sequence, version: version.to_string(), sequence },
    );
    write_atomic(dir, &path, &serde_json::to_vec_pretty(&state).expect("serializable"))?;
    Ok(sequence)
}

/// Temp file, fsync, rename, fsync of the directory: a crash leaves the
/// old state or the new one, never a torn file that would stop every pack.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StackError> {
    let io = |path: PathBuf| move |source| StackError::Io { path, source };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-sequences")
        .tempfile_in(dir)
        .map_err(io(dir.to_owned()))?;
    // Through the file itself: NamedTempFile's own writes append "at path
    // P" to an error that already names P.
    tmp.as_file_mut()
        .write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(io(tmp.path().into()))?;
    tmp.persist(path).map_err(|e| StackError::Io { path: path.to_owned(), source: e.error })?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rises_strictly_within_one_second_and_follows_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let (s, v1, v2) =
            ("awareness".parse().unwrap(), "1.0.0".parse().unwrap(), "1.1.0".parse().unwrap());
        let a = next(dir.path(), &s, &v1, Kind::Full, at(1000)).unwrap();
        let b = next(dir.path(), &s, &v2, Kind::Full, at(1000)).unwrap();
        let c = next(dir.path(), &s, &v2, Kind::Full, at(999)).unwrap();
        assert_eq!((a, b, c), (1000, 1001, 1002), "same second, clock stepped back");
        assert_eq!(next(dir.path(), &s, &v2, Kind::Full, at(5000)).unwrap(), 5000);
        // Another stack has its own count.
        let r = "radar".parse().unwrap();
        assert_eq!(next(dir.path(), &r, &v1, Kind::Full, at(1000)).unwrap(), 1000);
    }

    #[test]
    fn a_delta_carries_its_releases_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let (s, v1, v2) =
            ("awareness".parse().unwrap(), "1.0.0".parse().unwrap(), "1.1.0".parse().unwrap());
        let full = next(dir.path(), &s, &v2, Kind::Full, at(1000)).unwrap();
        assert_eq!(next(dir.path(), &s, &v2, Kind::Delta, at(1000)).unwrap(), full);
        assert_eq!(next(dir.path(), &s, &v2, Kind::Delta, at(1003)).unwrap(), full);
        // A delta of another version is a new release; its deltas share it.
        let d = next(dir.path(), &s, &v1, Kind::Delta, at(1000)).unwrap();
        assert_eq!(d, full + 1);
        assert_eq!(next(dir.path(), &s, &v1, Kind::Delta, at(1000)).unwrap(), d);
        // A new full pack of a version is new content: a new sequence.
        assert_eq!(next(dir.path(), &s, &v1, Kind::Full, at(1000)).unwrap(), d + 1);
    }

    #[test]
    fn a_damaged_state_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let e = next(dir.path(), &"a".parse().unwrap(), &"1".parse().unwrap(), Kind::Full, at(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains(STATE_FILE), "{e}");
    }
}
