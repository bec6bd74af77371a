//! tender-shore: make keys and pack signed stack bundles (a CI job on shore).
//! One module per command; this one holds the parser, the dispatch and the
//! key and keyring reading the commands share.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tender_keys::SigningKey;
use tender_keys::keyring::SignedKeyring;

mod completions;
mod fleet;
mod fleet_link;
mod keygen;
mod keyring;
mod man;
mod pack;
mod pack_for;
mod publish;
mod sign;

/// The command line of `tender-shore`.
#[derive(Parser)]
#[command(
    name = "tender-shore",
    version,
    about = "Pack signed, content-addressed stack bundles for ships"
)]
pub struct Cli {
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

/// The `tender-shore` commands.
#[derive(Subcommand)]
pub enum Cmd {
    /// Make an ed25519 signing key: OUT.key (private, mode 0600) and OUT.pub.
    Keygen(keygen::Keygen),
    /// Add a signature to a bundle without repacking it: writes (or adds to)
    /// the detached signature file that `tender-ship` reads beside the
    /// bundle: BUNDLE.sig, or one NAME.tender.sig for all parts NAME.tender.NNN.
    Sign(sign::Sign),
    /// Resolve a stack and pack it into one signed bundle.
    Pack(pack::Pack),
    /// Make and sign keyrings: root keys (kept offline) name the signing
    /// keys, the stacks each may sign, their expiry, and revoked keys.
    Keyring {
        #[command(subcommand)]
        cmd: keyring::KeyringCmd,
    },
    /// Push a bundle to an OCI registry as an artifact, for ships to
    /// `tender-ship pull`. Given a stack file, packs it first (the same
    /// options as `pack`). Blobs the repository holds are not pushed again.
    Publish(publish::Publish),
    /// The fleet: ships, their keys and signed receipts (`tender-ship
    /// report`), and their status; `pack --for` packs for each.
    Fleet {
        #[command(subcommand)]
        cmd: fleet::FleetCmd,
    },
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(completions::Completions),
    /// Write man pages for tender-shore and every subcommand into DIR.
    Man(man::Man),
}

/// What every command gets besides its own arguments.
pub struct Ctx {
    /// Print machine-readable JSON on stdout.
    pub json: bool,
}

/// Run a parsed command line; the process's exit code on success.
pub fn run(cli: Cli) -> Result<i32> {
    let ctx = Ctx { json: cli.json };
    match cli.cmd {
        Cmd::Keygen(c) => c.run(&ctx),
        Cmd::Sign(c) => c.run(&ctx),
        Cmd::Pack(c) => c.run(&ctx),
        Cmd::Keyring { cmd } => cmd.run(&ctx),
        Cmd::Publish(c) => c.run(&ctx),
        Cmd::Fleet { cmd } => cmd.run(&ctx),
        Cmd::Completions(c) => c.run(&ctx),
        Cmd::Man(c) => c.run(&ctx),
    }
}

fn read_keyring(path: &Path) -> Result<SignedKeyring> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    SignedKeyring::parse(&bytes).with_context(|| format!("reading keyring {}", path.display()))
}

fn load_key(path: Option<&Path>) -> Result<SigningKey> {
    let pem = match path {
        Some(p) => fs::read_to_string(p).with_context(|| format!("reading key {}", p.display()))?,
        None => std::env::var("TENDER_SIGNING_KEY").context(
            "no signing key: give --key FILE or set TENDER_SIGNING_KEY to the key file's contents",
        )?,
    };
    let what = path.map_or("TENDER_SIGNING_KEY".to_string(), |p| p.display().to_string());
    SigningKey::from_pem(&pem).with_context(|| format!("reading signing key from {what}"))
}

fn parse_time(s: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?}: {e} (expected e.g. 2027-06-01T00:00:00Z)"))
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (expected e.g. 180days)"))
}
