//! The `throughline` binary: the front door to every part, as clap subcommands.
//!
//! Each part adds one variant to [`Command`] and one module that turns its arguments into the
//! part's validated configuration and runs it. Nothing else lives here.

use clap::{Parser, Subcommand};

mod alerts;
mod apm;
mod broker;
mod collector;
mod conformance;
mod heap;
mod lambda;
mod load;
mod serve;
mod systems;
mod up;
mod verify;

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
    /// Run reference systems locally (all when none is named) on one collector and one broker.
    Up(up::UpArgs),
    /// Drive a reference system with load and check its traces (`load onboarding`).
    Load(load::LoadArgs),
    /// Receive OTLP (gRPC :4317, HTTP :4318), keep every span, serve the APM and Jaeger API (:16686).
    Collector(collector::CollectorArgs),
    /// Check that traces in a running collector are whole and cross the expected hops.
    Verify(verify::VerifyArgs),
    /// Run the durable local broker that speaks SQS and EventBridge.
    Broker(broker::BrokerArgs),
    /// Run a Lambda function under the local Lambda host, fed by an SQS queue.
    Lambda(lambda::LambdaArgs),
    /// Run one reference service as this process (what `up` starts).
    Serve(serve::ServeArgs),
    /// Serve the APM pages over the store folder of a stopped collector.
    Apm(apm::ApmArgs),
    /// Check alert rules files (`alerts check rules.yaml`).
    Alerts {
        #[command(subcommand)]
        command: alerts::AlertsCommand,
    },
    /// Serve the protocol of an official conformance test suite.
    Conformance {
        #[command(subcommand)]
        suite: conformance::Suite,
    },
}

impl Command {
    /// Servers that live on after a burst of load, whose freed heap is worth giving back.
    fn is_long_running_server(&self) -> bool {
        matches!(
            self,
            Command::Collector(_)
                | Command::Broker(_)
                | Command::Lambda(_)
                | Command::Serve(_)
                | Command::Apm(_)
        )
    }
}

fn main() -> anyhow::Result<()> {
    // A part started by `up` dies with it, however `up` ends.
    throughline_harness::die_with_parent();
    let cli = Cli::parse();
    if cli.command.is_long_running_server() {
        heap::limit_arenas();
        heap::trim_when_idle();
    }
    match cli.command {
        Command::Up(args) => up::run(args),
        Command::Load(args) => load::run(args),
        Command::Collector(args) => collector::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Broker(args) => broker::run(args),
        Command::Lambda(args) => lambda::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Apm(args) => apm::run(args),
        Command::Alerts { command } => alerts::run(command),
        Command::Conformance { suite } => conformance::run(suite),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
        // Each subcommand is built (and its debug assertions run) only when parsed.
        for args in [
            &["up", "onboarding", "--api-addr", "127.0.0.1:1"][..],
            &["load", "onboarding", "--requests", "1"],
            &["verify", "--expect-hop", "onboarding-api:onboarding-lambda"],
            &["serve", "onboarding-api"],
            &["alerts", "check", "rules.yaml"],
            &[
                "collector",
                "--data-dir",
                "d",
                "--alert-rules",
                "a.yaml",
                "--alert-rules",
                "b.yaml",
                "--alert-webhook",
                "http://127.0.0.1:1/hook",
                "--alertmanager-url",
                "http://127.0.0.1:2",
            ],
        ] {
            let argv = std::iter::once("throughline").chain(args.iter().copied());
            if let Err(err) = super::Cli::try_parse_from(argv) {
                panic!("{args:?}: {err}");
            }
        }
    }
}
