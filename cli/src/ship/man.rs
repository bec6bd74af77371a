//! `tender-ship man DIR`: man pages for tender-ship and every subcommand.

use std::path::PathBuf;

use anyhow::Result;
use clap::CommandFactory as _;

use super::{Cli, Ctx};
use crate::shell::{report_man_pages, write_man_pages};

/// Arguments of `tender-ship man`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-ship man /usr/local/share/man/man1")]
pub struct Man {
    /// Where to write tender-ship.1 and tender-ship-COMMAND.1 (created if missing).
    dir: PathBuf,
}

impl Man {
    /// Run the command; the exit code on success.
    pub fn run(self, ctx: &Ctx) -> Result<i32> {
        let written = write_man_pages(Cli::command(), &self.dir)?;
        report_man_pages(&written, &self.dir, ctx.json);
        Ok(0)
    }
}
