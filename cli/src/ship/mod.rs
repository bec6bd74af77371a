//! tender-ship: verify and import stack bundles into the ship's store. One
//! module per command; this one holds the parser, the argument groups the
//! commands share, and the dispatch.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tender_deploy::{ContainerdTarget, RegistryTarget};
use tender_registry::{RegistryAuth, Transport};
use tender_store::{Downgrade, Freshness, ImportPolicy};

mod apply;
mod completions;
mod fsck;
mod gc;
mod import;
mod inventory;
mod keygen;
mod list;
mod load;
mod man;
mod pull;
mod report;
mod rollback;
mod serve;
mod settings;
mod status;
mod trust;
mod verify;

/// The command line of `tender-ship`.
#[derive(Parser)]
#[command(name = "tender-ship", version, about = "Verify and import signed stack bundles aboard")]
pub struct Cli {
    /// The ship's content store.
    #[arg(long, global = true, env = "TENDER_STORE", default_value = "/var/lib/tender")]
    store: PathBuf,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

/// The `tender-ship` commands.
#[derive(Subcommand)]
pub enum Cmd {
    /// Manage the keys whose bundles this ship accepts.
    Trust {
        #[command(subcommand)]
        cmd: trust::TrustCmd,
    },
    /// Check a bundle's signature and every blob; writes nothing.
    Verify(verify::Verify),
    /// Verify a bundle and merge it into the store.
    Import(import::Import),
    /// Fetch a bundle published with `tender-shore publish` from a registry:
    /// verify its signature, then fetch only the blobs the store lacks,
    /// resuming inside a blob after a drop or a restart, and merge them.
    Pull(pull::Pull),
    /// Stacks and versions held.
    List(list::List),
    /// Push a stored version's images into the ship's registry, or write
    /// them into containerd (for ships where a GitOps agent applies).
    Load(load::Load),
    /// Load a stored version and apply it to the cluster, pinned by digest.
    /// Given a bundle or a directory (a mounted stick) instead of a stack
    /// name, imports it first and applies what it brought, once verified.
    Apply(apply::Apply),
    /// Re-apply the version applied before the current one, or VERSION, from
    /// the store. Fetches nothing.
    Rollback(rollback::Rollback),
    /// This ship's values for the settings a stack declares, and its local
    /// patches (kept apart from versions, so they survive updates).
    Settings {
        #[command(subcommand)]
        cmd: settings::SettingsCmd,
    },
    /// Per stack: the applied version, the versions held, and the history.
    Status(status::Status),
    /// Make this ship's own key (STORE/ship.key, mode 0600; STORE/ship.pub for
    /// the shore) and keep its name: inventories and receipts are signed
    /// with it.
    Keygen(keygen::Keygen),
    /// Write the ship's signed receipt (tender-receipt/1) for the shore's
    /// fleet: what it holds, what runs and how, what happened since the
    /// last receipt, the last fsck, the free space, settings still to set.
    Report(report::Report),
    /// What the store holds (blobs, versions, applied), for the shore to
    /// pack a delta against (`tender-shore pack --base inventory.json`).
    Inventory(inventory::Inventory),
    /// Serve the store as a read-only OCI registry (complete versions only).
    Serve(serve::Serve),
    /// Remove versions beyond the newest N of each stack (never the applied
    /// one, nor the one `rollback` returns to unless `--rollback-target
    /// drop`), then every blob no kept version uses.
    Gc(gc::Gc),
    /// Re-hash every blob and report damage (exit 4 when any).
    Fsck(fsck::Fsck),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(completions::Completions),
    /// Write man pages for tender-ship and every subcommand into DIR.
    Man(man::Man),
}

/// What every command gets besides its own arguments.
pub struct Ctx {
    /// The ship's content store.
    pub store: PathBuf,
    /// Print machine-readable JSON on stdout.
    pub json: bool,
}

/// Run a parsed command line; the process's exit code on success.
pub fn run(cli: Cli) -> Result<i32> {
    let ctx = Ctx { store: cli.store, json: cli.json };
    match cli.cmd {
        Cmd::Trust { cmd } => cmd.run(&ctx),
        Cmd::Verify(c) => c.run(&ctx),
        Cmd::Import(c) => c.run(&ctx),
        Cmd::Pull(c) => c.run(&ctx),
        Cmd::List(c) => c.run(&ctx),
        Cmd::Load(c) => c.run(&ctx),
        Cmd::Apply(c) => c.run(&ctx),
        Cmd::Rollback(c) => c.run(&ctx),
        Cmd::Settings { cmd } => cmd.run(&ctx),
        Cmd::Status(c) => c.run(&ctx),
        Cmd::Keygen(c) => c.run(&ctx),
        Cmd::Report(c) => c.run(&ctx),
        Cmd::Inventory(c) => c.run(&ctx),
        Cmd::Serve(c) => c.run(&ctx),
        Cmd::Gc(c) => c.run(&ctx),
        Cmd::Fsck(c) => c.run(&ctx),
        Cmd::Completions(c) => c.run(&ctx),
        Cmd::Man(c) => c.run(&ctx),
    }
}

#[derive(clap::Args)]
pub struct PolicyArgs {
    /// Accept a bundle older (lower sequence) than one already imported.
    #[arg(long)]
    allow_downgrade: bool,
    /// Refuse a bundle past its expiry (default: take it with a warning).
    #[arg(long)]
    require_fresh: bool,
}

impl PolicyArgs {
    fn policy(&self) -> ImportPolicy {
        ImportPolicy {
            downgrade: if self.allow_downgrade { Downgrade::Allow } else { Downgrade::Refuse },
            freshness: if self.require_fresh {
                Freshness::RequireFresh
            } else {
                Freshness::WarnIfExpired
            },
        }
    }
}

#[derive(clap::Args)]
pub struct RegistryArgs {
    /// The ship's registry (microk8s: localhost:32000). Plain HTTP on
    /// loopback, TLS elsewhere.
    #[arg(long, default_value = "localhost:32000")]
    registry: String,
    /// Also use plain HTTP for this registry (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure: Vec<String>,
    /// Docker-style auth file; default: ~/.docker/config.json.
    #[arg(long)]
    authfile: Option<PathBuf>,
}

impl RegistryArgs {
    fn target(&self) -> RegistryTarget {
        let transport = if self.insecure.is_empty() {
            Transport::TlsExceptLoopback
        } else {
            Transport::PlainHttpFor(self.insecure.clone())
        };
        RegistryTarget { host: self.registry.clone(), transport }
    }

    fn auth(&self) -> Result<RegistryAuth> {
        let path = match &self.authfile {
            Some(p) => p.clone(),
            None => match std::env::var_os("HOME") {
                Some(h) => PathBuf::from(h).join(".docker/config.json"),
                None => return Ok(RegistryAuth::Anonymous),
            },
        };
        Ok(tender_registry::auth_from_file(&path, &self.registry)?)
    }
}

/// Where `load`, `apply` and `rollback` put images: the ship's registry,
/// or containerd.
#[derive(clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    registry: RegistryArgs,
    /// Write the images straight into containerd through this socket
    /// instead of a registry (k3s: /run/k3s/containerd/containerd.sock,
    /// microk8s: /var/snap/microk8s/common/run/containerd.sock); manifests
    /// then name them REPO@DIGEST.
    #[arg(
        long,
        value_name = "SOCKET",
        conflicts_with_all = ["registry", "insecure", "authfile"]
    )]
    containerd: Option<PathBuf>,
    /// The containerd namespace, with --containerd [default: k8s.io].
    #[arg(long, value_name = "NAMESPACE", requires = "containerd")]
    containerd_namespace: Option<String>,
    /// Push nothing: `tender-ship serve` on HOST:PORT serves this store
    /// (a ship without a registry add-on); manifests then name the images
    /// HOST:PORT/REPO@DIGEST, after a check that the store holds every blob.
    #[arg(
        long,
        value_name = "HOST:PORT",
        conflicts_with_all = ["registry", "insecure", "authfile", "containerd"]
    )]
    served_by: Option<String>,
}

impl LoadArgs {
    fn target(&self) -> tender_deploy::LoadTarget {
        if let Some(host) = &self.served_by {
            return tender_deploy::LoadTarget::Served(host.clone());
        }
        match &self.containerd {
            Some(socket) => tender_deploy::LoadTarget::Containerd(ContainerdTarget {
                socket: socket.clone(),
                namespace: self
                    .containerd_namespace
                    .clone()
                    .unwrap_or_else(|| tender_deploy::containerd::DEFAULT_NAMESPACE.to_owned()),
            }),
            None => tender_deploy::LoadTarget::Registry(self.registry.target()),
        }
    }

    fn auth(&self) -> Result<RegistryAuth> {
        if self.containerd.is_some() || self.served_by.is_some() {
            // No registry is contacted: no auth file is read.
            return Ok(RegistryAuth::Anonymous);
        }
        self.registry.auth()
    }
}

#[derive(clap::Args)]
pub struct KubeArgs {
    /// Kubeconfig; default: $KUBECONFIG, then ~/.kube/config.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// Take over this live object although tender did not create it for
    /// the stack: KIND/NAMESPACE/NAME, or KIND/NAME if cluster-scoped
    /// (repeatable). Never one labelled for another stack.
    #[arg(long, value_name = "KIND/[NAMESPACE/]NAME")]
    adopt: Vec<tender_deploy::Adopt>,
    /// How long applying and becoming healthy may take (restoring gets as
    /// long again), e.g. 90s, 10m.
    #[arg(long, default_value_t = tender_deploy::Rollout::DEFAULT_TIMEOUT.into())]
    timeout: humantime::Duration,
    /// Do not wait for health: return once applied, and prune at once.
    #[arg(long)]
    no_wait: bool,
    /// Leave a version that fails in place for diagnosis instead of
    /// restoring the one in force before.
    #[arg(long)]
    no_rollback: bool,
}

impl ClusterArgs {
    fn path(&self) -> Result<PathBuf> {
        self.kube.path()
    }

    fn rollout(&self) -> tender_deploy::Rollout {
        use tender_deploy::{OnFailure, Rollout, Wait};
        Rollout {
            timeout: self.timeout.into(),
            wait: if self.no_wait { Wait::No } else { Wait::ForHealth },
            on_failure: if self.no_rollback { OnFailure::Leave } else { OnFailure::Restore },
        }
    }
}

impl KubeArgs {
    fn path(&self) -> Result<PathBuf> {
        if let Some(p) = &self.kubeconfig {
            return Ok(p.clone());
        }
        if let Some(p) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        let home = std::env::var_os("HOME").context("no --kubeconfig, $KUBECONFIG or $HOME")?;
        Ok(PathBuf::from(home).join(".kube/config"))
    }
}

fn open_bundle(path: &Path) -> Result<BufReader<File>> {
    let f = File::open(path).with_context(|| format!("opening bundle {}", path.display()))?;
    Ok(BufReader::with_capacity(tender_bundle::READ_BUFFER, f))
}
