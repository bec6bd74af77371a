//! `tender-ship keygen`: the ship's own key, which signs its inventories
//! and receipts, and its name, kept with it.

use anyhow::Result;
use serde_json::json;
use tender_bundle::receipt::ShipName;
use tender_store::Store;

use super::Ctx;
use crate::print_json;

/// Arguments of `tender-ship keygen`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship keygen --name \"MV Aurora\"
      then give STORE/ship.pub to the shore (`pack --ship-key`, `fleet add`)")]
pub struct Keygen {
    /// The ship's name, kept with its key and carried in its receipts
    /// (`tender-ship report`), e.g. "MV Aurora". Given to a key made
    /// before without a name; never changes one already given.
    #[arg(long)]
    name: Option<ShipName>,
}

impl Keygen {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let store = Store::open(&ctx.store)?;
        let made = store.keygen(self.name.as_ref())?;
        let id = made.public.key_id();
        if ctx.json {
            print_json(&json!({
                "keyid": id,
                "public": made.public_path,
                "name": self.name,
                "created": made.created,
            }));
        } else {
            println!("{id}");
            if let (false, Some(n)) = (made.created, &self.name) {
                eprintln!("the ship's existing key is now named {:?}", n.as_str());
            }
            eprintln!(
                "give {} to the shore (tender-shore fleet add, or pack --ship-key)",
                made.public_path.display()
            );
        }
        Ok(0)
    }
}
