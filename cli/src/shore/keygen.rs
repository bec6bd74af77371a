//! `tender-shore keygen`: an ed25519 signing key pair.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tender_keys::SigningKey;

use super::Ctx;
use crate::print_json;

/// Arguments of `tender-shore keygen`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-shore keygen --out ci
      writes ci.key (keep secret) and ci.pub; prints the key id")]
pub struct Keygen {
    /// Path prefix of the two files.
    #[arg(long)]
    out: PathBuf,
}

impl Keygen {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        keygen(&self.out, ctx.json)?;
        Ok(0)
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(path).with_context(
            || format!("creating {} (refusing to overwrite an existing key)", path.display()),
        )?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn keygen(out: &Path, json: bool) -> Result<()> {
    let key_path = out.with_extension("key");
    let pub_path = out.with_extension("pub");
    for p in [&key_path, &pub_path] {
        if p.exists() {
            bail!("{} exists; refusing to overwrite a key", p.display());
        }
    }
    let key = SigningKey::generate()?;
    write_new(&key_path, key.to_pem()?.as_bytes(), 0o600)?;
    write_new(&pub_path, key.public().to_pem()?.as_bytes(), 0o644)?;
    let id = key.public().key_id();
    if json {
        print_json(&json!({"keyid": id, "private": key_path, "public": pub_path}));
    } else {
        println!("{id}");
        eprintln!("wrote {} (keep it secret) and {}", key_path.display(), pub_path.display());
    }
    Ok(())
}
