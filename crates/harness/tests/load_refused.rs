//! `Expect::Refused(code)`: an answer with that status counts as refused on purpose, any other
//! as an error naming both statuses.

use std::sync::Arc;

use throughline_harness::{Expect, LoadPlan, Request, Scenario, load::drive};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A server that answers every request with `status` and an empty JSON object.
async fn answering(status: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                // One request per connection, read whole enough for a small POST.
                let _ = socket.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

struct Conflicting;

impl Scenario for Conflicting {
    fn request(&self, _run_id: &str, _n: u64, _invalid_ratio: f64) -> Request {
        Request {
            method: reqwest::Method::POST,
            path: "/things".into(),
            body: Some(serde_json::json!({"overlaps": true})),
            expect: Expect::Refused(409),
        }
    }
}

fn plan() -> LoadPlan {
    LoadPlan {
        requests: 5,
        concurrency: 1,
        rate: None,
        duration: None,
        invalid_ratio: 0.0,
        quiet: true,
    }
}

#[tokio::test]
async fn the_expected_refusal_is_counted_and_any_other_answer_is_an_error() {
    let target = answering("409 Conflict").await;
    let report = drive(&target, Arc::new(Conflicting), &plan())
        .await
        .unwrap();
    assert_eq!((report.rejected_as_expected, report.accepted), (5, 0));
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    let target = answering("201 Created").await;
    let report = drive(&target, Arc::new(Conflicting), &plan())
        .await
        .unwrap();
    assert_eq!(report.rejected_as_expected, 0);
    assert_eq!(
        report.errors.get("http 201 where 409 was expected"),
        Some(&5)
    );
}
