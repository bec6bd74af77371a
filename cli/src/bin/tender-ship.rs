//! tender-ship: verify and import stack bundles into the ship's store.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use tender_bundle::{StackName, Version};
use tender_cli::{Bar, EXIT_DAMAGED, fail, human, print_json};
use tender_deploy::RegistryTarget;
use tender_keys::KeyId;
use tender_registry::{RegistryAuth, Transport};
use tender_store::{Downgrade, Freshness, ImportPolicy, ImportReport, Store};

#[derive(Parser)]
#[command(name = "tender-ship", version, about = "Verify and import signed stack bundles aboard")]
struct Cli {
    /// The ship's content store.
    #[arg(long, global = true, env = "TENDER_STORE", default_value = "/var/lib/tender")]
    store: PathBuf,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Manage the keys whose bundles this ship accepts.
    Trust {
        #[command(subcommand)]
        cmd: TrustCmd,
    },
    /// Check a bundle's signature and every blob; writes nothing.
    Verify {
        /// The bundle.
        bundle: PathBuf,
        /// Fail on a bundle past its expiry (default: warn).
        #[arg(long)]
        require_fresh: bool,
    },
    /// Verify a bundle and merge it into the store.
    Import {
        /// A bundle, a part (`NAME.tender.NNN`), or a directory of them (a
        /// mounted stick: every `*.tender` and `*.tender.NNN` in it).
        bundle: PathBuf,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Fetch a bundle published with `tender-shore publish` from a registry:
    /// verify its signature, then fetch only the blobs the store lacks,
    /// resuming inside a blob after a drop or a restart, and merge them.
    Pull {
        /// REGISTRY/REPO:TAG.
        reference: String,
        /// Average rate not to exceed, in bytes per second (e.g. 256k; K, M,
        /// G are powers of 1024).
        #[arg(long, value_name = "RATE", value_parser = tender_cli::parse_size)]
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
    },
    /// Stacks and versions held.
    List,
    /// Push a stored version's images into the ship's registry (for ships
    /// where a GitOps agent applies).
    Load {
        /// The stack.
        stack: StackName,
        /// The version; default: the newest complete one.
        version: Option<Version>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Load a stored version and apply it to the cluster, pinned by digest.
    /// Given a bundle or a directory (a mounted stick) instead of a stack
    /// name, imports it first and applies what it brought, once verified.
    Apply {
        /// A stack name, or a bundle file or directory to import first.
        target: String,
        /// The version; default: the newest complete one.
        version: Option<Version>,
        #[command(flatten)]
        registry: RegistryArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Print the rewritten manifests (stdout) and the push plan (stderr); change nothing.
        #[arg(long)]
        dry_run: bool,
        /// With a bundle or directory: import and apply a version older
        /// (lower sequence) than one imported or the one in force.
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Re-apply the version applied before the current one, or VERSION, from
    /// the store. Fetches nothing.
    Rollback {
        /// The stack.
        stack: StackName,
        /// The version; default: the one applied before the current.
        version: Option<Version>,
        #[command(flatten)]
        registry: RegistryArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Per stack: the applied version, the versions held, and the history.
    Status,
    /// Make this ship's own key (STORE/ship.key, mode 0600; STORE/ship.pub for
    /// the shore): inventories are then signed with it.
    Keygen,
    /// What the store holds (blobs, versions, applied), for the shore to
    /// pack a delta against (`tender-shore pack --base inventory.json`).
    Inventory {
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Serve the store as a read-only OCI registry (complete versions only).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:32000")]
        listen: String,
    },
    /// Remove versions beyond the newest N of each stack (never the applied
    /// one), then every blob no kept version uses.
    Gc {
        /// Versions to keep per stack.
        #[arg(long)]
        keep: usize,
    },
    /// Re-hash every blob and report damage (exit 4 when any).
    Fsck {
        /// Remove what a crash left in staging, and corrupt or stray blobs
        /// (a later import then brings them again).
        #[arg(long)]
        repair: bool,
    },
}

#[derive(clap::Args)]
struct PolicyArgs {
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
struct RegistryArgs {
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

#[derive(clap::Args)]
struct ClusterArgs {
    /// Kubeconfig; default: $KUBECONFIG, then ~/.kube/config.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Take over this live object although tender did not create it for
    /// the stack: KIND/NAMESPACE/NAME, or KIND/NAME if cluster-scoped
    /// (repeatable). Never one labelled for another stack.
    #[arg(long, value_name = "KIND/[NAMESPACE/]NAME")]
    adopt: Vec<tender_deploy::Adopt>,
}

impl ClusterArgs {
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

#[derive(Subcommand)]
enum TrustCmd {
    /// Trust a public key (creates the store if needed): a signing key,
    /// which may then sign any stack, or with --root a root key, which signs
    /// keyrings (`tender-shore keyring`) that name the signing keys.
    Add {
        /// The public key file (PEM), as `tender-shore keygen` writes.
        key: PathBuf,
        /// Pin it as a root key.
        #[arg(long)]
        root: bool,
    },
    /// Install a keyring (as a bundle carrying it would): it must be newer
    /// than the one in force and signed by the roots in force and its own.
    Keyring {
        /// The keyring file.
        file: PathBuf,
    },
    /// The trust in force: root keys, the keyring (signing keys, their
    /// stacks and expiry, revoked keys), pinned signing keys, thresholds.
    List,
    /// Stop trusting a key.
    Remove {
        /// The key id.
        keyid: KeyId,
    },
    /// Require K of the pinned root keys to sign the first keyring
    /// (default: a majority of them), so one stolen root cannot install it.
    RootThreshold {
        /// How many pinned roots must sign.
        k: usize,
    },
    /// Require K distinct trusted signatures on STACK's bundles (for example
    /// CI and a release manager; `tender-shore sign` adds one).
    Threshold {
        /// The stack.
        stack: StackName,
        /// How many distinct trusted keys must have signed (1: the default).
        k: usize,
    },
}

fn trust_list(store: &Store, json: bool) -> Result<()> {
    let roots: Vec<String> = store.pinned_roots()?.iter().map(|k| k.key_id().to_string()).collect();
    let pinned: Vec<KeyId> = store.trusted_keys()?.iter().map(|k| k.key_id()).collect();
    let keys: Vec<String> = pinned.iter().map(|k| k.to_string()).collect();
    let keyring = store.keyring()?;
    let thresholds = store.thresholds()?;
    let root_threshold = store.root_threshold(roots.len())?;
    if json {
        print_json(&json!({
            "roots": roots,
            "root_threshold": root_threshold,
            "keys": keys,
            "keys_authority": "pinned by hand: any stack, cluster-scoped objects included",
            "keyring": keyring.as_ref().map(|k| &k.signed),
            "thresholds": thresholds,
        }));
        return Ok(());
    }
    for r in &roots {
        println!("root     {r}  (pinned)");
    }
    if keyring.is_none() && !roots.is_empty() {
        println!("         the first keyring needs {root_threshold} of these roots' signatures");
    }
    if let Some(k) = &keyring {
        let k = &k.signed;
        println!(
            "keyring  version {} of {}, roots {} of {}:",
            k.version,
            k.created,
            k.roots.threshold,
            k.roots.keys.len()
        );
        for r in &k.roots.keys {
            println!("  root    {}", r.keyid);
        }
        for s in &k.signers {
            println!(
                "  signer  {}  stacks {}  {}  {}",
                s.key.keyid,
                s.stacks.join(","),
                s.expires.as_deref().map_or("no expiry".to_string(), |e| format!("expires {e}")),
                if s.cluster_scope {
                    "cluster-scoped objects allowed"
                } else {
                    "namespaced objects only"
                }
            );
        }
        for r in &k.revoked {
            println!("  revoked {r}");
        }
        for (stack, n) in &k.thresholds {
            println!("  {stack}: {n} signatures required");
        }
    } else if !roots.is_empty() {
        println!("keyring  none yet (a bundle carrying one, or `trust keyring FILE`, installs it)");
    }
    for k in &pinned {
        let revoked = keyring.as_ref().is_some_and(|r| r.signed.is_revoked(k));
        println!(
            "key      {k}  (pinned by hand: full authority, any stack, cluster-scoped objects included){}",
            if revoked { "  REVOKED by the keyring" } else { "" }
        );
    }
    for (stack, n) in &thresholds {
        println!("{stack}: {n} distinct trusted signatures required");
    }
    Ok(())
}

fn open_bundle(path: &Path) -> Result<BufReader<File>> {
    let f = File::open(path).with_context(|| format!("opening bundle {}", path.display()))?;
    Ok(BufReader::with_capacity(1 << 20, f))
}

/// Bundles at `path`: the file itself, or every `*.tender` file in a directory.
fn bundles_at(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut found = Vec::new();
    for e in fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        let p = e.with_context(|| format!("reading {}", path.display()))?.path();
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // NAME.tender, or a part NAME.tender.001
        let is_part = name
            .rsplit_once(".tender.")
            .is_some_and(|(_, n)| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()));
        if p.is_file() && (name.ends_with(".tender") || is_part) {
            found.push(p);
        }
    }
    found.sort();
    anyhow::ensure!(
        !found.is_empty(),
        "no *.tender bundle or *.tender.NNN part in {}",
        path.display()
    );
    Ok(found)
}

#[allow(clippy::too_many_arguments)]
fn pull(
    store: &Store,
    reference: &str,
    limit_rate: Option<u64>,
    estimate: bool,
    policy: ImportPolicy,
    insecure: Vec<String>,
    authfile: Option<PathBuf>,
    json: bool,
) -> Result<()> {
    let target = tender_registry::Target::parse(reference)?;
    let args = RegistryArgs { registry: target.host.clone(), insecure, authfile };
    let registry =
        tender_registry::Registry::new(&target.host, &args.target().transport, args.auth()?)?;
    if estimate {
        let plan = registry
            .pull_estimate(store, &target, policy)
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
        return Ok(());
    }
    let bar = Bar::new(json);
    let options = tender_registry::PullOptions { policy, limit_rate };
    let (_, r) = registry
        .pull(store, &target, &options, &bar)
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
    Ok(())
}

fn import_all(
    store: &Store,
    path: &Path,
    policy: ImportPolicy,
    json: bool,
) -> Result<Vec<ImportReport>> {
    let mut reports = Vec::new();
    let mut failed: Option<anyhow::Error> = None;
    let mut failures = 0;
    let bundles = bundles_at(path)?;
    let total = bundles.len();
    for bundle in bundles {
        let bar = Bar::new(json);
        let r = match open_bundle(&bundle)
            .and_then(|f| {
                let detached = tender_bundle::read_detached(&bundle)?;
                Ok(store.import_with(f, &bundle, &detached, policy, &bar)?)
            })
            .with_context(|| format!("importing {}", bundle.display()))
        {
            Ok(r) => r,
            Err(e) => {
                // One bad part or stick must not stop the others. The first
                // failure is returned (and printed) at the end; later ones
                // are printed as they come.
                failures += 1;
                match &failed {
                    None => failed = Some(e),
                    Some(_) => eprintln!("error: {e:#}"),
                }
                continue;
            }
        };
        if !json {
            let what = if r.parts > 1 {
                format!("{} {} part {} of {}", r.stack, r.version, r.part, r.parts)
            } else {
                format!("{} {}", r.stack, r.version)
            };
            if r.already_imported {
                println!("{what} (sequence {}) is already imported: nothing to do", r.sequence);
            } else {
                println!(
                    "imported {what} (sequence {}): {} new in {} blobs, {} already held in {} blobs",
                    r.sequence,
                    human(r.bytes_new),
                    r.blobs_new,
                    human(r.bytes_held),
                    r.blobs_held
                );
            }
        }
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", bundle.display());
        }
        reports.push(r);
    }
    if !json {
        // Per version, where it stands now (the last report of each is current).
        let mut seen = Vec::new();
        for r in reports.iter().rev() {
            if seen.contains(&&r.digest) || r.parts == 1 {
                continue;
            }
            seen.push(&r.digest);
            if r.complete {
                println!("{} {}: complete ({} parts)", r.stack, r.version, r.parts);
            } else {
                println!(
                    "{} {}: {} of {} parts, {} missing",
                    r.stack,
                    r.version,
                    r.parts_complete,
                    r.parts,
                    human(r.bytes_missing)
                );
            }
        }
    }
    match failed {
        Some(e) if failures > 1 => Err(e.context(format!(
            "{failures} of {total} bundles in {} failed (the others are above)",
            path.display()
        ))),
        Some(e) => Err(e),
        None => Ok(reports),
    }
}

/// Load and apply (or, without a cluster, load only) one stored version.
/// Which stored version of a stack to deploy.
enum Pick<'a> {
    /// `VERSION`, or the newest complete one still trusted.
    Named(Option<&'a Version>),
    /// Exactly this descriptor (what an import brought, or the version
    /// applied before: a version name may have been re-issued since).
    Digest(&'a tender_bundle::Digest),
}

fn deploy_version(
    store: &Store,
    stack: &StackName,
    pick: Pick<'_>,
    registry: &RegistryArgs,
    cluster: Option<&ClusterArgs>,
    dry_run: bool,
    json: bool,
) -> Result<()> {
    let (rec, d) = match pick {
        Pick::Named(version) => store.version(stack, version)?,
        Pick::Digest(digest) => store.version_by_digest(stack, digest)?.with_context(|| {
            format!("{stack}: the store no longer holds the version with descriptor {digest}")
        })?,
    };
    let target = registry.target();
    if dry_run {
        let rendered = tender_deploy::preview(store, &rec, &d, &target.host)?;
        for (from, to) in &rendered.pins {
            eprintln!("push {from} -> {to}");
        }
        eprintln!(
            "{} {}: {} images, {} blobs, {} (blobs the registry holds will be skipped)",
            d.stack.name,
            d.stack.version,
            d.images.len(),
            d.blobs.len(),
            human(d.total_blob_bytes())
        );
        print!("{}", rendered.to_yaml());
        return Ok(());
    }
    let kubeconfig = cluster.map(|c| c.path()).transpose()?;
    let bar = Bar::new(json);
    let r = tender_deploy::deploy(
        store,
        &rec,
        &d,
        &target,
        registry.auth()?,
        kubeconfig
            .as_deref()
            .zip(cluster)
            .map(|(kubeconfig, c)| tender_deploy::ClusterTarget { kubeconfig, adopt: &c.adopt }),
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
            "{} {} {}: pushed {} in {} blobs, {} already in {}",
            if r.cluster.is_some() { "applied" } else { "loaded" },
            r.stack,
            r.version,
            human(r.push.bytes_pushed),
            r.push.blobs_pushed,
            human(r.push.bytes_present),
            target.host
        );
        if let Some(c) = &r.cluster {
            println!("{} objects applied, {} deleted", c.applied.len(), c.deleted.len());
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

fn run(cli: Cli) -> Result<i32> {
    let json = cli.json;
    match cli.cmd {
        Cmd::Trust { cmd: TrustCmd::Add { key, root } } => {
            let pem =
                fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?;
            if pem.contains("PRIVATE KEY") {
                anyhow::bail!(
                    "{} is a private key: give the ship the .pub file, never the .key",
                    key.display()
                );
            }
            let store = Store::init(&cli.store)?;
            let id = if root { store.root_add(&pem) } else { store.trust_add(&pem) }
                .with_context(|| format!("trusting {}", key.display()))?;
            let what = if root { "root key" } else { "signing key" };
            if json {
                print_json(&json!({"added": id, "role": what}));
            } else {
                println!("trusted {id} as a {what}");
            }
        }
        Cmd::Trust { cmd: TrustCmd::Keyring { file } } => {
            let store = Store::open(&cli.store)?;
            let bytes = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let _lock = store.lock()?;
            let (change, k) = store
                .consider_keyring(&bytes, tender_store::Install::Yes)
                .with_context(|| format!("installing keyring {}", file.display()))?;
            let v = k.signed.version;
            let text = match change {
                tender_store::KeyringChange::Installed { .. } => {
                    format!("keyring version {v} is in force")
                }
                tender_store::KeyringChange::Same => {
                    format!("keyring version {v} was already in force")
                }
                tender_store::KeyringChange::Older { held, .. } => {
                    anyhow::bail!("keyring version {v} is older than version {held}, in force")
                }
            };
            if json {
                print_json(&json!({"version": v}));
            } else {
                println!("{text}");
            }
        }
        Cmd::Trust { cmd: TrustCmd::List } => trust_list(&Store::open(&cli.store)?, json)?,
        Cmd::Trust { cmd: TrustCmd::Remove { keyid } } => {
            Store::open(&cli.store)?.trust_remove(&keyid)?;
            if json {
                print_json(&json!({"removed": keyid}));
            } else {
                println!("removed {keyid}");
            }
        }
        Cmd::Trust { cmd: TrustCmd::RootThreshold { k } } => {
            let store = Store::open(&cli.store)?;
            store.set_root_threshold(k)?;
            let in_force = store.keyring()?.map(|k| k.signed.version);
            if json {
                print_json(&json!({"root_threshold": k, "keyring_in_force": in_force}));
            } else {
                println!("the first keyring needs {k} pinned root signature(s)");
            }
            if let Some(v) = in_force {
                eprintln!(
                    "note: keyring version {v} is in force: later keyrings are judged by its roots and threshold; this applies only if the store starts over without a keyring"
                );
            }
        }
        Cmd::Trust { cmd: TrustCmd::Threshold { stack, k } } => {
            Store::open(&cli.store)?.set_threshold(&stack, k)?;
            if !json {
                println!("{stack}: {} distinct trusted signature(s) required", k.max(1));
            }
        }
        Cmd::Verify { bundle, require_fresh } => {
            let store = Store::open(&cli.store)?;
            let bar = Bar::new(json);
            let freshness =
                if require_fresh { Freshness::RequireFresh } else { Freshness::WarnIfExpired };
            let r = tender_bundle::read_detached(&bundle)
                .map_err(anyhow::Error::from)
                .and_then(|detached| {
                    let input = open_bundle(&bundle)?;
                    Ok(store.verify(input, &bundle, &detached, freshness, &bar)?)
                })
                .with_context(|| format!("verifying {}", bundle.display()))?;
            for w in &r.warnings {
                eprintln!("warning: {}: {w}", bundle.display());
            }
            if json {
                print_json(&r);
            } else {
                println!(
                    "OK {} {} (sequence {}): {} blobs, {} verified, signed by {}",
                    r.stack,
                    r.version,
                    r.sequence,
                    r.blobs,
                    human(r.bytes),
                    r.signed_by.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ")
                );
            }
        }
        Cmd::Import { bundle, policy } => {
            let store = Store::open(&cli.store)?;
            let reports = import_all(&store, &bundle, policy.policy(), json)?;
            if json {
                if reports.len() == 1 {
                    print_json(&reports[0]);
                } else {
                    print_json(&reports);
                }
            }
        }
        Cmd::Pull { reference, limit_rate, estimate, policy, insecure, authfile } => {
            let store = Store::open(&cli.store)?;
            let policy = policy.policy();
            pull(&store, &reference, limit_rate, estimate, policy, insecure, authfile, json)?;
        }
        Cmd::Load { stack, version, registry } => {
            let store = Store::open(&cli.store)?;
            deploy_version(
                &store,
                &stack,
                Pick::Named(version.as_ref()),
                &registry,
                None,
                false,
                json,
            )?;
        }
        Cmd::Apply { target, version, registry, cluster, dry_run, policy } => {
            let store = Store::open(&cli.store)?;
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
                        Pick::Digest(&r.digest),
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
                    Pick::Named(version.as_ref()),
                    &registry,
                    Some(&cluster),
                    dry_run,
                    json,
                )?;
            }
        }
        Cmd::Rollback { stack, version, registry, cluster } => {
            let store = Store::open(&cli.store)?;
            let history = store.history(&stack)?;
            let pick = match &version {
                Some(v) => Pick::Named(Some(v)),
                None => Pick::Digest(
                    &history
                        .previous()
                        .with_context(|| {
                            format!("{stack}: no earlier applied version to roll back to")
                        })?
                        .digest,
                ),
            };
            deploy_version(&store, &stack, pick, &registry, Some(&cluster), false, json)?;
        }
        Cmd::Status => {
            let store = Store::open(&cli.store)?;
            let versions = store.list()?;
            let mut out = Vec::new();
            for stack in store.stacks()? {
                let h = store.history(&stack)?;
                let held: Vec<_> = versions.iter().filter(|v| v.stack == stack).collect();
                out.push(json!({
                    "stack": stack,
                    "applied": h.current.as_ref().map(|c| &c.version),
                    "versions": held,
                    "history": h.entries,
                }));
                if !json {
                    let applied =
                        h.current.as_ref().map_or("(none)".to_string(), |c| c.version.to_string());
                    println!("{stack}: applied {applied}");
                    for v in &held {
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
                    for e in h.entries.iter().rev().take(10) {
                        println!(
                            "  {} {:?} {} {}",
                            e.at,
                            e.outcome,
                            e.version.as_str(),
                            e.detail.as_deref().unwrap_or("")
                        );
                    }
                }
            }
            if json {
                print_json(&out);
            }
        }
        Cmd::Keygen => {
            let store = Store::open(&cli.store)?;
            let (key_path, pub_path) =
                (store.root().join("ship.key"), store.root().join("ship.pub"));
            anyhow::ensure!(
                !key_path.exists(),
                "{} exists; refusing to overwrite the ship's key",
                key_path.display()
            );
            let key = tender_keys::SigningKey::generate()?;
            {
                use std::io::Write as _;
                use std::os::unix::fs::OpenOptionsExt as _;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&key_path)
                    .with_context(|| format!("creating {}", key_path.display()))?;
                f.write_all(key.to_pem()?.as_bytes())
                    .and_then(|_| f.sync_all())
                    .with_context(|| format!("writing {}", key_path.display()))?;
            }
            {
                use std::os::unix::fs::PermissionsExt as _;
                fs::write(&pub_path, key.public().to_pem()?)
                    .and_then(|_| fs::set_permissions(&pub_path, fs::Permissions::from_mode(0o644)))
                    .with_context(|| format!("writing {}", pub_path.display()))?;
            }
            let id = key.public().key_id();
            if json {
                print_json(&json!({"keyid": id, "public": pub_path}));
            } else {
                println!("{id}");
                eprintln!(
                    "give {} to the shore (tender-shore pack --ship-key)",
                    pub_path.display()
                );
            }
        }
        Cmd::Inventory { out } => {
            let store = Store::open(&cli.store)?;
            let blobs = store.blob_digests()?;
            let mut versions = Vec::new();
            for v in store.list()? {
                let applied =
                    store.history(&v.stack)?.current.is_some_and(|c| c.digest == v.digest);
                versions.push(tender_stack::delta::InventoryVersion {
                    stack: v.stack,
                    version: v.version,
                    sequence: v.sequence,
                    complete: v.complete,
                    applied,
                });
            }
            let mut inv = tender_stack::delta::Inventory {
                format: tender_stack::delta::INVENTORY_FORMAT.into(),
                created: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string(),
                blobs,
                versions,
                signatures: vec![],
            };
            let key_path = cli.store.join("ship.key");
            if key_path.exists() {
                let pem = fs::read_to_string(&key_path)
                    .with_context(|| format!("reading {}", key_path.display()))?;
                let key = tender_keys::SigningKey::from_pem(&pem)
                    .with_context(|| format!("reading {}", key_path.display()))?;
                inv.signatures.push(key.sign(&inv.signing_message()));
            }
            let text = serde_json::to_string(&inv).expect("inventory serializes");
            match out {
                Some(p) => {
                    fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?
                }
                None => println!("{text}"),
            }
        }
        Cmd::Serve { listen } => {
            let store = Store::open(&cli.store)?;
            tender_deploy::serve::serve(store, &listen, |addr| {
                if json {
                    print_json(&json!({"listening": addr}));
                } else {
                    println!("serving {} read-only on http://{addr}", cli.store.display());
                }
            })?;
        }
        Cmd::Gc { keep } => {
            let r = Store::open(&cli.store)?.gc(keep)?;
            if json {
                print_json(&r);
            } else {
                for (s, v) in &r.versions_removed {
                    println!("removed {s} {v}");
                }
                println!("removed {} blobs, {}", r.blobs_removed, human(r.bytes_removed));
            }
        }
        Cmd::List => {
            let versions = Store::open(&cli.store)?.list()?;
            if json {
                print_json(&versions);
            } else if versions.is_empty() {
                println!("no stacks");
            } else {
                println!(
                    "{:<20} {:<12} {:>12} {:>10} {:>7}  COMPLETE",
                    "STACK", "VERSION", "SEQUENCE", "SIZE", "IMAGES"
                );
                for v in versions {
                    println!(
                        "{:<20} {:<12} {:>12} {:>10} {:>7}  {}",
                        v.stack.as_str(),
                        v.version.as_str(),
                        v.sequence,
                        human(v.size),
                        v.images,
                        if v.complete {
                            "yes".to_string()
                        } else {
                            format!("no ({} missing)", human(v.bytes_missing))
                        }
                    );
                }
            }
        }
        Cmd::Fsck { repair } => {
            let bar = Bar::new(json);
            let store = Store::open(&cli.store)?;
            let mut r = store.fsck(&bar)?;
            if repair {
                let removed = store.repair(&r)?;
                if !json {
                    for p in &removed {
                        println!("removed {}", p.display());
                    }
                }
                r = store.fsck(&bar)?;
            }
            if json {
                print_json(&r);
            } else {
                println!("checked {} blobs, {}", r.blobs_checked, human(r.bytes_checked));
                for (p, actual) in &r.corrupt {
                    println!("CORRUPT {} (content hashes to {actual})", p.display());
                }
                for p in &r.stray {
                    println!("STRAY {}", p.display());
                }
                for (s, v, n) in &r.incomplete_versions {
                    println!(
                        "INCOMPLETE {s} {v}: {n} blob(s) not in the store yet (import the rest of its parts)"
                    );
                }
                for p in &r.staging_leftovers {
                    println!(
                        "LEFTOVER {} (from an interrupted import; the next import removes it)",
                        p.display()
                    );
                }
                if r.is_clean() {
                    println!("store is clean");
                }
            }
            if !r.is_clean() {
                return Ok(EXIT_DAMAGED);
            }
        }
    }
    Ok(0)
}

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => fail(e),
    }
}
