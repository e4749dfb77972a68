//! The one explicit list of the systems this binary knows: `up`, `load`, `verify --system` and
//! `serve` dispatch on [`SYSTEMS`], so a new system is one entry here (and its flags in
//! [`SystemsOptions`]), not a match arm per verb.

use std::sync::Arc;

use throughline_harness::{Platform, Scenario, Service, SystemDescription, TraceExpectation};

/// A known system: how to describe it, load it and check its traces.
#[derive(Debug)]
pub struct Known {
    pub name: &'static str,
    pub describe: fn(&Platform, &SystemsOptions) -> SystemDescription,
    pub expected: fn() -> TraceExpectation,
    pub scenario: fn() -> Arc<dyn Scenario>,
    /// Where `load` sends when no `--api` is given.
    pub default_target: &'static str,
    pub services: &'static [Service],
    /// The system's own stats of the load, under the target (`POST` resets them before the load,
    /// `GET` reads them after): `load` prints their `journeys` and `steps` tables.
    pub load_stats_path: Option<&'static str>,
}

pub const SYSTEMS: &[Known] = &[
    Known {
        name: onboarding_system::NAME,
        describe: |platform, opts| onboarding_system::describe(platform, &opts.onboarding),
        expected: onboarding_system::expected,
        scenario: || Arc::new(onboarding_system::OnboardingLoad),
        default_target: onboarding_system::DEFAULT_TARGET,
        services: onboarding_system::SERVICES,
        load_stats_path: None,
    },
    Known {
        name: shop_system::NAME,
        describe: |platform, opts| shop_system::describe(platform, &opts.shop),
        expected: shop_system::expected,
        scenario: || Arc::new(shop_system::ShopLoad),
        default_target: shop_system::DEFAULT_TARGET,
        services: shop_system::SERVICES,
        load_stats_path: Some(shop_system::LOAD_STATS_PATH),
    },
    Known {
        name: events_system::NAME,
        describe: |platform, opts| events_system::describe(platform, &opts.events),
        expected: events_system::expected,
        scenario: || Arc::new(events_system::EventsLoad),
        default_target: events_system::DEFAULT_TARGET,
        services: events_system::SERVICES,
        load_stats_path: None,
    },
];

/// Every system's own flags of `up`.
#[derive(Debug, Clone, clap::Args)]
pub struct SystemsOptions {
    #[command(flatten)]
    pub onboarding: onboarding_system::UpOptions,
    #[command(flatten)]
    pub shop: shop_system::UpOptions,
    #[command(flatten)]
    pub events: events_system::UpOptions,
}

pub fn find(name: &str) -> Option<&'static Known> {
    SYSTEMS.iter().find(|s| s.name == name)
}

fn names() -> String {
    SYSTEMS
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A system name on the command line.
pub fn parse_name(input: &str) -> Result<String, String> {
    match find(input) {
        Some(s) => Ok(s.name.to_owned()),
        None => Err(format!("no system {input:?}; known: {}", names())),
    }
}

/// A service name for `serve`.
pub fn parse_service(input: &str) -> Result<Service, String> {
    SYSTEMS
        .iter()
        .flat_map(|s| s.services.iter())
        .find(|s| s.name == input)
        .copied()
        .ok_or_else(|| {
            let all: Vec<&str> = SYSTEMS
                .iter()
                .flat_map(|s| s.services.iter().map(|s| s.name))
                .collect();
            format!("no service {input:?}; known: {}", all.join(", "))
        })
}

/// The named systems (every known one when `names` is empty), described on `platform`.
pub fn describe(
    names: &[String],
    platform: &Platform,
    opts: &SystemsOptions,
) -> Vec<SystemDescription> {
    SYSTEMS
        .iter()
        .filter(|s| names.is_empty() || names.iter().any(|n| n == s.name))
        .map(|s| (s.describe)(platform, opts))
        .collect()
}

/// Counters of accepted and completed requests per system, for its dashboard's completion share.
fn completion(system: &str) -> Option<(String, String)> {
    (system == onboarding_system::NAME).then(|| {
        (
            "onboarding.success".to_owned(),
            "lambda.processing.success".to_owned(),
        )
    })
}

/// A dashboard per known system, from its description with the default `up` options: the
/// functions its `throughline lambda` parts run (`--function-name`), its queues and which of
/// them are dead-letter queues (a queue moved with `--*-queue` flags of `up` is not followed).
pub fn dashboards() -> Vec<throughline_apm::Dashboard> {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        systems: SystemsOptions,
    }
    let opts = <Defaults as clap::Parser>::parse_from(["up"]).systems;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let platform = Platform {
        exe: "throughline".into(),
        data_dir: std::env::temp_dir(),
        broker_addr: addr,
        otlp_grpc_addr: addr,
        otlp_http_addr: addr,
        query_addr: addr,
        settle_secs: 0,
        export_delay_ms: 0,
        database_url: None,
    };
    SYSTEMS
        .iter()
        .map(|s| {
            let d = (s.describe)(&platform, &opts);
            let functions = d
                .parts
                .iter()
                .filter(|p| p.args.first().is_some_and(|a| a == "lambda"))
                .filter_map(|p| {
                    let at = p.args.iter().position(|a| a == "--function-name")?;
                    p.args.get(at + 1).cloned()
                })
                .collect();
            throughline_apm::Dashboard {
                system: s.name.to_owned(),
                title: format!("{} system: Lambda and SQS", s.name),
                functions,
                queues: d
                    .declarations
                    .queues
                    .iter()
                    .map(|q| q.name.clone())
                    .collect(),
                dead_letter_queues: d
                    .declarations
                    .queues
                    .iter()
                    .filter_map(|q| q.dead_letter.as_ref().map(|dl| dl.queue.clone()))
                    .collect(),
                completion: completion(s.name),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::SystemsOptions;

    #[derive(Debug, Parser)]
    struct Up {
        #[command(flatten)]
        systems: SystemsOptions,
    }

    #[test]
    fn every_system_has_a_dashboard_of_its_functions_and_queues() {
        let all = super::dashboards();
        let onboarding = all
            .iter()
            .find(|d| d.system == "onboarding")
            .expect("onboarding");
        assert_eq!(onboarding.functions, vec!["onboarding-lambda".to_owned()]);
        assert!(!onboarding.queues.is_empty(), "{onboarding:?}");
        assert!(
            onboarding
                .dead_letter_queues
                .iter()
                .all(|q| onboarding.queues.contains(q)),
            "{onboarding:?}"
        );
        assert_eq!(all.len(), super::SYSTEMS.len());
    }

    #[test]
    fn every_systems_flags_fit_in_one_command() {
        // clap panics at parse time on two flags (or groups) of one name; this finds it first.
        Up::command().debug_assert();
        let up = Up::parse_from([
            "up",
            "--scenario",
            "blackfriday",
            "--api-addr",
            "127.0.0.1:1",
        ]);
        assert_eq!(
            up.systems.shop.scenario,
            shop_system::ShopScenario::Blackfriday
        );
    }
}
