//! `tender-shore pack`: resolve a stack and pack it into a signed bundle.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use tender_registry::{ImageReader, Transport};
use tender_stack::RegistrySource;
use tender_stack::delta::Base;
use tender_stack::patch::{PatchRow, Patches};
use tender_stack::sequence::Kind;
use tender_stack::{PackOptions, PackReport, Plan, StackFile, pack};

use super::{Ctx, load_key, parse_duration, parse_time, read_keyring};
use crate::{Bar, human, print_json};

/// Arguments of `tender-shore pack`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-shore pack stack.yaml --key ci.key --out awareness-1.1.0.tender
  TENDER_SIGNING_KEY=\"$(cat ci.key)\" tender-shore pack stack.yaml --split 3900M --keyring kr.json
      key from a CI secret; parts for FAT32 sticks
  tender-shore pack stack.yaml --key ci.key --base awareness-1.0.0.tender --estimate
      what a delta against 1.0.0 would carry; writes nothing")]
pub struct Pack {
    /// The stack file (YAML).
    #[arg(value_name = "STACK.yaml")]
    stack: PathBuf,
    /// Output bundle; default: NAME-VERSION.tender.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Split into media parts of at most SIZE (e.g. 3900M for FAT32
    /// sticks; K, M, G are powers of 1024): OUT.001, OUT.002, ...
    #[arg(long, value_name = "SIZE", value_parser = crate::parse_size)]
    split: Option<u64>,
    /// Print what the bundle would carry, per image and blob, and stop
    /// (with --for: the bytes per ship and in total).
    #[arg(long)]
    estimate: bool,
    /// Pack one bundle per ship of the fleet (a ship's name, or all), each
    /// a delta against what the ship's latest receipt says it holds (a
    /// ship without a receipt gets the whole bundle), into --out DIR as
    /// STACK-VERSION-for-SHIP.tender. --base bundles then only give
    /// changed layers' predecessors to patch against.
    #[arg(long = "for", value_name = "SHIP|all")]
    for_ships: Option<String>,
    #[command(flatten)]
    fleet: super::fleet::FleetDir,
    #[command(flatten)]
    args: PackArgs,
}

impl Pack {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let Self { stack, out, split, estimate: only_estimate, for_ships, fleet, args } = self;
        if let Some(which) = for_ships {
            let to = super::pack_for::Target { which: &which, fleet: &fleet, out_dir: out, split };
            return super::pack_for::run(&stack, to, &args, only_estimate, ctx.json);
        }
        if only_estimate {
            let base = args.base()?;
            let (plan, patches) =
                args.plan(StackFile::load(&stack)?, Path::new("."), base.as_ref(), ctx.json)?;
            estimate(&plan, base.as_ref(), &patches, ctx.json);
        } else {
            pack_to(&stack, out, split, &args, ctx.json, false)?;
        }
        Ok(0)
    }
}

/// The options `pack` and `publish` share.
#[derive(clap::Args)]
pub struct PackArgs {
    /// Private key file; default: the key in $TENDER_SIGNING_KEY.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Sequence number (monotonic per stack); default: now in Unix
    /// seconds, or one more than the last this shore gave the stack if that
    /// is higher (kept in --state-dir); a delta of the version last packed
    /// whole carries that bundle's sequence.
    #[arg(long)]
    sequence: Option<u64>,
    /// Where the shore keeps the last default sequence per stack
    /// (sequences.json); default: $XDG_STATE_HOME/tender, else
    /// ~/.local/state/tender.
    #[arg(long, env = "TENDER_SHORE_STATE", value_name = "DIR")]
    state_dir: Option<PathBuf>,
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
    pub(super) authfile: Option<PathBuf>,
}

/// Whether a changed layer may travel as a patch against its predecessor.
#[derive(Clone, Copy, clap::ValueEnum)]
enum PatchArg {
    WhereSmaller,
    Never,
}

impl PackArgs {
    pub(super) fn transport(&self) -> Transport {
        if self.insecure.is_empty() {
            Transport::TlsExceptLoopback
        } else {
            Transport::PlainHttpFor(self.insecure.clone())
        }
    }

    /// The sequence to pack `file` with: the one given, or the next default
    /// from the shore's state.
    pub(super) fn sequence(&self, file: &StackFile, now: std::time::SystemTime) -> Result<u64> {
        let kind = if self.base.is_empty() { Kind::Full } else { Kind::Delta };
        self.sequence_of(file, now, kind)
    }

    /// [`PackArgs::sequence`] for a release of `kind`.
    pub(super) fn sequence_of(
        &self,
        file: &StackFile,
        now: std::time::SystemTime,
        kind: Kind,
    ) -> Result<u64> {
        if let Some(s) = self.sequence {
            return Ok(s);
        }
        let dir = match &self.state_dir {
            Some(d) => d.clone(),
            None => default_state_dir().context(
                "no place for the shore's sequence state: give --state-dir DIR (or set TENDER_SHORE_STATE), or --sequence N",
            )?,
        };
        Ok(tender_stack::sequence::next(&dir, &file.name, &file.version, kind, now)?)
    }

    pub(super) fn base(&self) -> Result<Option<Base>> {
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
    pub(super) fn plan(
        &self,
        file: StackFile,
        cache_in: &Path,
        base: Option<&Base>,
        json: bool,
    ) -> Result<(Plan, Vec<PatchRow>)> {
        let reader = ImageReader::new(self.transport(), self.authfile.clone(), cache_in)?;
        let registries = RegistrySource::new(reader);
        let mut plan = Plan::resolve(file, vec![Box::new(registries)])?;
        let policy = match self.patches {
            PatchArg::WhereSmaller => Patches::WhereSmaller,
            PatchArg::Never => Patches::Never,
        };
        let rows = match base {
            Some(b) => plan.apply_patches(b, policy, &Bar::new(json))?,
            None => vec![],
        };
        Ok((plan, rows))
    }
}

/// `$XDG_STATE_HOME/tender`, else `$HOME/.local/state/tender` (the XDG
/// base directory default); relative values are ignored, as XDG says.
fn default_state_dir() -> Option<PathBuf> {
    let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_STATE_HOME")
        .and_then(abs)
        .map(|p| p.join("tender"))
        .or_else(|| std::env::var_os("HOME").and_then(abs).map(|h| h.join(".local/state/tender")))
}

pub(super) fn estimate(plan: &Plan, base: Option<&Base>, patches: &[PatchRow], json: bool) {
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
pub(super) fn pack_to(
    stack: &Path,
    out: Option<PathBuf>,
    split: Option<u64>,
    args: &PackArgs,
    json: bool,
    quiet: bool,
) -> Result<PackReport> {
    let base = args.base()?;
    let file = StackFile::load(stack)?;
    let out =
        out.unwrap_or_else(|| PathBuf::from(format!("{}-{}.tender", file.name, file.version)));
    let (plan, patches) = args.plan(file, &parent_of(&out), base.as_ref(), json)?;
    let now = std::time::SystemTime::now();
    let sequence = args.sequence(&plan.stack, now)?;
    let planned = Planned { plan, patches, base, sequence, now };
    pack_planned(planned, &out, split, args, json, quiet)
}

/// The directory `out` is written in.
pub(super) fn parent_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// A stack resolved against its base, ready to pack.
pub(super) struct Planned {
    pub plan: Plan,
    pub patches: Vec<PatchRow>,
    pub base: Option<Base>,
    pub sequence: u64,
    pub now: std::time::SystemTime,
}

/// Pack what `planned` holds into `out`; prints the report unless `quiet`.
pub(super) fn pack_planned(
    planned: Planned,
    out: &Path,
    split: Option<u64>,
    args: &PackArgs,
    json: bool,
    quiet: bool,
) -> Result<PackReport> {
    let Planned { plan, patches, base, sequence, now } = planned;
    let key = load_key(args.key.as_deref())?;
    let bar = Bar::new(json);
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
        PackOptions { sequence: Some(sequence), created: Some(now), split, base, expires, keyring };
    let mut report = pack(&plan, &key, &options, out, &bar)
        .with_context(|| format!("packing {}", out.display()))?;
    report.patches = patches;
    if quiet {
        return Ok(report);
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
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
