//! The Lambda Runtime API (version 2018-06-01) that one execution environment's runtime talks
//! to: `GET /runtime/invocation/next`, `POST /runtime/invocation/{id}/response` and `…/error`,
//! `POST /runtime/init/error`, with the status codes and error bodies AWS documents.
//!
//! The same server speaks the Extensions API (version 2020-01-01) that external extensions
//! (`/opt/extensions/*` on AWS) talk to: `POST /extension/register`, `GET /extension/event/next`
//! (`INVOKE` and `SHUTDOWN` events), `POST /extension/init/error` and `…/exit/error`, with the
//! error types AWS's runtime interface uses.
//!
//! The server only relays: the environment's driver offers an invocation with
//! [`RuntimeApi::offer`] (and an extension event with [`RuntimeApi::offer_extension_event`]) and
//! learns what the runtime and the extensions did from [`RuntimeEvent`]s.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use throughline_service_kit::{HttpServer, ServeConfig};
use tokio::sync::{Notify, mpsc};

/// Lambda's limit on a synchronous response or error payload (6 MB, as RAPID counts it).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024 + 100;
/// How long the runtime may take to send a posted body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
const ERROR_TYPE_HEADER: &str = "Lambda-Runtime-Function-Error-Type";
const EXTENSION_NAME_HEADER: &str = "Lambda-Extension-Name";
const EXTENSION_ID_HEADER: &str = "Lambda-Extension-Identifier";
const EXTENSION_EVENT_ID_HEADER: &str = "Lambda-Extension-Event-Identifier";
const EXTENSION_ERROR_TYPE_HEADER: &str = "Lambda-Extension-Function-Error-Type";
/// Lambda's limit on extensions per function.
pub const MAX_EXTENSIONS: usize = 10;
/// The largest register or error body an extension may post.
const MAX_EXTENSION_BODY_BYTES: usize = 64 * 1024;

/// One invocation as the runtime receives it from `/next`.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub deadline_unix_ms: u128,
    pub function_arn: String,
    pub trace_id: String,
    pub payload: Bytes,
}

/// What the runtime did, in the order it did it.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeEvent {
    /// The runtime called `/next` and waits for an invocation.
    Polling { at: Instant },
    Response {
        request_id: String,
        body: Bytes,
        at: Instant,
    },
    Error {
        request_id: String,
        error_type: Option<String>,
        body: Bytes,
        at: Instant,
    },
    InitError {
        error_type: Option<String>,
        body: Bytes,
    },
    /// An extension registered.
    ExtensionRegistered { name: String },
    /// An extension called `/extension/event/next` with nothing pending: it waits.
    ExtensionWaiting { name: String, at: Instant },
    /// An extension reported an error (`init/error` or `exit/error`).
    ExtensionError {
        name: String,
        phase: ExtensionErrorPhase,
        error_type: Option<String>,
    },
}

/// Where an extension's reported error belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionErrorPhase {
    Init,
    Exit,
}

/// The events an extension may register for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionEventType {
    Invoke,
    Shutdown,
}

impl ExtensionEventType {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "INVOKE" => Some(Self::Invoke),
            "SHUTDOWN" => Some(Self::Shutdown),
            _ => None,
        }
    }
}

/// What `/extension/register` answers with: the function the extension runs beside.
#[derive(Debug, Clone, Default)]
pub struct FunctionIdentity {
    pub function_name: String,
    pub function_version: String,
    pub handler: String,
}

#[derive(Debug)]
struct ExtensionSlot {
    id: String,
    name: String,
    events: Vec<ExtensionEventType>,
    pending: VecDeque<serde_json::Value>,
    /// In `/event/next` with nothing pending.
    waiting: bool,
    /// Where its Telemetry API subscription delivers (`PUT /2022-07-01/telemetry`).
    telemetry: Option<crate::telemetry_api::Destination>,
}

#[derive(Debug, Default)]
struct Extensions {
    identity: FunctionIdentity,
    registered: Vec<ExtensionSlot>,
    /// Init is over: no more registrations.
    closed: bool,
}

#[derive(Debug, Default)]
struct Slot {
    offered: Option<Invocation>,
    in_flight: Option<String>,
    phase: Phase,
}

/// Where the environment is in Lambda's lifecycle, as far as the Runtime API can tell.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Started; the runtime has not asked for an invocation yet.
    #[default]
    Init,
    /// The runtime reported an init error.
    InitFailed,
    /// The runtime called `/next` at least once: init is over.
    Ready,
}

#[derive(Debug)]
struct Shared {
    slot: Mutex<Slot>,
    offered: Notify,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    extensions: Mutex<Extensions>,
    /// Woken (every waiter) when an extension event is offered.
    extension_offered: Notify,
    telemetry: crate::telemetry_api::Deliverer,
}

/// One environment's Runtime API server, listening on 127.0.0.1.
#[derive(Debug)]
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: HttpServer,
}

/// The Runtime API's serving settings: the service kit's defaults, without a request deadline
/// (`/next` waits as long as no invocation comes) or a kit body limit (the payload limit is
/// Lambda's own, answered with its documented error body).
pub fn serve_config() -> ServeConfig {
    ServeConfig {
        request_timeout: None,
        body_limit: None,
        body_timeout: BODY_READ_TIMEOUT,
        ..ServeConfig::default()
    }
}

impl RuntimeApi {
    /// Binds an ephemeral loopback port and serves until dropped. The receiver yields what the
    /// runtime does.
    pub async fn start() -> std::io::Result<(Self, mpsc::UnboundedReceiver<RuntimeEvent>)> {
        Self::start_with(serve_config()).await
    }

    /// [`RuntimeApi::start`] with other serving settings (timeouts, limits).
    pub async fn start_with(
        config: ServeConfig,
    ) -> std::io::Result<(Self, mpsc::UnboundedReceiver<RuntimeEvent>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let (events, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            slot: Mutex::default(),
            offered: Notify::new(),
            events,
            extensions: Mutex::default(),
            extension_offered: Notify::new(),
            telemetry: crate::telemetry_api::Deliverer::default(),
        });
        let server = throughline_service_kit::spawn_http(listener, router(shared.clone()), config)?;
        let addr = server.local_addr();
        Ok((
            Self {
                addr,
                shared,
                server,
            },
            receiver,
        ))
    }

    /// The `host:port` to put in `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Hands an invocation to the runtime's pending (or next) `/next`.
    pub fn offer(&self, invocation: Invocation) {
        lock(&self.shared.slot).offered = Some(invocation);
        self.shared.offered.notify_one();
    }

    /// What `/extension/register` tells an extension about the function.
    pub fn set_identity(&self, identity: FunctionIdentity) {
        lock(&self.shared.extensions).identity = identity;
    }

    /// Ends the registration window (init is over): later registrations get 403.
    pub fn close_registration(&self) {
        lock(&self.shared.extensions).closed = true;
    }

    /// The names of the registered extensions, in registration order.
    pub fn registered_extensions(&self) -> Vec<String> {
        lock(&self.shared.extensions)
            .registered
            .iter()
            .map(|e| e.name.clone())
            .collect()
    }

    /// Queues `event` (an `INVOKE` or `SHUTDOWN` body) for every extension registered for
    /// `kind`; returns how many will get it.
    pub fn offer_extension_event(
        &self,
        kind: ExtensionEventType,
        event: serde_json::Value,
    ) -> usize {
        let mut extensions = lock(&self.shared.extensions);
        let mut offered = 0;
        for extension in &mut extensions.registered {
            if extension.events.contains(&kind) {
                extension.pending.push_back(event.clone());
                offered += 1;
            }
        }
        drop(extensions);
        self.shared.extension_offered.notify_waiters();
        offered
    }

    /// Whether the extension registered as `name` is in `/extension/event/next` with nothing
    /// pending (false when none registered so).
    pub fn extension_idle(&self, name: &str) -> bool {
        lock(&self.shared.extensions)
            .registered
            .iter()
            .any(|e| e.name == name && e.waiting && e.pending.is_empty())
    }

    /// Whether every registered extension is in `/extension/event/next` with nothing pending
    /// (true with none registered): the condition, with the runtime in `/next`, for a freeze.
    pub fn extensions_idle(&self) -> bool {
        lock(&self.shared.extensions)
            .registered
            .iter()
            .all(|e| e.waiting && e.pending.is_empty())
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.begin_shutdown();
    }
}

fn lock<T>(slot: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The slots hold plain data and no code panics while holding a lock; a poisoned lock still
    // holds consistent data.
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .route("/2020-01-01/extension/register", post(extension_register))
        .route("/2020-01-01/extension/event/next", get(extension_next))
        .route(
            "/2020-01-01/extension/init/error",
            post(extension_init_error),
        )
        .route(
            "/2020-01-01/extension/exit/error",
            post(extension_exit_error),
        )
        .route("/2022-07-01/telemetry", put(telemetry_subscribe))
        .fallback(not_found)
        .with_state(shared)
}

/// A refused request: the documented `ErrorResponse` body with its status.
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body =
            serde_json::json!({ "errorMessage": self.message, "errorType": self.error_type });
        (self.status, axum::Json(body)).into_response()
    }
}

fn error_response(status: StatusCode, error_type: &'static str, message: &str) -> Rejection {
    Rejection {
        status,
        error_type,
        message: message.to_owned(),
    }
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "status": "OK" })),
    )
        .into_response()
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        "no such runtime api resource",
    )
    .into_response()
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let _ = shared
        .events
        .send(RuntimeEvent::Polling { at: Instant::now() });
    loop {
        let notified = shared.offered.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let taken = {
            let mut slot = lock(&shared.slot);
            slot.phase = Phase::Ready;
            let invocation = slot.offered.take();
            if let Some(invocation) = &invocation {
                slot.in_flight = Some(invocation.request_id.clone());
            }
            invocation
        };
        if let Some(invocation) = taken {
            return invocation_response(invocation);
        }
        notified.await;
    }
}

fn invocation_response(invocation: Invocation) -> Response {
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put("Lambda-Runtime-Aws-Request-Id", &invocation.request_id);
    put(
        "Lambda-Runtime-Deadline-Ms",
        &invocation.deadline_unix_ms.to_string(),
    );
    put(
        "Lambda-Runtime-Invoked-Function-Arn",
        &invocation.function_arn,
    );
    put("Lambda-Runtime-Trace-Id", &invocation.trace_id);
    put("Content-Type", "application/json");
    (StatusCode::OK, headers, invocation.payload).into_response()
}

/// Reads a posted body up to Lambda's payload limit, or the documented error response.
async fn read_payload(body: Body) -> Result<Bytes, Rejection> {
    match tokio::time::timeout(
        BODY_READ_TIMEOUT,
        axum::body::to_bytes(body, MAX_PAYLOAD_BYTES),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("Exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."),
        )),
        Err(_) => Err(error_response(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "the request body was not sent in time",
        )),
    }
}

/// Ends the in-flight invocation `request_id`, or says why it cannot.
fn finish(shared: &Shared, request_id: &str) -> Result<(), Rejection> {
    let mut slot = lock(&shared.slot);
    match slot.in_flight.as_deref() {
        Some(current) if current == request_id => {
            slot.in_flight = None;
            Ok(())
        }
        Some(_) => Err(error_response(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "Invalid request ID",
        )),
        None => Err(error_response(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "State transition is not allowed: no invocation is in progress",
        )),
    }
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    body: Body,
) -> Response {
    let body = match read_payload(body).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    if let Err(rejection) = finish(&shared, &request_id) {
        return rejection.into_response();
    }
    runtime_done(&shared, &request_id, "success").await;
    let _ = shared.events.send(RuntimeEvent::Response {
        request_id,
        body,
        at: Instant::now(),
    });
    accepted()
}

fn error_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_payload(body).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    if let Err(rejection) = finish(&shared, &request_id) {
        return rejection.into_response();
    }
    runtime_done(&shared, &request_id, "error").await;
    let error_type = error_type(&headers);
    let _ = shared.events.send(RuntimeEvent::Error {
        request_id,
        error_type,
        body,
        at: Instant::now(),
    });
    accepted()
}

async fn init_error(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_payload(body).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    // As on AWS, an init error is only accepted during init, once: after the first `/next` it is
    // an invalid state transition (and a stray local process cannot fail the next invocation).
    {
        let mut slot = lock(&shared.slot);
        if slot.phase != Phase::Init {
            let from = match slot.phase {
                Phase::InitFailed => "InitError",
                _ => "Ready",
            };
            return error_response(
                StatusCode::FORBIDDEN,
                "InvalidStateTransition",
                &format!("State transition from {from} to InitError failed for runtime"),
            )
            .into_response();
        }
        slot.phase = Phase::InitFailed;
    }
    let _ = shared.events.send(RuntimeEvent::InitError {
        error_type: error_type(&headers),
        body,
    });
    accepted()
}

// ---- the Extensions API ----

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    events: Vec<String>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

async fn extension_register(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(name) = header(&headers, EXTENSION_NAME_HEADER).map(str::to_owned) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "Extension.MissingHeader",
            &format!("the {EXTENSION_NAME_HEADER} header is required"),
        )
        .into_response();
    };
    let body = match axum::body::to_bytes(body, MAX_EXTENSION_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "InvalidRequestFormat",
                &format!("the body is over {MAX_EXTENSION_BODY_BYTES} bytes"),
            )
            .into_response();
        }
    };
    let register: RegisterBody = match serde_json::from_slice(&body) {
        Ok(register) => register,
        Err(err) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "InvalidRequestFormat",
                &format!(
                    "events: the body must be {{\"events\": [\"INVOKE\", \"SHUTDOWN\"]}} ({err})"
                ),
            )
            .into_response();
        }
    };
    let mut events = Vec::new();
    for event in &register.events {
        match ExtensionEventType::parse(event) {
            Some(kind) if !events.contains(&kind) => events.push(kind),
            Some(_) => {}
            None => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "Extension.InvalidEventType",
                    &format!("events: {event:?} is not INVOKE or SHUTDOWN"),
                )
                .into_response();
            }
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let identity = {
        let mut extensions = lock(&shared.extensions);
        if extensions.closed {
            return error_response(
                StatusCode::FORBIDDEN,
                "Extension.RegistrationClosed",
                "extensions register during init only",
            )
            .into_response();
        }
        if extensions.registered.iter().any(|e| e.name == name) {
            return error_response(
                StatusCode::BAD_REQUEST,
                "Extension.InvalidExtensionName",
                &format!("{EXTENSION_NAME_HEADER}: {name:?} is registered already"),
            )
            .into_response();
        }
        if extensions.registered.len() >= MAX_EXTENSIONS {
            return error_response(
                StatusCode::BAD_REQUEST,
                "Extension.TooManyExtensions",
                &format!("a function has at most {MAX_EXTENSIONS} extensions"),
            )
            .into_response();
        }
        extensions.registered.push(ExtensionSlot {
            id: id.clone(),
            name: name.clone(),
            events,
            pending: VecDeque::new(),
            waiting: false,
            telemetry: None,
        });
        extensions.identity.clone()
    };
    let _ = shared
        .events
        .send(RuntimeEvent::ExtensionRegistered { name });
    let mut response = axum::Json(serde_json::json!({
        "functionName": identity.function_name,
        "functionVersion": identity.function_version,
        "handler": identity.handler,
    }))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(EXTENSION_ID_HEADER, value);
    }
    response
}

/// The registered extension that `headers` identify, by name, or the rejection.
fn identify(shared: &Shared, headers: &HeaderMap) -> Result<String, Rejection> {
    let Some(id) = header(headers, EXTENSION_ID_HEADER) else {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            "Extension.MissingHeader",
            &format!("the {EXTENSION_ID_HEADER} header is required"),
        ));
    };
    lock(&shared.extensions)
        .registered
        .iter()
        .find(|e| e.id == id)
        .map(|e| e.name.clone())
        .ok_or_else(|| {
            error_response(
                StatusCode::FORBIDDEN,
                "Extension.UnknownExtensionIdentifier",
                &format!("{EXTENSION_ID_HEADER}: no extension registered as {id:?}"),
            )
        })
}

async fn extension_next(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let name = match identify(&shared, &headers) {
        Ok(name) => name,
        Err(rejection) => return rejection.into_response(),
    };
    let mut announced = false;
    loop {
        let notified = shared.extension_offered.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let taken = {
            let mut extensions = lock(&shared.extensions);
            // Registered extensions are never removed: `identify` found this one.
            extensions
                .registered
                .iter_mut()
                .find(|e| e.name == name)
                .and_then(|slot| {
                    let event = slot.pending.pop_front();
                    slot.waiting = event.is_none();
                    event
                })
        };
        if let Some(event) = taken {
            let mut response = axum::Json(event).into_response();
            if let Ok(value) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
                response
                    .headers_mut()
                    .insert(EXTENSION_EVENT_ID_HEADER, value);
            }
            return response;
        }
        if !announced {
            announced = true;
            let _ = shared.events.send(RuntimeEvent::ExtensionWaiting {
                name: name.clone(),
                at: Instant::now(),
            });
        }
        notified.await;
    }
}

async fn extension_error(
    shared: &Shared,
    headers: &HeaderMap,
    phase: ExtensionErrorPhase,
) -> Response {
    let name = match identify(shared, headers) {
        Ok(name) => name,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(error_type) = header(headers, EXTENSION_ERROR_TYPE_HEADER).map(str::to_owned) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "Extension.MissingHeader",
            &format!("the {EXTENSION_ERROR_TYPE_HEADER} header is required"),
        )
        .into_response();
    };
    let _ = shared.events.send(RuntimeEvent::ExtensionError {
        name,
        phase,
        error_type: Some(error_type),
    });
    accepted()
}

async fn extension_init_error(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    extension_error(&shared, &headers, ExtensionErrorPhase::Init).await
}

async fn extension_exit_error(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    extension_error(&shared, &headers, ExtensionErrorPhase::Exit).await
}

// ---- the Telemetry API (platform.runtimeDone only) ----

/// Delivers `platform.runtimeDone` of `request_id` to every subscribed extension, each in its
/// own task (a slow listener does not hold the runtime's answer).
async fn runtime_done(shared: &Shared, request_id: &str, status: &str) {
    let destinations: Vec<_> = lock(&shared.extensions)
        .registered
        .iter()
        .filter_map(|e| e.telemetry.clone())
        .collect();
    if destinations.is_empty() {
        return;
    }
    let events = [crate::telemetry_api::runtime_done(request_id, status)];
    for destination in destinations {
        let deliverer = shared.telemetry.clone();
        let events = events.clone();
        tokio::spawn(async move { deliverer.deliver(&destination, &events).await });
    }
}

async fn telemetry_subscribe(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let name = match identify(&shared, &headers) {
        Ok(name) => name,
        Err(rejection) => return rejection.into_response(),
    };
    let body = match axum::body::to_bytes(body, MAX_EXTENSION_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "InvalidRequestFormat",
                &format!("the body is over {MAX_EXTENSION_BODY_BYTES} bytes"),
            )
            .into_response();
        }
    };
    let destination = match crate::telemetry_api::parse_subscription(&body) {
        Ok(destination) => destination,
        Err(message) => {
            return error_response(StatusCode::BAD_REQUEST, "ValidationError", &message)
                .into_response();
        }
    };
    if let Some(slot) = lock(&shared.extensions)
        .registered
        .iter_mut()
        .find(|e| e.name == name)
    {
        slot.telemetry = Some(destination);
    }
    (StatusCode::OK, "OK").into_response()
}
