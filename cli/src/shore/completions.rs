//! `tender-shore completions`: the shell completion script, on stdout.

use anyhow::Result;
use clap::CommandFactory as _;

use super::{Cli, Ctx};
use crate::shell::{Shell, completions};

/// Arguments of `tender-shore completions`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tender-shore completions bash > /etc/bash_completion.d/tender-shore")]
pub struct Completions {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

impl Completions {
    /// Run the command; the exit code on success. The script is the
    /// output, so `--json` changes nothing.
    pub fn run(self, _ctx: &Ctx) -> Result<i32> {
        completions(Cli::command(), self.shell, &mut std::io::stdout().lock());
        Ok(0)
    }
}
