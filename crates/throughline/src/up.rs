//! `throughline up`: the whole onboarding system on one machine, as separate processes started
//! from this executable: the collector (with its store and APM), the broker with the queue and
//! its dead-letter queue declared, onboarding-api, and onboarding-lambda under the Lambda host.
//! Everything lives in one data directory; Ctrl-C stops it all, front to back.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Where every part keeps its data (created when missing).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// The onboarding API.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub api_addr: SocketAddr,
    /// The broker (SQS JSON protocol).
    #[arg(long, default_value = "127.0.0.1:9324")]
    pub broker_addr: SocketAddr,
    /// The collector's OTLP/gRPC receiver.
    #[arg(long, default_value = "127.0.0.1:4317")]
    pub otlp_grpc_addr: SocketAddr,
    /// The collector's OTLP/HTTP receiver.
    #[arg(long, default_value = "127.0.0.1:4318")]
    pub otlp_http_addr: SocketAddr,
    /// The query API and APM pages.
    #[arg(long, default_value = "127.0.0.1:16686")]
    pub query_addr: SocketAddr,
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
    /// The customer database, `postgres://user@host:port/db` for PostgreSQL (a password is
    /// better given as PGPASSWORD); an SQLite file in the data directory when not given.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Exit after this many seconds (for tests and benchmarks); Ctrl-C otherwise.
    #[arg(long)]
    pub exit_after_secs: Option<u64>,
}

/// One started part: its name, process and log file.
struct Part {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// The parts in start order; stopped in reverse.
struct System {
    parts: Vec<Part>,
}

impl System {
    fn stop(&mut self) {
        while let Some(mut part) = self.parts.pop() {
            terminate(&mut part.child, Duration::from_secs(5));
            eprintln!("  stopped {}", part.name);
        }
    }

    /// The first part that exited on its own, with its status.
    fn exited(&mut self) -> Option<(&'static str, std::process::ExitStatus, PathBuf)> {
        self.parts
            .iter_mut()
            .find_map(|p| match p.child.try_wait() {
                Ok(Some(status)) => Some((p.name, status, p.log.clone())),
                _ => None,
            })
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    check_ports_free(&[
        (args.api_addr, "onboarding-api", "--api-addr"),
        (args.broker_addr, "broker", "--broker-addr"),
        (
            args.otlp_grpc_addr,
            "collector OTLP/gRPC",
            "--otlp-grpc-addr",
        ),
        (
            args.otlp_http_addr,
            "collector OTLP/HTTP",
            "--otlp-http-addr",
        ),
        (args.query_addr, "query API and APM", "--query-addr"),
    ])?;
    let data = absolute(&args.data_dir)?;
    for sub in ["collector", "broker", "onboarding", "logs"] {
        std::fs::create_dir_all(data.join(sub))
            .with_context(|| format!("creating {}", data.join(sub).display()))?;
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let mut system = System { parts: Vec::new() };

    // 1. The collector first, so every span from the start has somewhere to go.
    let collector = spawn(
        &exe,
        "collector",
        &[
            "collector".into(),
            "--data-dir".into(),
            data.join("collector").display().to_string(),
            "--grpc-addr".into(),
            args.otlp_grpc_addr.to_string(),
            "--http-addr".into(),
            args.otlp_http_addr.to_string(),
            "--query-addr".into(),
            args.query_addr.to_string(),
        ],
        &[],
        &data,
    )?;
    system.parts.push(collector);
    // 2. The broker.
    let broker = spawn(
        &exe,
        "broker",
        &[
            "broker".into(),
            "--data-dir".into(),
            data.join("broker").display().to_string(),
            "--listen".into(),
            args.broker_addr.to_string(),
        ],
        &[],
        &data,
    )?;
    system.parts.push(broker);
    wait_ready(&mut system, args.broker_addr, "broker")?;
    wait_ready(&mut system, args.query_addr, "collector")?;

    // 3. The queue and its dead-letter queue, declared through the SQS API itself.
    let broker_url = format!("http://{}", args.broker_addr);
    runtime
        .block_on(declare_queues(&broker_url, &args))
        .context("declaring the queues")?;

    // 4. The API and the worker under the Lambda host.
    let db = args.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite:{}",
            data.join("onboarding/onboarding.sqlite3").display()
        )
    });
    let mut common: Vec<(String, String)> = vec![
        ("AWS_ENDPOINT_URL_SQS".into(), broker_url.clone()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "local".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "local".into()),
        ("DATABASE_URL".into(), db),
        ("ONBOARDING_QUEUE_NAME".into(), args.queue.clone()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            format!("http://{}", args.otlp_grpc_addr),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "grpc".into()),
        ("OTEL_TRACES_SAMPLER".into(), "parentbased_always_on".into()),
        ("OTEL_PROPAGATORS".into(), "tracecontext,baggage".into()),
        ("OTEL_METRICS_EXPORTER".into(), "otlp".into()),
        (
            "OTEL_RESOURCE_ATTRIBUTES".into(),
            "deployment.environment.name=local".into(),
        ),
    ];
    let mut api_env = common.clone();
    api_env.push(("OTEL_SERVICE_NAME".into(), "onboarding-api".into()));
    api_env.push(("ONBOARDING_API_ADDR".into(), args.api_addr.to_string()));
    // Export within a second, so a trace is whole in the APM moments after its request.
    api_env.push(("OTEL_BSP_SCHEDULE_DELAY".into(), "1000".into()));
    if args.untraced_api {
        api_env.push(("OTEL_SDK_DISABLED".into(), "true".into()));
    }
    let api = spawn(
        &exe,
        "onboarding-api",
        &["serve".into(), "onboarding-api".into()],
        &api_env,
        &data,
    )?;
    system.parts.push(api);

    common.push(("OTEL_SERVICE_NAME".into(), "onboarding-lambda".into()));
    common.push((
        "AWS_LAMBDA_FUNCTION_NAME".into(),
        "onboarding-lambda".into(),
    ));
    common.push((
        "ONBOARDING_DOCUMENTS_URL".into(),
        data.join("onboarding/documents").display().to_string(),
    ));
    common.push((
        "ONBOARDING_OUTBOX_DIR".into(),
        data.join("onboarding/outbox").display().to_string(),
    ));
    common.push(("ONBOARDING_FAILURES".into(), args.failures.clone()));
    let worker = spawn(
        &exe,
        "onboarding-lambda",
        &[
            "lambda".into(),
            "--queue".into(),
            args.queue.clone(),
            "--batch-size".into(),
            args.batch_size.to_string(),
            "--concurrency".into(),
            args.worker_concurrency.to_string(),
            "--timeout-secs".into(),
            args.function_timeout_secs.to_string(),
            "--function-name".into(),
            "onboarding-lambda".into(),
            "--".into(),
            exe.display().to_string(),
            "serve".into(),
            "onboarding-lambda".into(),
        ],
        &common,
        &data,
    )?;
    system.parts.push(worker);
    wait_ready(&mut system, args.api_addr, "onboarding-api")?;

    println!(
        "throughline is up in {:.1} s (data in {})",
        started.elapsed().as_secs_f64(),
        data.display()
    );
    println!(
        "  onboarding API   http://{}   (POST /onboard, GET /customers/{{id}}, GET /health)",
        args.api_addr
    );
    println!("  APM              http://{}/", args.query_addr);
    println!("  query API        http://{}/api/traces", args.query_addr);
    println!(
        "  OTLP             grpc http://{}   http http://{}",
        args.otlp_grpc_addr, args.otlp_http_addr
    );
    println!(
        "  SQS broker       {broker_url}   queue {q}, dead letters {q}-dlq",
        q = args.queue
    );
    println!("  logs             {}", data.join("logs").display());
    println!(
        "try: throughline load onboarding --requests 500 --concurrency 16   (Ctrl-C stops everything)"
    );

    let outcome = runtime.block_on(wait_for_stop(&mut system, args.exit_after_secs));
    eprintln!("stopping…");
    system.stop();
    outcome
}

/// Waits for Ctrl-C, SIGTERM, the time limit, or a part dying on its own (an error).
async fn wait_for_stop(system: &mut System, exit_after_secs: Option<u64>) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let limit = async {
        match exit_after_secs {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(limit);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            () = &mut limit => return Ok(()),
            _ = tick.tick() => {
                if let Some((name, status, log)) = system.exited() {
                    bail!("{name} stopped on its own ({status}); see {}", log.display());
                }
            }
        }
    }
}

/// Refuses to start when any address is taken, naming the part and the flag that moves it.
fn check_ports_free(addrs: &[(SocketAddr, &str, &str)]) -> anyhow::Result<()> {
    let mut taken = Vec::new();
    for (addr, what, flag) in addrs {
        if let Err(e) = TcpListener::bind(addr) {
            taken.push(format!("  {addr} ({what}): {e}; free it or pass {flag}"));
        }
    }
    if !taken.is_empty() {
        bail!(
            "cannot start: {} address(es) taken\n{}",
            taken.len(),
            taken.join("\n")
        );
    }
    Ok(())
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(path)
        .with_context(|| format!("creating the data directory {}", path.display()))?;
    path.canonicalize()
        .with_context(|| format!("resolving {}", path.display()))
}

/// Starts `exe args…` in its own process group (so a terminal's Ctrl-C reaches only `up`, which
/// then stops the parts in order), logging to `logs/NAME.log`.
fn spawn(
    exe: &Path,
    name: &'static str,
    args: &[String],
    env: &[(String, String)],
    data: &Path,
) -> anyhow::Result<Part> {
    use std::os::unix::process::CommandExt;
    let log = data.join("logs").join(format!("{name}.log"));
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("opening {}", log.display()))?;
    let child = Command::new(exe)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(Part { name, child, log })
}

/// Waits until `addr` accepts connections; fails early when a part has died.
fn wait_ready(system: &mut System, addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        if let Some((name, status, log)) = system.exited() {
            bail!(
                "{name} stopped during start-up ({status}); see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{what} did not listen on {addr} within 20 s")
}

/// SIGTERM, then SIGKILL after `grace`.
fn terminate(child: &mut Child, grace: Duration) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn declare_queues(endpoint: &str, args: &UpArgs) -> anyhow::Result<()> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let creds =
        aws_credential_types::Credentials::new("local", "local", None, None, "throughline-up");
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .build();
    let sqs = aws_sdk_sqs::Client::from_conf(config);
    let dlq_name = format!("{}-dlq", args.queue);
    let dlq = sqs
        .create_queue()
        .queue_name(&dlq_name)
        .send()
        .await
        .with_context(|| format!("creating {dlq_name}"))?;
    let dlq_url = dlq
        .queue_url
        .context("CreateQueue answered without a QueueUrl")?;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("reading {dlq_name}'s ARN"))?;
    let arn = attrs
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("GetQueueAttributes answered without a QueueArn")?;
    let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": args.max_receive_count.to_string()});
    sqs.create_queue()
        .queue_name(&args.queue)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            args.visibility_timeout_secs.to_string(),
        )
        .send()
        .await
        .with_context(|| format!("creating {}", args.queue))?;
    Ok(())
}
