//! `tender-ship status`: per stack, what is applied, held, and the history.

use anyhow::Result;
use serde_json::json;
use tender_store::Store;

use super::Ctx;
use crate::{human, print_json};

/// Arguments of `tender-ship status` (none).
#[derive(clap::Args)]
pub struct Status {}

impl Status {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let json = ctx.json;
        let store = Store::open(&ctx.store)?;
        let versions = store.list()?;
        let mut out = Vec::new();
        for stack in store.stacks()? {
            let h = store.history(&stack)?;
            let held: Vec<_> = versions.iter().filter(|v| v.stack == stack).collect();
            out.push(json!({
                "stack": stack,
                "applied": h.current.as_ref().map(|c| &c.version),
                "versions": held,
                "history": h.entries,
            }));
            if !json {
                let applied =
                    h.current.as_ref().map_or("(none)".to_string(), |c| c.version.to_string());
                println!("{stack}: applied {applied}");
                for v in &held {
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
                for e in h.entries.iter().rev().take(10) {
                    println!(
                        "  {} {:?} {} {}",
                        e.at,
                        e.outcome,
                        e.version.as_str(),
                        e.detail.as_deref().unwrap_or("")
                    );
                }
            }
        }
        if json {
            print_json(&out);
        }
        Ok(0)
    }
}
