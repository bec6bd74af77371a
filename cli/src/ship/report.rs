//! `tender-ship report`: the ship's signed receipt, for the shore's fleet.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;
use tender_store::Store;

use super::{Ctx, KubeArgs, RegistryArgs};
use crate::print_json;

/// Arguments of `tender-ship report`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship report --out /media/usb/receipt-aurora.json
  tender-ship report --to registry.example/fleet/receipts:mv-aurora
      (once, before: tender-ship keygen --name \"MV Aurora\")")]
pub struct Report {
    /// Write the receipt here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Read the health of each stack's version in force from this cluster;
    /// default: $KUBECONFIG, then ~/.kube/config, if it exists (otherwise
    /// the health is reported as unknown).
    #[command(flatten)]
    kube: KubeArgs,
    /// Also push the receipt to REGISTRY/REPO:TAG as an OCI artifact (when
    /// there is a link; retried as `pull` is), for `tender-shore fleet
    /// ingest --from REGISTRY/REPO`.
    #[arg(long, value_name = "REGISTRY/REPO:TAG")]
    to: Option<String>,
    /// Use plain HTTP for this registry (repeatable; loopback always may).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure: Vec<String>,
    /// Docker-style auth file; default: ~/.docker/config.json.
    #[arg(long)]
    authfile: Option<PathBuf>,
}

impl Report {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let store = Store::open(&ctx.store)?;
        let kubeconfig = self.kube.path().ok().filter(|p| p.exists());
        let receipt =
            tender_deploy::receipt(&store, kubeconfig.as_deref(), std::time::SystemTime::now())?;
        let bytes = receipt.to_bytes();
        let target = self.to.as_deref().map(tender_registry::Target::parse).transpose()?;
        match &self.out {
            Some(p) => write_file(p, &bytes)?,
            None if target.is_some() => {}
            None => {
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)
                    .and_then(|_| out.write_all(b"\n"))
                    .context("writing stdout")?;
            }
        }
        // Once a copy is out (a file, stdout), the next receipt starts
        // after this one, even if the push below fails: a receipt number
        // is never used for two contents.
        if self.out.is_some() || target.is_none() {
            store.mark_reported(&receipt)?;
        }
        if let Some(t) = &target {
            let args = RegistryArgs {
                registry: t.host.clone(),
                insecure: self.insecure.clone(),
                authfile: self.authfile.clone(),
            };
            let registry =
                tender_registry::Registry::new(&t.host, &args.target().transport, args.auth()?)?;
            let (manifest, docs) = tender_bundle::receipt::receipt_artifact(&bytes, &receipt.ship);
            let media_type = tender_bundle::media::MediaType::ImageManifest;
            registry
                .push_artifact(
                    &t.repo,
                    &t.tag,
                    docs,
                    &[],
                    (manifest, &media_type),
                    &tender_bundle::NoProgress,
                )
                .with_context(|| format!("pushing the receipt to {t}"))?;
            if !ctx.json {
                eprintln!("pushed receipt {} of {} to {t}", receipt.sequence, receipt.ship);
            }
        }
        if self.out.is_none() && target.is_some() {
            // Only pushed: out once the push is done.
            store.mark_reported(&receipt)?;
        }
        if let Some(p) = &self.out {
            if ctx.json {
                print_json(&json!({
                    "path": p,
                    "ship": receipt.ship,
                    "sequence": receipt.sequence,
                    "bytes": bytes.len(),
                }));
            } else {
                println!(
                    "receipt {} of {} written to {} ({} bytes)",
                    receipt.sequence,
                    receipt.ship,
                    p.display(),
                    bytes.len()
                );
            }
        }
        Ok(0)
    }
}

/// Write `bytes` to `path` whole or not at all (temp file, fsync, rename).
fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".receipt-")
        .tempfile_in(&dir)
        .with_context(|| format!("writing {}", path.display()))?;
    // Readable by others: it is carried off the ship (no secret in it).
    use std::os::unix::fs::PermissionsExt as _;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)))
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
