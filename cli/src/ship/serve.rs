//! `tender-ship serve`: the store as a read-only OCI registry.

use anyhow::Result;
use serde_json::json;
use tender_store::Store;

use super::Ctx;
use crate::print_json;

/// Arguments of `tender-ship serve`.
#[derive(clap::Args)]
pub struct Serve {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:32000")]
    listen: String,
}

impl Serve {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let Self { listen } = self;
        let json = ctx.json;
        let store = Store::open(&ctx.store)?;
        tender_serve::serve(store, &listen, |addr| {
            if json {
                print_json(&json!({"listening": addr}));
            } else {
                println!("serving {} read-only on http://{addr}", ctx.store.display());
            }
        })?;
        Ok(0)
    }
}
