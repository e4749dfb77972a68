//! The user journeys: each a root span `user_journey.{type}` (`user.journey`,
//! `user.session_id`) whose steps call the catalog and the checkout over HTTP through the
//! instrumentation library's client, so the context goes with every call.
//!
//! - `browse`: a category page, then two of its products;
//! - `search`: a wider category page (50), then one product;
//! - `purchase`: a category page, one product, then an order of one to three of the page's
//!   products;
//! - `abandon`: a category page and two products put in a cart that is never paid.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use rand::Rng;
use rand::seq::IndexedRandom;
use serde::Serialize;
use serde_json::{Value, json};
use shop_db::schema::CATEGORIES;
use shop_db::{DemoClock, Phase, names};
use throughline_instrument::{HttpClient, Spans};

use crate::stats::{JourneyRecord, Stats};

/// A kind of journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JourneyKind {
    Browse,
    Search,
    Purchase,
    Abandon,
}

impl JourneyKind {
    pub const ALL: [Self; 4] = [Self::Browse, Self::Search, Self::Purchase, Self::Abandon];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Browse => "browse",
            Self::Search => "search",
            Self::Purchase => "purchase",
            Self::Abandon => "abandon",
        }
    }

    /// The root span's name.
    pub fn span_name(self) -> String {
        format!("user_journey.{}", self.as_str())
    }
}

impl fmt::Display for JourneyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A journey type that is none of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a journey (known: browse, search, purchase, abandon)")]
pub struct UnknownJourney(pub String);

impl FromStr for JourneyKind {
    type Err = UnknownJourney;
    fn from_str(s: &str) -> Result<Self, UnknownJourney> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownJourney(s.to_owned()))
    }
}

/// One step's answer.
#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    pub step: &'static str,
    pub status: Option<u16>,
    pub ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure's reason as the service named it (`ConnectionPoolExhausted`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The demo's phase when the step was sent.
    #[serde(skip)]
    pub phase: Phase,
}

/// A whole journey's answer.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyOutcome {
    pub journey: JourneyKind,
    pub trace_id: String,
    pub session_id: String,
    pub user_id: String,
    pub ok: bool,
    pub ms: f64,
    pub steps: Vec<StepOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

impl Serialize for JourneyKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Runs journeys against one catalog and one checkout.
#[derive(Debug, Clone)]
pub struct Journeys {
    http: HttpClient,
    spans: Spans,
    catalog_url: String,
    checkout_url: String,
    stats: Arc<Stats>,
    clock: DemoClock,
}

/// A step that did not answer 2xx.
struct StepFailed;

impl Journeys {
    pub fn new(
        http: HttpClient,
        spans: Spans,
        catalog_url: String,
        checkout_url: String,
        stats: Arc<Stats>,
        clock: DemoClock,
    ) -> Self {
        Self {
            http,
            spans,
            catalog_url,
            checkout_url,
            stats,
            clock,
        }
    }

    /// The demo clock journeys count their phase by.
    pub fn clock(&self) -> &DemoClock {
        &self.clock
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Runs one journey of `kind` (in `category`, or a random one) as its own trace.
    pub async fn run(&self, kind: JourneyKind, category: Option<String>) -> JourneyOutcome {
        let (session_id, user_id, category) = {
            let mut rng = rand::rng();
            let category = category
                .unwrap_or_else(|| (*CATEGORIES.choose(&mut rng).unwrap_or(&"books")).to_owned());
            (
                format!("{:016x}", rng.random::<u64>()),
                format!("user-{:05}", rng.random_range(0..10_000)),
                category,
            )
        };
        let root = self.spans.start(
            kind.span_name(),
            [
                KeyValue::new(names::USER_JOURNEY, kind.as_str()),
                KeyValue::new(names::USER_SESSION_ID, session_id.clone()),
                KeyValue::new(names::USER_ID, user_id.clone()),
                KeyValue::new(names::PRODUCT_CATEGORY, category.clone()),
            ],
        );
        let started = Instant::now();
        let phase = self.clock.phase();
        let mut outcome = JourneyOutcome {
            journey: kind,
            trace_id: root.trace_id(),
            session_id,
            user_id,
            ok: false,
            ms: 0.0,
            steps: Vec::new(),
            order_id: None,
        };
        let result = root.run(self.steps(kind, &category, &mut outcome)).await;
        outcome.ok = result.is_ok();
        outcome.ms = started.elapsed().as_secs_f64() * 1000.0;
        let failed = outcome
            .steps
            .iter()
            .find(|s| s.status.is_none_or(|c| c >= 300));
        if let Some(failed) = failed {
            root.fail(
                failed
                    .status
                    .map_or("transport".to_owned(), |c| c.to_string()),
                format!("step {} failed", failed.step),
            );
        }
        // The critical phase refuses checkouts on purpose (the pool exhausted: 503), also those
        // of journeys begun just before it.
        let expected_failure = failed.is_some_and(|f| {
            f.step == "create_order"
                && f.phase == Phase::Critical
                && f.status == Some(503)
                && f.reason.as_deref() == Some(names::POOL_EXHAUSTED_REASON)
        });
        self.stats.record_journey(JourneyRecord {
            journey: kind.as_str(),
            phase,
            ok: outcome.ok,
            expected_failure,
            took: started.elapsed(),
            trace_id: &outcome.trace_id,
        });
        root.end();
        outcome
    }

    async fn steps(
        &self,
        kind: JourneyKind,
        category: &str,
        out: &mut JourneyOutcome,
    ) -> Result<(), StepFailed> {
        let limit = if kind == JourneyKind::Search { 50 } else { 20 };
        let url = format!(
            "{}/products?category={category}&limit={limit}",
            self.catalog_url
        );
        let page = self
            .step("list_category", reqwest::Method::GET, url, None, out)
            .await?;
        let ids: Vec<i64> = page["products"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["id"].as_i64()).collect())
            .unwrap_or_default();
        let views = match kind {
            JourneyKind::Browse | JourneyKind::Abandon => 2,
            JourneyKind::Search | JourneyKind::Purchase => 1,
        };
        let picked: Vec<i64> = {
            let mut rng = rand::rng();
            ids.choose_multiple(&mut rng, views.max(3))
                .copied()
                .collect()
        };
        for id in picked.iter().take(views) {
            let url = format!("{}/products/{id}", self.catalog_url);
            self.step("view_product", reqwest::Method::GET, url, None, out)
                .await?;
        }
        if kind == JourneyKind::Purchase && !picked.is_empty() {
            let lines = {
                let mut rng = rand::rng();
                let n = rng.random_range(1..=picked.len().min(3));
                picked
                    .iter()
                    .take(n)
                    .map(|id| json!({"product_id": id, "quantity": rng.random_range(1..=3)}))
                    .collect::<Vec<_>>()
            };
            let body = json!({"user_id": out.user_id, "items": lines});
            let url = format!("{}/orders/create", self.checkout_url);
            let order = self
                .step("create_order", reqwest::Method::POST, url, Some(body), out)
                .await?;
            out.order_id = order["order_id"].as_str().map(str::to_owned);
        }
        Ok(())
    }

    /// One HTTP call under the journey's span (a CLIENT span from the instrumentation library).
    async fn step(
        &self,
        step: &'static str,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
        out: &mut JourneyOutcome,
    ) -> Result<Value, StepFailed> {
        let started = Instant::now();
        let phase = self.clock.phase();
        let mut builder = self.http.inner().request(method, &url);
        if let Some(body) = &body {
            builder = builder.json(body);
        }
        let answer = match builder.build() {
            Ok(request) => self.http.execute(request).await,
            Err(e) => Err(e),
        };
        let (status, value, error) = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                let value: Value = response.json().await.unwrap_or(Value::Null);
                let error = (status >= 300).then(|| {
                    value["error"]
                        .as_str()
                        .map_or_else(|| format!("http {status}"), str::to_owned)
                });
                (Some(status), value, error)
            }
            Err(e) => (None, Value::Null, Some(describe(&e))),
        };
        let elapsed = started.elapsed();
        let ok = error.is_none();
        self.stats.record_step(step, ok, elapsed);
        let reason = (!ok)
            .then(|| value["reason"].as_str().map(str::to_owned))
            .flatten();
        out.steps.push(StepOutcome {
            step,
            status,
            ms: elapsed.as_secs_f64() * 1000.0,
            error,
            reason,
            phase,
        });
        if ok { Ok(value) } else { Err(StepFailed) }
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// How long a journey may take at most (the HTTP client's timeout per step).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);
