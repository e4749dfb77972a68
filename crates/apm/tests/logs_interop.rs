//! Interop: the Python OpenTelemetry SDK's OTLP log exporter (gRPC and HTTP/protobuf) sends log
//! records beside its spans to a collector serving the APM; the log API gives them back by trace,
//! severity and text, the trace view shows each under its span and in the trace's list, and the
//! Logs page links a record to its trace.

use std::sync::Arc;

use throughline_collector::{Collector, CollectorConfig, RunningCollector};
use throughline_store::{SpanSink, Store, StoreConfig, TraceReader};

struct Running {
    collector: RunningCollector,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = StoreConfig::new(dir.path());
    config.settle_secs = 0;
    let store = Arc::new(Store::open(config).expect("store opens"));
    let reader: Arc<dyn TraceReader> = store.clone();
    let sink: Arc<dyn SpanSink> = store;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let config = CollectorConfig {
        grpc_addr: loopback,
        http_addr: loopback,
        query_addr: loopback,
        ..CollectorConfig::default()
    };
    let pages = throughline_apm::router(Arc::clone(&reader));
    let collector = Collector::start(config, sink, reader, Some(pages))
        .await
        .expect("collector starts");
    Running {
        collector,
        _dir: dir,
    }
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("the collector answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// Runs the Python peer; returns (trace id, child span id, root span id).
async fn python_peer(mode: &str, endpoint: &str, service: &str) -> (String, String, String) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp_log_peer.py");
    let python = tokio::task::spawn_blocking(throughline_testkit::python)
        .await
        .expect("venv set-up");
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .args([mode, endpoint, service])
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "python peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines().map(str::to_owned);
    let mut next = || lines.next().expect("the peer prints three ids");
    (next(), next(), next())
}

#[tokio::test]
async fn python_sdk_log_records_appear_under_their_span_and_in_the_log_search() {
    let c = start().await;
    let query = format!("http://{}", c.collector.query_addr);
    for (mode, endpoint) in [
        ("grpc", format!("http://{}", c.collector.grpc_addr)),
        ("http", format!("http://{}", c.collector.http_addr)),
    ] {
        let service = format!("py-payments-{mode}");
        let (trace, child, root) = python_peer(mode, &endpoint, &service).await;

        // The API: the trace's two records, newest first, with severity, attributes and ids.
        let (status, body) = get(&format!("{query}/api/throughline/logs?traceID={trace}")).await;
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        let rows = json["data"].as_array().expect("data");
        assert_eq!(rows.len(), 2, "{mode}: {body}");
        assert_eq!(rows[0]["body"], "card declined for order ord-42", "{body}");
        assert_eq!(rows[0]["severityText"], "WARN", "{body}");
        assert_eq!(rows[0]["severityNumber"], 13, "{body}");
        assert_eq!(rows[0]["spanID"], child.as_str(), "{body}");
        assert_eq!(rows[0]["service"], service.as_str(), "{body}");
        assert!(
            rows[0]["attributes"]
                .as_array()
                .expect("attributes")
                .iter()
                .any(|a| a[0] == "order.id" && a[1] == "ord-42"),
            "{body}"
        );
        assert_eq!(rows[1]["body"], "charge requested", "{body}");
        assert_eq!(rows[1]["spanID"], root.as_str(), "{body}");

        // Filters: severity, service, text, span.
        let (_, errors) = get(&format!(
            "{query}/api/throughline/logs?service={service}&severity=error"
        ))
        .await;
        let errors: serde_json::Value = serde_json::from_str(&errors).expect("json");
        let errors = errors["data"].as_array().expect("data");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0]["body"], "nightly settlement file missing");
        assert!(
            errors[0].get("traceID").is_none(),
            "logged outside any span"
        );
        let (_, by_text) = get(&format!(
            "{query}/api/throughline/logs?service={service}&q=DECLINED"
        ))
        .await;
        assert!(
            by_text.contains("ord-42") && !by_text.contains("charge requested"),
            "{by_text}"
        );
        let (_, by_span) = get(&format!(
            "{query}/api/throughline/logs?traceID={trace}&spanID={root}"
        ))
        .await;
        assert!(
            by_span.contains("charge requested") && !by_span.contains("ord-42"),
            "{by_span}"
        );

        // The trace view: each record under its own span's row, in the trace's list, and in the
        // selected span's detail.
        let (status, page) = get(&format!("{query}/trace/{trace}")).await;
        assert_eq!(status, 200);
        let child_row = page
            .find(&format!("id=\"s-{child}\""))
            .expect("the child's row");
        let root_row = page
            .find(&format!("id=\"s-{root}\""))
            .expect("the root's row");
        let declined = page
            .find("card declined for order ord-42")
            .expect("the warning");
        let requested = page.find("charge requested").expect("the info");
        assert!(
            root_row < requested && requested < child_row,
            "the info under the root"
        );
        assert!(child_row < declined, "the warning under the child");
        let list = page
            .find("data-testid=\"trace-logs\"")
            .expect("the trace's logs");
        assert!(
            page[list..].contains("card declined") && page[list..].contains("charge requested")
        );
        assert!(
            page[list..].contains(&format!("href=\"?span={child}#span-logs\"")),
            "a record of the list links to its span"
        );
        let (_, detail) = get(&format!("{query}/trace/{trace}?span={child}")).await;
        let at = detail
            .find("data-testid=\"span-logs\"")
            .expect("the span's logs");
        let section = &detail[at..at + detail[at..].find("</section>").expect("end")];
        assert!(section.contains("card declined") && !section.contains("charge requested"));

        // The Logs page: the record and a link to its trace at its span.
        let (status, logs_page) = get(&format!("{query}/logs?service={service}&q=declined")).await;
        assert_eq!(status, 200);
        assert!(
            logs_page.contains("card declined for order ord-42"),
            "{logs_page}"
        );
        assert!(
            logs_page.contains(&format!("href=\"/trace/{trace}?span={child}#s-{child}\"")),
            "{logs_page}"
        );
    }
}

#[tokio::test]
async fn a_bad_log_search_parameter_is_a_400_naming_it() {
    let c = start().await;
    let query = format!("http://{}", c.collector.query_addr);
    for (params, name) in [
        ("severity=loud", "severity"),
        ("traceID=nothex", "traceID"),
        ("spanID=zz", "spanID"),
        ("lookback=soon", "lookback"),
        ("limit=100000", "limit"),
    ] {
        let (status, body) = get(&format!("{query}/api/throughline/logs?{params}")).await;
        assert_eq!(status, 400, "{params}: {body}");
        assert!(body.contains(name), "{params}: {body}");
        let (status, page) = get(&format!("{query}/logs?{params}")).await;
        assert_eq!(status, 400, "{params}: {page}");
        assert!(page.contains(name), "{params}: {page}");
    }
}
