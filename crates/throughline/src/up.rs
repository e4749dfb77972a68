//! `throughline up [SYSTEM…]`: every named system (all known ones when none is named) on one
//! collector (with its store and APM) and one broker, each part a process started from this
//! executable and watched by the harness's supervisor. Everything lives in one locked data
//! directory; Ctrl-C stops it all, front to back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use throughline_harness::{
    DataDirLock, Platform, PortClaim, RestartPolicy, Supervisor, SystemDescription,
    check_ports_free, merged_declarations,
};

use crate::systems;

#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// The systems to run (all known when none is named).
    #[arg(value_parser = systems::parse_name)]
    pub systems: Vec<String>,
    /// Where every part keeps its data (created when missing; one `up` at a time).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
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
    /// Seconds after a trace's last span before the collector judges it whole or not (also how
    /// long the service graph waits to pair a producer with its consumer).
    #[arg(long, default_value_t = 10)]
    pub settle_secs: u64,
    /// Milliseconds the services' span batches wait before export.
    #[arg(long, default_value_t = 200)]
    pub export_delay_ms: u64,
    /// The database of every system started, `postgres://user@host:port/db` (a password is
    /// better given as PGPASSWORD): each system keeps its tables apart there (onboarding its
    /// `customers`, the shop the schema `shop`); each system's own SQLite files in the data
    /// directory when not given.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Start a PostgreSQL cluster in DATA/postgres from the installed server binaries (`apt-get
    /// install postgresql`), made at the first start and kept after, and give every system its
    /// database there (as `--database-url` would).
    #[arg(long, conflicts_with = "database_url")]
    pub postgres: bool,
    /// The port of `--postgres`'s server on 127.0.0.1.
    #[arg(long, default_value_t = 5432, requires = "postgres")]
    pub postgres_port: u16,
    /// An alert rules file of your own, loaded beside the built-in rules of the systems started
    /// (repeatable).
    #[arg(long = "alert-rules", value_name = "FILE")]
    pub alert_rules: Vec<PathBuf>,
    /// Where the collector POSTs Alertmanager's webhook payload (repeatable).
    #[arg(long = "alert-webhook", value_name = "URL")]
    pub alert_webhooks: Vec<String>,
    /// An Alertmanager the collector sends its alerts to (repeatable).
    #[arg(long = "alertmanager-url", value_name = "URL")]
    pub alertmanager_urls: Vec<String>,
    /// How the Lambda workers' telemetry reaches the collector: `direct` (each function exports
    /// to the collector and flushes before it answers) or `extension` (each environment runs
    /// `throughline collector --lambda-extension` beside the function, as a container-image
    /// Lambda with deploy/docker's extension does: the function flushes to it on localhost and
    /// it forwards to the collector through its persistent queue).
    #[arg(long, value_enum, default_value_t = WorkerTelemetry::Direct)]
    pub worker_telemetry: WorkerTelemetry,
    /// Exit after this many seconds (for tests and benchmarks); Ctrl-C otherwise.
    #[arg(long)]
    pub exit_after_secs: Option<u64>,
    #[command(flatten)]
    pub systems_options: systems::SystemsOptions,
}

/// See [`UpArgs::worker_telemetry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkerTelemetry {
    Direct,
    Extension,
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let exe = std::env::current_exe().context("finding this executable")?;
    let platform = Platform {
        exe,
        data_dir: args.data_dir.clone(),
        broker_addr: args.broker_addr,
        otlp_grpc_addr: args.otlp_grpc_addr,
        otlp_http_addr: args.otlp_http_addr,
        query_addr: args.query_addr,
        settle_secs: args.settle_secs,
        export_delay_ms: args.export_delay_ms,
        database_url: if args.postgres {
            Some(format!(
                "postgres://{}@127.0.0.1:{}/{}",
                throughline_pgcluster::POSTGRES_USER,
                args.postgres_port,
                throughline_pgcluster::POSTGRES_DATABASE
            ))
        } else {
            args.database_url.clone()
        },
    };
    // Ports first: nothing is created when one is taken.
    let descriptions = systems::describe(&args.systems, &platform, &args.systems_options);
    let mut claims = platform.ports();
    claims.extend(descriptions.iter().flat_map(|d| d.ports.iter().cloned()));
    // A PostgreSQL server an earlier `up` left running in the data directory (its watchdog
    // killed with it) holds the port: stopped first, under the directory's lock, so a live
    // `up`'s server is never touched.
    let mut early_lock = None;
    if args.postgres {
        let cluster_data = args.data_dir.join("postgres").join("data");
        if cluster_data.join("postmaster.pid").is_file() {
            let lock = DataDirLock::acquire(&absolute(&args.data_dir)?)?;
            if let Some(pid) = throughline_pgcluster::stop_stale(&cluster_data)
                .context("--postgres: stopping the server an earlier up left running")?
            {
                eprintln!(
                    "stopped PostgreSQL (pid {pid}) left running in {} by an earlier up",
                    cluster_data.display()
                );
            }
            early_lock = Some(lock);
        }
        claims.push(PortClaim::new(
            SocketAddr::from(([127, 0, 0, 1], args.postgres_port)),
            "PostgreSQL (--postgres)",
            "--postgres-port",
        ));
    }
    check_ports_free(&claims)?;

    let data = absolute(&args.data_dir)?;
    let _lock = match early_lock {
        Some(lock) => lock,
        None => DataDirLock::acquire(&data)?,
    };
    let platform = Platform {
        data_dir: data.clone(),
        ..platform
    };
    // Described again over the absolute data directory.
    let descriptions = systems::describe(&args.systems, &platform, &args.systems_options);
    let mut dirs = vec![
        "alerts".to_owned(),
        "collector".to_owned(),
        "broker".to_owned(),
        "logs".to_owned(),
    ];
    dirs.extend(descriptions.iter().map(|d| d.name.clone()));
    for sub in dirs {
        let dir = data.join(&sub);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    // The database before anything that uses it; stopped after everything (dropped last).
    let _postgres = if args.postgres {
        let dir = data.join("postgres");
        eprintln!("starting PostgreSQL in {} …", dir.display());
        let cluster = throughline_pgcluster::Cluster::start(
            &dir,
            args.postgres_port,
            &throughline_pgcluster::ClusterOptions::default(),
            |_, _| Ok(()),
        )
        .with_context(|| format!("--postgres: starting PostgreSQL in {}", dir.display()))?;
        Some(cluster)
    } else {
        None
    };
    let mut supervisor = Supervisor::new(platform.log_dir(), RestartPolicy::default());
    // The collector first, so every span from the start has somewhere to go; then the broker
    // with every system's queues and rules in its --config file; then each system's parts.
    let collector = collector_part(&platform, &args, &descriptions, &data)?;
    supervisor.start(collector)?;
    let broker = platform
        .broker_part(&merged_declarations(&descriptions))
        .context("writing the broker's declarations")?;
    supervisor.start(broker)?;
    for system in &descriptions {
        for part in &system.parts {
            let is_worker = part.args.first().is_some_and(|a| a == "lambda");
            if is_worker && args.worker_telemetry == WorkerTelemetry::Extension {
                let routed = platform
                    .through_extension(part)
                    .with_context(|| format!("writing {}'s extension wrapper", part.name))?;
                supervisor.start(routed)?;
            } else {
                supervisor.start(part.clone())?;
            }
        }
    }
    print_banner(&platform, &descriptions, started.elapsed());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let outcome = runtime.block_on(watch(&mut supervisor, args.exit_after_secs));
    eprintln!("stopping…");
    supervisor.stop(|name| eprintln!("  stopped {name}"));
    outcome
}

/// The collector with the built-in alert rules of every system started (written to
/// `DATA/alerts/SYSTEM.yaml`), the user's rules files and the delivery flags.
fn collector_part(
    platform: &Platform,
    args: &UpArgs,
    systems: &[SystemDescription],
    data: &Path,
) -> anyhow::Result<throughline_harness::PartSpec> {
    let mut part = platform.collector_part();
    let mut files = Vec::new();
    for system in systems {
        let Some(text) = throughline_alerts::builtin::for_system(
            &system.name,
            args.systems_options.shop.minute_secs,
        ) else {
            continue;
        };
        let path = data.join("alerts").join(format!("{}.yaml", system.name));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        files.push(path);
    }
    for f in &args.alert_rules {
        files.push(
            f.canonicalize()
                .with_context(|| format!("--alert-rules {}", f.display()))?,
        );
    }
    // Checked here too: a mistake stops `up` before anything starts, naming the rule.
    crate::collector::load_rules(&files)?;
    for f in files {
        part.args.push("--alert-rules".into());
        part.args.push(f.display().to_string());
    }
    for (flag, urls) in [
        ("--alert-webhook", &args.alert_webhooks),
        ("--alertmanager-url", &args.alertmanager_urls),
    ] {
        for u in urls {
            part.args.push(flag.into());
            part.args.push(u.into());
        }
    }
    Ok(part)
}

fn print_banner(platform: &Platform, systems: &[SystemDescription], took: Duration) {
    println!(
        "throughline is up in {:.1} s (data in {})",
        took.as_secs_f64(),
        platform.data_dir.display()
    );
    for system in systems {
        for (label, text) in &system.endpoints {
            println!("  {label:<16} {text}");
        }
    }
    println!("  APM              {}/", platform.query_url());
    println!("  query API        {}/api/traces", platform.query_url());
    println!("  alerts           {}/alerts", platform.query_url());
    println!(
        "  OTLP             grpc http://{}   http http://{}",
        platform.otlp_grpc_addr, platform.otlp_http_addr
    );
    println!("  SQS broker       {}", platform.broker_url());
    if let Some(url) = &platform.database_url {
        // Only `--postgres`'s own URL, or the host part of one given: never a password.
        let shown = url.rsplit_once('@').map_or(url.as_str(), |(_, host)| host);
        println!("  database         PostgreSQL {shown}");
    }
    println!("  logs             {}", platform.log_dir().display());
    for system in systems {
        println!("try: {}   (Ctrl-C stops everything)", system.try_load);
    }
}

/// Supervises until Ctrl-C, SIGTERM or the time limit; a part that dies is restarted.
async fn watch(supervisor: &mut Supervisor, exit_after_secs: Option<u64>) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let limit = async {
        match exit_after_secs {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(limit);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            () = &mut limit => return Ok(()),
            _ = tick.tick() => {
                for event in supervisor.poll() {
                    eprintln!("{event}");
                }
            }
        }
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(path)
        .with_context(|| format!("creating the data directory {}", path.display()))?;
    let path = path
        .canonicalize()
        .with_context(|| format!("resolving {}", path.display()))?;
    if !path.is_dir() {
        bail!("--data-dir {} is not a directory", path.display());
    }
    Ok(path)
}
