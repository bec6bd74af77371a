//! `tender-shore pack --for SHIP|all`: one bundle per ship of the fleet,
//! each a delta against what the ship's latest receipt says it holds.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use tender_stack::StackFile;
use tender_stack::sequence::Kind;

use super::fleet::FleetDir;
use super::pack::{PackArgs, Planned, pack_planned};
use crate::{human, print_json};

/// Which ships, from which fleet, into which directory.
pub(super) struct Target<'a> {
    pub which: &'a str,
    pub fleet: &'a FleetDir,
    pub out_dir: Option<PathBuf>,
    pub split: Option<u64>,
}

/// One ship's share, for the estimate and the report.
#[derive(Serialize)]
struct Row {
    ship: String,
    slug: String,
    /// "whole" (no receipt), "delta", or "none" (it holds the version).
    bundle: &'static str,
    /// Bytes of blobs the bundle carries (patches at their size).
    carried_bytes: u64,
    /// Bytes the ship's store must have free to take it.
    needs_bytes: u64,
    free_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<PathBuf>,
}

/// Plan every chosen ship's bundle; refuse before writing anything if an
/// entry is damaged or a ship lacks the room; then estimate or pack each.
pub(super) fn run(
    stack: &Path,
    to: Target<'_>,
    args: &PackArgs,
    only_estimate: bool,
    json: bool,
) -> Result<i32> {
    let out_dir = to.out_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    // Images from registries are cached beside the bundles while packing
    // (the current directory for an estimate); a directory made here is
    // removed again if nothing is packed into it.
    let made = !only_estimate && !out_dir.exists();
    if made {
        fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    }
    let cache = if only_estimate { PathBuf::from(".") } else { out_dir.clone() };
    let outcome = plan_and_pack(stack, &to, &out_dir, &cache, args, only_estimate, json);
    if made && outcome.is_err() {
        let _ = fs::remove_dir(&out_dir);
    }
    outcome
}

fn plan_and_pack(
    stack: &Path,
    to: &Target<'_>,
    out_dir: &Path,
    cache: &Path,
    args: &PackArgs,
    only_estimate: bool,
    json: bool,
) -> Result<i32> {
    let ships = to.fleet.fleet().ships().context("reading the fleet")?;
    // A job run from the wrong directory, or without TENDER_FLEET, must
    // not "succeed" having packed nothing.
    if ships.ships.is_empty() && ships.damaged.is_empty() {
        anyhow::bail!(
            "no ships in the fleet directory {} (--fleet DIR or TENDER_FLEET; add ships with tender-shore fleet add SHIP.pub --name NAME)",
            to.fleet.dir.display()
        );
    }
    let file = StackFile::load(stack)?;
    let (name, version) = (file.name.clone(), file.version.clone());
    let predecessors = args.base()?;
    let chosen = tender_fleet::plan_for(&ships, to.which, &name, &version, predecessors.as_ref())?;
    let mut rows = Vec::new();
    let mut planned = Vec::new();
    for p in chosen {
        let base = p.base;
        let (plan, patches) = args.plan(StackFile::load(stack)?, cache, base.as_ref(), json)?;
        let carried: u64 =
            plan.estimate(base.as_ref()).iter().filter(|r| r.carried).map(|r| r.size).sum();
        let held = |d| base.as_ref().is_some_and(|b| b.blobs.contains(d));
        let needs: u64 =
            plan.blobs.iter().filter(|(b, _)| !held(&b.digest)).map(|(b, _)| b.size).sum();
        let bundle = match (&base, p.holds_it) {
            (_, true) => "none",
            (None, _) => "whole",
            (Some(_), false) => "delta",
        };
        let slug = p.ship.slug();
        rows.push(Row {
            ship: p.ship.to_string(),
            slug: slug.clone(),
            bundle,
            carried_bytes: if p.holds_it { 0 } else { carried },
            needs_bytes: if p.holds_it { 0 } else { needs },
            free_bytes: p.free_bytes,
            path: (!p.holds_it)
                .then(|| out_dir.join(format!("{name}-{version}-for-{slug}.tender"))),
        });
        planned.push((plan, patches, base));
    }
    let short: Vec<String> = rows
        .iter()
        .filter(|r| r.free_bytes.is_some_and(|f| f < r.needs_bytes))
        .map(|r| {
            format!(
                "{} needs {} free for {name} {version} and its receipt shows {}",
                r.ship,
                human(r.needs_bytes),
                human(r.free_bytes.unwrap_or(0))
            )
        })
        .collect();
    if only_estimate {
        return estimate(&rows, &short, json);
    }
    if !short.is_empty() {
        return Err(tender_fleet::FleetError::NoRoom(format!(
            "not enough room aboard, nothing written: {}",
            short.join("; ")
        ))
        .into());
    }
    let now = std::time::SystemTime::now();
    // One release: every ship's bundle carries the same sequence.
    let sequence = args.sequence_of(&file, now, Kind::Full)?;
    for (row, (plan, patches, base)) in rows.iter_mut().zip(planned) {
        let Some(out) = &row.path else { continue };
        let p = Planned { plan, patches, base, sequence, now };
        let report = pack_planned(p, out, to.split, args, json, true)
            .with_context(|| format!("packing for {}", row.ship))?;
        row.carried_bytes = report.bytes;
    }
    if json {
        print_json(&serde_json::json!({"sequence": sequence, "ships": rows}));
    } else {
        for r in &rows {
            match &r.path {
                Some(p) => println!(
                    "{}: {} bundle {} ({})",
                    r.ship,
                    r.bundle,
                    p.display(),
                    human(r.carried_bytes)
                ),
                None => println!("{}: holds {name} {version} already; nothing packed", r.ship),
            }
        }
    }
    Ok(0)
}

fn estimate(rows: &[Row], short: &[String], json: bool) -> Result<i32> {
    let total: u64 = rows.iter().map(|r| r.carried_bytes).sum();
    if json {
        print_json(
            &serde_json::json!({"ships": rows, "total_bytes": total, "short_of_room": short}),
        );
    } else {
        for r in rows {
            println!(
                "{:>12} bytes of blobs  {:<5}  {}{}",
                r.carried_bytes,
                r.bundle,
                r.ship,
                r.free_bytes.map_or(String::new(), |f| format!(" ({} free)", human(f)))
            );
        }
        println!(
            "{total:>12} bytes of blobs in total ({}; each bundle adds its descriptor and about 1 KiB a blob of tar headers)",
            human(total)
        );
        for s in short {
            eprintln!("warning: {s}");
        }
    }
    Ok(0)
}
