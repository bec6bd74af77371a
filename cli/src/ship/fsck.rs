//! `tender-ship fsck`: re-hash every blob and report damage.

use anyhow::Result;
use tender_store::Store;

use super::Ctx;
use crate::{Bar, EXIT_DAMAGED, human, print_json};

/// Arguments of `tender-ship fsck`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship fsck
      exit 4 if a blob is damaged
  tender-ship fsck --repair
      remove what a crash left and damaged blobs; import the stick again after")]
pub struct Fsck {
    /// Remove what a crash left in staging, and corrupt or stray blobs
    /// (a later import then brings them again).
    #[arg(long)]
    repair: bool,
}

impl Fsck {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let Self { repair } = self;
        let json = ctx.json;
        let bar = Bar::new(json);
        let store = Store::open(&ctx.store)?;
        let mut r = store.fsck(&bar)?;
        if repair {
            let removed = store.repair(&r)?;
            if !json {
                for p in &removed {
                    println!("removed {}", p.display());
                }
            }
            r = store.fsck(&bar)?;
        }
        // For the next receipt (`report`): when the store was last checked.
        store.record_fsck(&r)?;
        if json {
            print_json(&r);
        } else {
            println!("checked {} blobs, {}", r.blobs_checked, human(r.bytes_checked));
            for (p, actual) in &r.corrupt {
                println!("CORRUPT {} (content hashes to {actual})", p.display());
            }
            for p in &r.stray {
                println!("STRAY {}", p.display());
            }
            for (s, v, n) in &r.incomplete_versions {
                println!(
                    "INCOMPLETE {s} {v}: {n} blob(s) not in the store yet (import the rest of its parts)"
                );
            }
            for p in &r.staging_leftovers {
                println!(
                    "LEFTOVER {} (from an interrupted import; the next import removes it)",
                    p.display()
                );
            }
            if r.is_clean() {
                println!("store is clean");
            }
        }
        if !r.is_clean() {
            return Ok(EXIT_DAMAGED);
        }
        Ok(0)
    }
}
