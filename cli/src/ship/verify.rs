//! `tender-ship verify`: check a bundle without writing anything.

use anyhow::{Context, Result};
use std::path::PathBuf;
use tender_store::{Freshness, Store};

use super::{Ctx, open_bundle};
use crate::{Bar, human, print_json};

/// Arguments of `tender-ship verify`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship verify /media/usb/awareness-1.1.0.tender
      exit 0: it would be accepted; exit 3: it would not")]
pub struct Verify {
    /// The bundle.
    bundle: PathBuf,
    /// Fail on a bundle past its expiry (default: warn).
    #[arg(long)]
    require_fresh: bool,
}

impl Verify {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let Self { bundle, require_fresh } = self;
        let json = ctx.json;
        let store = Store::open(&ctx.store)?;
        let bar = Bar::new(json);
        let freshness =
            if require_fresh { Freshness::RequireFresh } else { Freshness::WarnIfExpired };
        let r = tender_bundle::read_detached(&bundle)
            .map_err(anyhow::Error::from)
            .and_then(|detached| {
                let input = open_bundle(&bundle)?;
                Ok(store.verify(input, &bundle, &detached, freshness, &bar)?)
            })
            .with_context(|| format!("verifying {}", bundle.display()))?;
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", bundle.display());
        }
        if json {
            print_json(&r);
        } else {
            println!(
                "OK {} {} (sequence {}): {} blobs, {} verified, signed by {}",
                r.stack,
                r.version,
                r.sequence,
                r.blobs,
                human(r.bytes),
                r.signed_by.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ")
            );
        }
        Ok(0)
    }
}
