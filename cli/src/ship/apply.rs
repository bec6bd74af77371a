//! `tender-ship apply`: import if given bundles, then load and apply.

use std::path::Path;

use anyhow::{Context, Result};
use tender_bundle::{StackName, Version};
use tender_store::{ImportReport, Pick, Store};

use super::import::import_all;
use super::load::deploy_version;
use super::{ClusterArgs, Ctx, LoadArgs, PolicyArgs};

/// Arguments of `tender-ship apply`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship apply /media/usb
      import every bundle on the stick, then apply the newest version each brought
  tender-ship apply awareness --dry-run
      print the pinned manifests (stdout) and the push plan (stderr); change nothing
  tender-ship apply awareness 1.1.0 --timeout 15m
      apply a stored version; exit 5 if it failed and 1.0.0 is back
  tender-ship apply awareness --served-by localhost:32000
      a ship whose registry is `tender-ship serve`: push nothing
  tender-ship apply awareness --containerd /run/k3s/containerd/containerd.sock
      k3s: write the images into containerd")]
pub struct Apply {
    /// A stack name, or a bundle file or directory to import first.
    #[arg(value_name = "STACK|BUNDLE|DIR")]
    target: String,
    /// The version; default: the newest complete one.
    version: Option<Version>,
    #[command(flatten)]
    registry: LoadArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Print the rewritten manifests (stdout) and the push plan (stderr); change nothing.
    #[arg(long)]
    dry_run: bool,
    /// With a bundle or directory: import and apply a version older
    /// (lower sequence) than one imported or the one in force.
    #[command(flatten)]
    policy: PolicyArgs,
}

impl Apply {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let Self { target, version, registry, cluster, dry_run, policy } = self;
        let json = ctx.json;
        let store = Store::open(&ctx.store)?;
        let path = Path::new(&target);
        if path.exists() {
            // The engineer's one command: import, then apply, per stack,
            // the newest version these bundles brought, never one older
            // than the version in force unless asked.
            let policy = policy.policy();
            let reports = import_all(&store, path, policy, json)?;
            let mut newest: Vec<&ImportReport> = Vec::new();
            for r in &reports {
                match newest.iter_mut().find(|n| n.stack == r.stack) {
                    Some(n) if r.sequence > n.sequence => *n = r,
                    Some(_) => {}
                    None => newest.push(r),
                }
            }
            for r in newest {
                let refuse = |e: tender_store::StoreError| {
                    anyhow::Error::from(e).context(format!("applying {}", path.display()))
                };
                if let Some(floor) = r.below_floor {
                    // Held already, and older than one accepted since.
                    return Err(refuse(tender_store::StoreError::Downgrade {
                        stack: r.stack.clone(),
                        sequence: r.sequence,
                        floor,
                    }));
                }
                store
                    .check_not_older_than_applied(&r.stack, &r.version, r.sequence, policy)
                    .map_err(refuse)?;
                deploy_version(
                    &store,
                    &r.stack,
                    Pick::Digest(r.digest.clone()),
                    &registry,
                    Some(&cluster),
                    dry_run,
                    json,
                )?;
            }
        } else {
            let stack = StackName::try_from(target.clone()).with_context(|| {
                format!("{target:?} is neither a stack name nor an existing path")
            })?;
            deploy_version(
                &store,
                &stack,
                Pick::Named(version.clone()),
                &registry,
                Some(&cluster),
                dry_run,
                json,
            )?;
        }
        Ok(0)
    }
}
