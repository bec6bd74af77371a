//! `tender-ship keygen`: the ship's own key, which signs its inventories.

use std::fs;

use anyhow::{Context, Result};
use serde_json::json;
use tender_store::Store;

use super::Ctx;
use crate::print_json;

/// Arguments of `tender-ship keygen` (none).
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship keygen
      then give STORE/ship.pub to the shore (`pack --ship-key`)")]
pub struct Keygen {}

impl Keygen {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let json = ctx.json;
        let store = Store::open(&ctx.store)?;
        let (key_path, pub_path) = (store.root().join("ship.key"), store.root().join("ship.pub"));
        anyhow::ensure!(
            !key_path.exists(),
            "{} exists; refusing to overwrite the ship's key",
            key_path.display()
        );
        let key = tender_keys::SigningKey::generate()?;
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key_path)
                .with_context(|| format!("creating {}", key_path.display()))?;
            f.write_all(key.to_pem()?.as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("writing {}", key_path.display()))?;
        }
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::write(&pub_path, key.public().to_pem()?)
                .and_then(|_| fs::set_permissions(&pub_path, fs::Permissions::from_mode(0o644)))
                .with_context(|| format!("writing {}", pub_path.display()))?;
        }
        let id = key.public().key_id();
        if json {
            print_json(&json!({"keyid": id, "public": pub_path}));
        } else {
            println!("{id}");
            eprintln!("give {} to the shore (tender-shore pack --ship-key)", pub_path.display());
        }
        Ok(0)
    }
}
