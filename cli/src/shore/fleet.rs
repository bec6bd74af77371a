//! `tender-shore fleet`: the ships, their keys and latest receipts; the
//! fleet's status.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde_json::json;
use tender_bundle::receipt::{HealthState, ShipName};
use tender_fleet::{Fleet, ShipStatus};

use super::{Ctx, parse_duration};
use crate::{human, print_json};

/// Where the fleet directory is.
#[derive(clap::Args)]
pub struct FleetDir {
    /// The fleet directory (ships, their keys, their latest receipts).
    #[arg(long = "fleet", env = "TENDER_FLEET", value_name = "DIR", default_value = "fleet")]
    pub dir: PathBuf,
}

impl FleetDir {
    pub(super) fn fleet(&self) -> Fleet {
        Fleet::new(&self.dir)
    }
}

/// The `fleet` subcommands.
#[derive(clap::Subcommand)]
pub enum FleetCmd {
    /// Add a ship: its public key (STORE/ship.pub from `tender-ship keygen`)
    /// and its name.
    #[command(after_help = "\
Examples:
  tender-shore fleet add aurora.pub --name \"MV Aurora\"
      the name exactly as `tender-ship keygen --name` gave it (to correct
      one, remove the ship by its file-name form, mv-aurora, and add it again)")]
    Add {
        /// The ship's public key.
        key: PathBuf,
        /// The ship's name, as `tender-ship keygen --name` gave it.
        #[arg(long)]
        name: ShipName,
        #[command(flatten)]
        fleet: FleetDir,
    },
    /// The ships, their keys and their latest receipts.
    #[command(after_help = "\
Examples:
  tender-shore fleet list --fleet /srv/tender/fleet")]
    List {
        #[command(flatten)]
        fleet: FleetDir,
    },
    /// Remove a ship and all it sent.
    #[command(after_help = "\
Examples:
  tender-shore fleet remove mv-aurora")]
    Remove {
        /// Its name (or file-name form, e.g. mv-aurora).
        name: String,
        #[command(flatten)]
        fleet: FleetDir,
    },
    /// Verify receipts (`tender-ship report`) against their ships' keys and
    /// keep each; refuses an unknown ship, an altered or forged receipt, or
    /// one not newer than the one kept (replay); warns on one dated in the
    /// future. Each receipt stands alone: one refused leaves the others.
    #[command(after_help = "\
Examples:
  tender-shore fleet ingest /media/usb/receipt-aurora.json
  tender-shore fleet ingest --from registry.example/fleet/receipts")]
    Ingest {
        /// Receipt files.
        #[arg(required_unless_present = "from")]
        receipts: Vec<PathBuf>,
        /// Also every receipt pushed to this repository (`tender-ship
        /// report --to REGISTRY/REPO:TAG`), each tag in turn.
        #[arg(long, value_name = "REGISTRY/REPO")]
        from: Option<String>,
        #[command(flatten)]
        link: super::fleet_link::LinkArgs,
        #[command(flatten)]
        fleet: FleetDir,
    },
    /// One row per ship: last receipt and its age, per stack the version in
    /// force and its health, versions waiting aboard, free space, fsck,
    /// failed applies since the receipt before.
    #[command(after_help = "\
Examples:
  tender-shore fleet status
  tender-shore --json fleet status --stale 14days")]
    Status {
        /// Mark ships not heard of for longer than this.
        #[arg(long, default_value = "30days", value_parser = parse_duration)]
        stale: Duration,
        #[command(flatten)]
        fleet: FleetDir,
    },
}

impl FleetCmd {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        match self {
            FleetCmd::Add { key, name, fleet } => {
                let ship = fleet.fleet().add(&key, &name)?;
                if ctx.json {
                    print_json(
                        &json!({"ship": ship.name, "slug": ship.name.slug(), "keyid": ship.key.key_id()}),
                    );
                } else {
                    println!(
                        "added {} ({}), key {}",
                        ship.name,
                        ship.name.slug(),
                        ship.key.key_id()
                    );
                }
                Ok(0)
            }
            FleetCmd::List { fleet } => list(&fleet, ctx.json),
            FleetCmd::Remove { name, fleet } => {
                let gone = fleet.fleet().remove(&name)?;
                if ctx.json {
                    print_json(&json!({"removed": gone}));
                } else {
                    println!("removed {gone}");
                }
                Ok(0)
            }
            FleetCmd::Ingest { receipts, from, link, fleet } => {
                let mut sources: Vec<Source> = receipts.into_iter().map(Source::File).collect();
                if let Some(from) = from {
                    sources.extend(super::fleet_link::receipts_at(&from, &link)?);
                }
                ingest(&fleet, sources, ctx.json)
            }
            FleetCmd::Status { stale, fleet } => status(&fleet, stale, ctx.json),
        }
    }
}

/// Damaged entries, each an error naming its file; true when any.
fn report_damaged(damaged: &[tender_fleet::FleetError]) -> bool {
    for e in damaged {
        eprintln!("error: {}", printable(&tender_bundle::error_chain(e)));
    }
    !damaged.is_empty()
}

fn list(fleet: &FleetDir, json: bool) -> Result<i32> {
    let ships = fleet.fleet().ships()?;
    if json {
        let rows: Vec<_> = ships
            .ships
            .iter()
            .map(|s| {
                json!({
                    "ship": s.name,
                    "slug": s.name.slug(),
                    "keyid": s.key.key_id(),
                    "added": s.added,
                    "receipt": s.receipt.as_ref().map(|r| json!({"sequence": r.sequence, "created": r.created})),
                })
            })
            .collect();
        print_json(&rows);
    } else {
        for s in &ships.ships {
            let r = s.receipt.as_ref().map_or("no receipt".to_string(), |r| {
                format!("receipt {} of {}", r.sequence, r.created)
            });
            println!("{} ({})  key {}  {r}", s.name, s.name.slug(), s.key.key_id());
        }
    }
    Ok(if report_damaged(&ships.damaged) { 1 } else { 0 })
}

/// Where a receipt comes from.
pub(super) enum Source {
    /// A file.
    File(PathBuf),
    /// In a registry: its reference, and how to fetch it (when it is
    /// ingested, so one receipt at a time is in memory).
    Fetched(PathBuf, Box<dyn FnOnce() -> Result<Vec<u8>, tender_registry::RegistryError>>),
}

fn ingest(fleet: &FleetDir, receipts: Vec<Source>, json: bool) -> Result<i32> {
    let total = receipts.len();
    let fleet = fleet.fleet();
    let now = SystemTime::now();
    let mut kept = Vec::new();
    let mut first_err: Option<anyhow::Error> = None;
    for src in receipts {
        let (p, outcome) = match src {
            Source::File(p) => {
                let r = fleet.ingest(&p, now).map_err(anyhow::Error::new);
                (p, r)
            }
            Source::Fetched(p, fetch) => {
                let r = match fetch() {
                    Ok(bytes) => fleet.ingest_bytes(&p, &bytes, now).map_err(anyhow::Error::new),
                    Err(e) => {
                        Err(anyhow::Error::new(e)
                            .context(format!("fetching receipt {}", p.display())))
                    }
                };
                (p, r)
            }
        };
        match outcome {
            Ok(i) => {
                for w in &i.warnings {
                    eprintln!("warning: {}", printable(w));
                }
                if !json {
                    if i.already_kept {
                        println!(
                            "{}: receipt {} of {} was kept already",
                            p.display(),
                            i.sequence,
                            i.ship
                        );
                    } else {
                        println!(
                            "{}: kept receipt {} of {} ({})",
                            p.display(),
                            i.sequence,
                            i.ship,
                            i.created
                        );
                    }
                }
                kept.push(i);
            }
            Err(e) => {
                if total > 1 {
                    eprintln!("error: {}", printable(&format!("{e:#}")));
                }
                first_err.get_or_insert(e);
            }
        }
    }
    if json {
        print_json(&kept);
    }
    match first_err {
        // The exit code from the first refusal's kind; each was named above.
        Some(e) if total == 1 => Err(e),
        Some(e) => Err(e.context(format!("{} of {total} receipts refused", total - kept.len()))),
        None => Ok(0),
    }
}

fn status(fleet: &FleetDir, stale: Duration, json: bool) -> Result<i32> {
    let ships = fleet.fleet().ships().context("reading the fleet")?;
    let rows = ships.status(SystemTime::now(), stale);
    if json {
        print_json(
            &json!({"ships": rows, "damaged": ships.damaged.iter().map(|e| tender_bundle::error_chain(e)).collect::<Vec<_>>()}),
        );
    } else {
        for r in &rows {
            print_row(r);
        }
    }
    Ok(if report_damaged(&ships.damaged) { 1 } else { 0 })
}

/// Print a line made from a receipt's text: control characters (terminal
/// escapes a ship or its cluster's status messages could carry) shown
/// escaped, never sent to the terminal.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", printable(&format!($($arg)*)))
    };
}

fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] })
        .collect()
}

fn print_row(r: &ShipStatus) {
    let heard = match &r.last_receipt {
        Some(t) => format!(
            "receipt {} of {t} ({} ago)",
            r.receipt_sequence.unwrap_or(0),
            // Whole minutes once past one (seconds would be noise), seconds before.
            humantime::format_duration(Duration::from_secs(if r.age_seconds < 60 {
                r.age_seconds
            } else {
                r.age_seconds / 60 * 60
            }))
        ),
        None => "no receipt yet".into(),
    };
    let stale = if r.stale { "  STALE" } else { "" };
    say!("{}: {heard}{stale}", r.ship);
    if let Some(free) = r.free_bytes {
        let fsck = r.fsck.as_ref().map_or("never".to_string(), |f| {
            format!("{} at {}", if f.clean { "clean" } else { "DAMAGED" }, f.at)
        });
        say!("  free {}, fsck {fsck}", human(free));
    }
    for s in &r.stacks {
        let in_force = s.in_force.as_ref().map_or("(none)".to_string(), |v| v.to_string());
        let health = match (s.health, &s.health_reason) {
            (HealthState::Healthy, _) | (HealthState::NothingInForce, _) => s.health.to_string(),
            (h, Some(why)) => format!("{h}: {why}"),
            (h, None) => h.to_string(),
        };
        say!("  {}: in force {in_force}, {health}", s.stack);
        for w in &s.waiting {
            let state = if w.complete {
                "complete".to_string()
            } else {
                format!("{} missing", human(w.bytes_missing))
            };
            say!("    waiting {} (sequence {}) {state}", w.version, w.sequence);
        }
        if s.failed_applies > 0 {
            say!("    {} failed apply(ies) since the receipt before", s.failed_applies);
        }
        for n in &s.settings_not_set {
            say!("    setting not set: {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_shown_escaped() {
        let hostile = "unhealthy: x\u{1b}[2J\u{1b}]0;pwned\u{7}\r\nMV Other: ok";
        let shown = super::printable(hostile);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("\\u{1b}[2J") && shown.contains("\\r\\nMV Other"), "{shown}");
        assert_eq!(super::printable("MV Aurora: in force 1.1.0"), "MV Aurora: in force 1.1.0");
    }
}
