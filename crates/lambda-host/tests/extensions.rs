//! The Extensions API under the local host, as Lambda runs external extensions: they start and
//! register before the runtime starts, each gets every `INVOKE` and the `SHUTDOWN`, the
//! environment freezes only once the runtime and every extension wait again, and shutdown waits
//! for the extensions to drain. The runtime is AWS's own (`awslambdaric`); the extension is a
//! script written to AWS's documentation (`tests/functions/extension.py`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use throughline_lambda_host::runtime_api::serve_config;
use throughline_lambda_host::{
    Environment, EnvironmentSpec, InvocationOutcome, PlatformLog, RuntimeApi,
};

#[derive(Debug, Default)]
struct Discard;

impl PlatformLog for Discard {
    fn line(&self, _: &str) {}
}

fn functions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/functions")
}

/// The extension script under `name` in `dir` (a symlink: it registers under its file name).
fn extension_named(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::os::unix::fs::symlink(functions_dir().join("extension.py"), &path).expect("symlink");
    path
}

fn spec(out: &Path, extensions: Vec<PathBuf>, work_ms: u64) -> EnvironmentSpec {
    let python = throughline_testkit::python();
    // The runtime notes its start in the same file the extensions note their registration in.
    let runtime = format!(
        "echo runtime-start >> \"$OUT_DIR/order\" && exec {} -m awslambdaric handlers.handler",
        python.display()
    );
    EnvironmentSpec {
        command: vec!["sh".into(), "-c".into(), runtime.into()],
        function_name: "with-extensions".into(),
        function_arn: "arn:aws:lambda:us-east-1:000000000000:function:with-extensions".into(),
        memory_mb: 128,
        region: "us-east-1".into(),
        handler: "handlers.handler".into(),
        timeout: Duration::from_secs(10),
        init_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(5),
        environment: [
            (
                "PYTHONPATH".to_owned(),
                functions_dir().display().to_string(),
            ),
            ("OUT_DIR".to_owned(), out.display().to_string()),
            ("EXTENSION_WORK_MS".to_owned(), work_ms.to_string()),
        ]
        .into(),
        extensions,
        sandbox_ports: Vec::new(),
        log: Arc::new(Discard),
        metrics: None,
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

const BATCH: &[u8] = br#"{"Records": []}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extensions_start_first_see_every_invoke_and_the_environment_waits_for_them() {
    let out = tempfile::tempdir().unwrap();
    let extensions = vec![
        extension_named(out.path(), "ext-a"),
        extension_named(out.path(), "ext-b"),
    ];
    // Each extension works 300 ms after each INVOKE: longer than the function takes.
    let mut env = Environment::start(spec(out.path(), extensions, 300))
        .await
        .expect("the environment starts");
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = format!("req-{n}");
        let outcome = env.invoke(&id, Bytes::from_static(BATCH)).await;
        assert!(
            matches!(outcome, InvocationOutcome::Response(_)),
            "{outcome:?}"
        );
        // The environment froze only after both extensions were done with this INVOKE: had it
        // frozen when the function returned, they could not have written "done".
        for name in ["ext-a", "ext-b"] {
            let log = lines(&out.path().join(format!("{name}.log")));
            assert!(log.contains(&format!("done {id}")), "{name}: {log:?}");
        }
        // SIGSTOP lands asynchronously: the state turns to stopped within moments.
        let mut state = process_state(env.pid());
        for _ in 0..100 {
            if state == Some('T') {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            state = process_state(env.pid());
        }
        assert_eq!(state, Some('T'), "frozen between invocations");
        ids.push(id);
    }
    // Both started at once: they register in either order.
    let mut registered = env.registered_extensions();
    registered.sort();
    assert_eq!(registered, ["ext-a", "ext-b"]);
    env.shut_down().await;

    // Both registered before the runtime started; each saw every INVOKE once, in order, and
    // the SHUTDOWN, and drained before the host killed the environment.
    let order = lines(&out.path().join("order"));
    assert_eq!(order.len(), 3, "{order:?}");
    assert_eq!(order[2], "runtime-start", "{order:?}");
    let mut registered = order[..2].to_vec();
    registered.sort();
    assert_eq!(registered, ["registering ext-a", "registering ext-b"]);
    for name in ["ext-a", "ext-b"] {
        let log = lines(&out.path().join(format!("{name}.log")));
        let mut want = vec!["registered with-extensions handlers.handler".to_owned()];
        for id in &ids {
            want.push(format!("invoke {id}"));
            want.push(format!("done {id}"));
        }
        want.push("shutdown spindown".to_owned());
        want.push("drained".to_owned());
        assert_eq!(log, want, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_that_never_registers_fails_init_and_the_runtime_never_starts() {
    let out = tempfile::tempdir().unwrap();
    let silent = out.path().join("silent");
    std::fs::write(&silent, "#!/bin/sh\nexec sleep 30\n").unwrap();
    std::fs::set_permissions(&silent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut spec = spec(out.path(), vec![silent], 0);
    spec.init_timeout = Duration::from_secs(1);
    let mut env = Environment::start(spec).await.expect("started");
    let outcome = env.invoke("req-0", Bytes::from_static(BATCH)).await;
    match outcome {
        InvocationOutcome::Failed(reason) => {
            assert!(reason.contains("0 of 1 extensions registered"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        lines(&out.path().join("order")).is_empty(),
        "the runtime was not started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_that_exits_before_registering_fails_init_naming_it() {
    let out = tempfile::tempdir().unwrap();
    let mut env = Environment::start(spec(out.path(), vec!["/bin/false".into()], 0))
        .await
        .expect("started");
    match env.invoke("req-0", Bytes::from_static(BATCH)).await {
        InvocationOutcome::Failed(reason) => assert!(
            reason.starts_with("extension false exited before registering"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

// ---- the API's answers to bad requests ----

async fn post(
    api: &RuntimeApi,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Option<String>, serde_json::Value) {
    request(api, "POST", path, headers, body).await
}

/// One HTTP/1.1 request over a fresh connection: status, the extension id header, JSON body.
async fn request(
    api: &RuntimeApi,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Option<String>, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(api.addr()).await.unwrap();
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let id = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("lambda-extension-identifier:")
                .map(|_| l.split_once(':').map(|(_, v)| v.trim().to_owned()))
        })
        .flatten();
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, id, json)
}

#[tokio::test]
async fn bad_extension_requests_are_refused_naming_what_is_wrong() {
    let (api, _events) = RuntimeApi::start_with(serve_config()).await.unwrap();
    let register = "/2020-01-01/extension/register";
    let events = r#"{"events": ["INVOKE", "SHUTDOWN"]}"#;

    let (status, _, body) = post(&api, register, &[], events).await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (400, Some("Extension.MissingHeader"))
    );
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Lambda-Extension-Name")
    );

    let (status, _, body) = post(
        &api,
        register,
        &[("Lambda-Extension-Name", "x")],
        r#"{"events": ["INVOKE", "LOGS"]}"#,
    )
    .await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (400, Some("Extension.InvalidEventType"))
    );
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .starts_with("events: \"LOGS\"")
    );

    let (status, _, body) = post(
        &api,
        register,
        &[("Lambda-Extension-Name", "x")],
        "{not json",
    )
    .await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (400, Some("InvalidRequestFormat"))
    );
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .starts_with("events:")
    );

    let (status, id, _) = post(&api, register, &[("Lambda-Extension-Name", "x")], events).await;
    assert_eq!(status, 200);
    assert!(id.is_some_and(|id| !id.is_empty()));
    let (status, _, body) = post(&api, register, &[("Lambda-Extension-Name", "x")], events).await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (400, Some("Extension.InvalidExtensionName"))
    );

    let (status, _, body) = request(
        &api,
        "GET",
        "/2020-01-01/extension/event/next",
        &[("Lambda-Extension-Identifier", "not-registered")],
        "",
    )
    .await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (403, Some("Extension.UnknownExtensionIdentifier"))
    );
    let (status, _, body) = request(&api, "GET", "/2020-01-01/extension/event/next", &[], "").await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (400, Some("Extension.MissingHeader"))
    );

    api.close_registration();
    let (status, _, body) =
        post(&api, register, &[("Lambda-Extension-Name", "late")], events).await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (403, Some("Extension.RegistrationClosed"))
    );
}
