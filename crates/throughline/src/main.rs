//! The `throughline` binary: the front door to every part, as clap subcommands.
//!
//! Each part adds one variant to [`Command`] and one module that turns its arguments into the
//! part's validated configuration and runs it. Nothing else lives here.

use clap::{Parser, Subcommand};

mod lambda;

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
    /// Run a Lambda function under the local Lambda host, fed by an SQS queue.
    Lambda(lambda::LambdaArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Lambda(args) => lambda::run(args),
    }
}
