//! `throughline alerts check FILE…`: reads rules files as the collector would and lists every
//! mistake (group, rule, field), exiting non-zero when there is one.

use std::path::PathBuf;

use throughline_alerts::rules::Condition;

#[derive(Debug, clap::Subcommand)]
pub enum AlertsCommand {
    /// Check rules files: print what they define, or every mistake and exit 1.
    Check {
        /// Rules files (YAML), checked together (flows may name rules of another file).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

pub fn run(command: AlertsCommand) -> anyhow::Result<()> {
    match command {
        AlertsCommand::Check { files } => {
            let set = crate::collector::load_rules(&files)?;
            for g in &set.groups {
                println!(
                    "group {}: {} rules every {:?}",
                    g.name,
                    g.rules.len(),
                    std::time::Duration::from_nanos(g.interval_nanos)
                );
                for &i in &g.rules {
                    let r = &set.rules[i];
                    let kind = match r.condition {
                        Condition::Spans { .. } => "spans",
                        Condition::Metric { .. } => "metric",
                        Condition::Flow { .. } => "flow",
                    };
                    println!("  {} ({kind})", r.name);
                }
            }
            println!("ok: {} rules", set.rules.len());
            Ok(())
        }
    }
}
