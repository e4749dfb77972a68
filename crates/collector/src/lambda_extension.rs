//! The collector as an external Lambda extension: a client of the Extensions API (2020-01-01)
//! and of the Telemetry API's `platform.runtimeDone` (2022-07-01), and the loop that ties the
//! exporter's queue to the invocation cycle.
//!
//! The order that keeps an environment from freezing with spans unsent:
//! 1. the function's exporter hands its spans to this extension's OTLP listeners before the
//!    function answers (the instrumentation library's SQS batch layer flushes before it
//!    returns), and each export is acknowledged only once it is in the persistent queue;
//! 2. the runtime posts its answer; Lambda (and the local host) then delivers
//!    `platform.runtimeDone` for that request to the extension's telemetry listener;
//! 3. only then does the extension flush its queue upstream (bounded by `flush_timeout` and the
//!    invocation's deadline) and call `event/next` again — and an environment freezes only when
//!    the runtime and every extension wait.
//!
//! What a flush cannot send in time stays in the queue (under `/tmp` on Lambda) and goes with
//! the next invocation's flush or the `SHUTDOWN` drain.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use tokio::sync::Notify;

use crate::export::Exporter;
use crate::server::RunningCollector;

const NAME_HEADER: &str = "Lambda-Extension-Name";
const ID_HEADER: &str = "Lambda-Extension-Identifier";
const ERROR_TYPE_HEADER: &str = "Lambda-Extension-Function-Error-Type";
/// The host name AWS requires in a Telemetry API destination.
pub const SANDBOX_HOST: &str = "sandbox.localdomain";
/// Time kept back from a `SHUTDOWN` deadline to stop the listeners and exit.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(150);
/// The request ids of the last invocations the runtime finished.
const DONE_KEPT: usize = 64;

/// An Extensions API or Telemetry API call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    #[error("AWS_LAMBDA_RUNTIME_API {0:?} is not host:port")]
    BadRuntimeApi(String),
    #[error("the Extensions API call {call} failed")]
    Transport {
        call: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("the Extensions API answered {call} with {status}: {body}")]
    Refused {
        call: &'static str,
        status: u16,
        body: String,
    },
    #[error("the Extensions API's answer to {call} is not understood: {reason}")]
    Unexpected { call: &'static str, reason: String },
    #[error("could not listen for the Telemetry API on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// An event from `event/next`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionEvent {
    Invoke {
        request_id: String,
        deadline_ms: u64,
    },
    Shutdown {
        reason: String,
        deadline_ms: u64,
    },
}

/// A registered extension's client.
#[derive(Debug, Clone)]
pub struct ExtensionsApi {
    http: reqwest::Client,
    base: String,
    id: String,
    /// What `register` answered: the function's name.
    pub function_name: String,
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The instant of a Unix-milliseconds deadline (now when it has passed).
pub fn deadline_instant(deadline_ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(unix_ms_now()))
}

async fn checked(
    call: &'static str,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, ExtensionError> {
    let response = sent.map_err(|source| ExtensionError::Transport { call, source })?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Err(ExtensionError::Refused { call, status, body })
}

/// The JSON body of an accepted `call`'s answer.
async fn json_body(
    call: &'static str,
    response: reqwest::Response,
) -> Result<serde_json::Value, ExtensionError> {
    response
        .json()
        .await
        .map_err(|e| ExtensionError::Unexpected {
            call,
            reason: e.to_string(),
        })
}

impl ExtensionsApi {
    /// `POST /2020-01-01/extension/register` for `INVOKE` and `SHUTDOWN` under `name` (on AWS,
    /// the extension's file name in `/opt/extensions`).
    pub async fn register(runtime_api: &str, name: &str) -> Result<Self, ExtensionError> {
        if runtime_api.is_empty() || runtime_api.contains('/') || !runtime_api.contains(':') {
            return Err(ExtensionError::BadRuntimeApi(runtime_api.to_owned()));
        }
        // `event/next` waits as long as no event comes: no request timeout.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|source| ExtensionError::Transport {
                call: "register",
                source,
            })?;
        let base = format!("http://{runtime_api}/2020-01-01/extension");
        let call = "register";
        let response = checked(
            call,
            http.post(format!("{base}/register"))
                .header(NAME_HEADER, name)
                .json(&serde_json::json!({"events": ["INVOKE", "SHUTDOWN"]}))
                .send()
                .await,
        )
        .await?;
        let id = response
            .headers()
            .get(ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| ExtensionError::Unexpected {
                call,
                reason: format!("no {ID_HEADER} header"),
            })?;
        let body = json_body(call, response).await?;
        Ok(Self {
            http,
            base,
            id,
            function_name: body["functionName"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// `GET event/next`: waits for the next `INVOKE` or `SHUTDOWN`.
    pub async fn next_event(&self) -> Result<ExtensionEvent, ExtensionError> {
        let call = "event/next";
        let response = checked(
            call,
            self.http
                .get(format!("{}/event/next", self.base))
                .header(ID_HEADER, &self.id)
                .send()
                .await,
        )
        .await?;
        let body = json_body(call, response).await?;
        let deadline_ms = body["deadlineMs"].as_u64().unwrap_or_else(unix_ms_now);
        match body["eventType"].as_str() {
            Some("INVOKE") => Ok(ExtensionEvent::Invoke {
                request_id: body["requestId"].as_str().unwrap_or_default().to_owned(),
                deadline_ms,
            }),
            Some("SHUTDOWN") => Ok(ExtensionEvent::Shutdown {
                reason: body["shutdownReason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                deadline_ms,
            }),
            other => Err(ExtensionError::Unexpected {
                call,
                reason: format!("eventType {other:?}"),
            }),
        }
    }

    async fn report(
        &self,
        path: &'static str,
        error_type: &str,
        message: &str,
    ) -> Result<(), ExtensionError> {
        let body = serde_json::json!({
            "errorMessage": message,
            "errorType": error_type,
            "stackTrace": [],
        });
        checked(
            path,
            self.http
                .post(format!("{}/{path}", self.base))
                .header(ID_HEADER, &self.id)
                .header(ERROR_TYPE_HEADER, error_type)
                .json(&body)
                .send()
                .await,
        )
        .await
        .map(drop)
    }

    /// `POST init/error`: the extension could not start (`error_type` as
    /// `Extension.Category`); Lambda fails the init and the extension should exit.
    pub async fn init_error(&self, error_type: &str, message: &str) -> Result<(), ExtensionError> {
        self.report("init/error", error_type, message).await
    }

    /// `POST exit/error`: the extension fails after init and will exit.
    pub async fn exit_error(&self, error_type: &str, message: &str) -> Result<(), ExtensionError> {
        self.report("exit/error", error_type, message).await
    }

    /// Listens for the Telemetry API's `platform` events (on `sandbox.localdomain` where it
    /// resolves, as on Lambda, else 127.0.0.1) and subscribes to them
    /// (`PUT /2022-07-01/telemetry`), so the extension learns when each invocation ends.
    pub async fn subscribe_runtime_done(&self) -> Result<RuntimeDone, ExtensionError> {
        let done = Arc::new(DoneState::default());
        let bind_ip = tokio::net::lookup_host((SANDBOX_HOST, 0))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .map(|a| a.ip())
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
        let addr = SocketAddr::new(bind_ip, 0);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ExtensionError::Listen { addr, source })?;
        let serve = throughline_service_kit::ServeConfig {
            allowed_hosts: throughline_service_kit::AllowedHosts::parse(
                "telemetry listener",
                [SANDBOX_HOST],
            )
            .unwrap_or_default(),
            ..throughline_service_kit::ServeConfig::default()
        };
        let router = Router::new()
            .route("/telemetry", post(telemetry_batch))
            .with_state(done.clone());
        let server = throughline_service_kit::spawn_http(listener, router, serve)
            .map_err(|source| ExtensionError::Listen { addr, source })?;
        let port = server.local_addr().port();
        let root = self.base.replace("/2020-01-01/extension", "");
        checked(
            "telemetry subscribe",
            self.http
                .put(format!("{root}/2022-07-01/telemetry"))
                .header(ID_HEADER, &self.id)
                .json(&serde_json::json!({
                    "schemaVersion": "2022-12-13",
                    "destination": {
                        "protocol": "HTTP",
                        "URI": format!("http://{SANDBOX_HOST}:{port}/telemetry"),
                    },
                    "types": ["platform"],
                    // Lambda's shortest buffering: runtimeDone arrives within 25 ms.
                    "buffering": {"maxItems": 1000, "maxBytes": 262_144, "timeoutMs": 25},
                }))
                .send()
                .await,
        )
        .await?;
        Ok(RuntimeDone {
            state: done,
            _server: Arc::new(server),
        })
    }
}

#[derive(Debug, Default)]
struct DoneState {
    ids: Mutex<std::collections::VecDeque<String>>,
    notify: Notify,
}

/// The request ids the runtime finished, as `platform.runtimeDone` delivered them.
#[derive(Debug, Clone)]
pub struct RuntimeDone {
    state: Arc<DoneState>,
    _server: Arc<throughline_service_kit::HttpServer>,
}

impl RuntimeDone {
    /// Waits until the runtime finished `request_id` or `deadline` passes; true when it did.
    pub async fn wait(&self, request_id: &str, deadline: Instant) -> bool {
        loop {
            let notified = self.state.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.state.ids).iter().any(|id| id == request_id) {
                return true;
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                return false;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn telemetry_batch(State(done): State<Arc<DoneState>>, body: Bytes) -> StatusCode {
    let Ok(events) = serde_json::from_slice::<Vec<serde_json::Value>>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut ids = lock(&done.ids);
    for event in &events {
        if event["type"] == "platform.runtimeDone"
            && let Some(id) = event["record"]["requestId"].as_str()
        {
            ids.push_back(id.to_owned());
            while ids.len() > DONE_KEPT {
                ids.pop_front();
            }
        }
    }
    drop(ids);
    done.notify.notify_waiters();
    StatusCode::OK
}

/// How the extension bounds its flushes.
#[derive(Debug, Clone, Copy)]
pub struct FlushBounds {
    /// The longest flush after an invocation (the function's environment stays thawed, and on
    /// AWS billed, meanwhile); what is left goes with the next one.
    pub after_invoke: Duration,
}

impl Default for FlushBounds {
    fn default() -> Self {
        Self {
            after_invoke: Duration::from_secs(1),
        }
    }
}

/// The invocation cycle: after each `INVOKE`, wait for the runtime's `runtimeDone`, flush the
/// queue, go back to `event/next`; on `SHUTDOWN`, refuse new exports, drain within the deadline
/// and stop. Returns once shut down; an API failure is reported with `exit/error` (where the
/// API still answers) and returned.
pub async fn run(
    api: &ExtensionsApi,
    done: &RuntimeDone,
    exporter: &Exporter,
    collector: RunningCollector,
    bounds: FlushBounds,
) -> Result<(), ExtensionError> {
    loop {
        let event = match api.next_event().await {
            Ok(event) => event,
            Err(err) => {
                let _ = api
                    .exit_error("Extension.EventNextFailed", &err.to_string())
                    .await;
                collector.shutdown().await;
                return Err(err);
            }
        };
        match event {
            ExtensionEvent::Invoke {
                request_id,
                deadline_ms,
            } => {
                let deadline = deadline_instant(deadline_ms);
                let finished = done.wait(&request_id, deadline).await;
                let started = Instant::now();
                let until = deadline.min(started + bounds.after_invoke);
                let flushed = exporter
                    .flush(until.saturating_duration_since(started))
                    .await;
                let flush_us = started.elapsed().as_micros() as u64;
                if flushed {
                    tracing::info!(%request_id, finished, flush_us, "flushed after the invocation");
                } else {
                    tracing::warn!(%request_id, finished, flush_us,
                        "the flush after the invocation did not finish; the rest stays queued");
                }
            }
            ExtensionEvent::Shutdown {
                reason,
                deadline_ms,
            } => {
                collector.refuse_exports();
                let started = Instant::now();
                let budget = deadline_instant(deadline_ms)
                    .saturating_duration_since(started)
                    .saturating_sub(SHUTDOWN_MARGIN);
                let drained = exporter.flush(budget).await;
                let depth: u64 = exporter
                    .outputs()
                    .iter()
                    .map(|o| o.queue.depth().items)
                    .sum();
                if drained {
                    tracing::info!(%reason, drain_us = started.elapsed().as_micros() as u64,
                        "drained on SHUTDOWN");
                } else {
                    tracing::warn!(%reason, left_items = depth,
                        "SHUTDOWN's deadline came before the queue drained; the rest is lost with the environment");
                }
                collector.shutdown().await;
                return Ok(());
            }
        }
    }
}
