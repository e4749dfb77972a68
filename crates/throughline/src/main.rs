//! The `throughline` binary: the front door to every part, as clap subcommands.
//!
//! Each part adds one variant to [`Command`] and one module that turns its arguments into the
//! part's validated configuration and runs it. Nothing else lives here.

use clap::{Parser, Subcommand};

mod broker;

#[derive(Debug, Parser)]
#[command(
    name = "throughline",
    version,
    about = "Keep one trace id unbroken through every async hop, and prove it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the durable local broker that speaks SQS and EventBridge.
    Broker(broker::BrokerArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Broker(args) => broker::run(args),
    }
}
