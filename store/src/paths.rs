//! Importing what a path holds: one bundle or part, or every bundle and part
//! in a directory (a mounted stick).

use std::fs::{self, File};
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
    /// Every bundle and part found, with its outcome.
    pub files: Vec<ImportedFile>,
}

impl Store {
    /// Import `path`: a bundle or part, or every `*.tender` bundle and
    /// `*.tender.NNN` part in a directory, in name order. One that fails
    /// does not stop the others; `each` hears of every file as it is done.
    /// Fails only when the directory cannot be read or holds none.
    pub fn import_paths(
        &self,
        path: &Path,
        policy: ImportPolicy,
        progress: &dyn Progress,
        mut each: impl FnMut(&ImportedFile),
    ) -> Result<ImportPathsReport, StoreError> {
        let mut report = ImportPathsReport::default();
        for bundle in bundles_at(path)? {
            let outcome = self.import_path(&bundle, policy, progress);
            let file = ImportedFile { path: bundle, outcome };
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
        self.import_with(BufReader::with_capacity(1 << 20, f), bundle, &detached, policy, progress)
    }
}

/// Bundles at `path`: the file itself, or every `*.tender` file and part in
/// a directory.
fn bundles_at(path: &Path) -> Result<Vec<PathBuf>, StoreError> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let read_err = |source| StoreError::ReadDir { path: path.to_owned(), source };
    let mut found = Vec::new();
    for e in fs::read_dir(path).map_err(read_err)? {
        let p = e.map_err(read_err)?.path();
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // NAME.tender, or a part NAME.tender.001
        let is_part = name
            .rsplit_once(".tender.")
            .is_some_and(|(_, n)| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()));
        if p.is_file() && (name.ends_with(".tender") || is_part) {
            found.push(p);
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(StoreError::NoBundles { path: path.to_owned() });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
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
