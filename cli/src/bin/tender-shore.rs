//! tender-shore: make keys and pack signed stack bundles (a CI job on shore).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::json;
use tender_bundle::{
    Descriptor, Signatures, detached_sig_path, read_descriptor_bytes, signing_message,
};
use tender_cli::{Bar, fail, human, print_json};
use tender_keys::SigningKey;
use tender_keys::keyring::SignedKeyring;
use tender_registry::{Registry, RegistrySource, Target, Transport};
use tender_stack::delta::Base;
use tender_stack::patch::{PatchRow, Patches};
use tender_stack::{PackOptions, PackReport, Plan, StackFile, pack};

#[derive(Parser)]
#[command(
    name = "tender-shore",
    version,
    about = "Pack signed, content-addressed stack bundles for ships"
)]
struct Cli {
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make an ed25519 signing key: OUT.key (private, mode 0600) and OUT.pub.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Add a signature to a bundle without repacking it: writes (or adds to)
    /// the detached BUNDLE.sig that `tender-ship` reads beside the bundle.
    Sign {
        /// The bundle (or any of its parts).
        bundle: PathBuf,
        /// The signing key (for example a release manager's).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Resolve a stack and pack it into one signed bundle.
    Pack {
        /// The stack file (YAML).
        stack: PathBuf,
        /// Output bundle; default: NAME-VERSION.tender.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Split into media parts of at most SIZE (e.g. 3900M for FAT32
        /// sticks; K, M, G are powers of 1024): OUT.001, OUT.002, ...
        #[arg(long, value_name = "SIZE", value_parser = tender_cli::parse_size)]
        split: Option<u64>,
        /// Print what the bundle would carry, per image and blob, and stop.
        #[arg(long)]
        estimate: bool,
        #[command(flatten)]
        args: PackArgs,
    },
    /// Make and sign keyrings: root keys (kept offline) name the signing
    /// keys, the stacks each may sign, their expiry, and revoked keys.
    Keyring {
        #[command(subcommand)]
        cmd: KeyringCmd,
    },
    /// Push a bundle to an OCI registry as an artifact, for ships to
    /// `tender-ship pull`. Given a stack file, packs it first (the same
    /// options as `pack`). Blobs the repository holds are not pushed again.
    Publish {
        /// A bundle, or a stack file (YAML) to pack.
        input: PathBuf,
        /// Where: REGISTRY/REPO:TAG.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        args: PackArgs,
    },
}

#[derive(Subcommand)]
enum KeyringCmd {
    /// Start a keyring (version 1) with these root keys and no signing key.
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
    Revoke {
        /// The keyring file.
        file: PathBuf,
        /// The key id.
        keyid: tender_keys::KeyId,
    },
    /// Replace the root keys (the keyring must then be signed by the old
    /// roots and the new).
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
    Threshold {
        /// The keyring file.
        file: PathBuf,
        /// The stack.
        stack: String,
        /// Signatures required.
        k: usize,
    },
    /// Sign the keyring with a root key (an old root, when rotating).
    Sign {
        /// The keyring file.
        file: PathBuf,
        /// The root's private key.
        #[arg(long)]
        key: PathBuf,
    },
    /// Print the keyring.
    Show {
        /// The keyring file.
        file: PathBuf,
    },
}

fn read_public(path: &Path) -> Result<tender_keys::PublicKey> {
    let pem = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    tender_keys::PublicKey::from_pem(&pem).with_context(|| format!("reading {}", path.display()))
}

fn read_keyring(path: &Path) -> Result<SignedKeyring> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    SignedKeyring::parse(&bytes).with_context(|| format!("reading keyring {}", path.display()))
}

fn write_keyring(path: &Path, k: &SignedKeyring) -> Result<()> {
    k.signed.validate().with_context(|| format!("keyring {}", path.display()))?;
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, k.to_bytes())
        .and_then(|_| fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
}

fn keyring_cmd(cmd: KeyringCmd, json: bool) -> Result<()> {
    use tender_keys::keyring::{KeyRecord, Keyring, Roots, Signer};
    let now = std::time::SystemTime::now();
    // Every change to a signed keyring makes a new version, to be signed anew.
    let edit = |file: &Path, f: &dyn Fn(&mut Keyring) -> Result<()>| -> Result<()> {
        let mut k = read_keyring(file)?;
        f(&mut k.signed)?;
        if !k.signatures.is_empty() {
            k.signed.version += 1;
            k.signatures.clear();
        }
        k.signed.created = humantime::format_rfc3339_seconds(now).to_string();
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
    };
    let roots_of = |paths: &[PathBuf], threshold: usize| -> Result<Roots> {
        let keys = paths.iter().map(|p| read_public(p)).collect::<Result<Vec<_>>>()?;
        Ok(Roots { keys: keys.iter().map(KeyRecord::of).collect(), threshold })
    };
    match cmd {
        KeyringCmd::Init { roots, threshold, out } => {
            if out.exists() {
                bail!("{} exists; refusing to overwrite a keyring", out.display());
            }
            let mut k = Keyring::new(&[], threshold, now);
            k.roots = roots_of(&roots, threshold)?;
            write_keyring(&out, &SignedKeyring { signed: k, signatures: vec![] })?;
            if json {
                print_json(&json!({"file": out, "version": 1, "signed": false}));
                return Ok(());
            }
            println!(
                "{}: version 1 with {} root key(s), no signing key yet",
                out.display(),
                roots.len()
            );
            Ok(())
        }
        KeyringCmd::AddSigner { file, key, stacks, expires, expires_in, cluster_scope } => {
            let key = read_public(&key)?;
            let expires = expires
                .or_else(|| expires_in.map(|d| now + d))
                .map(|t| humantime::format_rfc3339_seconds(t).to_string());
            edit(&file, &|k| {
                k.signers.retain(|s| s.key.keyid != key.key_id());
                k.signers.push(Signer {
                    key: KeyRecord::of(&key),
                    stacks: stacks.clone(),
                    expires: expires.clone(),
                    cluster_scope,
                });
                Ok(())
            })
        }
        KeyringCmd::Revoke { file, keyid } => edit(&file, &|k| {
            k.signers.retain(|s| s.key.keyid != keyid);
            if k.roots.keys.iter().any(|r| r.keyid == keyid) {
                bail!("{keyid} is a root key of this keyring: replace the roots first (set-roots)");
            }
            if !k.revoked.contains(&keyid) {
                k.revoked.push(keyid.clone());
            }
            Ok(())
        }),
        KeyringCmd::SetRoots { file, roots, threshold } => {
            let new = roots_of(&roots, threshold)?;
            edit(&file, &|k| {
                k.roots = new.clone();
                Ok(())
            })
        }
        KeyringCmd::Threshold { file, stack, k: n } => edit(&file, &|k| {
            if n <= 1 {
                k.thresholds.remove(&stack);
            } else {
                k.thresholds.insert(stack.clone(), n);
            }
            Ok(())
        }),
        KeyringCmd::Sign { file, key } => {
            let key = load_key(Some(&key))?;
            let mut k = read_keyring(&file)?;
            let sig = key.sign(&k.signed.signing_message());
            k.signatures.retain(|s| s.keyid != sig.keyid);
            k.signatures.push(sig.clone());
            write_keyring(&file, &k)?;
            let own = k
                .signed
                .roots
                .keys
                .iter()
                .filter(|r| k.signatures.iter().any(|s| s.keyid == r.keyid))
                .count();
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
        KeyringCmd::Show { file } => {
            let k = read_keyring(&file)?;
            if json {
                print_json(&k);
            } else {
                print!("{}", String::from_utf8_lossy(&k.to_bytes()));
            }
            Ok(())
        }
    }
}

#[derive(clap::Args)]
struct PackArgs {
    /// Private key file; default: the key in $TENDER_SIGNING_KEY.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Sequence number (monotonic per stack); default: now, in Unix seconds.
    #[arg(long)]
    sequence: Option<u64>,
    /// Make a delta: leave out what this base holds (an earlier bundle or
    /// part, a stack descriptor, or a ship's inventory). Repeatable.
    #[arg(long)]
    base: Vec<PathBuf>,
    /// The bundle goes stale after this time (RFC 3339, e.g.
    /// 2027-06-01T00:00:00Z); ships warn, and refuse with --require-fresh.
    #[arg(long, conflicts_with = "expires_in", value_parser = parse_time)]
    expires: Option<std::time::SystemTime>,
    /// The bundle goes stale this long after packing (e.g. 180days).
    #[arg(long, value_parser = parse_duration)]
    expires_in: Option<std::time::Duration>,
    /// With --base: carry a changed layer whose predecessor the ship holds
    /// as a sub-layer patch where that is smaller, or never (whole layers).
    #[arg(long, value_enum, default_value_t = PatchArg::WhereSmaller)]
    patches: PatchArg,
    /// Carry this keyring to the ship (`tender-shore keyring`): how a ship
    /// learns new signing keys and revocations by sneakernet.
    #[arg(long, value_name = "KEYRING.json")]
    keyring: Option<PathBuf>,
    /// A ship's public key (from `tender-ship keygen`): inventories given
    /// as --base must be signed by one of these. Repeatable.
    #[arg(long = "ship-key", value_name = "SHIP.pub")]
    ship_keys: Vec<PathBuf>,
    /// Use plain HTTP for this registry (repeatable; loopback always may).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure: Vec<String>,
    /// Docker-style auth file for registries; default: ~/.docker/config.json.
    #[arg(long)]
    authfile: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PatchArg {
    WhereSmaller,
    Never,
}

impl PackArgs {
    fn transport(&self) -> Transport {
        if self.insecure.is_empty() {
            Transport::TlsExceptLoopback
        } else {
            Transport::PlainHttpFor(self.insecure.clone())
        }
    }

    fn base(&self) -> Result<Option<Base>> {
        if self.base.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::new();
        for k in &self.ship_keys {
            let pem = fs::read_to_string(k).with_context(|| format!("reading {}", k.display()))?;
            keys.push(
                tender_keys::PublicKey::from_pem(&pem)
                    .with_context(|| format!("reading {}", k.display()))?,
            );
        }
        let mut b = Base::default();
        for p in &self.base {
            b.add(p, &keys)?;
        }
        Ok(Some(b))
    }

    /// Resolve the stack; images no `sources` entry covers come from their
    /// registries, with fetched blobs cached in `cache_in`, then removed.
    /// Against a base, changed layers become patches where that pays.
    fn plan(
        &self,
        file: StackFile,
        cache_in: &Path,
        base: Option<&Base>,
    ) -> Result<(Plan, Vec<PatchRow>)> {
        let registries = RegistrySource::new(self.transport(), self.authfile.clone(), cache_in)?;
        let mut plan = Plan::resolve(file, vec![Box::new(registries)])?;
        let policy = match self.patches {
            PatchArg::WhereSmaller => Patches::WhereSmaller,
            PatchArg::Never => Patches::Never,
        };
        let rows = match base {
            Some(b) => plan.apply_patches(b, policy)?,
            None => vec![],
        };
        Ok((plan, rows))
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(path).with_context(
            || format!("creating {} (refusing to overwrite an existing key)", path.display()),
        )?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn keygen(out: &Path, json: bool) -> Result<()> {
    let key_path = out.with_extension("key");
    let pub_path = out.with_extension("pub");
    for p in [&key_path, &pub_path] {
        if p.exists() {
            bail!("{} exists; refusing to overwrite a key", p.display());
        }
    }
    let key = SigningKey::generate()?;
    write_new(&key_path, key.to_pem()?.as_bytes(), 0o600)?;
    write_new(&pub_path, key.public().to_pem()?.as_bytes(), 0o644)?;
    let id = key.public().key_id();
    if json {
        print_json(&json!({"keyid": id, "private": key_path, "public": pub_path}));
    } else {
        println!("{id}");
        eprintln!("wrote {} (keep it secret) and {}", key_path.display(), pub_path.display());
    }
    Ok(())
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

fn sign(bundle: &Path, key: Option<&Path>, json: bool) -> Result<()> {
    let key = load_key(key)?;
    let f = fs::File::open(bundle).with_context(|| format!("opening {}", bundle.display()))?;
    let raw = read_descriptor_bytes(std::io::BufReader::new(f), bundle)?;
    let d = Descriptor::parse(&raw)
        .with_context(|| format!("reading the descriptor of {}", bundle.display()))?;
    let sig = key.sign(&signing_message(&raw));
    let path = detached_sig_path(bundle);
    let mut sigs = tender_bundle::read_detached(bundle)?;
    sigs.retain(|s| s.keyid != sig.keyid);
    sigs.push(sig.clone());
    let body =
        serde_json::to_vec_pretty(&Signatures { signatures: sigs }).expect("signatures serialize");
    let tmp = path.with_extension("sig.tmp");
    fs::write(&tmp, body)
        .and_then(|_| fs::rename(&tmp, &path))
        .with_context(|| format!("writing {}", path.display()))?;
    let digest = tender_bundle::Digest::of(&raw);
    if json {
        print_json(
            &json!({"stack": d.stack.name, "version": d.stack.version, "descriptor": digest, "keyid": sig.keyid, "file": path}),
        );
    } else {
        println!(
            "signed {} {} (descriptor {digest}) with {} into {}",
            d.stack.name,
            d.stack.version,
            sig.keyid,
            path.display()
        );
    }
    Ok(())
}

fn estimate(plan: &Plan, base: Option<&Base>, patches: &[PatchRow], json: bool) {
    let rows = plan.estimate(base);
    let carried: u64 = rows.iter().filter(|r| r.carried).map(|r| r.size).sum();
    let held: u64 = rows.iter().filter(|r| !r.carried).map(|r| r.size).sum();
    if json {
        print_json(
            &json!({"carried_bytes": carried, "held_bytes": held, "blobs": rows, "patches": patches}),
        );
        return;
    }
    print_patches(patches);
    for r in &rows {
        println!(
            "{:>10}  {:<7} {}  {}  {}",
            human(r.size),
            match (r.carried, r.patched) {
                (true, true) => "patch",
                (true, false) => "carry",
                _ => "held",
            },
            &r.digest.hex()[..12],
            r.media_type,
            r.source
        );
    }
    println!("would carry {} ({} bytes); the ship holds {}", human(carried), carried, human(held));
}

/// Pack `stack` into `out`; prints the report unless `quiet`.
fn pack_to(
    stack: &Path,
    out: Option<PathBuf>,
    split: Option<u64>,
    args: &PackArgs,
    json: bool,
    quiet: bool,
) -> Result<PackReport> {
    let key = load_key(args.key.as_deref())?;
    let base = args.base()?;
    let file = StackFile::load(stack)?;
    let out =
        out.unwrap_or_else(|| PathBuf::from(format!("{}-{}.tender", file.name, file.version)));
    let out_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let (plan, patches) = args.plan(file, &out_dir, base.as_ref())?;
    let bar = Bar::new(json);
    let now = std::time::SystemTime::now();
    let expires = args.expires.or_else(|| args.expires_in.map(|d| now + d));
    let keyring = match &args.keyring {
        Some(p) => {
            let k = read_keyring(p)?;
            k.signed
                .root_trust()
                .and_then(|t| t.verify(&k.signed.signing_message(), &k.signatures))
                .with_context(|| {
                    format!(
                        "keyring {} is not signed by its own roots (`tender-shore keyring sign`)",
                        p.display()
                    )
                })?;
            if !k.signed.allows(&key.public().key_id(), plan.stack.name.as_str()) {
                eprintln!(
                    "warning: keyring {} does not let {} sign stack {}: ships that only trust the keyring will refuse this bundle",
                    p.display(),
                    key.public().key_id(),
                    plan.stack.name
                );
            }
            Some(k.to_bytes())
        }
        None => None,
    };
    let options =
        PackOptions { sequence: args.sequence, created: Some(now), split, base, expires, keyring };
    let mut report = pack(&plan, &key, &options, &out, &bar)
        .with_context(|| format!("packing {}", out.display()))?;
    report.patches = patches;
    if quiet {
        return Ok(report);
    }
    if json {
        print_json(&report);
    } else {
        if report.files.len() > 1 {
            for f in &report.files {
                eprintln!("wrote {}", f.display());
            }
        }
        println!(
            "packed {} {} (sequence {}) into {}: {} images, {} blobs, {}\ndescriptor {}",
            report.stack,
            report.version,
            report.sequence,
            report.path.display(),
            report.images,
            report.blobs,
            human(report.bytes),
            report.descriptor_digest
        );
        if report.expected_blobs > 0 {
            println!(
                "delta: leaves out {} blobs ({}) the ship holds",
                report.expected_blobs,
                human(report.expected_bytes)
            );
        }
        print_patches(&report.patches);
    }
    Ok(report)
}

fn print_patches(rows: &[PatchRow]) {
    for r in rows {
        match (r.used, r.patch_size) {
            (true, Some(n)) => println!(
                "patch: {} layer {} ({}) travels as a {} patch against {}",
                r.image,
                &r.layer.hex()[..12],
                human(r.layer_size),
                human(n),
                &r.base.hex()[..12]
            ),
            _ => println!(
                "patch: {} layer {} ({}) travels whole: {}",
                r.image,
                &r.layer.hex()[..12],
                human(r.layer_size),
                r.reason.as_deref().unwrap_or("")
            ),
        }
    }
}

fn is_stack_file(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

fn publish(input: &Path, to: &str, args: &PackArgs, json: bool) -> Result<()> {
    let target = Target::parse(to)?;
    // A stack file is packed into a temporary bundle first (removed after).
    let tmp;
    let bundle = if is_stack_file(input) {
        tmp = tempfile::Builder::new()
            .prefix(".tender-publish-")
            .tempdir()
            .context("making a temporary directory")?;
        let out = tmp.path().join("bundle.tender");
        pack_to(input, Some(out.clone()), None, args, json, true)?;
        out
    } else {
        input.to_owned()
    };
    let detached = tender_bundle::read_detached(&bundle)?;
    let auth = match &args.authfile {
        Some(p) => tender_registry::auth_from_file(p, &target.host)?,
        None => match std::env::var_os("HOME") {
            Some(h) => tender_registry::auth_from_file(
                &PathBuf::from(h).join(".docker/config.json"),
                &target.host,
            )?,
            None => tender_registry::RegistryAuth::Anonymous,
        },
    };
    let registry = Registry::new(&target.host, &args.transport(), auth)?;
    let bar = Bar::new(json);
    let r = registry
        .publish(&bundle, &detached, &target.repo, &target.tag, &bar)
        .with_context(|| format!("publishing {} to {target}", input.display()))?;
    if json {
        print_json(&r);
    } else {
        println!(
            "published {} {} (sequence {}) as {} ({}): {} pushed in {} blobs, {} already there in {} blobs\ndescriptor {}",
            r.stack,
            r.version,
            r.sequence,
            r.reference,
            r.manifest,
            human(r.bytes_pushed),
            r.blobs_pushed,
            human(r.bytes_present),
            r.blobs_present,
            r.descriptor
        );
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Keygen { out } => keygen(&out, cli.json),
        Cmd::Sign { bundle, key } => sign(&bundle, key.as_deref(), cli.json),
        Cmd::Publish { input, to, args } => publish(&input, &to, &args, cli.json),
        Cmd::Keyring { cmd } => keyring_cmd(cmd, cli.json),
        Cmd::Pack { stack, out, split, estimate: true, args } => (|| {
            let _ = (out, split);
            let base = args.base()?;
            let (plan, patches) =
                args.plan(StackFile::load(&stack)?, Path::new("."), base.as_ref())?;
            estimate(&plan, base.as_ref(), &patches, cli.json);
            Ok(())
        })(),
        Cmd::Pack { stack, out, split, estimate: false, args } => {
            pack_to(&stack, out, split, &args, cli.json, false).map(|_| ())
        }
    };
    if let Err(e) = res {
        fail(e)
    }
}
