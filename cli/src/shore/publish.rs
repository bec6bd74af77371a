//! `tender-shore publish`: push a bundle to an OCI registry.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tender_registry::{Registry, Target};

use super::Ctx;
use super::pack::{PackArgs, pack_to};
use crate::{Bar, human, print_json};

/// Arguments of `tender-shore publish`.
#[derive(clap::Args)]
pub struct Publish {
    /// A bundle, or a stack file (YAML) to pack.
    input: PathBuf,
    /// Where: REGISTRY/REPO:TAG.
    #[arg(long)]
    to: String,
    #[command(flatten)]
    args: PackArgs,
}

impl Publish {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        publish(&self.input, &self.to, &self.args, ctx.json)?;
        Ok(0)
    }
}

fn is_stack_file(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

fn publish(input: &Path, to: &str, args: &PackArgs, json: bool) -> Result<()> {
    let target = Target::parse(to)?;
    // A stack file is packed into a temporary bundle first (removed after).
    let tmp;
    let bundle = if is_stack_file(input) {
        tmp = tempfile::Builder::new()
            .prefix(".tender-publish-")
            .tempdir()
            .context("making a temporary directory")?;
        let out = tmp.path().join("bundle.tender");
        pack_to(input, Some(out.clone()), None, args, json, true)?;
        out
    } else {
        input.to_owned()
    };
    let detached = tender_bundle::read_detached(&bundle)?;
    let auth = match &args.authfile {
        Some(p) => tender_registry::auth_from_file(p, &target.host)?,
        None => match std::env::var_os("HOME") {
            Some(h) => tender_registry::auth_from_file(
                &PathBuf::from(h).join(".docker/config.json"),
                &target.host,
            )?,
            None => tender_registry::RegistryAuth::Anonymous,
        },
    };
    let registry = Registry::new(&target.host, &args.transport(), auth)?;
    let bar = Bar::new(json);
    let r = tender_stack::publish(&registry, &bundle, &detached, &target.repo, &target.tag, &bar)
        .with_context(|| format!("publishing {} to {target}", input.display()))?;
    if json {
        print_json(&r);
    } else {
        println!(
            "published {} {} (sequence {}) as {} ({}): {} pushed in {} blobs, {} already there in {} blobs\ndescriptor {}",
            r.stack,
            r.version,
            r.sequence,
            r.reference,
            r.manifest,
            human(r.bytes_pushed),
            r.blobs_pushed,
            human(r.bytes_present),
            r.blobs_present,
            r.descriptor
        );
    }
    Ok(())
}
