//! `tender-shore sign`: add a detached signature to a bundle.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use tender_bundle::{
    Descriptor, Signatures, detached_sig_path, read_descriptor_bytes, signing_message,
};

use super::{Ctx, load_key};
use crate::print_json;

/// Arguments of `tender-shore sign`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-shore sign awareness-1.1.0.tender --key rm.key
      writes or extends awareness-1.1.0.tender.sig
  tender-shore sign awareness-1.1.0.tender.001 --key rm.key
      split: one awareness-1.1.0.tender.sig for all parts")]
pub struct Sign {
    /// The bundle (or any of its parts).
    bundle: PathBuf,
    /// The signing key file (for example a release manager's); default:
    /// the key file's contents in $TENDER_SIGNING_KEY.
    #[arg(long)]
    key: Option<PathBuf>,
}

impl Sign {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        sign(&self.bundle, self.key.as_deref(), ctx.json)?;
        Ok(0)
    }
}

fn sign(bundle: &Path, key: Option<&Path>, json: bool) -> Result<()> {
    let key = load_key(key)?;
    let f = fs::File::open(bundle).with_context(|| format!("opening {}", bundle.display()))?;
    let raw = read_descriptor_bytes(std::io::BufReader::new(f), bundle)?;
    let d = Descriptor::parse(&raw)
        .with_context(|| format!("reading the descriptor of {}", bundle.display()))?;
    let sig = key.sign(&signing_message(&raw));
    let path = detached_sig_path(bundle);
    let mut sigs = tender_bundle::read_detached(bundle)?;
    sigs.retain(|s| s.keyid != sig.keyid);
    sigs.push(sig.clone());
    let body =
        serde_json::to_vec_pretty(&Signatures { signatures: sigs }).expect("signatures serialize");
    crate::write_replacing(&path, &body)?;
    let digest = tender_bundle::Digest::of(&raw);
    if json {
        print_json(
            &json!({"stack": d.stack.name, "version": d.stack.version, "descriptor": digest, "keyid": sig.keyid, "file": path}),
        );
    } else {
        println!(
            "signed {} {} (descriptor {digest}) with {} into {}",
            d.stack.name,
            d.stack.version,
            sig.keyid,
            path.display()
        );
    }
    Ok(())
}
