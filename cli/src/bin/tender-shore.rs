//! tender-shore: make keys and pack signed stack bundles (a CI job on shore).

use clap::Parser as _;
use tender_cli::shore;

fn main() {
    tender_cli::finish(shore::run(shore::Cli::parse()));
}
