//! `tender-ship load`, and the deploy step that `apply` and `rollback` share.

use anyhow::{Context, Result};
use tender_bundle::{StackName, Version};
use tender_store::{Pick, Store};

use super::{ClusterArgs, Ctx, LoadArgs};
use crate::{Bar, human, print_json};

/// Arguments of `tender-ship load`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship load awareness
      push the newest complete version into localhost:32000
  tender-ship load awareness 1.1.0 --containerd /run/k3s/containerd/containerd.sock")]
pub struct Load {
    /// The stack.
    stack: StackName,
    /// The version; default: the newest complete one.
    version: Option<Version>,
    #[command(flatten)]
    registry: LoadArgs,
}

impl Load {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let Self { stack, version, registry } = self;
        let json = ctx.json;
        let store = Store::open(&ctx.store)?;
        deploy_version(&store, &stack, Pick::Named(version.clone()), &registry, None, false, json)?;
        Ok(0)
    }
}

/// Load and apply (or, without a cluster, load only) one stored version.
pub(super) fn deploy_version(
    store: &Store,
    stack: &StackName,
    pick: Pick,
    registry: &LoadArgs,
    cluster: Option<&ClusterArgs>,
    dry_run: bool,
    json: bool,
) -> Result<()> {
    let (rec, d) = store.pick(stack, &pick)?;
    let target = registry.target();
    if dry_run {
        let rendered = tender_deploy::preview(store, &rec, &d, &target)?;
        for (from, to) in &rendered.pins {
            let verb = match target {
                tender_deploy::LoadTarget::Registry(_) => "push",
                tender_deploy::LoadTarget::Containerd(_) => "write",
                tender_deploy::LoadTarget::Served(_) => "serve",
            };
            eprintln!("{verb} {from} -> {to}");
        }
        eprintln!(
            "{} {}: {} images, {} blobs, {} into {} (blobs it holds will be skipped)",
            d.stack.name,
            d.stack.version,
            d.images.len(),
            d.blobs.len(),
            human(d.total_blob_bytes()),
            target.describe()
        );
        eprintln!("apply order:");
        for (i, o) in rendered.objects.iter().enumerate() {
            match tender_deploy::ObjectRef::of(o) {
                Ok(id) => eprintln!("  {}. {id}", i + 1),
                Err(why) => eprintln!("  {}. (cannot be applied: {why})", i + 1),
            }
        }
        print!("{}", rendered.to_yaml());
        return Ok(());
    }
    let kubeconfig = cluster.map(|c| c.path()).transpose()?;
    let bar = Bar::new(json);
    let r =
        tender_deploy::deploy(
            store,
            &rec,
            &d,
            &target,
            registry.auth()?,
            kubeconfig.as_deref().zip(cluster).map(|(kubeconfig, c)| {
                tender_deploy::ClusterTarget { kubeconfig, adopt: &c.adopt, rollout: c.rollout() }
            }),
            &bar,
        )
        .with_context(|| {
            format!(
                "{} {} {}",
                if kubeconfig.is_some() { "applying" } else { "loading" },
                d.stack.name,
                d.stack.version
            )
        })?;
    if json {
        print_json(&r);
    } else {
        println!(
            "{} {} {}: {} {} in {} blobs, {} already in {}",
            if r.cluster.is_some() { "applied" } else { "loaded" },
            r.stack,
            r.version,
            match target {
                tender_deploy::LoadTarget::Registry(_) => "pushed",
                tender_deploy::LoadTarget::Containerd(_) => "wrote",
                tender_deploy::LoadTarget::Served(_) => "pushed",
            },
            human(r.push.bytes_pushed),
            r.push.blobs_pushed,
            human(r.push.bytes_present),
            target.describe()
        );
        if let Some(c) = &r.cluster {
            let health = if c.waited { ", all healthy" } else { " (health not waited for)" };
            println!("{} objects applied{health}, {} deleted", c.applied.len(), c.deleted.len());
            for a in &c.adopted {
                println!("adopted {a}");
            }
            for s in &c.skipped {
                println!("not deleted: {s}");
            }
        }
    }
    Ok(())
}
