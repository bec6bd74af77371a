//! `tender-ship list`: the stacks and versions held.

use anyhow::Result;
use tender_store::Store;

use super::Ctx;
use crate::{human, print_json};

/// Arguments of `tender-ship list` (none).
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship list
  tender-ship --json list")]
pub struct List {}

impl List {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let json = ctx.json;
        let versions = Store::open(&ctx.store)?.list()?;
        if json {
            print_json(&versions);
        } else if versions.is_empty() {
            println!("no stacks");
        } else {
            println!(
                "{:<20} {:<12} {:>12} {:>10} {:>7}  COMPLETE",
                "STACK", "VERSION", "SEQUENCE", "SIZE", "IMAGES"
            );
            for v in versions {
                println!(
                    "{:<20} {:<12} {:>12} {:>10} {:>7}  {}",
                    v.stack.as_str(),
                    v.version.as_str(),
                    v.sequence,
                    human(v.size),
                    v.images,
                    if v.complete {
                        "yes".to_string()
                    } else {
                        format!("no ({} missing)", human(v.bytes_missing))
                    }
                );
            }
        }
        Ok(0)
    }
}
