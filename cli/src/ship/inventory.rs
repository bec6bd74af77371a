//! `tender-ship inventory`: what the store holds, for the shore to pack a delta against.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use tender_store::Store;

use super::Ctx;

/// Arguments of `tender-ship inventory`.
#[derive(clap::Args)]
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
        let blobs = store.blob_digests()?;
        let mut versions = Vec::new();
        for v in store.list()? {
            let applied = store.history(&v.stack)?.current.is_some_and(|c| c.digest == v.digest);
            versions.push(tender_stack::delta::InventoryVersion {
                stack: v.stack,
                version: v.version,
                sequence: v.sequence,
                complete: v.complete,
                applied,
            });
        }
        let mut inv = tender_stack::delta::Inventory {
            format: tender_stack::delta::INVENTORY_FORMAT.into(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            blobs,
            versions,
            signatures: vec![],
        };
        let key_path = ctx.store.join("ship.key");
        if key_path.exists() {
            let pem = fs::read_to_string(&key_path)
                .with_context(|| format!("reading {}", key_path.display()))?;
            let key = tender_keys::SigningKey::from_pem(&pem)
                .with_context(|| format!("reading {}", key_path.display()))?;
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
