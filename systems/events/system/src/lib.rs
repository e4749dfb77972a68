//! The event fan-out (seed 004) as the harness sees it: only what is its own.
//!
//! - [`describe`]: its parts (the webhook receiver standing for `external-service.com`,
//!   nedlia-api, and the three workers each under the Lambda host from its own queue), their
//!   environment names, and the broker declarations: three rules on the `nedlia-events` bus
//!   routing `placement.created` to `file-generator-queue`, `validator-queue` and
//!   `notifier-queue`, each queue with its dead-letter queue;
//! - [`expected`]: a placement's trace is whole when it holds nedlia-api SERVER → its PRODUCER → a
//!   CONSUMER of each of the three workers, and the webhook's SERVER under the notifier's CLIENT
//!   span (hops by root span name: the API's read routes are whole alone);
//! - [`EventsLoad`]: `throughline load events`: placements, some invalid, some overlapping;
//! - [`SERVICES`]: what `throughline serve` runs.

mod scenario;

use std::net::SocketAddr;
use std::str::FromStr;

use events_workers::Kind;
use throughline_broker::{
    DeadLetter, Declarations, QueueDeclaration, RuleDeclaration, TargetDeclaration,
};
use throughline_harness::system::path_arg;
use throughline_harness::{
    Hop, PartSpec, Platform, PortClaim, Service, SpanPattern, SystemDescription, TraceExpectation,
};

pub use scenario::{EventsLoad, placement};

/// The system's name in `up`, `load` and `verify`.
pub const NAME: &str = "events";
/// Where `load` sends by default.
pub const DEFAULT_TARGET: &str = "http://127.0.0.1:8020";
/// The bus the API publishes to.
pub const BUS: &str = "nedlia-events";
/// The propagators of every part, as the seed asks (the X-Ray header rides as `TraceHeader`).
pub const PROPAGATORS: &str = "tracecontext,baggage,xray";

/// The services `throughline serve` runs.
pub const SERVICES: &[Service] = &[
    Service {
        name: "nedlia-api",
        about: "The event fan-out's API (HTTP, port 8020 unless NEDLIA_API_ADDR says otherwise)",
        run: |env| events_api::entry::run_main(env).map_err(Into::into),
    },
    Service {
        name: "nedlia-file-generator",
        about: "The placement file worker: a Lambda binary, run under `throughline lambda`",
        run: |env| events_workers::entry::run_main(Kind::FileGenerator, env).map_err(Into::into),
    },
    Service {
        name: "nedlia-validator",
        about: "The placement validator: a Lambda binary, run under `throughline lambda`",
        run: |env| events_workers::entry::run_main(Kind::Validator, env).map_err(Into::into),
    },
    Service {
        name: "nedlia-notifier",
        about: "The webhook notifier: a Lambda binary, run under `throughline lambda`",
        run: |env| events_workers::entry::run_main(Kind::Notifier, env).map_err(Into::into),
    },
    Service {
        name: "nedlia-webhook",
        about: "The local stand-in for external-service.com (port 8021 unless NEDLIA_WEBHOOK_ADDR)",
        run: |env| events_webhook::run_main(env).map_err(Into::into),
    },
];

/// Failure rates injected per worker: `validator=1,notifier=0.1`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailureRates(Vec<(Kind, f64)>);

impl FailureRates {
    /// The rate injected in `kind` (0 when not named).
    pub fn of(&self, kind: Kind) -> f64 {
        self.0
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0.0, |(_, r)| *r)
    }
}

impl FromStr for FailureRates {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut rates = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, rate) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not worker=rate"))?;
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.short_name() == name.trim())
                .ok_or_else(|| {
                    format!("no worker {name:?}; known: file-generator, validator, notifier")
                })?;
            let rate: f64 = rate
                .trim()
                .parse()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("{rate:?} is not a rate between 0 and 1"))?;
            rates.push((kind, rate));
        }
        Ok(Self(rates))
    }
}

/// The flags of `throughline up` that are the event fan-out's (prefixed: every system's flags
/// share one command line).
#[derive(Debug, Clone, clap::Args)]
#[group(id = "events-up-options")]
#[command(next_help_heading = "The event fan-out (events)")]
pub struct UpOptions {
    /// nedlia-api.
    #[arg(long, default_value = "127.0.0.1:8020")]
    pub events_api_addr: SocketAddr,
    /// The local webhook receiver standing for external-service.com.
    #[arg(long, default_value = "127.0.0.1:8021")]
    pub events_webhook_addr: SocketAddr,
    /// Where nedlia-notifier posts instead (the local receiver is then not started).
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// Deliveries before a record goes to its queue's dead-letter queue.
    #[arg(long, default_value_t = 3)]
    pub events_max_receive_count: u32,
    /// Seconds a failed record stays invisible before it is redelivered.
    #[arg(long, default_value_t = 5)]
    pub events_visibility_timeout_secs: u32,
    /// Records per invocation of each worker.
    #[arg(long, default_value_t = 10)]
    pub events_batch_size: u32,
    /// Execution environments of each worker that may run at once.
    #[arg(long, default_value_t = 1)]
    pub events_worker_concurrency: u32,
    /// Worker failures to inject, as `worker=rate,…` (`validator=1`, `notifier=0.1`).
    #[arg(long, default_value = "", value_parser = FailureRates::from_str)]
    pub events_failures: FailureRates,
    /// Leave `detail._trace` out of the events: only the X-Ray `TraceHeader` carries the trace.
    #[arg(long)]
    pub events_xray_only: bool,
    /// Run nedlia-api without tracing (`OTEL_SDK_DISABLED=true`): the benchmark's baseline.
    #[arg(long)]
    pub events_untraced_api: bool,
}

/// What a whole placement trace holds.
pub fn expected() -> TraceExpectation {
    let server = SpanPattern::of_kind("nedlia-api", "server");
    let producer = SpanPattern::of_kind("nedlia-api", "producer");
    let mut hops = vec![Hop::new(server, producer.clone())];
    for kind in Kind::ALL {
        hops.push(Hop::new(
            producer.clone(),
            SpanPattern::of_kind(kind.service_name(), "consumer"),
        ));
    }
    hops.push(Hop::new(
        SpanPattern::of_kind(Kind::Notifier.service_name(), "client"),
        SpanPattern::of_kind(events_webhook::SERVICE_NAME, "server"),
    ));
    // Only a placement's creation goes downstream; the API's read routes are whole alone, so
    // `verify --system events --service nedlia-api` judges every API trace.
    let mut by_root = vec![("POST /v1/placements".to_owned(), hops)];
    for read in READ_ROUTES {
        by_root.push(((*read).to_owned(), Vec::new()));
    }
    TraceExpectation {
        by_root,
        ..TraceExpectation::default()
    }
}

/// The SERVER span names of the API's routes that stay in the API (health is not traced).
pub const READ_ROUTES: &[&str] = &[
    "GET /v1/placements/{id}",
    "GET /v1/videos",
    "GET /v1/products",
];

/// The three queues with their dead-letter queues, and one rule per queue on the bus.
pub fn declarations(opts: &UpOptions) -> Declarations {
    let mut declarations = Declarations::default();
    for kind in Kind::ALL {
        let name = kind.default_queue();
        let dlq = format!("{name}-dlq");
        let mut queue = QueueDeclaration::named(name);
        queue.attributes.insert(
            "VisibilityTimeout".into(),
            opts.events_visibility_timeout_secs.to_string(),
        );
        queue.dead_letter = Some(DeadLetter {
            queue: dlq.clone(),
            max_receive_count: opts.events_max_receive_count,
        });
        declarations.queues.push(QueueDeclaration::named(dlq));
        declarations.queues.push(queue);
        declarations.rules.push(RuleDeclaration {
            name: format!("placement-created-to-{}", kind.short_name()),
            event_bus: Some(BUS.into()),
            event_pattern: serde_json::json!({
                "source": [events_api::events::SOURCE],
                "detail-type": [events_api::events::PLACEMENT_CREATED],
            }),
            targets: vec![TargetDeclaration {
                id: kind.short_name().into(),
                queue: name.into(),
            }],
        });
    }
    declarations
}

fn with_propagators(mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    env.retain(|(k, _)| k != "OTEL_PROPAGATORS");
    env.push(("OTEL_PROPAGATORS".into(), PROPAGATORS.into()));
    env
}

/// The system on `platform`: the webhook receiver, the API, then each worker under the Lambda
/// host.
pub fn describe(platform: &Platform, opts: &UpOptions) -> SystemDescription {
    let data = platform.data(NAME);
    // The platform's PostgreSQL (`up --database-url`/`--postgres`), the tables in the schema
    // `events`; else the SQLite file the API and the workers share.
    let db = match &platform.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite:{}", data.join("events.sqlite3").display()),
    };
    let exe = path_arg(&platform.exe);
    let mut parts = Vec::new();
    let mut ports = vec![PortClaim::new(
        opts.events_api_addr,
        "nedlia-api",
        "--events-api-addr",
    )];
    let webhook_url = match &opts.webhook_url {
        Some(url) => url.clone(),
        None => {
            let mut env = with_propagators(platform.service_env(events_webhook::SERVICE_NAME));
            env.push((
                "NEDLIA_WEBHOOK_ADDR".into(),
                opts.events_webhook_addr.to_string(),
            ));
            parts.push(PartSpec {
                name: "nedlia-webhook".into(),
                program: platform.exe.clone(),
                args: vec!["serve".into(), "nedlia-webhook".into()],
                env,
                ready: Some(opts.events_webhook_addr),
            });
            ports.push(PortClaim::new(
                opts.events_webhook_addr,
                "webhook receiver",
                "--events-webhook-addr",
            ));
            format!("http://{}/webhook", opts.events_webhook_addr)
        }
    };

    let mut api_env = with_propagators(platform.service_env("nedlia-api"));
    api_env.extend([
        ("DATABASE_URL".to_owned(), db.clone()),
        (
            "NEDLIA_API_ADDR".to_owned(),
            opts.events_api_addr.to_string(),
        ),
        ("NEDLIA_EVENT_BUS".to_owned(), BUS.to_owned()),
        (
            "NEDLIA_DETAIL_TRACE".to_owned(),
            if opts.events_xray_only { "off" } else { "on" }.to_owned(),
        ),
    ]);
    if opts.events_untraced_api {
        api_env.push(("OTEL_SDK_DISABLED".into(), "true".into()));
    }
    parts.push(PartSpec {
        name: "nedlia-api".into(),
        program: platform.exe.clone(),
        args: vec!["serve".into(), "nedlia-api".into()],
        env: api_env,
        ready: Some(opts.events_api_addr),
    });

    for kind in Kind::ALL {
        let name = kind.service_name();
        let mut env = with_propagators(platform.service_env(name));
        // Spans leave at the flush that ends each invocation (the host freezes the
        // environment in between): the SDK's own batch schedule stays.
        env.retain(|(k, _)| k != "OTEL_BSP_SCHEDULE_DELAY" && k != "OTEL_BLRP_SCHEDULE_DELAY");
        env.extend([
            ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), name.to_owned()),
            ("DATABASE_URL".to_owned(), db.clone()),
            (
                "NEDLIA_QUEUE_NAME".to_owned(),
                kind.default_queue().to_owned(),
            ),
            (
                "NEDLIA_FAILURE_RATE".to_owned(),
                opts.events_failures.of(kind).to_string(),
            ),
        ]);
        match kind {
            Kind::FileGenerator => env.push((
                "NEDLIA_FILES_URL".into(),
                path_arg(&data.join("placement-files")),
            )),
            Kind::Notifier => env.push(("NEDLIA_WEBHOOK_URL".into(), webhook_url.clone())),
            Kind::Validator => {}
        }
        let args = [
            "lambda",
            "--queue",
            kind.default_queue(),
            "--batch-size",
            &opts.events_batch_size.to_string(),
            "--concurrency",
            &opts.events_worker_concurrency.to_string(),
            "--timeout-secs",
            "10",
            "--function-name",
            name,
            "--",
            &exe,
            "serve",
            name,
        ]
        .map(str::to_owned)
        .to_vec();
        parts.push(PartSpec {
            name: name.into(),
            program: platform.exe.clone(),
            args,
            env,
            ready: None,
        });
    }

    let api_url = format!("http://{}", opts.events_api_addr);
    let mut try_load = String::from("throughline load events --requests 200 --concurrency 8");
    if api_url != DEFAULT_TARGET {
        try_load.push_str(&format!(" --api {api_url}"));
    }
    if platform.query_url() != "http://127.0.0.1:16686" {
        try_load.push_str(&format!(" --query {}", platform.query_url()));
    }
    SystemDescription {
        name: NAME.into(),
        parts,
        declarations: declarations(opts),
        expected: expected(),
        ports,
        endpoints: vec![
            (
                "nedlia API".into(),
                format!(
                    "{api_url}   (POST /v1/placements, GET /v1/placements/{{id}}, GET /v1/videos, GET /v1/products)"
                ),
            ),
            (
                "event bus".into(),
                format!(
                    "{BUS} → file-generator-queue, validator-queue, notifier-queue (each with -dlq) on {}",
                    platform.broker_url()
                ),
            ),
            ("webhook".into(), webhook_url),
            (
                "events database".into(),
                match &platform.database_url {
                    Some(_) => format!(
                        "PostgreSQL (--database-url), schema {}",
                        events_db::DEFAULT_SCHEMA
                    ),
                    None => format!("SQLite {}", data.join("events.sqlite3").display()),
                },
            ),
        ],
        try_load,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_rates_name_their_worker() {
        let rates: FailureRates = "validator=1, notifier=0.25".parse().unwrap();
        assert_eq!(rates.of(Kind::Validator), 1.0);
        assert_eq!(rates.of(Kind::Notifier), 0.25);
        assert_eq!(rates.of(Kind::FileGenerator), 0.0);
        assert_eq!("".parse::<FailureRates>().unwrap(), FailureRates::default());
        assert!(
            "mailer=1"
                .parse::<FailureRates>()
                .unwrap_err()
                .contains("no worker \"mailer\"")
        );
        assert!("validator=2".parse::<FailureRates>().is_err());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        opts: UpOptions,
    }

    #[test]
    fn each_queue_has_its_rule_and_dead_letter_queue() {
        let opts =
            <Cli as clap::Parser>::parse_from(["up", "--events-max-receive-count", "4"]).opts;
        let d = declarations(&opts);
        assert_eq!((d.queues.len(), d.rules.len()), (6, 3));
        for kind in Kind::ALL {
            let queue = kind.default_queue();
            let declared = d.queues.iter().find(|q| q.name == queue).unwrap();
            let dead = declared.dead_letter.as_ref().unwrap();
            assert_eq!(
                (dead.queue.as_str(), dead.max_receive_count),
                (format!("{queue}-dlq").as_str(), 4)
            );
            assert!(d.queues.iter().any(|q| q.name == dead.queue));
            assert!(d.rules.iter().any(|r| r.event_bus.as_deref() == Some(BUS)
                && r.targets.iter().any(|t| t.queue == queue)));
        }
    }
}
