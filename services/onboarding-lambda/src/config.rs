//! The worker's configuration, read from an environment map and validated once at cold start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::steps::Step;

/// How a record's CONSUMER span relates to the producer's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerContext {
    /// The producer's span is the parent: one trace from HTTP to the worker (the default).
    Parent,
    /// A new trace with a link to the producer's span, as the messaging conventions allow.
    Link,
}

/// Where documents go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentsLocation {
    Local(PathBuf),
    /// `s3://bucket/prefix`; needs the `s3` feature.
    S3 {
        bucket: String,
        prefix: String,
    },
}

/// Validated configuration of the worker.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// The SQLite file shared with onboarding-api (`DATABASE_URL`), for status updates.
    pub database_path: PathBuf,
    /// `ONBOARDING_DOCUMENTS_URL`: a directory (default `data/documents`) or `s3://bucket/prefix`.
    pub documents: DocumentsLocation,
    /// `ONBOARDING_OUTBOX_DIR`: where notifications are written (default `data/outbox`).
    pub outbox_dir: PathBuf,
    /// `ONBOARDING_QUEUE_NAME`, for `messaging.destination.name`.
    pub queue_name: String,
    /// `ONBOARDING_CONSUMER_CONTEXT`: `parent` (default) or `link`.
    pub consumer_context: ConsumerContext,
    /// `ONBOARDING_FAILURES`: `step=rate,…`, e.g. `compliance=0.1,notification=0.05`.
    pub failure_rates: HashMap<Step, f64>,
    /// `ONBOARDING_FLUSH`: `on` (default) flushes spans before each invocation returns; `off`
    /// exists to show what is lost without it.
    pub flush: bool,
    /// `ONBOARDING_FLUSH_TIMEOUT_MS`: the bound on that flush (default 2000).
    pub flush_timeout: Duration,
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {value:?} {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub problem: String,
}

impl WorkerConfig {
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let err = |name: &'static str, value: &str, problem: &str| ConfigError {
            name,
            value: value.to_owned(),
            problem: problem.to_owned(),
        };
        let db = get("DATABASE_URL").unwrap_or("data/onboarding.sqlite3");
        if db.starts_with("postgres") {
            return Err(err(
                "DATABASE_URL",
                "postgres://…",
                "names PostgreSQL, which this build does not support yet",
            ));
        }
        let database_path = PathBuf::from(
            db.strip_prefix("sqlite://")
                .or_else(|| db.strip_prefix("sqlite:"))
                .unwrap_or(db),
        );
        let documents = match get("ONBOARDING_DOCUMENTS_URL") {
            None => DocumentsLocation::Local(PathBuf::from("data/documents")),
            Some(url) => match url.strip_prefix("s3://") {
                Some(rest) => {
                    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                    if bucket.is_empty() {
                        return Err(err("ONBOARDING_DOCUMENTS_URL", url, "names no bucket"));
                    }
                    DocumentsLocation::S3 {
                        bucket: bucket.to_owned(),
                        prefix: prefix.trim_matches('/').to_owned(),
                    }
                }
                None => DocumentsLocation::Local(PathBuf::from(
                    url.strip_prefix("file://").unwrap_or(url),
                )),
            },
        };
        let consumer_context = match get("ONBOARDING_CONSUMER_CONTEXT").unwrap_or("parent") {
            "parent" => ConsumerContext::Parent,
            "link" => ConsumerContext::Link,
            other => {
                return Err(err(
                    "ONBOARDING_CONSUMER_CONTEXT",
                    other,
                    "is neither parent nor link",
                ));
            }
        };
        let mut failure_rates = HashMap::new();
        if let Some(spec) = get("ONBOARDING_FAILURES") {
            for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let Some((step, rate)) = part.split_once('=') else {
                    return Err(err("ONBOARDING_FAILURES", part, "is not step=rate"));
                };
                let step = Step::parse(step.trim()).ok_or_else(|| {
                    err(
                        "ONBOARDING_FAILURES",
                        step,
                        &format!("is not a step (one of {})", Step::names()),
                    )
                })?;
                let rate: f64 = rate
                    .trim()
                    .parse()
                    .ok()
                    .filter(|r: &f64| (0.0..=1.0).contains(r))
                    .ok_or_else(|| {
                        err("ONBOARDING_FAILURES", rate, "is not a rate between 0 and 1")
                    })?;
                failure_rates.insert(step, rate);
            }
        }
        let flush = match get("ONBOARDING_FLUSH").unwrap_or("on") {
            "on" | "true" | "1" => true,
            "off" | "false" | "0" => false,
            other => return Err(err("ONBOARDING_FLUSH", other, "is neither on nor off")),
        };
        let flush_timeout = match get("ONBOARDING_FLUSH_TIMEOUT_MS") {
            None => Duration::from_secs(2),
            Some(v) => Duration::from_millis(v.parse().map_err(|_| {
                err(
                    "ONBOARDING_FLUSH_TIMEOUT_MS",
                    v,
                    "is not a number of milliseconds",
                )
            })?),
        };
        Ok(Self {
            database_path,
            documents,
            outbox_dir: PathBuf::from(get("ONBOARDING_OUTBOX_DIR").unwrap_or("data/outbox")),
            queue_name: get("ONBOARDING_QUEUE_NAME")
                .unwrap_or("onboarding-queue")
                .to_owned(),
            consumer_context,
            failure_rates,
            flush,
            flush_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = WorkerConfig::from_env(&HashMap::new()).unwrap();
        assert_eq!(c.consumer_context, ConsumerContext::Parent);
        assert!(c.flush);
        assert!(c.failure_rates.is_empty());
        assert_eq!(
            c.documents,
            DocumentsLocation::Local(PathBuf::from("data/documents"))
        );
    }

    #[test]
    fn parses_failures_link_and_s3() {
        let c = WorkerConfig::from_env(&env(&[
            ("ONBOARDING_FAILURES", "compliance=0.1, notification=1"),
            ("ONBOARDING_CONSUMER_CONTEXT", "link"),
            ("ONBOARDING_DOCUMENTS_URL", "s3://docs/onboarding/"),
            ("ONBOARDING_FLUSH", "off"),
        ]))
        .unwrap();
        assert_eq!(c.failure_rates[&Step::Compliance], 0.1);
        assert_eq!(c.failure_rates[&Step::Notification], 1.0);
        assert_eq!(c.consumer_context, ConsumerContext::Link);
        assert_eq!(
            c.documents,
            DocumentsLocation::S3 {
                bucket: "docs".into(),
                prefix: "onboarding".into()
            }
        );
        assert!(!c.flush);
    }

    #[test]
    fn refuses_bad_values_naming_them() {
        for (k, v, needle) in [
            ("ONBOARDING_FAILURES", "compliance", "step=rate"),
            ("ONBOARDING_FAILURES", "teleport=0.1", "is not a step"),
            ("ONBOARDING_FAILURES", "audit=2", "between 0 and 1"),
            ("ONBOARDING_CONSUMER_CONTEXT", "child", "parent nor link"),
            ("ONBOARDING_FLUSH_TIMEOUT_MS", "soon", "milliseconds"),
        ] {
            let e = WorkerConfig::from_env(&env(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(k) && e.contains(needle), "{e}");
        }
    }
}
