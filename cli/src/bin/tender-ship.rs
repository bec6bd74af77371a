//! tender-ship: verify and import stack bundles into the ship's store.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use tender_bundle::{VerifyOnly, read_bundle};
use tender_cli::{Bar, EXIT_DAMAGED, fail, human, print_json};
use tender_keys::KeyId;
use tender_store::{Downgrade, Store};

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
    },
    /// Verify a bundle and merge it into the store.
    Import {
        /// The bundle.
        bundle: PathBuf,
        /// Accept a bundle older (lower sequence) than one already imported.
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// Stacks and versions held.
    List,
    /// Re-hash every blob and report damage (exit 4 when any).
    Fsck,
}

#[derive(Subcommand)]
enum TrustCmd {
    /// Trust a public key (creates the store if needed).
    Add {
        /// The public key file (PEM), as `tender-shore keygen` writes.
        key: PathBuf,
    },
    /// List trusted keys.
    List,
    /// Stop trusting a key.
    Remove {
        /// The key id.
        keyid: KeyId,
    },
}

fn open_bundle(path: &Path) -> Result<BufReader<File>> {
    let f = File::open(path).with_context(|| format!("opening bundle {}", path.display()))?;
    Ok(BufReader::with_capacity(1 << 20, f))
}

fn run(cli: Cli) -> Result<i32> {
    let json = cli.json;
    match cli.cmd {
        Cmd::Trust { cmd: TrustCmd::Add { key } } => {
            let pem =
                fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?;
            if pem.contains("PRIVATE KEY") {
                anyhow::bail!(
                    "{} is a private key: give the ship the .pub file, never the .key",
                    key.display()
                );
            }
            let store = Store::init(&cli.store)?;
            let id =
                store.trust_add(&pem).with_context(|| format!("trusting {}", key.display()))?;
            if json {
                print_json(&json!({"added": id}));
            } else {
                println!("trusted {id}");
            }
        }
        Cmd::Trust { cmd: TrustCmd::List } => {
            let keys: Vec<String> = Store::open(&cli.store)?
                .trusted_keys()?
                .iter()
                .map(|k| k.key_id().to_string())
                .collect();
            if json {
                print_json(&json!({"keys": keys}));
            } else {
                keys.iter().for_each(|k| println!("{k}"));
            }
        }
        Cmd::Trust { cmd: TrustCmd::Remove { keyid } } => {
            Store::open(&cli.store)?.trust_remove(&keyid)?;
            if json {
                print_json(&json!({"removed": keyid}));
            } else {
                println!("removed {keyid}");
            }
        }
        Cmd::Verify { bundle } => {
            let trust = Store::open(&cli.store)?.trust()?;
            let bar = Bar::new(json);
            let (v, summary) =
                read_bundle(open_bundle(&bundle)?, &bundle, &trust, &mut VerifyOnly, &bar)
                    .with_context(|| format!("verifying {}", bundle.display()))?;
            let d = &v.descriptor;
            if json {
                print_json(&json!({
                    "stack": d.stack.name, "version": d.stack.version, "sequence": d.sequence,
                    "digest": v.digest, "signed_by": v.signed_by, "blobs": summary.blobs, "bytes": summary.bytes,
                }));
            } else {
                println!(
                    "OK {} {} (sequence {}): {} blobs, {} verified, signed by {}",
                    d.stack.name,
                    d.stack.version,
                    d.sequence,
                    summary.blobs,
                    human(summary.bytes),
                    v.signed_by.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ")
                );
            }
        }
        Cmd::Import { bundle, allow_downgrade } => {
            let store = Store::open(&cli.store)?;
            let policy = if allow_downgrade { Downgrade::Allow } else { Downgrade::Refuse };
            let bar = Bar::new(json);
            let r = store
                .import(open_bundle(&bundle)?, &bundle, policy, &bar)
                .with_context(|| format!("importing {}", bundle.display()))?;
            if json {
                print_json(&r);
            } else if r.already_imported {
                println!(
                    "{} {} (sequence {}) is already imported: nothing to do",
                    r.stack, r.version, r.sequence
                );
            } else {
                println!(
                    "imported {} {} (sequence {}): {} new in {} blobs, {} already held in {} blobs",
                    r.stack,
                    r.version,
                    r.sequence,
                    human(r.bytes_new),
                    r.blobs_new,
                    human(r.bytes_held),
                    r.blobs_held
                );
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
                        if v.complete { "yes" } else { "no" }
                    );
                }
            }
        }
        Cmd::Fsck => {
            let bar = Bar::new(json);
            let r = Store::open(&cli.store)?.fsck(&bar)?;
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
                    println!("INCOMPLETE {s} {v}: {n} blob(s) missing");
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
