//! `tender-ship trust`: the keys whose bundles this ship accepts.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;
use tender_bundle::StackName;
use tender_keys::KeyId;
use tender_store::Store;

use super::Ctx;
use crate::print_json;

/// The `tender-ship trust` subcommands.
#[derive(Subcommand)]
pub enum TrustCmd {
    /// Trust a public key (creates the store if needed): a signing key,
    /// which may then sign any stack, or with --root a root key, which signs
    /// keyrings (`tender-shore keyring`) that name the signing keys.
    #[command(after_help = "\
Examples:
  tender-ship trust add ci.pub
      a signing key, for every stack
  tender-ship trust add root.pub --root
      a root key: keyrings it signs name the signing keys")]
    Add {
        /// The public key file (PEM), as `tender-shore keygen` writes.
        #[arg(value_name = "KEY.pub")]
        key: PathBuf,
        /// Pin it as a root key.
        #[arg(long)]
        root: bool,
    },
    /// Install a keyring (as a bundle carrying it would): it must be newer
    /// than the one in force and signed by the roots in force and its own.
    #[command(after_help = "\
Examples:
  tender-ship trust keyring kr.json")]
    Keyring {
        /// The keyring file.
        file: PathBuf,
    },
    /// The trust in force: root keys, the keyring (signing keys, their
    /// stacks and expiry, revoked keys), pinned signing keys, thresholds.
    #[command(after_help = "\
Examples:
  tender-ship trust list")]
    List,
    /// Stop trusting a key.
    #[command(after_help = "\
Examples:
  tender-ship trust remove 9e5ba44f32b867359a0b8454a2e287609704bd970cdca26e909e98f54fe1c28f
      the key id as `trust list` shows it")]
    Remove {
        /// The key id.
        keyid: KeyId,
    },
    /// Require K of the pinned root keys to sign the first keyring
    /// (default: a majority of them), so one stolen root cannot install it.
    #[command(after_help = "\
Examples:
  tender-ship trust root-threshold 2")]
    RootThreshold {
        /// How many pinned roots must sign.
        k: usize,
    },
    /// Require K distinct trusted signatures on STACK's bundles (for example
    /// CI and a release manager; `tender-shore sign` adds one).
    #[command(after_help = "\
Examples:
  tender-ship trust threshold awareness 2
      CI and a release manager must both sign")]
    Threshold {
        /// The stack.
        stack: StackName,
        /// How many distinct trusted keys must have signed (1: the default).
        k: usize,
    },
}

impl TrustCmd {
    /// Run the subcommand; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let json = ctx.json;
        match self {
            TrustCmd::Add { key, root } => {
                let pem = fs::read_to_string(&key)
                    .with_context(|| format!("reading {}", key.display()))?;
                if pem.contains("PRIVATE KEY") {
                    anyhow::bail!(
                        "{} is a private key: give the ship the .pub file, never the .key",
                        key.display()
                    );
                }
                let store = Store::init(&ctx.store)?;
                let id = if root { store.root_add(&pem) } else { store.trust_add(&pem) }
                    .with_context(|| format!("trusting {}", key.display()))?;
                let what = if root { "root key" } else { "signing key" };
                if json {
                    print_json(&json!({"added": id, "role": what}));
                } else {
                    println!("trusted {id} as a {what}");
                }
            }
            TrustCmd::Keyring { file } => {
                let store = Store::open(&ctx.store)?;
                let bytes =
                    fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
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
            TrustCmd::List => trust_list(&Store::open(&ctx.store)?, json)?,
            TrustCmd::Remove { keyid } => {
                Store::open(&ctx.store)?.trust_remove(&keyid)?;
                if json {
                    print_json(&json!({"removed": keyid}));
                } else {
                    println!("removed {keyid}");
                }
            }
            TrustCmd::RootThreshold { k } => {
                let store = Store::open(&ctx.store)?;
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
            TrustCmd::Threshold { stack, k } => {
                Store::open(&ctx.store)?.set_threshold(&stack, k)?;
                if !json {
                    println!("{stack}: {} distinct trusted signature(s) required", k.max(1));
                }
            }
        }
        Ok(0)
    }
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
