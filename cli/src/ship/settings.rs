//! `tender-ship settings`: this ship's own values for the settings a stack
//! declares, and its local patches. Kept in the store apart from versions
//! (0600), so they survive updates; secret values are never printed.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use tender_bundle::StackName;
use tender_bundle::settings::SettingName;
use tender_deploy::settings as ops;
use tender_store::Store;

use super::Ctx;
use crate::print_json;

/// The `tender-ship settings` subcommands.
#[derive(Subcommand)]
pub enum SettingsCmd {
    /// Set values: NAME=VALUE ..., or from a YAML file of NAME: value.
    #[command(after_help = "\
Examples:
  tender-ship settings set awareness VESSEL_NAME='MV Aurora' AIS_TOKEN=s3cret
  tender-ship settings set awareness --from-file values.yaml")]
    Set {
        /// The stack.
        stack: StackName,
        /// NAME=VALUE (repeatable).
        #[arg(value_name = "NAME=VALUE")]
        values: Vec<String>,
        /// A YAML mapping of NAME: value.
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
    },
    /// Remove values.
    #[command(after_help = "\
Examples:
  tender-ship settings unset awareness CAMERA_URL")]
    Unset {
        /// The stack.
        stack: StackName,
        /// Names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<SettingName>,
    },
    /// The settings the newest version declares, their state and values
    /// (secrets as ***), and the local patches.
    #[command(after_help = "\
Examples:
  tender-ship settings list awareness")]
    List {
        /// The stack.
        stack: StackName,
    },
    /// Keep a local patch: partial objects (apiVersion, kind, name,
    /// namespace, and the fields to change) merged onto the signed objects
    /// (JSON merge patch) when a version is applied. Named by its file name;
    /// a patch of the same name is replaced.
    #[command(after_help = "\
Examples:
  tender-ship settings patch awareness replicas.yaml")]
    Patch {
        /// The stack.
        stack: StackName,
        /// The patch file (YAML).
        file: PathBuf,
    },
    /// Remove a local patch by name.
    #[command(after_help = "\
Examples:
  tender-ship settings unpatch awareness replicas.yaml")]
    Unpatch {
        /// The stack.
        stack: StackName,
        /// The patch's name, as `settings list` shows it.
        name: String,
    },
}

impl SettingsCmd {
    /// Run the subcommand; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let store = Store::open(&ctx.store)?;
        let report = match self {
            SettingsCmd::Set { stack, values, from_file } => {
                let mut pairs = Vec::new();
                if let Some(f) = &from_file {
                    let text = fs::read_to_string(f)
                        .with_context(|| format!("reading values file {}", f.display()))?;
                    pairs.extend(
                        ops::values_from_yaml(&text)
                            .with_context(|| format!("values file {}", f.display()))?,
                    );
                }
                for (i, v) in values.iter().enumerate() {
                    let Some((name, value)) = v.split_once('=') else {
                        // Shown only when it is a bare name: anything else
                        // may be a secret typed without its NAME=.
                        if v.parse::<SettingName>().is_ok() {
                            bail!("{v}: expected NAME=VALUE");
                        }
                        bail!(
                            "argument {} after the stack is not NAME=VALUE (not shown: it may be a secret)",
                            i + 1
                        );
                    };
                    pairs.push((name.parse::<SettingName>()?, value.to_owned()));
                }
                if pairs.is_empty() {
                    bail!("nothing to set: give NAME=VALUE or --from-file FILE");
                }
                ops::set(&store, &stack, pairs)?
            }
            SettingsCmd::Unset { stack, names } => ops::unset(&store, &stack, &names)?,
            SettingsCmd::List { stack } => {
                let list = ops::list(&store, &stack)?;
                if ctx.json {
                    print_json(&list);
                } else {
                    print_list(&list);
                }
                return Ok(0);
            }
            SettingsCmd::Patch { stack, file } => {
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .with_context(|| format!("{}: not a file name", file.display()))?
                    .to_owned();
                let text = fs::read_to_string(&file)
                    .with_context(|| format!("reading patch {}", file.display()))?;
                ops::add_patch(&store, &stack, &name, text)?;
                println!("{stack}: local patch {name} kept; applied from the next apply on");
                return Ok(0);
            }
            SettingsCmd::Unpatch { stack, name } => {
                if !ops::remove_patch(&store, &stack, &name)? {
                    bail!("{stack} has no local patch {name}");
                }
                println!("{stack}: local patch {name} removed");
                return Ok(0);
            }
        };
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        if ctx.json {
            print_json(&report);
        } else {
            for n in &report.set {
                println!("set {n}");
            }
            for n in &report.unset {
                println!("unset {n}");
            }
        }
        Ok(0)
    }
}

fn print_list(list: &ops::SettingsList) {
    if list.declared.is_empty() {
        println!("{}: the newest version held declares no settings", list.stack);
    }
    for s in &list.declared {
        let value = s.value.as_deref().unwrap_or("-");
        let flags = [(s.required, "required"), (s.secret, "secret")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| *f)
            .collect::<Vec<_>>()
            .join(", ");
        let about = s.description.as_deref().unwrap_or("");
        println!("{:<24} {:<8} {value}  {flags} {about}", s.name.as_str(), s.state);
    }
    for n in &list.undeclared {
        println!("{n}: set, but the newest version held does not declare it");
    }
    for (name, objects) in &list.patches {
        println!("patch {name}: {}", objects.join(", "));
    }
}
