//! The `throughline` binary: the front door to every part, as clap subcommands.
//!
//! Each part adds one variant to [`Command`] and one module that turns its arguments into the
//! part's validated configuration and runs it. Nothing else lives here.

mod apm;

use clap::{Parser, Subcommand};

mod collector;
mod verify;

mod conformance;

mod lambda;

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
    /// Serve the APM pages (search, traces, service map, services, integrity) over a store folder
    Apm(apm::ApmArgs),

    /// Receive OTLP (gRPC :4317, HTTP :4318), keep every span, serve the Jaeger API (:16686).
    Collector(collector::CollectorArgs),
    /// Check that traces in a running collector are whole and cross the expected hops.
    Verify(verify::VerifyArgs),

    /// Serve the protocol of an official conformance test suite.
    Conformance {
        #[command(subcommand)]
        suite: conformance::Suite,
    },

    /// Run a Lambda function under the local Lambda host, fed by an SQS queue.
    Lambda(lambda::LambdaArgs),

    /// Run the durable local broker that speaks SQS and EventBridge.
    Broker(broker::BrokerArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Apm(args) => apm::run(args),

        Command::Collector(args) => collector::run(args),
        Command::Verify(args) => verify::run(args),

        Command::Conformance { suite } => conformance::run(suite),

        Command::Lambda(args) => lambda::run(args),

        Command::Broker(args) => broker::run(args),
    }
}
