//! `tender-ship inventory`: what the store holds, for the shore to pack a delta against.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use tender_store::Store;

use super::Ctx;

/// Arguments of `tender-ship inventory`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship inventory --out /media/usb/inventory.json
      for `tender-shore pack --base inventory.json` on shore")]
pub struct Inventory {
    /// Write here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Inventory {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let Self { out } = self;
        let store = Store::open(&ctx.store)?;
        let mut inv = tender_deploy::inventory(&store)?;
        if let Some(key) = store.ship_key()? {
            inv.signatures.push(key.sign(&inv.signing_message()));
        }
        let text = serde_json::to_string(&inv).expect("inventory serializes");
        match out {
            Some(p) => fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?,
            None => println!("{text}"),
        }
        Ok(0)
    }
}
