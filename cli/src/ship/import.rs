//! `tender-ship import`: verify bundles and parts and merge them into the store.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tender_store::{ImportPolicy, ImportReport, Store};

use super::{Ctx, PolicyArgs, open_bundle};
use crate::{Bar, human, print_json};

/// Arguments of `tender-ship import`.
#[derive(clap::Args)]
pub struct Import {
    /// A bundle, a part (`NAME.tender.NNN`), or a directory of them (a
    /// mounted stick: every `*.tender` and `*.tender.NNN` in it).
    bundle: PathBuf,
    #[command(flatten)]
    policy: PolicyArgs,
}

impl Import {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let Self { bundle, policy } = self;
        let json = ctx.json;
        let store = Store::open(&ctx.store)?;
        let reports = import_all(&store, &bundle, policy.policy(), json)?;
        if json {
            if reports.len() == 1 {
                print_json(&reports[0]);
            } else {
                print_json(&reports);
            }
        }
        Ok(0)
    }
}

/// Bundles at `path`: the file itself, or every `*.tender` file in a directory.
pub(super) fn bundles_at(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut found = Vec::new();
    for e in fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        let p = e.with_context(|| format!("reading {}", path.display()))?.path();
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
    anyhow::ensure!(
        !found.is_empty(),
        "no *.tender bundle or *.tender.NNN part in {}",
        path.display()
    );
    Ok(found)
}

/// Import every bundle and part at `path`, printing progress; one that fails
/// does not stop the others.
pub(super) fn import_all(
    store: &Store,
    path: &Path,
    policy: ImportPolicy,
    json: bool,
) -> Result<Vec<ImportReport>> {
    let mut reports = Vec::new();
    let mut failed: Option<anyhow::Error> = None;
    let mut failures = 0;
    let bundles = bundles_at(path)?;
    let total = bundles.len();
    for bundle in bundles {
        let bar = Bar::new(json);
        let r = match open_bundle(&bundle)
            .and_then(|f| {
                let detached = tender_bundle::read_detached(&bundle)?;
                Ok(store.import_with(f, &bundle, &detached, policy, &bar)?)
            })
            .with_context(|| format!("importing {}", bundle.display()))
        {
            Ok(r) => r,
            Err(e) => {
                // One bad part or stick must not stop the others. The first
                // failure is returned (and printed) at the end; later ones
                // are printed as they come.
                failures += 1;
                match &failed {
                    None => failed = Some(e),
                    Some(_) => eprintln!("error: {e:#}"),
                }
                continue;
            }
        };
        if !json {
            let what = if r.parts > 1 {
                format!("{} {} part {} of {}", r.stack, r.version, r.part, r.parts)
            } else {
                format!("{} {}", r.stack, r.version)
            };
            if r.already_imported {
                println!("{what} (sequence {}) is already imported: nothing to do", r.sequence);
            } else {
                println!(
                    "imported {what} (sequence {}): {} new in {} blobs, {} already held in {} blobs",
                    r.sequence,
                    human(r.bytes_new),
                    r.blobs_new,
                    human(r.bytes_held),
                    r.blobs_held
                );
            }
        }
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", bundle.display());
        }
        reports.push(r);
    }
    if !json {
        // Per version, where it stands now (the last report of each is current).
        let mut seen = Vec::new();
        for r in reports.iter().rev() {
            if seen.contains(&&r.digest) || r.parts == 1 {
                continue;
            }
            seen.push(&r.digest);
            if r.complete {
                println!("{} {}: complete ({} parts)", r.stack, r.version, r.parts);
            } else {
                println!(
                    "{} {}: {} of {} parts, {} missing",
                    r.stack,
                    r.version,
                    r.parts_complete,
                    r.parts,
                    human(r.bytes_missing)
                );
            }
        }
    }
    match failed {
        Some(e) if failures > 1 => Err(e.context(format!(
            "{failures} of {total} bundles in {} failed (the others are above)",
            path.display()
        ))),
        Some(e) => Err(e),
        None => Ok(reports),
    }
}
