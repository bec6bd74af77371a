//! tender-ship: verify and import stack bundles into the ship's store.

use clap::Parser as _;
use tender_cli::ship;

fn main() {
    tender_cli::finish(ship::run(ship::Cli::parse()));
}
