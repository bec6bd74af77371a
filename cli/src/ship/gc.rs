//! `tender-ship gc`: drop old versions and the blobs no kept version uses.

use anyhow::Result;
use tender_store::Store;

use super::Ctx;
use crate::{human, print_json};

/// Arguments of `tender-ship gc`.
#[derive(clap::Args)]
pub struct Gc {
    /// Versions to keep per stack.
    #[arg(long)]
    keep: usize,
}

impl Gc {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let Self { keep } = self;
        let json = ctx.json;
        let r = Store::open(&ctx.store)?.gc(keep)?;
        if json {
            print_json(&r);
        } else {
            for (s, v) in &r.versions_removed {
                println!("removed {s} {v}");
            }
            println!("removed {} blobs, {}", r.blobs_removed, human(r.bytes_removed));
        }
        Ok(0)
    }
}
