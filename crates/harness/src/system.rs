//! What a reference system is, as data: its parts, their environment, the broker declarations
//! it needs, its expected trace shape and the addresses `up` prints; and the [`Platform`] every
//! system runs on (one collector, one broker), with the environment it gives every part.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use throughline_broker::Declarations;

use crate::expect::TraceExpectation;
use crate::ports::PortClaim;
use crate::supervisor::PartSpec;

/// What a service's process start returns.
pub type ServiceResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A service `throughline serve NAME` runs as its process, configured from the environment.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(HashMap<String, String>) -> ServiceResult,
}

/// One system, ready to start on a platform.
#[derive(Debug, Clone, Default)]
pub struct SystemDescription {
    pub name: String,
    /// Started in order after the platform, stopped in reverse.
    pub parts: Vec<PartSpec>,
    /// Queues and rules the broker declares at start (its `--config` file).
    pub declarations: Declarations,
    /// What a whole trace of this system holds.
    pub expected: TraceExpectation,
    /// Addresses the parts listen on, checked free before anything starts.
    pub ports: Vec<PortClaim>,
    /// `(label, text)` lines `up` prints once the system is up.
    pub endpoints: Vec<(String, String)>,
    /// The command that loads this system as it runs now (moved ports included).
    pub try_load: String,
}

/// The file name the collector extension registers under (its wrapper's name).
pub const EXTENSION_FILE_NAME: &str = "throughline-collector-extension";
/// Set by the host, per environment, to the extension's OTLP/gRPC address.
pub const EXTENSION_GRPC_VAR: &str = "THROUGHLINE_SANDBOX_OTLP_GRPC_ADDR";
/// Set by the host, per environment, to the extension's OTLP/HTTP address.
pub const EXTENSION_HTTP_VAR: &str = "THROUGHLINE_SANDBOX_OTLP_HTTP_ADDR";

/// The collector and broker under every system, and where everything keeps its data.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The throughline executable every part is started from.
    pub exe: PathBuf,
    pub data_dir: PathBuf,
    pub broker_addr: SocketAddr,
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    pub query_addr: SocketAddr,
    /// Seconds after a trace's last span before the collector judges it.
    pub settle_secs: u64,
    /// Milliseconds a service's batch span processor waits before exporting.
    pub export_delay_ms: u64,
    /// The PostgreSQL server every system keeps its tables in (`postgres://…`), each system
    /// apart from the others (its own schema, or tables of its own); `None`: each system's own
    /// SQLite files in its data folder.
    pub database_url: Option<String>,
}

impl Platform {
    pub fn broker_url(&self) -> String {
        format!("http://{}", self.broker_addr)
    }

    pub fn query_url(&self) -> String {
        format!("http://{}", self.query_addr)
    }

    /// A part's own data folder, `DATA/NAME`.
    pub fn data(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }

    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    /// The platform's own addresses, checked free before anything starts.
    pub fn ports(&self) -> Vec<PortClaim> {
        vec![
            PortClaim::new(self.broker_addr, "broker", "--broker-addr"),
            PortClaim::new(
                self.otlp_grpc_addr,
                "collector OTLP/gRPC",
                "--otlp-grpc-addr",
            ),
            PortClaim::new(
                self.otlp_http_addr,
                "collector OTLP/HTTP",
                "--otlp-http-addr",
            ),
            PortClaim::new(self.query_addr, "query API and APM", "--query-addr"),
        ]
    }

    /// The environment of every service part: the broker as the SQS/EventBridge endpoint with
    /// dummy credentials, OTLP to the collector with a short batch delay (a trace is whole in
    /// the APM about a second after its request), exporters that retry through a collector
    /// restart, and no colour codes in the logs.
    pub fn service_env(&self, service_name: &str) -> Vec<(String, String)> {
        let delay = self.export_delay_ms.to_string();
        let pairs: Vec<(&str, String)> = vec![
            ("AWS_ENDPOINT_URL_SQS", self.broker_url()),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", self.broker_url()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "local".into()),
            ("AWS_SECRET_ACCESS_KEY", "local".into()),
            ("OTEL_SERVICE_NAME", service_name.into()),
            // OTLP/HTTP (the specification's default protocol) rather than gRPC: on the shop's
            // benchmark (BENCHMARKS.md) it costs the services and the collector less CPU per
            // span than HTTP/2 streams on both sides. `through_extension` sets gRPC again for
            // a worker behind the extension.
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{}", self.otlp_http_addr),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            ("OTEL_TRACES_SAMPLER", "parentbased_always_on".into()),
            ("OTEL_PROPAGATORS", "tracecontext,baggage".into()),
            ("OTEL_METRICS_EXPORTER", "otlp".into()),
            ("OTEL_LOGS_EXPORTER", "otlp".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", delay.clone()),
            ("OTEL_BLRP_SCHEDULE_DELAY", delay),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=local".into(),
            ),
            ("NO_COLOR", "1".into()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// `part`, a Lambda worker (`throughline lambda … -- COMMAND`), with the collector as its
    /// Lambda extension between the function and this platform's collector (`throughline up
    /// --worker-telemetry extension`): the host starts the wrapper written to
    /// `DATA/extensions/PART/throughline-collector-extension` in each environment, gives each
    /// environment its own pair of loopback ports ([`EXTENSION_GRPC_VAR`],
    /// [`EXTENSION_HTTP_VAR`]: concurrent environments share this machine's localhost, where on
    /// Lambda each sandbox has its own), and the function's OTLP endpoint is the extension's
    /// gRPC port. Each environment keeps its queue in a folder of its own there, as each
    /// sandbox's `/tmp` is its own.
    pub fn through_extension(&self, part: &PartSpec) -> std::io::Result<PartSpec> {
        let split = part
            .args
            .iter()
            .position(|a| a == "--")
            .filter(|_| part.args.first().is_some_and(|a| a == "lambda"))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "{} is not a `throughline lambda … -- COMMAND` part",
                        part.name
                    ),
                )
            })?;
        let dir = self.data("extensions").join(&part.name);
        std::fs::create_dir_all(&dir)?;
        let wrapper = dir.join(EXTENSION_FILE_NAME);
        let script = format!(
            "#!/bin/sh\n\
             # Written by `throughline up --worker-telemetry extension`: the collector as this\n\
             # worker's Lambda extension (as deploy/docker/{EXTENSION_FILE_NAME} on Lambda).\n\
             exec '{exe}' collector --lambda-extension --extension-name \"${{0##*/}}\" \\\n  \
             --data-dir '{dir}/queue-'\"${{{http}##*:}}\" \\\n  \
             --grpc-addr \"${grpc}\" --http-addr \"${http}\" \\\n  \
             --export-otlp 'http://{upstream}'\n",
            exe = path_arg(&self.exe),
            dir = path_arg(&dir),
            grpc = EXTENSION_GRPC_VAR,
            http = EXTENSION_HTTP_VAR,
            upstream = self.otlp_http_addr,
        );
        std::fs::write(&wrapper, script)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
        let mut args: Vec<String> = part.args[..split].to_vec();
        args.extend([
            "--extension".into(),
            path_arg(&wrapper),
            "--sandbox-port".into(),
            EXTENSION_GRPC_VAR.into(),
            "--sandbox-port".into(),
            EXTENSION_HTTP_VAR.into(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            format!("OTEL_EXPORTER_OTLP_ENDPOINT=http://${EXTENSION_GRPC_VAR} exec \"$0\" \"$@\""),
        ]);
        args.extend(part.args[split + 1..].iter().cloned());
        let mut env = part.env.clone();
        env.retain(|(k, _)| k != "OTEL_EXPORTER_OTLP_PROTOCOL");
        env.push(("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "grpc".into()));
        Ok(PartSpec {
            args,
            env,
            ..part.clone()
        })
    }

    /// The collector, with its store, APM and query API.
    pub fn collector_part(&self) -> PartSpec {
        PartSpec {
            name: "collector".into(),
            program: self.exe.clone(),
            args: vec![
                "collector".into(),
                "--data-dir".into(),
                path_arg(&self.data("collector")),
                "--grpc-addr".into(),
                self.otlp_grpc_addr.to_string(),
                "--http-addr".into(),
                self.otlp_http_addr.to_string(),
                "--query-addr".into(),
                self.query_addr.to_string(),
                "--settle-secs".into(),
                self.settle_secs.to_string(),
            ],
            env: vec![("NO_COLOR".into(), "1".into())],
            ready: Some(self.query_addr),
        }
    }

    /// The broker, declaring what every system needs from `DATA/broker/declarations.json` (its
    /// own `--config` file), written here.
    pub fn broker_part(&self, declarations: &Declarations) -> std::io::Result<PartSpec> {
        let path = self.data("broker").join("declarations.json");
        let text = serde_json::to_string_pretty(declarations).map_err(std::io::Error::other)?;
        std::fs::write(&path, text)?;
        Ok(PartSpec {
            name: "broker".into(),
            program: self.exe.clone(),
            args: vec![
                "broker".into(),
                "--data-dir".into(),
                path_arg(&self.data("broker")),
                "--listen".into(),
                self.broker_addr.to_string(),
                "--config".into(),
                path_arg(&path),
            ],
            // OTLP to the collector for its AWS/SQS metrics (the SQS endpoint it names is itself).
            env: self.service_env("throughline-broker"),
            ready: Some(self.broker_addr),
        })
    }
}

/// Every system's declarations in one file.
pub fn merged_declarations(systems: &[SystemDescription]) -> Declarations {
    let mut all = Declarations::default();
    for s in systems {
        all.queues.extend(s.declarations.queues.iter().cloned());
        all.rules.extend(s.declarations.rules.iter().cloned());
    }
    all
}

/// A path as a command-line argument.
pub fn path_arg(path: &Path) -> String {
    path.display().to_string()
}
