//! The Database page, the marked waterfall and errors at a glance in a real headless chromium:
//! an N+1 trace (7 queries under `GET /v1/videos`), a near miss (4 queries), a slow query that
//! found its pool exhausted, and the two-service trace whose email send fails. No page may log a
//! console error or break the Content-Security-Policy.
//!
//! `APM_SCREENSHOTS=1 cargo test -p throughline-apm --test browser_database` refreshes
//! `docs/screenshots/{database,trace-n-plus-one,errors}.png`.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use opentelemetry_proto::tonic::trace::v1::{Status, status};
use opentelemetry_semantic_conventions::attribute as semconv;
use support::cdp::Browser;
use support::trace_data::{self, LAMBDA, TRACE_HEX};
use throughline_store::TraceReader;
use throughline_store::testdata::{QueryLoopTrace, export, kv};

fn screenshot_dir() -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    if std::env::var_os("APM_SCREENSHOTS").is_some() {
        let dir = throughline_testkit::workspace_root().join("docs/screenshots");
        std::fs::create_dir_all(&dir)?;
        Ok((dir, None))
    } else {
        let tmp = tempfile::tempdir()?;
        Ok((tmp.path().to_owned(), Some(tmp)))
    }
}

fn expect_text(browser: &mut Browser, expected: &[&str]) -> anyhow::Result<String> {
    let text = browser.text()?;
    for e in expected {
        ensure!(
            text.contains(e),
            "{} does not show {e:?}; its text is:\n{text}",
            browser.url()
        );
    }
    Ok(text)
}

fn count(b: &mut Browser, selector: &str) -> anyhow::Result<u64> {
    b.eval(&format!("document.querySelectorAll({selector:?}).length"))?
        .as_u64()
        .with_context(|| format!("counting {selector}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_page_and_the_marked_waterfall_show_the_n_plus_one() -> anyhow::Result<()> {
    let t0 = trace_data::base_time();
    let n_plus_one = QueryLoopTrace::new(21, t0, 7, 9_000);
    let near_miss = QueryLoopTrace::new(22, t0 + 1_000_000, 4, 20_000);
    let mut slow = QueryLoopTrace::new(23, t0 + 2_000_000, 0, 120_000).spans();
    slow[0].attributes[2] = kv(
        semconv::DB_QUERY_TEXT,
        "SELECT id, title FROM videos WHERE title LIKE '%cat%'",
    );
    slow[0].attributes.extend([
        kv("db.slow_query", "true"),
        kv("db.missing_index", "idx_videos_title"),
        kv("db.rows_scanned", 10_000i64),
        kv("db.connection.pool.exhausted", "true"),
        kv("db.connection.pool.size", 20i64),
    ]);
    slow[0].status = Some(Status {
        code: status::StatusCode::Error as i32,
        message: "pool timed out".into(),
    });
    let (reader, _data) = support::filled_store(vec![
        n_plus_one.request(),
        near_miss.request(),
        export("videos-api", slow),
        trace_data::two_service_trace(t0),
    ])?;
    let reader: Arc<dyn TraceReader> = reader;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, throughline_apm::router(reader)).await;
    });
    let base = format!("http://{addr}");
    let trace_hex = n_plus_one.trace_id.to_string();
    let root_hex = n_plus_one.root_span_id().to_string();
    let profile = tempfile::tempdir()?;
    let (shots, _keep) = screenshot_dir()?;
    let problems = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<support::cdp::ConsoleProblem>> {
        let mut b = Browser::launch(profile.path())?;

        // The Database page: the pattern found once, the statement classes by total time, the
        // slow query with the seed's attributes, the exhausted pool.
        b.goto(&format!("{base}/database?lookback=1h"))?;
        expect_text(&mut b, &[
            "Patterns found",
            "N+1 queries",
            "SELECT … FROM placements WHERE video_id = ?",
            "Statements by total time",
            "SELECT slot, ad_id FROM placements WHERE video_id = ?",
            "SELECT id, title FROM videos LIMIT ?",
            "SELECT id, title FROM videos WHERE title LIKE ?",
            "db.missing_index=idx_videos_title",
            "db.rows_scanned=10000",
            "Connection pools",
        ])?;
        ensure!(count(&mut b, "[data-testid=findings] tbody tr")? == 1, "one pattern row (the near miss is not one)");
        let first = b.eval("document.querySelector('[data-testid=statements] tbody tr code').textContent")?;
        ensure!(first == "SELECT slot, ad_id FROM placements WHERE video_id = ?", "the costliest class is not first: {first}");
        ensure!(count(&mut b, "[data-testid=slow-queries] tbody tr")? == 1, "one slow query at 100 ms");
        ensure!(count(&mut b, "[data-testid=pools] tbody tr.err")? == 1, "the exhausted pool is not marked");
        b.screenshot(&shots.join("database.png"), 1100.0)?;
        // A lower threshold lists more slow queries.
        b.goto(&format!("{base}/database?lookback=1h&slowQueryMs=20"))?;
        ensure!(count(&mut b, "[data-testid=slow-queries] tbody tr")? == 6, "20 ms lists the near miss's five queries too");

        // The pattern opens its trace: the seven repeats are marked, the first row says what it is.
        b.goto(&format!("{base}/database?lookback=1h"))?;
        b.click_and_wait("[data-testid=findings] tbody a")?;
        ensure!(b.url().contains(&format!("/trace/{trace_hex}")), "the finding led to {}", b.url());
        ensure!(count(&mut b, ".rows .r.f")? == 7, "seven rows are marked");
        let note = b.eval("document.querySelector('[data-testid=finding-note]').textContent")?;
        ensure!(
            note == "7 × `SELECT … FROM placements WHERE video_id = ?` under `GET /v1/videos`, 63.0 ms: load them in one query",
            "the finding's text: {note}"
        );
        let note_row = b.eval("document.querySelector('[data-testid=finding-note]').closest('.r').id")?;
        ensure!(note_row == format!("s-{}", n_plus_one.item_span_id(0)).as_str(), "the note is not on the first repeat: {note_row}");
        expect_text(&mut b, &["Found in this trace"])?;
        ensure!(count(&mut b, ".trace-title ~ [data-testid=trace-findings] [data-testid=finding-badge]")? == 1, "the trace header has no finding badge");
        ensure!(b.eval(&format!("document.querySelector('#s-{root_hex}').classList.contains('f')"))? == false, "the parent is not a repeat");
        b.screenshot(&shots.join("trace-n-plus-one.png"), 700.0)?;

        // Search results: the badge on the N+1 trace only, the first error on the failing one.
        b.goto(&format!("{base}/search?lookback=1h"))?;
        let badged = b.eval("[...document.querySelectorAll('[data-testid=finding-badge]')].map(e => e.closest('tr').querySelector('a.tid').textContent).join(',')")?;
        ensure!(badged == trace_hex.as_str(), "badges on {badged}, expected {trace_hex}");
        let first_error = b.eval(&format!("document.querySelector(\"a[href='/trace/{TRACE_HEX}']\").closest('tr').querySelector('[data-testid=first-error]')?.textContent"))?;
        ensure!(
            first_error == format!("{LAMBDA} · send welcome email: SmtpError: connection refused").as_str(),
            "the first error in the results: {first_error}"
        );

        // The trace header lists the error; its waterfall row shows the message without a click.
        b.goto(&format!("{base}/trace/{TRACE_HEX}"))?;
        let listed = b.eval("document.querySelector('[data-testid=trace-errors] li').textContent")?;
        ensure!(
            listed
                == format!("{LAMBDA} send welcome email: SmtpError: connection refused (status: smtp: connection refused)").as_str(),
            "the header's error list: {listed}"
        );
        let row = b.eval("document.querySelector('#s-00000000000000c3 [data-testid=row-error]')?.textContent")?;
        ensure!(row == "SmtpError: connection refused", "the row's error: {row}");

        // The Errors view groups by exception and message.
        b.goto(&format!("{base}/errors?lookback=1h"))?;
        expect_text(&mut b, &["SmtpError", "connection refused", "pool timed out", "send welcome email"])?;
        ensure!(count(&mut b, "[data-testid=error-groups] tbody tr")? == 2, "two error groups");
        b.screenshot(&shots.join("errors.png"), 600.0)?;

        // The service: time in the database against time serving.
        b.goto(&format!("{base}/services/videos-api"))?;
        expect_text(&mut b, &["Time in the database:", "in 14 queries", "serving 3 requests"])?;

        Ok(std::mem::take(&mut b.problems))
    })
    .await??;
    if !problems.is_empty() {
        bail!("the pages logged errors: {problems:#?}");
    }
    Ok(())
}
