//! The S3 document store against a real S3-protocol server (moto's standalone server, from the
//! interop venv): the worker is configured from its environment map only, stores one profile per
//! customer under the URL's prefix, and an unreachable endpoint fails the record, not the batch.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::{attr, event, record, setup};
use onboarding_lambda::{Invocation, names};
use opentelemetry::trace::Status;
use opentelemetry_sdk::trace::SpanData;
use throughline_testkit::{ChildGuard, free_loopback_addr, python, wait_for_port};

/// The access key pair moto accepts; any value works, these are what the task's peers use.
const TEST_CREDENTIALS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
];

/// A moto S3 server on a free loopback port, killed when dropped.
struct Moto {
    addr: SocketAddr,
    _child: ChildGuard,
}

impl Moto {
    /// Starts the server and creates `bucket` with boto3.
    fn start(bucket: &str) -> Moto {
        let python = python();
        let addr = free_loopback_addr();
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(addr.port().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto.server with {}: {e}", python.display()));
        let moto = Moto {
            addr,
            _child: ChildGuard(child),
        };
        assert!(
            wait_for_port(addr, Duration::from_secs(30)),
            "moto.server did not listen on {addr} within 30 s (is moto[server] in the venv?)"
        );
        moto.boto3(
            "s3.create_bucket(Bucket=sys.argv[2])",
            &[bucket],
            "create the bucket",
        );
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `code` with `s3`, a boto3 client of this server, and `sys.argv[2..]` = `args`;
    /// returns its standard output.
    fn boto3(&self, code: &str, args: &[&str], what: &str) -> String {
        let script = format!(
            "import boto3, json, sys\n\
             s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\n\
             {code}\n"
        );
        let out = Command::new(python())
            .arg("-c")
            .arg(script)
            .arg(self.endpoint())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("boto3 could not {what}: {e}"));
        assert!(
            out.status.success(),
            "boto3 could not {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every object under `prefix` in `bucket`, parsed as JSON, by key.
    fn documents(&self, bucket: &str, prefix: &str) -> HashMap<String, serde_json::Value> {
        let out = self.boto3(
            "listed = s3.list_objects_v2(Bucket=sys.argv[2], Prefix=sys.argv[3])\n\
             print(json.dumps({o['Key']: json.loads(s3.get_object(Bucket=sys.argv[2], \
             Key=o['Key'])['Body'].read()) for o in listed.get('Contents', [])}))",
            &[bucket, prefix],
            "read the documents back",
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

fn status_text(s: &SpanData) -> String {
    match &s.status {
        Status::Error { description } => description.to_string(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn profiles_are_stored_in_s3_configured_from_the_environment_map() {
    let moto = tokio::task::spawn_blocking(|| Moto::start("docs"))
        .await
        .unwrap();
    let endpoint = moto.endpoint();
    let mut env = vec![
        ("ONBOARDING_DOCUMENTS_URL", "s3://docs/onboarding"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
    ];
    env.extend(TEST_CREDENTIALS);
    let (_dir, worker, exporter, _provider) = setup(&env);

    let out = worker
        .handle(
            event(vec![
                record(0, "00f067aa0ba902b0"),
                record(1, "00f067aa0ba902b1"),
            ]),
            Invocation::default(),
        )
        .await;
    assert!(
        out.batch_item_failures.is_empty(),
        "{:?}",
        out.batch_item_failures
    );

    let documents = tokio::task::spawn_blocking(move || moto.documents("docs", "onboarding/"))
        .await
        .unwrap();
    let mut keys: Vec<_> = documents.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "onboarding/profiles/C-0.json",
            "onboarding/profiles/C-1.json"
        ]
    );
    for n in 0..2 {
        let profile = &documents[&format!("onboarding/profiles/C-{n}.json")];
        assert_eq!(profile["customer_id"], format!("C-{n}"));
        assert_eq!(profile["request_id"], format!("r{n}"));
        assert!(
            !profile.to_string().contains("secret.example"),
            "an email in the stored profile: {profile}"
        );
    }

    let spans = exporter.get_finished_spans().unwrap();
    let stored: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "store customer documents")
        .collect();
    assert_eq!(stored.len(), 2);
    for span in stored {
        assert_eq!(
            attr(span, names::DOCUMENT_COUNT),
            Some(&opentelemetry::Value::I64(1))
        );
        assert!(
            matches!(attr(span, names::DOCUMENT_BYTES), Some(opentelemetry::Value::I64(n)) if *n > 0),
            "{:?}",
            span.attributes
        );
        assert_eq!(span.status, Status::Unset);
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_the_record_at_the_documents_step() {
    const SECRET: &str = "s3cr3t-never-shown";
    // Nothing listens here: the port was free a moment ago and nobody binds it.
    let endpoint = format!("http://{}", free_loopback_addr());
    let (dir, worker, exporter, _provider) = setup(&[
        ("ONBOARDING_DOCUMENTS_URL", "s3://docs/onboarding"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDNEVERSHOWN"),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        // One attempt: object_store would otherwise back off and retry a refused connection.
        ("AWS_MAX_ATTEMPTS", "1"),
    ]);

    let out = worker
        .handle(
            event(vec![record(0, "00f067aa0ba902b0")]),
            Invocation::default(),
        )
        .await;
    let ids: Vec<_> = out
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(ids, ["msg-0"]);

    let spans = exporter.get_finished_spans().unwrap();
    let consumer = spans
        .iter()
        .find(|s| s.name == "process onboarding-queue")
        .unwrap();
    assert_eq!(
        attr(consumer, names::FAILED_STEP)
            .map(|v| v.to_string())
            .as_deref(),
        Some("documents")
    );
    let documents = spans
        .iter()
        .find(|s| s.name == "store customer documents")
        .unwrap();
    let message = status_text(documents);
    assert!(message.starts_with("documents: "), "{message}");
    assert!(
        spans.iter().all(|s| s.name != "UPDATE customers"),
        "the steps after documents ran"
    );

    let detail: String = rusqlite::Connection::open(dir.path().join("db.sqlite3"))
        .unwrap()
        .query_row(
            "SELECT status || ': ' || status_detail FROM customers WHERE customer_id = 'C-0'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(detail.starts_with("failed: documents: "), "{detail}");
    for text in [message, status_text(consumer), detail] {
        assert!(
            !text.contains(SECRET) && !text.contains("AKIDNEVERSHOWN"),
            "{text}"
        );
    }
}
