//! One execution environment: the function's process (in its own process group), its Runtime API
//! server, and the invocation cycle Lambda runs it through: init, invoke, freeze, thaw, and kill
//! on timeout.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use throughline_instrument::aws_metrics::{FunctionMetrics, InvocationResult};

use crate::platform_log::{self, InvocationReport, PlatformLog};
use crate::runtime_api::{Invocation, RuntimeApi, RuntimeEvent};

/// What an environment needs to know to start and run the function.
#[derive(Debug, Clone)]
pub struct EnvironmentSpec {
    pub command: Vec<OsString>,
    pub function_name: String,
    pub function_arn: String,
    pub memory_mb: u32,
    pub region: String,
    pub handler: String,
    pub timeout: Duration,
    pub init_timeout: Duration,
    pub shutdown_grace: Duration,
    /// The function's environment variables, set over the host's own and the Lambda ones.
    pub environment: BTreeMap<String, String>,
    pub log: Arc<dyn PlatformLog>,
    /// Where each invocation's `AWS/Lambda` figures go (the same facts as its `REPORT` line).
    pub metrics: Option<FunctionMetrics>,
}

/// An environment that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not start the runtime api server")]
    RuntimeApi(#[source] std::io::Error),
    #[error("could not start the function {command:?}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum InvocationOutcome {
    /// The runtime posted a response; the environment is frozen and can be reused.
    Response(Bytes),
    /// The runtime posted an error; the environment is frozen and can be reused.
    FunctionError {
        error_type: Option<String>,
        body: Bytes,
    },
    /// The invocation ran past the timeout; the environment was killed.
    Timeout,
    /// The environment failed (init error, runtime exited, init timed out) and was killed.
    Failed(String),
}

impl InvocationOutcome {
    /// Whether the environment can take another invocation.
    pub fn environment_survives(&self) -> bool {
        matches!(self, Self::Response(_) | Self::FunctionError { .. })
    }
}

/// A running execution environment.
#[derive(Debug)]
pub struct Environment {
    spec: EnvironmentSpec,
    child: Child,
    pgid: Pid,
    api: RuntimeApi,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    started_at: Instant,
    /// Whether the runtime has called `/next` once (the end of init).
    initialised: bool,
    frozen: bool,
    reported_init: bool,
}

fn lambda_environment(
    spec: &EnvironmentSpec,
    api_addr: std::net::SocketAddr,
) -> Vec<(String, String)> {
    let today = time::OffsetDateTime::now_utc().date();
    let stream = format!(
        "{:04}/{:02}/{:02}/[$LATEST]{}",
        today.year(),
        u8::from(today.month()),
        today.day(),
        uuid::Uuid::new_v4().simple()
    );
    let task_root = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    vec![
        ("AWS_LAMBDA_RUNTIME_API".into(), api_addr.to_string()),
        (
            "AWS_LAMBDA_FUNCTION_NAME".into(),
            spec.function_name.clone(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
            spec.memory_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME".into(),
            format!("/aws/lambda/{}", spec.function_name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), stream),
        ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
        ("AWS_REGION".into(), spec.region.clone()),
        ("AWS_DEFAULT_REGION".into(), spec.region.clone()),
        ("_HANDLER".into(), spec.handler.clone()),
        ("LAMBDA_TASK_ROOT".into(), task_root),
        ("TZ".into(), ":UTC".into()),
    ]
}

fn unix_ms(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// A fresh X-Ray trace header for an invocation (not sampled: the host runs no X-Ray).
fn new_trace_header() -> String {
    let epoch_secs = unix_ms(SystemTime::now()) / 1000;
    let root: u128 = rand::random::<u128>() & ((1 << 96) - 1);
    let parent: u64 = rand::random();
    format!("Root=1-{epoch_secs:08x}-{root:024x};Parent={parent:016x};Sampled=0")
}

impl Environment {
    /// Starts the function's process cold, with its own Runtime API on 127.0.0.1.
    pub async fn start(spec: EnvironmentSpec) -> Result<Self, StartError> {
        let (api, events) = RuntimeApi::start().await.map_err(StartError::RuntimeApi)?;
        let (program, args) = match spec.command.split_first() {
            Some(split) => split,
            None => {
                return Err(StartError::Spawn {
                    command: String::new(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
                });
            }
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(lambda_environment(&spec, api.addr()))
            .envs(&spec.environment)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true);
        let started_at = Instant::now();
        let child = command.spawn().map_err(|source| StartError::Spawn {
            command: spec
                .command
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            source,
        })?;
        // A child has an id until it is reaped, and nothing has waited on it yet. Never default it:
        // process group 0 would be the host's own.
        let Some(pid) = child.id() else {
            return Err(StartError::Spawn {
                command: spec
                    .command
                    .iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                source: std::io::Error::other("the process ended before it could be tracked"),
            });
        };
        let pgid = Pid::from_raw(pid as i32);
        Ok(Self {
            spec,
            child,
            pgid,
            api,
            events,
            started_at,
            initialised: false,
            frozen: false,
            reported_init: false,
        })
    }

    /// The function process's id (the leader of its process group).
    pub fn pid(&self) -> u32 {
        self.pgid.as_raw() as u32
    }

    fn signal(&mut self, signal: Signal) {
        // Once the leader is reaped its pid (and group id) may be reused: signal nothing then.
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if let Err(err) = killpg(self.pgid, signal) {
            // ESRCH: the group is gone already, which every caller handles by reaping.
            tracing::debug!(error = %err, ?signal, "signal to function process group failed");
        }
    }

    fn thaw(&mut self) {
        if self.frozen {
            self.signal(Signal::SIGCONT);
            self.frozen = false;
        }
    }

    fn freeze(&mut self) {
        self.signal(Signal::SIGSTOP);
        self.frozen = true;
    }

    fn max_memory_used_mb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|status| platform_log::peak_rss_mb(&status))
            .unwrap_or(0)
    }

    /// Waits for the next runtime event, the runtime's exit, or the deadline.
    async fn next_event(&mut self, deadline: Instant) -> Waited {
        tokio::select! {
            event = self.events.recv() => match event {
                Some(event) => Waited::Event(event),
                None => Waited::Exited(None),
            },
            status = self.child.wait() => Waited::Exited(status.ok()),
            () = tokio::time::sleep_until(deadline.into()) => Waited::Deadline,
        }
    }

    /// Waits for the end of init (the first `/next`). On failure the outcome to report.
    async fn initialise(&mut self) -> Result<Duration, InvocationOutcome> {
        let deadline = self.started_at + self.spec.init_timeout;
        loop {
            match self.next_event(deadline).await {
                Waited::Event(RuntimeEvent::Polling { at }) => {
                    self.initialised = true;
                    return Ok(at - self.started_at);
                }
                Waited::Event(RuntimeEvent::InitError { error_type, body }) => {
                    return Err(InvocationOutcome::Failed(format!(
                        "init error {}: {}",
                        error_type.unwrap_or_default(),
                        String::from_utf8_lossy(&body)
                    )));
                }
                Waited::Event(_) => continue,
                Waited::Exited(status) => {
                    return Err(InvocationOutcome::Failed(exit_reason(status)));
                }
                Waited::Deadline => {
                    return Err(InvocationOutcome::Failed(format!(
                        "init did not finish within {:.2} seconds",
                        self.spec.init_timeout.as_secs_f64()
                    )));
                }
            }
        }
    }

    /// Runs one invocation with `payload` and writes its platform log lines. After a response
    /// or a function error the environment is frozen once the runtime is back in `/next`; after
    /// anything else it is killed and must be dropped.
    pub async fn invoke(&mut self, request_id: &str, payload: Bytes) -> InvocationOutcome {
        let log = self.spec.log.clone();
        let metrics = self.spec.metrics.clone();
        if let Some(m) = &metrics {
            m.started();
        }
        let init_duration = if self.initialised {
            None
        } else {
            match self.initialise().await {
                Ok(init) => Some(init),
                Err(failed) => {
                    if let Some(m) = &metrics {
                        let result = match failed {
                            InvocationOutcome::Timeout => InvocationResult::Timeout,
                            _ => InvocationResult::Failed,
                        };
                        m.finished(result, Duration::ZERO, None);
                    }
                    self.kill().await;
                    if let InvocationOutcome::Failed(reason) = &failed {
                        log.line(&format!("RequestId: {request_id} Error: {reason}"));
                    }
                    return failed;
                }
            }
        };
        let report_init = if self.reported_init {
            None
        } else {
            init_duration
        };
        self.reported_init = true;

        log.line(&platform_log::start_line(request_id));
        let invoked_at = Instant::now();
        let deadline = invoked_at + self.spec.timeout;
        self.thaw();
        self.api.offer(Invocation {
            request_id: request_id.to_owned(),
            deadline_unix_ms: unix_ms(SystemTime::now() + self.spec.timeout),
            function_arn: self.spec.function_arn.clone(),
            trace_id: new_trace_header(),
            payload,
        });
        let (outcome, finished_at) = loop {
            match self.next_event(deadline).await {
                Waited::Event(RuntimeEvent::Response {
                    request_id: id,
                    body,
                    at,
                }) if id == request_id => {
                    break (InvocationOutcome::Response(body), at);
                }
                Waited::Event(RuntimeEvent::Error {
                    request_id: id,
                    error_type,
                    body,
                    at,
                }) if id == request_id => {
                    break (InvocationOutcome::FunctionError { error_type, body }, at);
                }
                Waited::Event(RuntimeEvent::InitError { error_type, body }) => {
                    let reason = format!(
                        "init error {}: {}",
                        error_type.unwrap_or_default(),
                        String::from_utf8_lossy(&body)
                    );
                    break (InvocationOutcome::Failed(reason), Instant::now());
                }
                Waited::Event(_) => continue,
                Waited::Exited(status) => {
                    break (
                        InvocationOutcome::Failed(exit_reason(status)),
                        Instant::now(),
                    );
                }
                Waited::Deadline => break (InvocationOutcome::Timeout, Instant::now()),
            }
        };
        let status = match &outcome {
            InvocationOutcome::Response(_) | InvocationOutcome::FunctionError { .. } => None,
            InvocationOutcome::Timeout => Some("timeout"),
            InvocationOutcome::Failed(_) => Some("error"),
        };
        match &outcome {
            InvocationOutcome::Timeout => {
                log.line(&platform_log::timeout_line(request_id, self.spec.timeout))
            }
            InvocationOutcome::Failed(reason) => {
                log.line(&format!("RequestId: {request_id} Error: {reason}"));
            }
            _ => {}
        }
        let max_memory_used_mb = self.max_memory_used_mb();
        if outcome.environment_survives() {
            self.freeze_when_idle(deadline).await;
        } else {
            self.kill().await;
        }
        log.line(&platform_log::end_line(request_id));
        if let Some(m) = &metrics {
            let result = match &outcome {
                InvocationOutcome::Response(_) => InvocationResult::Success,
                InvocationOutcome::FunctionError { .. } => InvocationResult::FunctionError,
                InvocationOutcome::Timeout => InvocationResult::Timeout,
                InvocationOutcome::Failed(_) => InvocationResult::Failed,
            };
            m.finished(result, finished_at - invoked_at, report_init);
        }
        log.line(&platform_log::report_line(&InvocationReport {
            request_id: request_id.to_owned(),
            duration: finished_at - invoked_at,
            memory_size_mb: self.spec.memory_mb,
            max_memory_used_mb,
            init_duration: report_init,
            status,
        }));
        outcome
    }

    /// Freezes the environment once its runtime is back in `/next`, as Lambda does; a runtime
    /// that has not asked for more work by the invocation's deadline is frozen where it is.
    async fn freeze_when_idle(&mut self, deadline: Instant) {
        loop {
            match self.next_event(deadline).await {
                Waited::Event(RuntimeEvent::Polling { .. }) | Waited::Deadline => break,
                Waited::Event(_) => continue,
                // The next invocation's wait sees the exit again and reports it.
                Waited::Exited(_) => return,
            }
        }
        self.freeze();
    }

    /// Kills the whole process group at once (a timed-out or failed environment) and reaps it.
    pub async fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        self.thaw();
        let _ = self.child.wait().await;
    }

    /// Stops the environment as Lambda's shutdown phase does: thaw, SIGTERM, and SIGKILL after
    /// the grace period.
    pub async fn shut_down(mut self) {
        self.thaw();
        self.signal(Signal::SIGTERM);
        if tokio::time::timeout(self.spec.shutdown_grace, self.child.wait())
            .await
            .is_err()
        {
            self.kill().await;
        }
    }
}

enum Waited {
    Event(RuntimeEvent),
    Exited(Option<ExitStatus>),
    Deadline,
}

fn exit_reason(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => format!("Runtime exited with error: {status}"),
        None => "Runtime exited".to_owned(),
    }
}
