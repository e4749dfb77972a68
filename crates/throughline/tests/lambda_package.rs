//! The Lambda workers as they deploy: `cargo lambda build --release` (cargo-lambda and zig from
//! the interop venv) makes one `bootstrap` per worker for x86_64 `provided.al2023`; each is an
//! x86-64 ELF asking for no glibc symbol newer than 2.34 (al2023's glibc); and the onboarding
//! worker's `bootstrap` runs under `throughline lambda` exactly as Lambda starts it, against the
//! broker, behind the real onboarding API: the seed's request comes back `completed`.
//!
//! One test, because the release build is the cost (minutes on a fresh clone): it builds once, in
//! its own target directory (`target/lambda-package`) so it never waits on the test run's lock.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use serde_json::{Value, json};
use throughline_broker::{Broker, BrokerConfig};
use throughline_testkit::{ChildGuard, free_loopback_addr, wait_for_port, workspace_root};

/// Each Lambda worker: its package and its binary (the `bootstrap` it becomes).
const WORKERS: &[(&str, &str)] = &[
    ("onboarding-lambda", "onboarding-lambda"),
    ("events-workers", "nedlia-file-generator"),
    ("events-workers", "nedlia-validator"),
    ("events-workers", "nedlia-notifier"),
];

/// The glibc of Lambda's `provided.al2023` runtime.
const LAMBDA_GLIBC: (u32, u32) = (2, 34);

fn lambda_target_dir() -> PathBuf {
    workspace_root().join("target/lambda-package")
}

/// Runs `cargo lambda build --release` for every worker package, with the venv's cargo-lambda
/// (and its zig) first on PATH.
fn build_bootstraps() -> anyhow::Result<()> {
    let python = throughline_testkit::python();
    let venv_bin = python.parent().context("the venv's bin directory")?;
    ensure!(
        venv_bin.join("cargo-lambda").is_file(),
        "cargo-lambda is missing from {} (it is in tests/python-requirements.txt: rerun scripts/python-venv)",
        venv_bin.display()
    );
    let path = std::env::join_paths(std::iter::once(venv_bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["lambda", "build", "--release"])
        .current_dir(workspace_root())
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", lambda_target_dir());
    let mut packages: Vec<&str> = WORKERS.iter().map(|(package, _)| *package).collect();
    packages.dedup();
    for package in packages {
        build.args(["-p", package]);
    }
    let status = build
        .status()
        .context("running `cargo lambda build` (cargo-lambda from the venv)")?;
    ensure!(
        status.success(),
        "`cargo lambda build --release` failed: {status}"
    );
    Ok(())
}

/// The newest `GLIBC_x.y` version the binary's dynamic symbols ask for (`objdump -T`).
fn newest_glibc(binary: &Path) -> anyhow::Result<(u32, u32)> {
    let out = Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .context("running objdump (Debian: binutils)")?;
    ensure!(
        out.status.success(),
        "objdump -T {}: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut newest = None;
    for found in text.split("GLIBC_").skip(1) {
        let digits: String = found
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = digits.split('.').filter_map(|p| p.parse::<u32>().ok());
        if let (Some(major), Some(minor)) = (parts.next(), parts.next()) {
            newest = newest.max(Some((major, minor)));
        }
    }
    newest.with_context(|| format!("{} asks for no GLIBC_ symbol version", binary.display()))
}

/// Whether the file is a 64-bit little-endian ELF for x86-64 (`e_machine` 62).
fn is_x86_64_elf(binary: &Path) -> anyhow::Result<bool> {
    let bytes = std::fs::read(binary)?;
    Ok(bytes.len() > 20
        && bytes[..4] == *b"\x7fELF"
        && bytes[4] == 2
        && bytes[5] == 1
        && u16::from_le_bytes([bytes[18], bytes[19]]) == 62)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_build_as_lambda_bootstraps_that_run_under_the_host() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(build_bootstraps).await??;
    for (_, bin) in WORKERS {
        let bootstrap = lambda_target_dir()
            .join("lambda")
            .join(bin)
            .join("bootstrap");
        ensure!(bootstrap.is_file(), "no {}", bootstrap.display());
        ensure!(
            is_x86_64_elf(&bootstrap)?,
            "{} is not an x86-64 ELF",
            bootstrap.display()
        );
        let newest = newest_glibc(&bootstrap)?;
        ensure!(
            newest <= LAMBDA_GLIBC,
            "{} needs GLIBC_{}.{}, newer than provided.al2023's {}.{}",
            bootstrap.display(),
            newest.0,
            newest.1,
            LAMBDA_GLIBC.0,
            LAMBDA_GLIBC.1
        );
    }

    // The broker, in process; the API and the host as a user starts them.
    let broker_dir = tempfile::tempdir()?;
    let broker = Broker::open(BrokerConfig::new(broker_dir.path())).await?;
    let broker = broker.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
            .endpoint_url(broker.endpoint_url())
            .build(),
    );
    let queue = "onboarding-queue";
    let queue_url = sqs
        .create_queue()
        .queue_name(queue)
        .send()
        .await?
        .queue_url
        .context("queue url")?;

    let data = tempfile::tempdir()?;
    let database_url = format!(
        "sqlite:{}",
        data.path().join("onboarding.sqlite3").display()
    );
    let shared_env = [
        ("AWS_ENDPOINT_URL_SQS", broker.endpoint_url()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("DATABASE_URL", database_url),
        ("ONBOARDING_QUEUE_NAME", queue.to_owned()),
        // No collector in this test: the spans are the other tests' business.
        ("OTEL_SDK_DISABLED", "true".to_owned()),
    ];
    let api_addr = free_loopback_addr();
    let _api = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_throughline"))
            .args(["serve", "onboarding-api"])
            .envs(shared_env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("ONBOARDING_API_ADDR", api_addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start onboarding-api")?,
    );
    ensure!(
        wait_for_port(api_addr, Duration::from_secs(30)),
        "onboarding-api did not come up on {api_addr}"
    );
    let bootstrap = lambda_target_dir().join("lambda/onboarding-lambda/bootstrap");
    let _host = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_throughline"))
            .args([
                "lambda",
                "--queue",
                queue,
                "--function-name",
                "onboarding-lambda",
            ])
            .args(["--timeout-secs", "10", "--"])
            .arg(&bootstrap)
            .envs(shared_env.iter().map(|(k, v)| (*k, v.as_str())))
            .env(
                "ONBOARDING_DOCUMENTS_URL",
                data.path().join("documents").display().to_string(),
            )
            .env(
                "ONBOARDING_OUTBOX_DIR",
                data.path().join("outbox").display().to_string(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start throughline lambda")?,
    );

    // The seed's test request.
    let client = reqwest::Client::new();
    let answer: Value = client
        .post(format!("http://{api_addr}/onboard"))
        .json(&json!({"customer_id": "CUST-PKG-1", "email": "pkg@example.com", "name": "Acme Corp", "type": "premium"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let customer = answer["customer_id"]
        .as_str()
        .context("customer_id in the answer")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: Value = client
            .get(format!("http://{api_addr}/customers/{customer}"))
            .send()
            .await?
            .json()
            .await?;
        if status["status"] == "completed" {
            break;
        }
        if Instant::now() > deadline {
            bail!("the bootstrap did not complete {customer}: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The host deleted the record the bootstrap processed (none left in flight or waiting).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = in_queue(&sqs, &queue_url).await?;
    while left != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = in_queue(&sqs, &queue_url).await?;
    }
    assert_eq!(left, 0, "the processed record was deleted from {queue}");
    Ok(())
}

/// Messages in the queue, visible or in flight.
async fn in_queue(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<u64> {
    use aws_sdk_sqs::types::QueueAttributeName as Name;
    let answer = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(Name::ApproximateNumberOfMessages)
        .attribute_names(Name::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    let attributes = answer.attributes().context("queue attributes")?;
    let mut total = 0;
    for name in [
        Name::ApproximateNumberOfMessages,
        Name::ApproximateNumberOfMessagesNotVisible,
    ] {
        total += attributes
            .get(&name)
            .with_context(|| format!("{name:?}"))?
            .parse::<u64>()?;
    }
    Ok(total)
}
