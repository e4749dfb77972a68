//! The APM pages in a real headless chromium, over a store filled with a trace that crosses an
//! HTTP hop and a queue hop: what a person looks for is on each page, and no page logs a console
//! error or throws.
//!
//! `APM_SCREENSHOTS=1 cargo test -p throughline-apm --test browser` also refreshes the screenshots
//! in `docs/screenshots/` (otherwise they go to a temporary folder).

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use support::cdp::Browser;
use support::trace_data::{
    self, API, CONSUMER_SPAN_HEX, LAMBDA, ORPHAN_TRACE_HEX, QUEUE, QUEUE_TEXT, TRACE_HEX, USER_ID,
};
use throughline_store::TraceReader;

const BIG_TRACE_HEX: &str = "00000000000000000000000000b16b16";
const BIG_TRACE_SPANS: usize = 10_000;

async fn serve(reader: Arc<dyn TraceReader>) -> anyhow::Result<SocketAddr> {
    serve_with(reader, throughline_apm::OtlpEndpoints::default()).await
}

async fn serve_with(
    reader: Arc<dyn TraceReader>,
    endpoints: throughline_apm::OtlpEndpoints,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, throughline_apm::router_with(reader, endpoints)).await;
    });
    Ok(addr)
}

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

/// Checks the page text holds every expected string, naming the page and the missing one.
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

fn status(browser: &mut Browser) -> anyhow::Result<u64> {
    browser
        .eval("performance.getEntriesByType('navigation')[0].responseStatus")?
        .as_u64()
        .context("navigation response status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_the_trace_across_http_and_queue_hops() -> anyhow::Result<()> {
    let (reader, _data) = support::filled_store(vec![
        trace_data::two_service_trace(trace_data::base_time()),
        trace_data::big_trace(
            trace_data::base_time() - 60_000_000_000,
            BIG_TRACE_HEX.parse::<throughline_store::TraceId>()?.0,
            BIG_TRACE_SPANS,
        ),
        trace_data::orphan_trace(trace_data::base_time() - 120_000_000_000),
    ])?;
    let addr = serve(reader).await?;
    let base = format!("http://{addr}");
    let profile = tempfile::tempdir()?;
    let (shots, _keep) = screenshot_dir()?;
    // The browser client blocks on its pipe: run it off the runtime's workers.
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<support::cdp::ConsoleProblem>> {
        let mut b = Browser::launch(profile.path())?;

        // Search: `/` redirects here, and both services and the trace are listed.
        b.goto(&format!("{base}/"))?;
        ensure!(b.url().ends_with('/') || b.url().contains("/search"), "{}", b.url());
        expect_text(&mut b, &[API, LAMBDA, &TRACE_HEX[..16], "POST /signup", "whole", "error"])?;
        ensure!(b.eval("location.pathname")? == "/search", "/ did not redirect to /search");
        b.screenshot(&shots.join("search.png"), 900.0)?;

        // Find the trace by the second service, then open it from the results.
        b.goto(&format!("{base}/search?service={LAMBDA}&lookback=1h"))?;
        expect_text(&mut b, &[&TRACE_HEX[..16]])?;
        b.click_and_wait(&format!("a[href='/trace/{TRACE_HEX}']"))?;
        ensure!(b.url().contains(&format!("/trace/{TRACE_HEX}")), "the result link led to {}", b.url());

        // The waterfall: both services, the queue time on the consumer row, the error marked.
        let text = expect_text(&mut b, &[API, LAMBDA, "onboarding-queue process", &format!("queued {QUEUE_TEXT}"), "send welcome email"])?;
        ensure!(text.contains("error"), "the failing span is not marked");
        let rows = b.eval("document.querySelectorAll('.rows .r').length")?;
        ensure!(rows == 7, "the waterfall shows {rows} rows, expected 7");
        let queue_row = b.eval(&format!("document.querySelector('#s-{CONSUMER_SPAN_HEX} [data-testid=queue-time]')?.textContent"))?;
        ensure!(queue_row == format!("queued {QUEUE_TEXT}").as_str(), "queue time is not on the consumer row: {queue_row}");

        // Span detail: open the consumer row, see queue time, attributes and resource.
        b.click_and_wait(&format!("#s-{CONSUMER_SPAN_HEX} a"))?;
        let detail = b.eval("document.querySelector('[data-testid=span-detail]')?.innerText")?;
        let detail = detail.as_str().context("the span detail panel is missing")?.to_owned();
        for want in ["Queue time", QUEUE_TEXT, "messaging.destination.name", QUEUE, USER_ID, "cloud.region", "eu-west-1", "consumer"] {
            ensure!(detail.contains(want), "span detail lacks {want:?}:\n{detail}");
        }
        b.screenshot(&shots.join("trace.png"), 1000.0)?;

        // The failing span's exception with its stack.
        b.goto(&format!("{base}/trace/{TRACE_HEX}?span=00000000000000c3"))?;
        expect_text(&mut b, &["SmtpError: connection refused", "mailer.rs:42", "smtp: connection refused"])?;

        // A trace id typed in the header box opens its trace.
        b.goto(&format!("{base}/map"))?;
        b.press("/")?;
        ensure!(b.eval("document.activeElement.id")? == "tid", "'/' does not focus the trace-id box");
        b.type_and_submit(TRACE_HEX)?;
        ensure!(b.url().ends_with(&format!("/trace/{TRACE_HEX}")), "the trace-id box led to {}", b.url());

        // Service map: both services and the queue between them, with labelled edges.
        b.goto(&format!("{base}/map"))?;
        let kinds = b.eval("[...document.querySelectorAll('[data-testid=map-node]')].map(n => n.dataset.kind + ':' + n.dataset.name).sort().join(',')")?;
        let kinds = kinds.as_str().unwrap_or_default().to_owned();
        for want in [format!("service:{API}"), format!("service:{LAMBDA}"), format!("queue:aws_sqs/{QUEUE}")] {
            ensure!(kinds.contains(&want), "the map lacks {want}: {kinds}");
        }
        let left = |b: &mut Browser, name: &str| -> anyhow::Result<f64> {
            b.eval(&format!("[...document.querySelectorAll('[data-testid=map-node]')].find(n => n.dataset.name.endsWith('{name}')).getBBox().x"))?
                .as_f64()
                .with_context(|| format!("no map node {name}"))
        };
        let (api_x, queue_x, lambda_x) = (left(&mut b, API)?, left(&mut b, QUEUE)?, left(&mut b, LAMBDA)?);
        ensure!(api_x < queue_x && queue_x < lambda_x, "the map is not laid out by call direction: {api_x} {queue_x} {lambda_x}");
        expect_text(&mut b, &["/min"])?;
        ensure!(b.eval("document.querySelector('.edge text').textContent.includes('p95')")? == true, "edges lack p95");
        b.screenshot(&shots.join("map.png"), 900.0)?;
        b.click_and_wait("[data-testid=map-node][data-kind=queue]")?;
        ensure!(b.url().contains("/search?"), "the queue node does not open a search: {}", b.url());
        expect_text(&mut b, &[&TRACE_HEX[..16]])?;

        // Services: rate, errors, latency charts per service and per operation.
        b.goto(&format!("{base}/services"))?;
        expect_text(&mut b, &[API, LAMBDA, "Calls", "p95"])?;
        let charts = b.eval("document.querySelectorAll('figure.chart svg').length")?.as_u64().unwrap_or(0);
        ensure!(charts >= 6, "expected three charts per service, found {charts}");
        b.screenshot(&shots.join("services.png"), 900.0)?;
        b.click_and_wait(&format!("a[href='/services/{API}']"))?;
        expect_text(&mut b, &["requests served", "POST /signup", "onboarding-queue send"])?;

        // Integrity.
        b.goto(&format!("{base}/integrity"))?;
        expect_text(&mut b, &["Trace integrity", "Whole", "Incomplete", ORPHAN_TRACE_HEX, "orphan span", "missing root span"])?;
        b.screenshot(&shots.join("integrity.png"), 900.0)?;

        // A 10k-span trace renders collapsed and expands.
        b.goto(&format!("{base}/trace/{BIG_TRACE_HEX}"))?;
        let all = b.eval("document.querySelectorAll('.rows .r').length")?.as_u64().unwrap_or(0);
        ensure!(all == BIG_TRACE_SPANS as u64, "the big trace has {all} rows");
        let visible = b.eval("document.querySelectorAll('.rows .r:not(.h)').length")?.as_u64().unwrap_or(0);
        ensure!(visible < all / 10, "the big trace is not collapsed: {visible} rows visible");
        b.eval("document.querySelector('[data-action=expand-all]').click()")?;
        let expanded = b.eval("document.querySelectorAll('.rows .r:not(.h)').length")?.as_u64().unwrap_or(0);
        ensure!(expanded == all, "expand all shows {expanded} of {all} rows");
        b.eval("document.querySelector('.rows .r[data-d=\"0\"] button.t').click()")?;
        let collapsed = b.eval("document.querySelectorAll('.rows .r:not(.h)').length")?.as_u64().unwrap_or(0);
        ensure!(collapsed == 1, "collapsing the root leaves {collapsed} rows visible");

        let mut problems = std::mem::take(&mut b.problems);

        // Errors that say what was wrong (the browser logs the 4xx itself: expected here).
        b.goto(&format!("{base}/trace/0000000000000000000000000000dead"))?;
        ensure!(status(&mut b)? == 404, "an unknown trace is not a 404");
        expect_text(&mut b, &["Trace not found", "no trace 0000000000000000000000000000dead"])?;
        b.screenshot(&shots.join("not-found.png"), 500.0)?;
        b.goto(&format!("{base}/search?minDuration=soon"))?;
        ensure!(status(&mut b)? == 400, "a bad parameter is not a 400");
        expect_text(&mut b, &["minDuration: \"soon\" is not a duration"])?;
        problems.extend(b.problems.drain(..).filter(|p| !p.text.contains("status of 40")));
        Ok(problems)
    })
    .await??;
    if !result.is_empty() {
        bail!("the pages logged errors: {result:#?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_store_explains_how_to_send_traces() -> anyhow::Result<()> {
    let (reader, _data) = support::filled_store(Vec::new())?;
    // A collector on other ports: the help names them, not the defaults.
    let endpoints = throughline_apm::OtlpEndpoints::from_addrs(
        "127.0.0.1:14317".parse()?,
        "127.0.0.1:14318".parse()?,
    );
    let addr = serve_with(reader, endpoints).await?;
    let profile = tempfile::tempdir()?;
    let problems = tokio::task::spawn_blocking(
        move || -> anyhow::Result<Vec<support::cdp::ConsoleProblem>> {
            let mut b = Browser::launch(profile.path())?;
            for page in ["/search", "/map", "/services", "/integrity"] {
                b.goto(&format!("http://{addr}{page}"))?;
                expect_text(
                    &mut b,
                    &[
                        "No traces yet",
                        "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14317",
                        "over HTTP on http://127.0.0.1:14318",
                    ],
                )?;
            }
            let problems = std::mem::take(&mut b.problems);
            // The harness itself must see what it guards against: a console error, a throw, and
            // a Content-Security-Policy violation (an injected inline script is refused, so a
            // page that broke the policy fails the tests above).
            b.eval(
                "console.error('probe console'); const s = document.createElement('script'); \
             s.textContent = \"console.error('inline script ran')\"; document.body.appendChild(s); \
             new Promise(r => setTimeout(() => { r(1); throw new Error('probe throw'); }, 0))",
            )?;
            b.eval("new Promise(r => setTimeout(() => r(1), 100))")?;
            b.goto(&format!("http://{addr}/search"))?;
            let seen = format!("{:?}", b.problems);
            ensure!(
                seen.contains("probe console") && seen.contains("probe throw"),
                "the harness missed the probes: {seen}"
            );
            ensure!(
                seen.contains("Content Security Policy") && !seen.contains("inline script ran"),
                "an injected inline script was not refused by the policy: {seen}"
            );
            Ok(problems)
        },
    )
    .await??;
    ensure!(
        problems.is_empty(),
        "the pages logged errors: {problems:#?}"
    );
    Ok(())
}
