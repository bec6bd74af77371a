//! `tender-ship gc`: drop old versions and the blobs no kept version uses.

use anyhow::Result;
use tender_store::{RollbackTarget, Store};

use super::Ctx;
use crate::{human, print_json};

/// What `gc` does with the version `rollback` would return to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RollbackTargetArg {
    /// Keep it, whatever --keep says (rollback keeps working offline).
    #[default]
    Keep,
    /// Count it like any other version: it may be removed, and `rollback`
    /// without a VERSION then has nothing to return to.
    Drop,
}

/// Arguments of `tender-ship gc`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship gc --keep 2
      keep the two newest versions of each stack, the applied one and the
      one `rollback` would return to
  tender-ship gc --keep 1 --rollback-target drop
      also let the rollback target go (rollback then needs a VERSION the
      store still holds)")]
pub struct Gc {
    /// Versions to keep per stack (the applied one and the rollback target
    /// are kept besides).
    #[arg(long)]
    keep: usize,
    /// The version applied before the current one, which `rollback`
    /// returns to: kept by default.
    #[arg(long, value_enum, default_value_t = RollbackTargetArg::Keep)]
    rollback_target: RollbackTargetArg,
}

impl Gc {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let Self { keep, rollback_target } = self;
        let json = ctx.json;
        let rollback = match rollback_target {
            RollbackTargetArg::Keep => RollbackTarget::Keep,
            RollbackTargetArg::Drop => RollbackTarget::Drop,
        };
        let r = Store::open(&ctx.store)?.gc(keep, rollback)?;
        if json {
            print_json(&r);
        } else {
            for (s, v) in &r.rollback_kept {
                println!(
                    "kept {s} {v}: rollback returns to it (--rollback-target drop removes it)"
                );
            }
            for (s, v) in &r.versions_removed {
                println!("removed {s} {v}");
            }
            println!("removed {} blobs, {}", r.blobs_removed, human(r.bytes_removed));
        }
        Ok(0)
    }
}
