//! `tender-ship import`: verify bundles and parts and merge them into the store.

use std::path::{Path, PathBuf};

use anyhow::Result;
use tender_store::{ImportPolicy, ImportReport, ImportedFile, Store};

use super::{Ctx, PolicyArgs};
use crate::{Bar, human, print_json};

/// Arguments of `tender-ship import`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship import /media/usb/awareness-1.1.0.tender
      one bundle
  tender-ship import /media/usb
      every *.tender and *.tender.NNN on the stick; reports what is complete")]
pub struct Import {
    /// A bundle, a part (`NAME.tender.NNN`), or a directory of them (a
    /// mounted stick: every `*.tender` and `*.tender.NNN` in it and its
    /// subdirectories, up to 8 down, not hidden ones or symlinked ones).
    #[arg(value_name = "BUNDLE|DIR")]
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

/// Import every bundle and part at `path`, printing each as it is done; one
/// that fails does not stop the others.
pub(super) fn import_all(
    store: &Store,
    path: &Path,
    policy: ImportPolicy,
    json: bool,
) -> Result<Vec<ImportReport>> {
    let bar = Bar::new(json);
    let mut failures = 0;
    let done = store.import_paths(path, policy, &bar, |f| {
        match &f.outcome {
            // The first failure is returned (and printed) at the end; later
            // ones are printed as they come.
            Err(e) if failures > 0 => {
                eprintln!("error: importing {}: {}", f.path.display(), crate::chain(e))
            }
            Err(_) => {}
            Ok(r) if !json => print_imported(f, r),
            Ok(r) => warn(f, r),
        }
        failures += usize::from(f.outcome.is_err());
    })?;
    for dir in &done.too_deep {
        eprintln!(
            "warning: {} is {} directories down: not read (move its bundles up)",
            dir.display(),
            tender_store::IMPORT_MAX_DEPTH
        );
    }
    let total = done.files.len();
    let mut reports = Vec::new();
    let mut failed = None;
    for ImportedFile { path: bundle, outcome } in done.files {
        match outcome {
            Ok(r) => reports.push(r),
            Err(e) if failed.is_none() => {
                failed =
                    Some(anyhow::Error::from(e).context(format!("importing {}", bundle.display())))
            }
            Err(_) => {}
        }
    }
    if !json {
        print_versions(&reports);
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

/// The line for one bundle or part imported, then its warnings.
fn print_imported(f: &ImportedFile, r: &ImportReport) {
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
    warn(f, r);
}

fn warn(f: &ImportedFile, r: &ImportReport) {
    for w in &r.warnings {
        eprintln!("warning: {}: {w}", f.path.display());
    }
}

/// Per version split into parts, where it stands now (the last report of
/// each is current).
fn print_versions(reports: &[ImportReport]) {
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
