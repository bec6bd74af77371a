//! `tender-ship rollback`: re-apply an earlier stored version.

use anyhow::Result;
use tender_bundle::{StackName, Version};
use tender_store::{Pick, Store};

use super::load::deploy_version;
use super::{ClusterArgs, Ctx, LoadArgs};

/// Arguments of `tender-ship rollback`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship rollback awareness
      the version applied before the current one
  tender-ship rollback awareness 1.0.0
      any version the store holds")]
pub struct Rollback {
    /// The stack.
    stack: StackName,
    /// The version; default: the one applied before the current.
    version: Option<Version>,
    #[command(flatten)]
    registry: LoadArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

impl Rollback {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let Self { stack, version, registry, cluster } = self;
        let json = ctx.json;
        let store = Store::open(&ctx.store)?;
        let pick = match version {
            Some(v) => Pick::Named(Some(v)),
            None => Pick::Previous,
        };
        deploy_version(&store, &stack, pick, &registry, Some(&cluster), false, json)?;
        Ok(0)
    }
}
