//! `stockpool simulate` without building the server: the same arguments, the same output.
//!
//! `cargo run --release -p stockpool-sim --example simulate -- --scenario scenarios/small-shop.toml --seed 1`

use clap::Parser;

/// Runs the simulator alone.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: stockpool_sim::cli::SimulateArgs,
}

fn main() -> anyhow::Result<()> {
    stockpool_sim::cli::run(&Cli::parse().args)
}
