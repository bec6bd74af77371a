//! `tender-ship pull`: fetch a published bundle from a registry.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tender_store::Store;

use super::{Ctx, PolicyArgs, RegistryArgs};
use crate::{Bar, human, print_json};

/// Arguments of `tender-ship pull`.
#[derive(clap::Args)]
pub struct Pull {
    /// REGISTRY/REPO:TAG.
    reference: String,
    /// Average rate not to exceed, in bytes per second (e.g. 256k; K, M,
    /// G are powers of 1024).
    #[arg(long, value_name = "RATE", value_parser = crate::parse_size)]
    limit_rate: Option<u64>,
    /// Print how many bytes the pull would fetch, and stop.
    #[arg(long)]
    estimate: bool,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Use plain HTTP for this registry (repeatable; loopback always may).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure: Vec<String>,
    /// Docker-style auth file; default: ~/.docker/config.json.
    #[arg(long)]
    authfile: Option<PathBuf>,
}

impl Pull {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let Self { reference, limit_rate, estimate, policy, insecure, authfile } = self;
        let json = ctx.json;
        let store = Store::open(&ctx.store)?;
        let policy = policy.policy();
        let target = tender_registry::Target::parse(&reference)?;
        let args = RegistryArgs { registry: target.host.clone(), insecure, authfile };
        let registry =
            tender_registry::Registry::new(&target.host, &args.target().transport, args.auth()?)?;
        if estimate {
            let plan = tender_pull::estimate(&registry, &store, &target, policy)
                .with_context(|| format!("estimating a pull of {target}"))?;
            if json {
                print_json(&plan);
            } else if plan.already_held {
                println!("{} {} is already held: a pull fetches nothing", plan.stack, plan.version);
            } else {
                println!(
                    "pulling {} {} (sequence {}) would fetch {} ({} bytes) in {} blobs; {} already held{}",
                    plan.stack,
                    plan.version,
                    plan.sequence,
                    human(plan.bytes_needed),
                    plan.bytes_needed,
                    plan.blobs_needed,
                    human(plan.bytes_held),
                    if plan.bytes_partial > 0 {
                        format!(", {} already partly fetched", human(plan.bytes_partial))
                    } else {
                        String::new()
                    }
                );
            }
            for w in &plan.warnings {
                eprintln!("warning: {target}: {w}");
            }
            return Ok(0);
        }
        let bar = Bar::new(json);
        let options = tender_pull::PullOptions { policy, limit_rate };
        let (_, r) = tender_pull::pull(&registry, &store, &target, &options, &bar)
            .with_context(|| format!("pulling {target}"))?;
        for w in &r.import.warnings {
            eprintln!("warning: {target}: {w}");
        }
        if json {
            print_json(&r);
        } else if r.import.already_imported {
            println!(
                "{} {} (sequence {}) is already held: nothing fetched",
                r.import.stack, r.import.version, r.import.sequence
            );
        } else {
            println!(
                "pulled {} {} (sequence {}) from {target}: {} new in {} blobs ({} over the link{}), {} already held, in {:.1} s",
                r.import.stack,
                r.import.version,
                r.import.sequence,
                human(r.import.bytes_new),
                r.import.blobs_new,
                human(r.bytes_fetched),
                if r.bytes_resumed > 0 {
                    format!(", resumed from {} kept", human(r.bytes_resumed))
                } else {
                    String::new()
                },
                human(r.import.bytes_held),
                r.seconds
            );
        }
        Ok(0)
    }
}
