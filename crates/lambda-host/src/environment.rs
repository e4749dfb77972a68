//! One execution environment: the function's process and its external extensions (in one process
//! group), its Runtime API server (which speaks the Extensions API too), and the invocation cycle
//! Lambda runs it through: extensions start and register before the runtime starts; init ends
//! once the runtime and every extension wait for work; each invocation goes to the runtime and, as
//! an `INVOKE` event, to every extension registered for it; the environment freezes only once the
//! runtime and every extension wait again; shutdown sends `SHUTDOWN` and waits for the extensions
//! (bounded by the grace period) before the kill.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use throughline_instrument::aws_metrics::{FunctionMetrics, InvocationResult};

use crate::platform_log::{self, InvocationReport, LineContext, PlatformLog};
use crate::runtime_api::{
    ExtensionErrorPhase, ExtensionEventType, FunctionIdentity, Invocation, RuntimeApi, RuntimeEvent,
};

/// How often a waiting environment checks whether an extension process ended.
const EXTENSION_EXIT_POLL: Duration = Duration::from_millis(20);

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
    /// External extensions (`/opt/extensions/*` on AWS): executables started, in this order,
    /// before the runtime, with the same environment.
    pub extensions: Vec<PathBuf>,
    /// Variables each environment sets, for the runtime and the extensions, to a free
    /// `127.0.0.1:PORT` of its own: on Lambda every sandbox has its own localhost, so an
    /// extension's fixed ports (4317/4318) never meet another environment's; here several
    /// environments share one, so such a listener takes its address from one of these.
    pub sandbox_ports: Vec<String>,
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

/// One started extension process.
#[derive(Debug)]
struct ExtensionProcess {
    /// Its file name: the name it registers under, as AWS requires.
    name: String,
    child: Child,
    exited: Option<ExitStatus>,
}

/// A running execution environment.
#[derive(Debug)]
pub struct Environment {
    spec: EnvironmentSpec,
    /// The runtime; not started when an extension failed to register.
    child: Option<Child>,
    extensions: Vec<ExtensionProcess>,
    pgid: Pid,
    /// Why init failed before the runtime could start (an extension's failure).
    init_failure: Option<String>,
    /// Why a warm environment can take no more work (an extension ended after an invocation).
    broken: Option<String>,
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
    /// Starts the environment cold, with its own Runtime API on 127.0.0.1: the extensions
    /// first, each waited for until it registers (within the init timeout), then the function's
    /// process. An extension that exits, reports an init error or does not register in time
    /// fails the first invocation's init, as on Lambda.
    pub async fn start(mut spec: EnvironmentSpec) -> Result<Self, StartError> {
        for name in spec.sandbox_ports.clone() {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(StartError::RuntimeApi)?
                .port();
            spec.environment.insert(name, format!("127.0.0.1:{port}"));
        }
        let (api, events) = RuntimeApi::start().await.map_err(StartError::RuntimeApi)?;
        api.set_identity(FunctionIdentity {
            function_name: spec.function_name.clone(),
            function_version: "$LATEST".into(),
            handler: spec.handler.clone(),
        });
        let started_at = Instant::now();
        let mut pgid = None;
        let mut extensions = Vec::new();
        for path in &spec.extensions {
            let mut command = Command::new(path);
            let child = spawn_in_group(
                &mut command,
                &spec,
                api.addr(),
                pgid,
                &[path.clone().into()],
            )?;
            pgid = pgid.or(Some(child.1));
            extensions.push(ExtensionProcess {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                child: child.0,
                exited: None,
            });
        }
        let mut environment = Self {
            child: None,
            extensions,
            pgid: pgid.unwrap_or(Pid::from_raw(0)),
            init_failure: None,
            broken: None,
            api,
            events,
            started_at,
            initialised: false,
            frozen: false,
            reported_init: false,
            spec,
        };
        if !environment.extensions.is_empty()
            && let Err(reason) = environment.await_registrations().await
        {
            environment.init_failure = Some(reason);
            return Ok(environment);
        }
        let (program, args) = match environment.spec.command.split_first() {
            Some((program, args)) => (program.clone(), args.to_vec()),
            None => {
                return Err(StartError::Spawn {
                    command: String::new(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
                });
            }
        };
        let mut command = Command::new(&program);
        command.args(&args);
        let (child, pid) = spawn_in_group(
            &mut command,
            &environment.spec,
            environment.api.addr(),
            pgid,
            &environment.spec.command,
        )?;
        if pgid.is_none() {
            environment.pgid = pid;
        }
        environment.child = Some(child);
        Ok(environment)
    }

    /// Waits until each started extension has registered; the reason when one cannot.
    async fn await_registrations(&mut self) -> Result<(), String> {
        let deadline = self.started_at + self.spec.init_timeout;
        let mut registered = 0;
        while registered < self.extensions.len() {
            match self.next_event(deadline).await {
                Waited::Event(RuntimeEvent::ExtensionRegistered { .. }) => registered += 1,
                Waited::Event(RuntimeEvent::ExtensionError {
                    name, error_type, ..
                }) => {
                    return Err(format!(
                        "extension {name} init error {}",
                        error_type.unwrap_or_default()
                    ));
                }
                Waited::Event(_) => continue,
                Waited::ExtensionExited(name, status) => {
                    return Err(format!(
                        "extension {name} exited before registering: {status}"
                    ));
                }
                Waited::Exited(status) => return Err(exit_reason(status)),
                Waited::Deadline => {
                    return Err(format!(
                        "{} of {} extensions registered within {:.2} seconds",
                        registered,
                        self.extensions.len(),
                        self.spec.init_timeout.as_secs_f64()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The names the extensions registered under, in order.
    pub fn registered_extensions(&self) -> Vec<String> {
        self.api.registered_extensions()
    }

    /// The function process's id (the leader of its process group).
    pub fn pid(&self) -> u32 {
        self.pgid.as_raw() as u32
    }

    /// Whether a process of the group is still unreaped (alive, or a zombie that holds the
    /// group id): only then may the group be signalled without hitting a reused id.
    fn group_held(&mut self) -> bool {
        let runtime = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        let extension = self
            .extensions
            .iter_mut()
            .any(|e| e.exited.is_none() && matches!(e.child.try_wait(), Ok(None)));
        runtime || extension
    }

    fn signal(&mut self, signal: Signal) {
        if self.pgid.as_raw() <= 0 || !self.group_held() {
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

    /// Waits for the next runtime or extension event, the runtime's or an extension's exit, or
    /// the deadline.
    async fn next_event(&mut self, deadline: Instant) -> Waited {
        let runtime = async {
            match self.child.as_mut() {
                Some(child) => child.wait().await.ok(),
                None => std::future::pending().await,
            }
        };
        let extensions = &mut self.extensions;
        let extension_exit = async {
            if extensions.iter().all(|e| e.exited.is_some()) {
                return std::future::pending().await;
            }
            loop {
                for extension in extensions.iter_mut().filter(|e| e.exited.is_none()) {
                    if let Ok(Some(status)) = extension.child.try_wait() {
                        extension.exited = Some(status);
                        return (extension.name.clone(), status);
                    }
                }
                tokio::time::sleep(EXTENSION_EXIT_POLL).await;
            }
        };
        tokio::select! {
            event = self.events.recv() => match event {
                Some(event) => Waited::Event(event),
                None => Waited::Exited(None),
            },
            status = runtime => Waited::Exited(status),
            (name, status) = extension_exit => Waited::ExtensionExited(name, status),
            () = tokio::time::sleep_until(deadline.into()) => Waited::Deadline,
        }
    }

    /// Waits for the end of init: the runtime's first `/next` and every extension waiting in
    /// `event/next`. On failure the outcome to report.
    async fn initialise(&mut self) -> Result<Duration, InvocationOutcome> {
        if let Some(reason) = self.init_failure.take() {
            return Err(InvocationOutcome::Failed(reason));
        }
        let deadline = self.started_at + self.spec.init_timeout;
        let mut runtime_ready: Option<Instant> = None;
        let mut last_extension_wait: Option<Instant> = None;
        loop {
            if let Some(at) = runtime_ready
                && self.api.extensions_idle()
            {
                self.initialised = true;
                self.api.close_registration();
                let ready = last_extension_wait.map_or(at, |wait| wait.max(at));
                return Ok(ready - self.started_at);
            }
            match self.next_event(deadline).await {
                Waited::Event(RuntimeEvent::Polling { at }) => runtime_ready = Some(at),
                Waited::Event(RuntimeEvent::ExtensionWaiting { at, .. }) => {
                    last_extension_wait = last_extension_wait.max(Some(at));
                }
                Waited::Event(RuntimeEvent::ExtensionError {
                    name, error_type, ..
                }) => {
                    return Err(InvocationOutcome::Failed(format!(
                        "extension {name} init error {}",
                        error_type.unwrap_or_default()
                    )));
                }
                Waited::ExtensionExited(name, status) => {
                    return Err(InvocationOutcome::Failed(format!(
                        "extension {name} exited during init: {status}"
                    )));
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
        self.invoke_in_trace(request_id, payload, None).await
    }

    /// [`Environment::invoke`] for a batch whose records all carry `trace_id`: the platform
    /// lines say so (an OTLP platform log files them under that trace).
    pub async fn invoke_in_trace(
        &mut self,
        request_id: &str,
        payload: Bytes,
        trace_id: Option<[u8; 16]>,
    ) -> InvocationOutcome {
        let log = self.spec.log.clone();
        let info = LineContext {
            trace_id,
            error: false,
        };
        let error = LineContext {
            trace_id,
            error: true,
        };
        let metrics = self.spec.metrics.clone();
        if let Some(reason) = self.broken.take() {
            self.stop("failure").await;
            log.invocation_line(&format!("RequestId: {request_id} Error: {reason}"), &error);
            if let Some(m) = &metrics {
                m.started();
                m.finished(InvocationResult::Failed, Duration::ZERO, None);
            }
            return InvocationOutcome::Failed(reason);
        }
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
                    self.stop("failure").await;
                    if let InvocationOutcome::Failed(reason) = &failed {
                        log.invocation_line(
                            &format!("RequestId: {request_id} Error: {reason}"),
                            &error,
                        );
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

        log.invocation_line(&platform_log::start_line(request_id), &info);
        let invoked_at = Instant::now();
        let deadline = invoked_at + self.spec.timeout;
        self.thaw();
        let deadline_unix_ms = unix_ms(SystemTime::now() + self.spec.timeout);
        let trace_id = new_trace_header();
        self.api.offer_extension_event(
            ExtensionEventType::Invoke,
            serde_json::json!({
                "eventType": "INVOKE",
                "deadlineMs": deadline_unix_ms,
                "requestId": request_id,
                "invokedFunctionArn": self.spec.function_arn,
                "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id},
            }),
        );
        self.api.offer(Invocation {
            request_id: request_id.to_owned(),
            deadline_unix_ms,
            function_arn: self.spec.function_arn.clone(),
            trace_id,
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
                Waited::Event(RuntimeEvent::ExtensionError {
                    name,
                    phase: ExtensionErrorPhase::Exit,
                    error_type,
                }) => {
                    let reason = format!(
                        "extension {name} exit error {}",
                        error_type.unwrap_or_default()
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
                Waited::ExtensionExited(name, status) => {
                    break (
                        InvocationOutcome::Failed(format!("extension {name} exited: {status}")),
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
            InvocationOutcome::Timeout => log.invocation_line(
                &platform_log::timeout_line(request_id, self.spec.timeout),
                &error,
            ),
            InvocationOutcome::Failed(reason) => {
                log.invocation_line(&format!("RequestId: {request_id} Error: {reason}"), &error);
            }
            _ => {}
        }
        let max_memory_used_mb = self.max_memory_used_mb();
        if outcome.environment_survives() {
            self.freeze_when_idle(deadline).await;
        } else {
            let reason = if outcome == InvocationOutcome::Timeout {
                "timeout"
            } else {
                "failure"
            };
            self.stop(reason).await;
        }
        log.invocation_line(&platform_log::end_line(request_id), &info);
        if let Some(m) = &metrics {
            let result = match &outcome {
                InvocationOutcome::Response(_) => InvocationResult::Success,
                InvocationOutcome::FunctionError { .. } => InvocationResult::FunctionError,
                InvocationOutcome::Timeout => InvocationResult::Timeout,
                InvocationOutcome::Failed(_) => InvocationResult::Failed,
            };
            m.finished(result, finished_at - invoked_at, report_init);
        }
        let report_context = if status.is_some() { &error } else { &info };
        log.invocation_line(
            &platform_log::report_line(&InvocationReport {
                request_id: request_id.to_owned(),
                duration: finished_at - invoked_at,
                memory_size_mb: self.spec.memory_mb,
                max_memory_used_mb,
                init_duration: report_init,
                status,
            }),
            report_context,
        );
        outcome
    }

    /// Freezes the environment once its runtime is back in `/next` and every extension waits in
    /// `event/next`, as Lambda does; an environment still busy at the invocation's deadline is
    /// frozen where it is.
    async fn freeze_when_idle(&mut self, deadline: Instant) {
        let mut runtime_ready = false;
        loop {
            if runtime_ready && self.api.extensions_idle() {
                break;
            }
            match self.next_event(deadline).await {
                Waited::Event(RuntimeEvent::Polling { .. }) => runtime_ready = true,
                Waited::Deadline => break,
                Waited::Event(_) => continue,
                // The next invocation's wait sees the exit again and reports it.
                Waited::Exited(_) => return,
                Waited::ExtensionExited(name, status) => {
                    self.broken = Some(format!("extension {name} exited: {status}"));
                    return;
                }
            }
        }
        self.freeze();
    }

    /// Whether each extension is done with `SHUTDOWN`: exited, or back in `event/next`.
    fn extensions_done(&mut self) -> bool {
        let api = &self.api;
        self.extensions.iter_mut().all(|e| {
            e.exited.is_some()
                || matches!(e.child.try_wait(), Ok(Some(_)))
                || api.extension_idle(&e.name)
        })
    }

    /// Lambda's shutdown phase: thaw; `SHUTDOWN` (with `reason`: spindown, timeout, failure) to
    /// every extension registered for it and SIGTERM to the runtime (to the whole group when
    /// there are no extensions); then, once the runtime has exited and every extension is done
    /// (or the grace period is over), SIGKILL to the group.
    async fn stop(&mut self, reason: &str) {
        self.thaw();
        let grace_ends = Instant::now() + self.spec.shutdown_grace;
        let offered = self.api.offer_extension_event(
            ExtensionEventType::Shutdown,
            serde_json::json!({
                "eventType": "SHUTDOWN",
                "shutdownReason": reason,
                "deadlineMs": unix_ms(SystemTime::now() + self.spec.shutdown_grace),
            }),
        );
        if self.extensions.is_empty() {
            self.signal(Signal::SIGTERM);
        } else if let Some(pid) = self.child.as_ref().and_then(Child::id)
            && let Err(err) = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM)
        {
            tracing::debug!(error = %err, "SIGTERM to the runtime failed");
        }
        loop {
            let runtime_done = match self.child.as_mut() {
                Some(child) => !matches!(child.try_wait(), Ok(None)),
                None => true,
            };
            if runtime_done {
                // Reaped: never waited on (or signalled) again.
                self.child = None;
            }
            if runtime_done && (offered == 0 || self.extensions_done()) {
                break;
            }
            if let Waited::Deadline = self.next_event(grace_ends).await {
                break;
            }
        }
        self.kill().await;
    }

    /// Kills the whole process group at once (a timed-out or failed environment) and reaps it.
    pub async fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        self.thaw();
        if let Some(child) = self.child.as_mut() {
            let _ = child.wait().await;
        }
        for extension in &mut self.extensions {
            if extension.exited.is_none() {
                extension.exited = extension.child.wait().await.ok();
            }
        }
    }

    /// Stops the environment as Lambda's shutdown phase does: thaw, SIGTERM to the runtime and
    /// `SHUTDOWN` to the extensions, and SIGKILL after the grace period.
    pub async fn shut_down(mut self) {
        self.stop("spindown").await;
    }
}

/// Starts `command` with the Lambda environment in the environment's process group (`pgid`; a
/// new group led by it when `None`), and returns it with its pid.
fn spawn_in_group(
    command: &mut Command,
    spec: &EnvironmentSpec,
    api_addr: std::net::SocketAddr,
    pgid: Option<Pid>,
    shown: &[OsString],
) -> Result<(Child, Pid), StartError> {
    let shown = || {
        shown
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    };
    command
        .envs(lambda_environment(spec, api_addr))
        .envs(&spec.environment)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .process_group(pgid.map_or(0, Pid::as_raw))
        .kill_on_drop(true);
    let child = command.spawn().map_err(|source| StartError::Spawn {
        command: shown(),
        source,
    })?;
    // A child has an id until it is reaped, and nothing has waited on it yet. Never default it:
    // process group 0 would be the host's own.
    let Some(pid) = child.id() else {
        return Err(StartError::Spawn {
            command: shown(),
            source: std::io::Error::other("the process ended before it could be tracked"),
        });
    };
    Ok((child, Pid::from_raw(pid as i32)))
}

enum Waited {
    Event(RuntimeEvent),
    Exited(Option<ExitStatus>),
    ExtensionExited(String, ExitStatus),
    Deadline,
}

fn exit_reason(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => format!("Runtime exited with error: {status}"),
        None => "Runtime exited".to_owned(),
    }
}
