//! `tender-ship status`: per stack, what is applied, held, and the history.

use anyhow::Result;
use tender_store::Store;

use super::Ctx;
use crate::{human, print_json};

/// Arguments of `tender-ship status` (none).
#[derive(clap::Args)]
pub struct Status {}

impl Status {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let store = Store::open(&ctx.store)?;
        let status = store.status()?;
        if ctx.json {
            print_json(&status);
            return Ok(0);
        }
        println!("store {}: {} free", ctx.store.display(), human(store.free_space()?));
        for s in &status {
            let applied = s.applied.as_ref().map_or("(none)".to_string(), |v| v.to_string());
            println!("{}: applied {applied}", s.stack);
            for v in &s.versions {
                let state = if v.complete {
                    "complete".to_string()
                } else {
                    let parts: Vec<String> =
                        v.parts_missing.iter().map(|p| p.to_string()).collect();
                    format!(
                        "INCOMPLETE: {} missing, in part(s) {} of {}",
                        human(v.bytes_missing),
                        parts.join(", "),
                        v.parts
                    )
                };
                println!(
                    "  {} (sequence {}) {} {state}",
                    v.version.as_str(),
                    v.sequence,
                    human(v.size)
                );
            }
            for e in s.history.iter().rev().take(10) {
                println!(
                    "  {} {:?} {} {}",
                    e.at,
                    e.outcome,
                    e.version.as_str(),
                    e.detail.as_deref().unwrap_or("")
                );
            }
        }
        Ok(0)
    }
}
