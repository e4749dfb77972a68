//! The onboarding system as the harness sees it: only what is onboarding's own.
//!
//! - [`describe`]: its parts (`onboarding-api`, and `onboarding-lambda` under the Lambda host),
//!   their environment names, the queue and dead-letter queue the broker declares, and the
//!   addresses `up` prints;
//! - [`expected`]: a whole trace is `onboarding-api` SERVER → its PRODUCER → `onboarding-lambda`
//!   CONSUMER (a rejected request's one-span trace is whole as it is);
//! - [`OnboardingLoad`]: the payloads of `throughline load onboarding`, in the seeds' two shapes;
//! - [`SERVICES`]: what `throughline serve` runs.

mod scenario;

use std::net::SocketAddr;

use throughline_broker::{DeadLetter, Declarations, QueueDeclaration};
use throughline_harness::system::path_arg;
use throughline_harness::{
    Hop, PartSpec, Platform, PortClaim, Service, SpanPattern, SystemDescription, TraceExpectation,
};

pub use scenario::{OnboardingLoad, payload};

/// The system's name in `up`, `load` and `verify`.
pub const NAME: &str = "onboarding";
/// Where `load` sends by default.
pub const DEFAULT_TARGET: &str = "http://127.0.0.1:8000";

/// The services `throughline serve` runs.
pub const SERVICES: &[Service] = &[
    Service {
        name: "onboarding-api",
        about: "The onboarding API (HTTP, port 8000 unless ONBOARDING_API_ADDR says otherwise)",
        run: |env| onboarding_api::entry::run_main(env).map_err(Into::into),
    },
    Service {
        name: "onboarding-lambda",
        about: "The onboarding worker: a Lambda binary, run under `throughline lambda` or on AWS",
        run: |env| onboarding_lambda::entry::run_main(env).map_err(Into::into),
    },
];

/// The flags of `throughline up` that are onboarding's.
#[derive(Debug, Clone, clap::Args)]
pub struct UpOptions {
    /// The onboarding API.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub api_addr: SocketAddr,
    /// The queue the API sends to and the worker reads.
    #[arg(long, default_value = "onboarding-queue")]
    pub queue: String,
    /// Deliveries before a record goes to the dead-letter queue.
    #[arg(long, default_value_t = 3)]
    pub max_receive_count: u32,
    /// Seconds a failed record stays invisible before it is redelivered.
    #[arg(long, default_value_t = 5)]
    pub visibility_timeout_secs: u32,
    /// Records per invocation.
    #[arg(long, default_value_t = 10)]
    pub batch_size: u32,
    /// Execution environments of the worker that may run at once.
    #[arg(long, default_value_t = 2)]
    pub worker_concurrency: u32,
    /// The worker's function timeout.
    #[arg(long, default_value_t = 10)]
    pub function_timeout_secs: u64,
    /// Worker failures to inject, as `step=rate,…` (e.g. `compliance=0.05`).
    #[arg(long, default_value = "")]
    pub failures: String,
    /// Run the API without tracing (`OTEL_SDK_DISABLED=true`): the benchmark's baseline.
    #[arg(long)]
    pub untraced_api: bool,
}

/// What a whole onboarding trace holds.
pub fn expected() -> TraceExpectation {
    let server = SpanPattern::of_kind("onboarding-api", "server");
    let producer = SpanPattern::of_kind("onboarding-api", "producer");
    let consumer = SpanPattern::of_kind("onboarding-lambda", "consumer");
    TraceExpectation {
        services: Vec::new(),
        hops: vec![
            Hop::new(server, producer.clone()),
            Hop::new(producer, consumer),
        ],
        by_root: Vec::new(),
    }
}

/// The queue and its dead-letter queue.
pub fn declarations(opts: &UpOptions) -> Declarations {
    let dlq = format!("{}-dlq", opts.queue);
    let mut queue = QueueDeclaration::named(opts.queue.clone());
    queue.attributes.insert(
        "VisibilityTimeout".into(),
        opts.visibility_timeout_secs.to_string(),
    );
    queue.dead_letter = Some(DeadLetter {
        queue: dlq.clone(),
        max_receive_count: opts.max_receive_count,
    });
    Declarations {
        queues: vec![QueueDeclaration::named(dlq), queue],
        rules: Vec::new(),
    }
}

/// The system on `platform`: the API, then the worker under the Lambda host.
pub fn describe(platform: &Platform, opts: &UpOptions) -> SystemDescription {
    let data = platform.data("onboarding");
    // The platform's database (`up --database-url`), shared by every system: onboarding's
    // tables are `customers` and `audit_trail`.
    let db = platform
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", data.join("onboarding.sqlite3").display()));
    let shared = |service: &str| {
        let mut env = platform.service_env(service);
        env.push(("DATABASE_URL".into(), db.clone()));
        env.push(("ONBOARDING_QUEUE_NAME".into(), opts.queue.clone()));
        env
    };
    let mut api_env = shared("onboarding-api");
    api_env.push(("ONBOARDING_API_ADDR".into(), opts.api_addr.to_string()));
    if opts.untraced_api {
        api_env.push(("OTEL_SDK_DISABLED".into(), "true".into()));
    }
    let exe = path_arg(&platform.exe);
    let api = PartSpec {
        name: "onboarding-api".into(),
        program: platform.exe.clone(),
        args: vec!["serve".into(), "onboarding-api".into()],
        env: api_env,
        ready: Some(opts.api_addr),
    };
    let mut worker_env = shared("onboarding-lambda");
    // The worker flushes before each invocation returns (the host freezes it between
    // invocations, so a batch timer would fire while frozen): the SDK's own schedule stays.
    worker_env.retain(|(k, _)| k != "OTEL_BSP_SCHEDULE_DELAY" && k != "OTEL_BLRP_SCHEDULE_DELAY");
    worker_env.extend([
        (
            "AWS_LAMBDA_FUNCTION_NAME".to_owned(),
            "onboarding-lambda".to_owned(),
        ),
        (
            "ONBOARDING_DOCUMENTS_URL".to_owned(),
            path_arg(&data.join("documents")),
        ),
        (
            "ONBOARDING_OUTBOX_DIR".to_owned(),
            path_arg(&data.join("outbox")),
        ),
        ("ONBOARDING_FAILURES".to_owned(), opts.failures.clone()),
    ]);
    let worker = PartSpec {
        name: "onboarding-lambda".into(),
        program: platform.exe.clone(),
        args: [
            "lambda",
            "--queue",
            &opts.queue,
            "--batch-size",
            &opts.batch_size.to_string(),
            "--concurrency",
            &opts.worker_concurrency.to_string(),
            "--timeout-secs",
            &opts.function_timeout_secs.to_string(),
            "--function-name",
            "onboarding-lambda",
            "--",
            &exe,
            "serve",
            "onboarding-lambda",
        ]
        .map(str::to_owned)
        .to_vec(),
        env: worker_env,
        ready: None,
    };
    let api_url = format!("http://{}", opts.api_addr);
    let mut try_load = String::from("throughline load onboarding --requests 500 --concurrency 16");
    if api_url != DEFAULT_TARGET {
        try_load.push_str(&format!(" --api {api_url}"));
    }
    if platform.query_url() != "http://127.0.0.1:16686" {
        try_load.push_str(&format!(" --query {}", platform.query_url()));
    }
    SystemDescription {
        name: NAME.into(),
        parts: vec![api, worker],
        declarations: declarations(opts),
        expected: expected(),
        ports: vec![PortClaim::new(
            opts.api_addr,
            "onboarding-api",
            "--api-addr",
        )],
        endpoints: vec![
            (
                "onboarding API".into(),
                format!("{api_url}   (POST /onboard, GET /customers/{{id}}, GET /health)"),
            ),
            (
                "SQS queues".into(),
                format!(
                    "{q} (dead letters {q}-dlq) on {}",
                    platform.broker_url(),
                    q = opts.queue
                ),
            ),
        ],
        try_load,
    }
}
