//! `tender-shore keyring`: make, edit and sign keyrings.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;
use tender_keys::keyring::{KeyRecord, Keyring, Roots, SignedKeyring, Signer};

use super::{Ctx, load_key, parse_duration, parse_time, read_keyring};
use crate::{print_json, write_replacing};

/// The `tender-shore keyring` subcommands.
#[derive(Subcommand)]
pub enum KeyringCmd {
    /// Start a keyring (version 1) with these root keys and no signing key.
    #[command(after_help = "\
Examples:
  tender-shore keyring init --root root.pub --out kr.json")]
    Init {
        /// A root public key (repeatable).
        #[arg(long = "root", required = true, value_name = "ROOT.pub")]
        roots: Vec<PathBuf>,
        /// Root signatures the next keyring needs.
        #[arg(long, default_value_t = 1)]
        threshold: usize,
        /// The keyring file to write (not overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Let a signing key sign some stacks (or all: `*`).
    #[command(after_help = "\
Examples:
  tender-shore keyring add-signer kr.json ci.pub --stacks awareness --expires-in 365days")]
    AddSigner {
        /// The keyring file.
        file: PathBuf,
        /// The signing key's public key.
        key: PathBuf,
        /// Stacks it may sign, comma-separated; `*` for all.
        #[arg(long, value_delimiter = ',', required = true)]
        stacks: Vec<String>,
        /// When it stops being valid (RFC 3339).
        #[arg(long, conflicts_with = "expires_in", value_parser = parse_time)]
        expires: Option<std::time::SystemTime>,
        /// How long from now it stays valid (e.g. 365days).
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<std::time::Duration>,
        /// Let its stacks hold cluster-scoped objects (ClusterRoles,
        /// bindings, CRDs) besides their own Namespaces; off by default.
        #[arg(long)]
        cluster_scope: bool,
    },
    /// Revoke a key: ships never trust it again, however it is pinned.
    #[command(after_help = "\
Examples:
  tender-shore keyring revoke kr.json 9e5ba44f32b867359a0b8454a2e287609704bd970cdca26e909e98f54fe1c28f
      then `keyring sign` and carry it with the next pack")]
    Revoke {
        /// The keyring file.
        file: PathBuf,
        /// The key id.
        keyid: tender_keys::KeyId,
    },
    /// Replace the root keys (the keyring must then be signed by the old
    /// roots and the new).
    #[command(after_help = "\
Examples:
  tender-shore keyring set-roots kr.json --root new-root.pub
      then sign with the old root and the new")]
    SetRoots {
        /// The keyring file.
        file: PathBuf,
        /// A root public key (repeatable).
        #[arg(long = "root", required = true, value_name = "ROOT.pub")]
        roots: Vec<PathBuf>,
        /// Root signatures the next keyring needs.
        #[arg(long, default_value_t = 1)]
        threshold: usize,
    },
    /// Require K signatures on a stack's bundles.
    #[command(after_help = "\
Examples:
  tender-shore keyring threshold kr.json awareness 2")]
    Threshold {
        /// The keyring file.
        file: PathBuf,
        /// The stack.
        stack: String,
        /// Signatures required.
        k: usize,
    },
    /// Sign the keyring with a root key (an old root, when rotating).
    #[command(after_help = "\
Examples:
  tender-shore keyring sign kr.json --key root.key")]
    Sign {
        /// The keyring file.
        file: PathBuf,
        /// The root's private key.
        #[arg(long)]
        key: PathBuf,
    },
    /// Print the keyring.
    #[command(after_help = "\
Examples:
  tender-shore keyring show kr.json")]
    Show {
        /// The keyring file.
        file: PathBuf,
    },
}

impl KeyringCmd {
    /// Run the subcommand; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let json = ctx.json;
        let now = SystemTime::now();
        match self {
            KeyringCmd::Init { roots, threshold, out } => init(&roots, threshold, &out, now, json)?,
            KeyringCmd::AddSigner { file, key, stacks, expires, expires_in, cluster_scope } => {
                let key = read_public(&key)?;
                let expires = expires
                    .or_else(|| expires_in.map(|d| now + d))
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string());
                let signer = Signer { key: KeyRecord::of(&key), stacks, expires, cluster_scope };
                edit(&file, now, json, |k| {
                    k.add_signer(signer);
                    Ok(())
                })?
            }
            KeyringCmd::Revoke { file, keyid } => edit(&file, now, json, |k| k.revoke(&keyid))?,
            KeyringCmd::SetRoots { file, roots, threshold } => {
                let new = roots_of(&roots, threshold)?;
                edit(&file, now, json, |k| {
                    k.roots = new;
                    Ok(())
                })?
            }
            KeyringCmd::Threshold { file, stack, k: n } => edit(&file, now, json, |k| {
                k.set_threshold(stack, n);
                Ok(())
            })?,
            KeyringCmd::Sign { file, key } => sign(&file, &key, json)?,
            KeyringCmd::Show { file } => {
                let k = read_keyring(&file)?;
                if json {
                    print_json(&k);
                } else {
                    print!("{}", String::from_utf8_lossy(&k.to_bytes()));
                }
            }
        }
        Ok(0)
    }
}

fn read_public(path: &Path) -> Result<tender_keys::PublicKey> {
    let pem = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    tender_keys::PublicKey::from_pem(&pem).with_context(|| format!("reading {}", path.display()))
}

fn write_keyring(path: &Path, k: &SignedKeyring) -> Result<()> {
    k.signed.validate().with_context(|| format!("keyring {}", path.display()))?;
    write_replacing(path, &k.to_bytes())
}

/// Apply `f` to the keyring in `file` and write it back: every change to a
/// signed keyring makes a new version, to be signed anew.
fn edit(
    file: &Path,
    now: SystemTime,
    json: bool,
    f: impl FnOnce(&mut Keyring) -> Result<(), tender_keys::KeyError>,
) -> Result<()> {
    let mut k = read_keyring(file)?;
    k.edit(now, f).with_context(|| format!("keyring {}", file.display()))?;
    write_keyring(file, &k)?;
    if json {
        print_json(&json!({"file": file, "version": k.signed.version, "signed": false}));
    } else {
        println!(
            "{}: version {}, unsigned (sign it with `tender-shore keyring sign`)",
            file.display(),
            k.signed.version
        );
    }
    Ok(())
}

/// The root keys in these public key files, `threshold` of which must sign.
fn roots_of(paths: &[PathBuf], threshold: usize) -> Result<Roots> {
    let keys = paths.iter().map(|p| read_public(p)).collect::<Result<Vec<_>>>()?;
    Ok(Roots { keys: keys.iter().map(KeyRecord::of).collect(), threshold })
}

/// `keyring init`: version 1 with these roots and no signing key.
fn init(
    roots: &[PathBuf],
    threshold: usize,
    out: &Path,
    now: SystemTime,
    json: bool,
) -> Result<()> {
    if out.exists() {
        bail!("{} exists; refusing to overwrite a keyring", out.display());
    }
    let mut k = Keyring::new(&[], threshold, now);
    k.roots = roots_of(roots, threshold)?;
    write_keyring(out, &SignedKeyring { signed: k, signatures: vec![] })?;
    if json {
        print_json(&json!({"file": out, "version": 1, "signed": false}));
        return Ok(());
    }
    println!("{}: version 1 with {} root key(s), no signing key yet", out.display(), roots.len());
    Ok(())
}

/// `keyring sign`: add a root's signature.
fn sign(file: &Path, key: &Path, json: bool) -> Result<()> {
    let key = load_key(Some(key))?;
    let mut k = read_keyring(file)?;
    let sig = k.sign(&key);
    write_keyring(file, &k)?;
    let own = k.root_signatures();
    if json {
        print_json(&json!({
            "file": file, "version": k.signed.version, "signed_by": sig.keyid,
            "roots_signed": own, "roots_needed": k.signed.roots.threshold,
        }));
        return Ok(());
    }
    println!(
        "{}: version {} signed by {}; {own} of its {} root(s) signed ({} needed)",
        file.display(),
        k.signed.version,
        sig.keyid,
        k.signed.roots.keys.len(),
        k.signed.roots.threshold
    );
    Ok(())
}
