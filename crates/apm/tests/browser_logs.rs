//! The Logs page and the trace view's log records in a real headless chromium, over a store
//! holding the two-service test trace and log records of its spans (and one outside any trace):
//! the Logs page filters and links a record to its span; the trace view shows each record under
//! its span's row (folding with it), in the span's detail and in the trace's list, each one click
//! from its span; no page logs a console error.
//!
//! `APM_SCREENSHOTS=1 cargo test -p throughline-apm --test browser_logs` refreshes
//! `docs/screenshots/logs.png` and `docs/screenshots/trace-logs.png`.

mod support;

use std::path::PathBuf;

use anyhow::ensure;
use support::cdp::Browser;
use support::trace_data::{self, API, CONSUMER_SPAN_HEX, LAMBDA, TRACE_HEX};
use throughline_store::testdata::{kv, log_export, log_record};
use throughline_store::{Severity, SpanId, SpanSink, Store, StoreConfig, TraceId, TraceReader};

const FAILING_SPAN_HEX: &str = "00000000000000c3";

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

fn text_of(b: &mut Browser, selector: &str) -> anyhow::Result<String> {
    let v = b.eval(&format!(
        "document.querySelector('{selector}')?.innerText ?? ''"
    ))?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_page_and_the_trace_views_logs() -> anyhow::Result<()> {
    let t0 = trace_data::base_time();
    let dir = tempfile::tempdir()?;
    let mut config = StoreConfig::new(dir.path());
    config.settle_secs = 0;
    let store = Store::open(config)?;
    store.write_traces(trace_data::two_service_trace(t0))?;
    let trace: TraceId = TRACE_HEX.parse()?;
    let consumer: SpanId = CONSUMER_SPAN_HEX.parse()?;
    let failing: SpanId = FAILING_SPAN_HEX.parse()?;
    store.write_logs(log_export(
        LAMBDA,
        vec![
            log_record(
                t0 + 1_300_000_000,
                Severity::Info,
                "received signup message",
                Some((trace, consumer)),
                vec![kv("messaging.message.id", "m-17")],
            ),
            log_record(
                t0 + 1_350_000_000,
                Severity::Debug,
                "loaded user profile",
                Some((trace, consumer)),
                vec![],
            ),
            log_record(
                t0 + 1_600_000_000,
                Severity::Error,
                "welcome email not sent: connection refused",
                Some((trace, failing)),
                vec![kv("smtp.host", "mail.local")],
            ),
        ],
    ))?;
    store.write_logs(log_export(
        API,
        vec![log_record(
            t0 + 2_000_000_000,
            Severity::Warn,
            "slow disk on /var/lib/onboarding",
            None,
            vec![],
        )],
    ))?;
    store.maintain()?;
    let reader: std::sync::Arc<dyn TraceReader> = std::sync::Arc::new(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, throughline_apm::router(reader)).await;
    });
    let base = format!("http://{addr}");
    let profile = tempfile::tempdir()?;
    let (shots, _keep) = screenshot_dir()?;
    let problems = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut b = Browser::launch(profile.path())?;

        // The Logs page: every record, newest first, from the navigation.
        b.goto(&format!("{base}/search"))?;
        b.click_and_wait("nav a[href='/logs']")?;
        ensure!(b.url().ends_with("/logs"), "{}", b.url());
        let rows = b.eval("document.querySelectorAll('[data-testid=log-row]').length")?;
        ensure!(rows == 4, "the Logs page lists {rows} records, expected 4");
        let first = text_of(&mut b, "[data-testid=log-row]")?;
        ensure!(first.contains("slow disk"), "newest first: {first}");
        b.screenshot(&shots.join("logs.png"), 700.0)?;

        // Filters: severity and text, as the form submits them.
        b.goto(&format!("{base}/logs?severity=error&lookback=1h"))?;
        let rows = b.eval("document.querySelectorAll('[data-testid=log-row]').length")?;
        ensure!(rows == 1, "error and above: {rows} rows");
        b.goto(&format!("{base}/logs?q=M-17&service={LAMBDA}"))?;
        let only = text_of(&mut b, "[data-testid=log-records] tbody")?;
        ensure!(only.contains("received signup message") && !only.contains("loaded user"), "{only}");

        // A log line links to its trace, at its span, whose detail lists the span's records.
        b.click_and_wait("[data-testid=log-trace]")?;
        ensure!(
            b.url().contains(&format!("/trace/{TRACE_HEX}?span={CONSUMER_SPAN_HEX}")),
            "the log's link led to {}",
            b.url()
        );
        let detail = text_of(&mut b, "[data-testid=span-logs]")?;
        ensure!(
            detail.contains("received signup message") && detail.contains("loaded user profile")
                && !detail.contains("welcome email"),
            "the span's logs: {detail}"
        );

        // The waterfall: each record right under its span's row.
        b.goto(&format!("{base}/trace/{TRACE_HEX}"))?;
        let under = b.eval(&format!(
            "(() => {{ const r = document.getElementById('s-{CONSUMER_SPAN_HEX}'); \
             return [r.nextElementSibling, r.nextElementSibling?.nextElementSibling].map(x => x?.innerText ?? '').join('|'); }})()"
        ))?;
        let under = under.as_str().unwrap_or_default().to_owned();
        ensure!(
            under.contains("received signup message") && under.contains("loaded user profile"),
            "not under the consumer's row: {under}"
        );
        let under_failing = b.eval(&format!(
            "document.getElementById('s-{FAILING_SPAN_HEX}').nextElementSibling.innerText"
        ))?;
        ensure!(
            under_failing.as_str().is_some_and(|t| t.contains("welcome email not sent")),
            "{under_failing}"
        );
        let badge = text_of(&mut b, &format!("#s-{CONSUMER_SPAN_HEX} [data-testid=row-logs]"))?;
        ensure!(badge == "2 logs", "the row's badge: {badge:?}");
        // Folding the root hides the records with their spans.
        b.eval("document.querySelector('.rows .r[data-d=\"0\"] button.t').click()")?;
        let visible = b.eval("document.querySelectorAll('[data-testid=waterfall-log]:not(.h)').length")?;
        ensure!(visible == 0, "{visible} log rows still shown under a folded root");
        b.eval("document.querySelector('.rows .r[data-d=\"0\"] button.t').click()")?;

        // The trace's logs as one list (not the untraced warning), each one click from its span.
        let list = text_of(&mut b, "[data-testid=trace-logs]")?;
        ensure!(list.contains("Logs of this trace (3)"), "{list}");
        ensure!(!list.contains("slow disk"), "{list}");
        b.screenshot(&shots.join("trace-logs.png"), 1100.0)?;
        b.eval("document.querySelectorAll('[data-testid=log-span]')[2].scrollIntoView()")?;
        b.click_and_wait("[data-testid=trace-logs] tbody tr:nth-child(3) [data-testid=log-span]")?;
        ensure!(b.url().contains(&format!("span={FAILING_SPAN_HEX}")), "{}", b.url());
        let detail = text_of(&mut b, "[data-testid=span-logs]")?;
        ensure!(detail.contains("welcome email not sent") && detail.contains("smtp.host=mail.local"), "{detail}");
        Ok(std::mem::take(&mut b.problems))
    })
    .await??;
    ensure!(
        problems.is_empty(),
        "the pages logged errors: {problems:#?}"
    );
    Ok(())
}
