//! `tender-ship status`: per stack, what is applied, held, and the history;
//! with `--cluster`, the health of each object of the version in force.

use anyhow::{Context, Result};
use tender_bundle::StackName;
use tender_store::Store;

use super::{Ctx, KubeArgs};
use crate::{human, print_json};

/// Arguments of `tender-ship status`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship status
      free space, then per stack the version in force, versions held, history
  tender-ship status awareness --cluster
      each object of the version in force with its health")]
pub struct Status {
    /// Only this stack.
    stack: Option<StackName>,
    /// Also read the cluster (the kubeconfig's) and show the health of
    /// each object of the version in force.
    #[arg(long)]
    cluster: bool,
    #[command(flatten)]
    kube: KubeArgs,
}

impl Status {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let store = Store::open(&ctx.store)?;
        let mut status = store.status()?;
        if let Some(only) = &self.stack {
            status.retain(|s| &s.stack == only);
            if status.is_empty() {
                anyhow::bail!("the store holds no stack {only}");
            }
        }
        let mut health = Vec::new();
        if self.cluster {
            let kubeconfig = self.kube.path()?;
            for s in &status {
                let h = tender_deploy::cluster_health(&store, &s.stack, &kubeconfig)
                    .with_context(|| format!("reading the health of {} in the cluster", s.stack))?;
                health.push(h.map(|(_, objects)| objects));
            }
        }
        if ctx.json {
            let mut out = serde_json::to_value(&status)?;
            if self.cluster
                && let Some(stacks) = out.as_array_mut()
            {
                for (s, h) in stacks.iter_mut().zip(&health) {
                    s["cluster"] = serde_json::to_value(h)?;
                }
            }
            print_json(&out);
            return Ok(0);
        }
        println!("store {}: {} free", ctx.store.display(), human(store.free_space()?));
        for (i, s) in status.iter().enumerate() {
            let applied = s.applied.as_ref().map_or("(none)".to_string(), |v| v.to_string());
            println!("{}: applied {applied}", s.stack);
            if let Some(Some(objects)) = health.get(i) {
                let ready = objects.iter().filter(|o| o.health.is_ready()).count();
                println!("  in the cluster: {ready} of {} objects ready", objects.len());
                for o in objects {
                    println!("    {}: {}", o.object, o.health);
                }
            }
            for st in &s.settings {
                let value = st.value.as_deref().unwrap_or("-");
                println!("  setting {} {}: {value}", st.name, st.state);
            }
            for v in &s.versions {
                let state = if v.complete {
                    "complete".to_string()
                } else {
                    let parts: Vec<String> =
                        v.parts_missing.iter().map(|p| p.to_string()).collect();
                    format!(
                        "INCOMPLETE: {} missing, in part(s) {} of {}",
                        human(v.bytes_missing),
                        parts.join(", "),
                        v.parts
                    )
                };
                println!(
                    "  {} (sequence {}) {} {state}",
                    v.version.as_str(),
                    v.sequence,
                    human(v.size)
                );
            }
            for e in s.history.iter().rev().take(10) {
                println!(
                    "  {} {:?} {} {}",
                    e.at,
                    e.outcome,
                    e.version.as_str(),
                    e.detail.as_deref().unwrap_or("")
                );
            }
        }
        Ok(0)
    }
}
