//! A worker's configuration, read once from an environment map: a bad value stops the cold
//! start naming the setting.

use std::collections::HashMap;
use std::time::Duration;

use throughline_service_kit::objects::{ObjectStoreLocation, SettingError};

use crate::Kind;

/// A setting that stopped the cold start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {value:?} {problem}")]
    Invalid {
        name: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error("{name} is required by {worker}")]
    Missing {
        name: &'static str,
        worker: &'static str,
    },
    #[error(transparent)]
    Database(#[from] events_db::OpenError),
    #[error(transparent)]
    Setting(#[from] SettingError),
}

/// The validated configuration of one worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub kind: Kind,
    /// The queue the worker reads (`NEDLIA_QUEUE_NAME`, default the kind's queue), as spans
    /// name it.
    pub queue_name: String,
    /// The database shared with the API (`DATABASE_URL`, `EVENTS_DATABASE_SCHEMA`).
    pub database: events_db::Location,
    /// Share of records failed on purpose (`NEDLIA_FAILURE_RATE`, 0 to 1; 0 by default).
    pub failure_rate: f64,
    /// Where the file generator writes (`NEDLIA_FILES_URL`): a directory (the local stand-in
    /// for S3, `placement-files` by default) or `s3://bucket/prefix`, its client configured from
    /// the `AWS_*` pairs of the environment map (`AWS_REGION`, `AWS_ENDPOINT_URL_S3`/
    /// `AWS_ENDPOINT_URL`, credentials, `AWS_ALLOW_HTTP`, `AWS_MAX_ATTEMPTS`).
    pub files: ObjectStoreLocation,
    /// The notifier's webhook (`NEDLIA_WEBHOOK_URL`).
    pub webhook_url: Option<reqwest::Url>,
    /// The bound on the flush before each invocation returns (`NEDLIA_FLUSH_TIMEOUT_MS`).
    pub flush_timeout: Duration,
}

impl WorkerConfig {
    pub fn from_env(kind: Kind, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let failure_rate = match get("NEDLIA_FAILURE_RATE") {
            None => 0.0,
            Some(v) => match v.parse::<f64>() {
                Ok(rate) if (0.0..=1.0).contains(&rate) => rate,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "NEDLIA_FAILURE_RATE",
                        value: v.to_owned(),
                        problem: "is not a number between 0 and 1",
                    });
                }
            },
        };
        let webhook_url = match get("NEDLIA_WEBHOOK_URL") {
            None if kind == Kind::Notifier => {
                return Err(ConfigError::Missing {
                    name: "NEDLIA_WEBHOOK_URL",
                    worker: kind.service_name(),
                });
            }
            None => None,
            Some(v) => Some(
                reqwest::Url::parse(v)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| ConfigError::Invalid {
                        name: "NEDLIA_WEBHOOK_URL",
                        value: v.to_owned(),
                        problem: "is not an http(s) URL",
                    })?,
            ),
        };
        let flush_timeout = match get("NEDLIA_FLUSH_TIMEOUT_MS") {
            None => Duration::from_secs(2),
            Some(v) => Duration::from_millis(v.parse().map_err(|_| ConfigError::Invalid {
                name: "NEDLIA_FLUSH_TIMEOUT_MS",
                value: v.to_owned(),
                problem: "is not a number of milliseconds",
            })?),
        };
        Ok(Self {
            kind,
            queue_name: get("NEDLIA_QUEUE_NAME")
                .unwrap_or(kind.default_queue())
                .to_owned(),
            database: events_db::location_from_env(env)?,
            failure_rate,
            files: ObjectStoreLocation::parse(
                "NEDLIA_FILES_URL",
                get("NEDLIA_FILES_URL").unwrap_or("placement-files"),
                env,
            )?,
            webhook_url,
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
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn bad_values_name_their_setting() {
        let c = WorkerConfig::from_env(Kind::Validator, &env(&[])).unwrap();
        assert_eq!(
            (c.queue_name.as_str(), c.failure_rate),
            ("validator-queue", 0.0)
        );
        let e = WorkerConfig::from_env(Kind::Validator, &env(&[("NEDLIA_FAILURE_RATE", "2")]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "NEDLIA_FAILURE_RATE: \"2\" is not a number between 0 and 1"
        );
        let e = WorkerConfig::from_env(Kind::FileGenerator, &env(&[("NEDLIA_FILES_URL", "s3://")]))
            .unwrap_err();
        assert_eq!(e.to_string(), "NEDLIA_FILES_URL: \"s3://\" names no bucket");
        let c = WorkerConfig::from_env(
            Kind::FileGenerator,
            &env(&[
                ("NEDLIA_FILES_URL", "s3://files/placements"),
                ("AWS_REGION", "eu-west-1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.files.to_string(), "s3://files/placements");
        assert_eq!(
            c.files.s3_settings().unwrap().get("AWS_REGION"),
            Some("eu-west-1")
        );
        let e = WorkerConfig::from_env(Kind::Notifier, &env(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "NEDLIA_WEBHOOK_URL is required by nedlia-notifier"
        );
        let e = WorkerConfig::from_env(Kind::Notifier, &env(&[("NEDLIA_WEBHOOK_URL", "ftp://x")]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "NEDLIA_WEBHOOK_URL: \"ftp://x\" is not an http(s) URL"
        );
    }
}
