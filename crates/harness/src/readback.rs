//! Reads traces back from a collector's query API and judges them with [`crate::expect`]:
//! the store's integrity verdict (`/api/throughline/integrity`) and, for traces it judged whole,
//! the expected hops (`/api/traces/{id}`). `load` and `verify` both judge through here, so they
//! agree.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use throughline_jaeger::{Envelope, IntegrityReport, Trace};

use crate::expect::{Judgement, TraceExpectation, Verdict, judge};

/// Trace ids per integrity request.
const IDS_PER_REQUEST: usize = 100;
/// Trace reads in flight.
const READS_IN_FLIGHT: usize = 32;
/// How long only broken traces must stay as they are before `check` stops waiting for them.
pub const QUIET: Duration = Duration::from_secs(5);

/// Why the query API could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("could not reach the collector's query API at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url} did not answer with Jaeger JSON")]
    NotJaeger {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// A collector's query API.
#[derive(Debug, Clone)]
pub struct TraceQuery {
    client: reqwest::Client,
    base: String,
}

/// Which traces to search for.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub service: Option<String>,
    pub lookback: String,
    pub limit: usize,
}

impl TraceQuery {
    pub fn new(client: reqwest::Client, base: &str) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get<T: for<'de> serde::Deserialize<'de>>(
        &self,
        url: String,
    ) -> Result<Option<T>, ReadError> {
        let response =
            self.client
                .get(&url)
                .send()
                .await
                .map_err(|source| ReadError::Unreachable {
                    url: url.clone(),
                    source: source.without_url(),
                })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let envelope: Envelope<T> =
            response
                .json()
                .await
                .map_err(|source| ReadError::NotJaeger {
                    url: url.clone(),
                    source: source.without_url(),
                })?;
        if let Some(errors) = envelope.errors.filter(|e| !e.is_empty()) {
            let message = errors
                .into_iter()
                .map(|e| e.msg)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ReadError::Refused {
                url,
                status: status.as_u16(),
                message,
            });
        }
        Ok(envelope.data)
    }

    /// The store's integrity verdict on each of `ids` (those it holds).
    pub async fn integrity(&self, ids: &[String]) -> Result<Vec<IntegrityReport>, ReadError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_REQUEST) {
            let query: Vec<String> = chunk
                .iter()
                .map(|id| format!("traceID={}", encode(id)))
                .collect();
            let url = format!(
                "{}/api/throughline/integrity?{}",
                self.base,
                query.join("&")
            );
            out.extend(
                self.get::<Vec<IntegrityReport>>(url)
                    .await?
                    .unwrap_or_default(),
            );
        }
        Ok(out)
    }

    /// The store's verdict on the traces a search finds.
    pub async fn search(&self, search: &Search) -> Result<Vec<IntegrityReport>, ReadError> {
        let mut query = vec![
            format!("lookback={}", encode(&search.lookback)),
            format!("limit={}", search.limit),
        ];
        if let Some(service) = &search.service {
            query.push(format!("service={}", encode(service)));
        }
        let url = format!(
            "{}/api/throughline/integrity?{}",
            self.base,
            query.join("&")
        );
        Ok(self.get(url).await?.unwrap_or_default())
    }

    /// The findings (N+1 queries and their kin) of the traces a search covers, of one `kind`
    /// (`n_plus_one_db`, `repeated_http`, `unbatched_send`) or all.
    pub async fn findings(
        &self,
        search: &Search,
        kind: Option<&str>,
    ) -> Result<Vec<throughline_jaeger::analysis::FindingReport>, ReadError> {
        let mut query = vec![format!("lookback={}", encode(&search.lookback))];
        if let Some(service) = &search.service {
            query.push(format!("service={}", encode(service)));
        }
        if let Some(kind) = kind {
            query.push(format!("kind={}", encode(kind)));
        }
        let url = format!("{}/api/throughline/findings?{}", self.base, query.join("&"));
        Ok(self.get(url).await?.unwrap_or_default())
    }

    /// One trace, `None` when the collector has none of it.
    pub async fn trace(&self, id: &str) -> Result<Option<Trace>, ReadError> {
        let url = format!("{}/api/traces/{}", self.base, encode(id));
        let traces: Option<Vec<Trace>> = self.get(url).await?;
        Ok(traces.and_then(|t| t.into_iter().next()))
    }

    /// Judges each report: the hops are read only for traces the store judged whole.
    pub async fn judge_all(
        &self,
        reports: Vec<IntegrityReport>,
        expected: &TraceExpectation,
    ) -> Result<Vec<(IntegrityReport, Judgement)>, ReadError> {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(READS_IN_FLIGHT));
        let mut handles = Vec::with_capacity(reports.len());
        for report in reports {
            let (query, expected, semaphore) = (self.clone(), expected.clone(), semaphore.clone());
            handles.push(tokio::spawn(async move {
                let trace = if report.integrity == "whole" && !expected.is_empty() {
                    let _permit = semaphore.acquire_owned().await;
                    query.trace(&report.trace_id).await?
                } else {
                    None
                };
                let judgement = judge(&report, trace.as_ref(), &expected);
                Ok::<_, ReadError>((report, judgement))
            }));
        }
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            match handle.await {
                Ok(result) => out.push(result?),
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            }
        }
        Ok(out)
    }

    /// Reads `ids` back until each is whole, or `wait` has passed, or only broken traces are
    /// left and none has changed for [`QUIET`] (the store re-judges a trace when late spans
    /// arrive, so a broken verdict may still mend). What is left is reported as it stands.
    ///
    /// A trace asked for by id is judged on what has arrived; a search (what `verify` does)
    /// reports a trace *settling* until no span arrived for the collector's settle time. So once
    /// every trace is whole by id, `check` also waits (within `wait`) until the search no longer
    /// calls any of them settling: `verify` run next then agrees. `lookback` covers the run.
    pub async fn check(
        &self,
        ids: Vec<String>,
        expected: &TraceExpectation,
        wait: Duration,
        lookback: Duration,
        quiet: bool,
    ) -> Result<TraceCheck, ReadError> {
        let started = Instant::now();
        let deadline = started + wait;
        let progress = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(ids.len() as u64)
        };
        progress.set_style(
            ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} traces whole")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut check = TraceCheck {
            checked: ids.len() as u64,
            ..TraceCheck::default()
        };
        let mut pending = ids;
        let mut last: BTreeMap<String, Judgement> = BTreeMap::new();
        let mut changed = Instant::now();
        let mut whole_ids = std::collections::HashSet::new();
        loop {
            let reports = self.integrity(&pending).await?;
            let judged = self.judge_all(reports, expected).await?;
            let mut whole = std::collections::HashSet::new();
            for (report, judgement) in judged {
                if judgement.verdict == Verdict::Whole {
                    check.whole += 1;
                    check.redeliveries += judgement.redeliveries;
                    check.rejected += u64::from(judgement.rejected);
                    whole.insert(report.trace_id.clone());
                    last.remove(&report.trace_id);
                    progress.inc(1);
                } else if last.get(&report.trace_id) != Some(&judgement) {
                    last.insert(report.trace_id.clone(), judgement);
                    changed = Instant::now();
                }
            }
            if !whole.is_empty() {
                changed = Instant::now();
            }
            whole_ids.extend(whole.iter().cloned());
            pending.retain(|id| !whole.contains(id));
            let only_broken = pending
                .iter()
                .all(|id| last.get(id).is_some_and(|j| j.verdict == Verdict::Broken));
            if pending.is_empty()
                || Instant::now() >= deadline
                || (only_broken && changed.elapsed() >= QUIET)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        progress.finish_and_clear();
        if pending.is_empty() {
            check.settling = self
                .settled(&whole_ids, expected, lookback, deadline)
                .await?;
            check.whole -= check.settling;
        }
        for id in &pending {
            match last.get(id) {
                Some(j) if j.verdict == Verdict::Retrying => {
                    // Whole, but no delivery succeeded within the wait (the record is being
                    // retried or went to the dead-letter queue).
                    check.whole += 1;
                    check.redeliveries += j.redeliveries;
                    check.failed_every_delivery += 1;
                }
                Some(j) if j.verdict == Verdict::Settling => check.settling += 1,
                Some(j) => {
                    check.broken += 1;
                    for p in &j.problems {
                        *check.problems.entry(p.clone()).or_default() += 1;
                    }
                }
                None => {
                    check.broken += 1;
                    *check
                        .problems
                        .entry("trace not in the collector".into())
                        .or_default() += 1;
                }
            }
        }
        check.waited_secs = started.elapsed().as_secs_f64();
        Ok(check)
    }
}

impl TraceQuery {
    /// Waits until a search no longer reports any of `ids` settling, or `deadline`; returns how
    /// many still were.
    async fn settled(
        &self,
        ids: &std::collections::HashSet<String>,
        expected: &TraceExpectation,
        lookback: Duration,
        deadline: Instant,
    ) -> Result<u64, ReadError> {
        let search = Search {
            service: expected.hops.first().map(|h| h.from.service.clone()),
            lookback: format!("{}m", lookback.as_secs() / 60 + 2),
            // The query API caps a search at 1,000 traces (more is a 400).
            limit: ids.len().saturating_mul(2).clamp(100, 1000),
        };
        loop {
            let settling = self
                .search(&search)
                .await?
                .iter()
                .filter(|r| r.integrity == "settling" && ids.contains(&r.trace_id))
                .count() as u64;
            if settling == 0 || Instant::now() >= deadline {
                return Ok(settling);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// What reading the traces back found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TraceCheck {
    pub checked: u64,
    pub whole: u64,
    pub broken: u64,
    /// Not judged by the collector within the wait (it judges a trace once no span arrived for
    /// its settle time).
    pub settling: u64,
    /// Whole traces of rejected requests (no downstream hop expected).
    pub rejected: u64,
    /// Deliveries beyond the first: records the consumer saw more than once.
    pub redeliveries: u64,
    /// Whole traces whose every delivery seen failed.
    pub failed_every_delivery: u64,
    /// Why traces were broken, with counts.
    pub problems: BTreeMap<String, u64>,
    pub waited_secs: f64,
}

impl TraceCheck {
    /// Every checked trace whole.
    pub fn passed(&self) -> bool {
        self.whole == self.checked
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
