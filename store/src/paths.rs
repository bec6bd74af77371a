//! Importing what a path holds: one bundle or part, or every bundle and part
//! in a directory (a mounted stick).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use tender_bundle::Progress;

use crate::{ImportPolicy, ImportReport, Store, StoreError};

/// One file [`Store::import_paths`] tried.
#[derive(Debug)]
pub struct ImportedFile {
    /// The bundle or part.
    pub path: PathBuf,
    /// What its import did, or why it failed.
    pub outcome: Result<ImportReport, StoreError>,
}

/// What [`Store::import_paths`] did, per file in name order.
#[derive(Debug, Default)]
pub struct ImportPathsReport {
    /// Every bundle and part found, with its outcome, and every directory
    /// below the top that could not be read (its outcome the error).
    pub files: Vec<ImportedFile>,
    /// Directories [`IMPORT_MAX_DEPTH`] down, not read.
    pub too_deep: Vec<PathBuf>,
}

/// How far below the directory given [`Store::import_paths`] looks: enough
/// for sticks sorted by stack and date, bounded so a deep tree that is not
/// ours costs little.
pub const IMPORT_MAX_DEPTH: usize = 8;

impl Store {
    /// Import `path`: a bundle or part, or every `*.tender` bundle and
    /// `*.tender.NNN` part in a directory and its subdirectories (at most
    /// [`IMPORT_MAX_DEPTH`] down; symlinked directories and hidden ones, such as a
    /// stick's trash, are not entered), in name order, each directory's
    /// entries sorted by name. One that fails, or a subdirectory that
    /// cannot be read, does not stop the others; `each` hears of every file
    /// as it is done. Fails only when the directory cannot be read or holds
    /// no bundle.
    pub fn import_paths(
        &self,
        path: &Path,
        policy: ImportPolicy,
        progress: &dyn Progress,
        mut each: impl FnMut(&ImportedFile),
    ) -> Result<ImportPathsReport, StoreError> {
        let found = bundles_at(path)?;
        let mut report = ImportPathsReport { too_deep: found.too_deep, ..Default::default() };
        for item in found.items {
            let file = match item {
                Found::Bundle(bundle) => {
                    let outcome = self.import_path(&bundle, policy, progress);
                    ImportedFile { path: bundle, outcome }
                }
                Found::Unreadable(dir, source) => ImportedFile {
                    outcome: Err(StoreError::ReadDir { path: dir.clone(), source }),
                    path: dir,
                },
            };
            each(&file);
            report.files.push(file);
        }
        Ok(report)
    }

    fn import_path(
        &self,
        bundle: &Path,
        policy: ImportPolicy,
        progress: &dyn Progress,
    ) -> Result<ImportReport, StoreError> {
        let f = File::open(bundle)
            .map_err(|source| StoreError::OpenBundle { path: bundle.to_owned(), source })?;
        let detached = tender_bundle::read_detached(bundle)?;
        self.import_with(
            BufReader::with_capacity(tender_bundle::READ_BUFFER, f),
            bundle,
            &detached,
            policy,
            progress,
        )
    }
}

enum Found {
    Bundle(PathBuf),
    /// A directory below the top that could not be read.
    Unreadable(PathBuf, std::io::Error),
}

#[derive(Default)]
struct Scan {
    items: Vec<Found>,
    too_deep: Vec<PathBuf>,
}

/// NAME.tender, or a part NAME.tender.001
fn is_bundle_name(name: &str) -> bool {
    let is_part = name
        .rsplit_once(".tender.")
        .is_some_and(|(_, n)| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()));
    name.ends_with(".tender") || is_part
}

/// Bundles at `path`: the file itself, or every `*.tender` file and part in
/// a directory and its subdirectories.
fn bundles_at(path: &Path) -> Result<Scan, StoreError> {
    if !path.is_dir() {
        return Ok(Scan { items: vec![Found::Bundle(path.to_owned())], ..Default::default() });
    }
    let mut scan = Scan::default();
    // Not following symlinks (but the top's own) means no loops.
    let walk = walkdir::WalkDir::new(path)
        .follow_links(false)
        .max_depth(IMPORT_MAX_DEPTH)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for e in walk {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                let at = err.path().unwrap_or(path).to_owned();
                let depth = err.depth();
                let source = err
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("a filesystem loop (a bind mount?)"));
                if depth == 0 {
                    return Err(StoreError::ReadDir { path: at, source });
                }
                scan.items.push(Found::Unreadable(at, source));
                continue;
            }
        };
        let kind = e.file_type();
        if kind.is_dir() {
            if e.depth() == IMPORT_MAX_DEPTH {
                scan.too_deep.push(e.into_path());
            }
            continue;
        }
        // A symlink to a file counts, as a file does.
        let file = kind.is_file() || (kind.is_symlink() && e.path().is_file());
        if file && is_bundle_name(&e.file_name().to_string_lossy()) {
            scan.items.push(Found::Bundle(e.into_path()));
        }
    }
    if scan.items.is_empty() {
        return Err(StoreError::NoBundles { path: path.to_owned() });
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::{Downgrade, Freshness};
    use tender_bundle::NoProgress;

    const POLICY: ImportPolicy =
        ImportPolicy { downgrade: Downgrade::Refuse, freshness: Freshness::WarnIfExpired };

    #[test]
    fn a_directory_yields_its_bundles_and_parts_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("store")).unwrap();
        let stick = dir.path().join("stick");
        fs::create_dir(&stick).unwrap();
        for name in ["b.tender.001", "a.tender", "notes.txt", "c.tender.1", "d.tender.0001"] {
            fs::write(stick.join(name), b"junk").unwrap();
        }
        let mut heard = Vec::new();
        let r = store
            .import_paths(&stick, POLICY, &NoProgress, |f| heard.push(f.path.clone()))
            .unwrap();
        let found: Vec<_> = r.files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(found, [stick.join("a.tender"), stick.join("b.tender.001")]);
        assert_eq!(heard, found);
        assert!(r.files.iter().all(|f| f.outcome.is_err()));
    }

    #[test]
    fn subdirectories_are_walked_in_name_order_without_loops_hidden_ones_or_depth() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("store")).unwrap();
        let stick = dir.path().join("stick");
        let files = [
            "z.tender",
            "awareness/2026-11/a.tender.002",
            "awareness/2026-11/a.tender.001",
            "awareness/2026-10/a.tender",
            "awareness/notes.txt",
            "radar/r.tender",
            ".Trashes/old.tender",
            "1/2/3/4/5/6/7/deep.tender",
            "1/2/3/4/5/6/7/8/deeper.tender",
        ];
        for name in files {
            let p = stick.join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, b"junk").unwrap();
        }
        // A loop back to the top, and a link to a bundle elsewhere.
        std::os::unix::fs::symlink(&stick, stick.join("awareness/loop")).unwrap();
        fs::write(dir.path().join("elsewhere.tender"), b"junk").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere.tender"), stick.join("link.tender"))
            .unwrap();
        let r = store.import_paths(&stick, POLICY, &NoProgress, |_| {}).unwrap();
        let found: Vec<_> = r.files.iter().map(|f| f.path.strip_prefix(&stick).unwrap()).collect();
        let want = [
            "1/2/3/4/5/6/7/deep.tender",
            "awareness/2026-10/a.tender",
            "awareness/2026-11/a.tender.001",
            "awareness/2026-11/a.tender.002",
            "link.tender",
            "radar/r.tender",
            "z.tender",
        ];
        assert_eq!(found, want.map(Path::new));
        assert_eq!(r.too_deep, [stick.join("1/2/3/4/5/6/7/8")]);
    }

    #[test]
    fn an_empty_directory_or_a_missing_file_is_an_error_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("store")).unwrap();
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let r = store.import_paths(&empty, POLICY, &NoProgress, |_| {});
        assert!(matches!(r, Err(StoreError::NoBundles { .. })));
        let missing = dir.path().join("missing.tender");
        let r = store.import_paths(&missing, POLICY, &NoProgress, |_| {}).unwrap();
        assert!(matches!(r.files[0].outcome, Err(StoreError::OpenBundle { .. })));
    }
}
