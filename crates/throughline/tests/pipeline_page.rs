//! The APM's `/pipeline` page of a running `throughline collector`: while the upstream (the
//! official opentelemetry-proto Python upstream) refuses, the destination's queue depth, age
//! and retries show there; once it is back, the queue drains and the sends show. Tail
//! sampling's decisions show too.

mod collector_common;

use std::time::{Duration, Instant};

#[path = "../../collector/tests/common/upstream.rs"]
mod upstream;

use collector_common::{now_nanos, start_collector_with};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde_json::json;
use throughline_store::testdata::seeds_like_batch;

/// The number in `data-field="{field}"` of the destination's row.
fn field(page: &str, destination: &str, field: &str) -> u64 {
    let row_start = page
        .find(&format!("data-destination=\"{destination}\""))
        .unwrap_or_else(|| panic!("no row for {destination} in {page}"));
    let row = &page[row_start..];
    let row = &row[..row.find("</tr>").expect("the row ends")];
    let marker = format!("data-field=\"{field}\">");
    let at = row.find(&marker).expect("the field is in the row") + marker.len();
    let text = &row[at..at + row[at..].find('<').expect("the cell ends")];
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{field} = {text:?} is not a number"))
}

fn cell(page: &str, destination: &str, field: &str) -> String {
    let row = &page[page
        .find(&format!("data-destination=\"{destination}\""))
        .expect("row")..];
    let marker = format!("data-field=\"{field}\">");
    let at = row.find(&marker).expect("field") + marker.len();
    row[at..at + row[at..].find('<').expect("cell ends")].to_owned()
}

#[test]
fn the_pipeline_page_shows_the_queue_backing_up_and_draining() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let up = upstream::Upstream::start();
    runtime.block_on(up.control(json!({"mode": "unavailable", "times": -1})));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = up.grpc_url();
    let flags = [
        "--export-otlp",
        url.as_str(),
        "--export-retry-initial-ms",
        "50",
        "--export-retry-max-ms",
        "200",
        "--tail-sampling-ratio",
        "1",
        "--tail-sampling-wait-ms",
        "100",
    ];
    let (_child, addrs) = start_collector_with(dir.path(), &flags);
    let start = now_nanos();
    let target = format!("http://{}", addrs.grpc);
    let spans: u64 = runtime.block_on(async {
        let mut client = TraceServiceClient::connect(target)
            .await
            .expect("gRPC connects");
        let mut spans = 0;
        for batch in 0..10 {
            let request = seeds_like_batch(batch, 8, start);
            spans += request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum::<u64>();
            client.export(request).await.expect("acknowledged");
        }
        spans
    });
    let page_url = format!("http://{}/pipeline", addrs.query);
    let get = |url: &str| -> String {
        runtime.block_on(async {
            let response = reqwest::get(url).await.expect("the page answers");
            assert!(response.status().is_success(), "{}", response.status());
            response.text().await.expect("HTML")
        })
    };
    let wait_for = |done: &dyn Fn(&str) -> bool| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let page = get(&page_url);
            if done(&page) || Instant::now() > deadline {
                return page;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Decided (ratio 1: all kept), queued, refused upstream: the queue holds every span.
    let backed_up =
        wait_for(&|p| field(p, &url, "queue_items") == spans && field(p, &url, "retries") >= 2);
    assert_eq!(field(&backed_up, &url, "queue_items"), spans, "{backed_up}");
    assert!(field(&backed_up, &url, "retries") >= 2);
    assert_eq!(field(&backed_up, &url, "sent_items"), 0);
    assert_ne!(
        cell(&backed_up, &url, "oldest"),
        "–",
        "the oldest entry has an age"
    );
    assert!(
        backed_up.contains("data-decision=\"keep\" data-reason=\"ratio\""),
        "tail sampling's decisions are on the page"
    );

    // Upstream back: the queue drains and the sends show.
    runtime.block_on(up.control(json!({"mode": "ok"})));
    let drained = wait_for(&|p| field(p, &url, "queue_records") == 0);
    assert_eq!(field(&drained, &url, "queue_records"), 0, "{drained}");
    assert_eq!(field(&drained, &url, "sent_items"), spans);
    assert_eq!(field(&drained, &url, "failed_items"), 0);
    assert_eq!(cell(&drained, &url, "oldest"), "–");
    assert_eq!(runtime.block_on(up.stats()).spans, spans);
}
