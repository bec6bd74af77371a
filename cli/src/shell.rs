//! Shell completions and man pages, made from the same clap definitions as
//! the parsers, so they cannot drift from the command line (a test
//! regenerates `docs/man/` and compares).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Command;
pub use clap_complete::Shell;

/// Write `cmd`'s completion script for `shell` to `out`.
pub fn completions(mut cmd: Command, shell: Shell, out: &mut dyn Write) {
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Every man page of `cmd`: its own and one per subcommand, nested ones
/// too (`tender-ship-trust-add.1`), as (file name, roff).
pub fn man_pages(cmd: Command) -> Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: &Command, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
        // Every page names the release, not just the top one.
        let man = clap_mangen::Man::new(cmd.clone())
            .source(format!("tender {}", env!("CARGO_PKG_VERSION")));
        let mut roff = Vec::new();
        man.render(&mut roff).context("rendering a man page")?;
        out.push((man.get_filename(), roff));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, out)?;
        }
        Ok(())
    }
    // Built, so each subcommand knows its full name (tender-ship-trust-add);
    // no `help` subcommand page: `--help` is on every page.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, &mut out)?;
    Ok(out)
}

/// Write [`man_pages`] into `dir` (created if missing); the files written.
pub fn write_man_pages(cmd: Command, dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, roff) in man_pages(cmd)? {
        let path = dir.join(name);
        fs::write(&path, roff).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Print what [`write_man_pages`] wrote: JSON, or one line.
pub fn report_man_pages(written: &[PathBuf], dir: &Path, json: bool) {
    if json {
        crate::print_json(&serde_json::json!({ "pages": written }));
    } else {
        println!("wrote {} man pages into {}", written.len(), dir.display());
    }
}
