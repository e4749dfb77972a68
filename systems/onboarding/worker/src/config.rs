//! The worker's configuration, read from an environment map and validated once at cold start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use onboarding_db::DatabaseDefaults;
pub use onboarding_db::{DatabaseConfig, PostgresConfig};

pub use throughline_instrument::ConsumerContext;
use throughline_instrument::DbSemconv;

use crate::step::Step;

/// Where documents go: a directory or `s3://bucket/prefix` (the service kit's object store
/// location; S3 needs the `s3` feature).
pub use throughline_service_kit::objects::ObjectStoreLocation as DocumentsLocation;
/// The `AWS_*` pairs kept for the S3 client of the document store (see the service kit).
pub use throughline_service_kit::objects::S3Settings;

/// The default PostgreSQL pool size (`DATABASE_MAX_CONNECTIONS`): records are processed one at a
/// time, so one connection per execution environment is enough. (With two, sqlx opens the
/// second while the first is still being checked on its way back to the pool.)
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1;

/// The worker's defaults for `DATABASE_*`: the API's file, a pool of one.
const DATABASE_DEFAULTS: DatabaseDefaults = DatabaseDefaults {
    url: onboarding_db::DEFAULT_SQLITE_PATH,
    max_connections: DEFAULT_MAX_CONNECTIONS,
    connect_timeout: onboarding_db::DEFAULT_CONNECT_TIMEOUT,
};

/// Validated configuration of the worker.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// The database shared with onboarding-api (`DATABASE_URL`), for status updates.
    pub database: DatabaseConfig,
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
    /// Which database attribute names spans carry: `OTEL_SEMCONV_STABILITY_OPT_IN` naming
    /// `database/dup` adds the old ones (`db.system`, `db.name`, …) to the stable ones.
    pub db_semconv: DbSemconv,
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {value:?} {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub problem: String,
}

impl From<throughline_service_kit::objects::SettingError> for ConfigError {
    fn from(e: throughline_service_kit::objects::SettingError) -> Self {
        Self {
            name: e.name,
            value: e.value,
            problem: e.problem,
        }
    }
}

impl From<onboarding_db::DatabaseConfigError> for ConfigError {
    fn from(e: onboarding_db::DatabaseConfigError) -> Self {
        Self {
            name: e.name,
            value: e.value,
            problem: e.problem.to_owned(),
        }
    }
}

impl WorkerConfig {
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let err = |name: &'static str, value: &str, problem: &str| ConfigError {
            name,
            value: value.to_owned(),
            problem: problem.to_owned(),
        };
        let database = DatabaseConfig::from_env(env, &DATABASE_DEFAULTS)?;
        let documents = match get("ONBOARDING_DOCUMENTS_URL") {
            None => DocumentsLocation::Local(PathBuf::from("data/documents")),
            Some(url) => DocumentsLocation::parse("ONBOARDING_DOCUMENTS_URL", url, env)?,
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
            database,
            documents,
            outbox_dir: PathBuf::from(get("ONBOARDING_OUTBOX_DIR").unwrap_or("data/outbox")),
            queue_name: get("ONBOARDING_QUEUE_NAME")
                .unwrap_or("onboarding-queue")
                .to_owned(),
            consumer_context,
            failure_rates,
            flush,
            flush_timeout,
            db_semconv: DbSemconv::from_env(env),
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
            ("AWS_REGION", "eu-west-1"),
        ]))
        .unwrap();
        assert_eq!(c.failure_rates[&Step::Compliance], 0.1);
        assert_eq!(c.failure_rates[&Step::Notification], 1.0);
        assert_eq!(c.consumer_context, ConsumerContext::Link);
        assert_eq!(
            c.documents,
            DocumentsLocation::S3 {
                bucket: "docs".into(),
                prefix: "onboarding".into(),
                settings: S3Settings::from_env(&env(&[("AWS_REGION", "eu-west-1")])).unwrap(),
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
            (
                "ONBOARDING_DOCUMENTS_URL",
                "s3:///prefix",
                "names no bucket",
            ),
            (
                "DATABASE_URL",
                "postgres://u:secret@db:port/x",
                "PostgreSQL URL",
            ),
            ("DATABASE_URL", "postgres:x", "PostgreSQL URL"),
            ("DATABASE_URL", "mysql://u:secret@db/x", "sqlite:PATH"),
        ] {
            let e = WorkerConfig::from_env(&env(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(k) && e.contains(needle), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn reads_postgres_with_a_small_pool_and_never_shows_the_password() {
        let c = WorkerConfig::from_env(&env(&[(
            "DATABASE_URL",
            "postgresql://u:secret@db:6543/x?password=secret",
        )]))
        .unwrap();
        let DatabaseConfig::Postgres(pg) = &c.database else {
            panic!("not PostgreSQL: {:?}", c.database)
        };
        assert_eq!(pg.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(pg.redacted_url, "postgresql://u:***@db:6543/x?password=***");
        assert!(!format!("{c:?}").contains("secret"));
        let options = pg.connect_options().unwrap();
        assert_eq!((options.get_host(), options.get_port()), ("db", 6543));

        let c = WorkerConfig::from_env(&env(&[
            ("DATABASE_URL", "postgres://db/x"),
            ("DATABASE_MAX_CONNECTIONS", "2"),
        ]))
        .unwrap();
        let DatabaseConfig::Postgres(pg) = c.database else {
            panic!("not PostgreSQL")
        };
        assert_eq!(pg.max_connections, 2);
    }

    fn s3_settings(config: &WorkerConfig) -> &S3Settings {
        match &config.documents {
            DocumentsLocation::S3 { settings, .. } => settings,
            other => panic!("not S3: {other:?}"),
        }
    }

    #[test]
    fn s3_keeps_the_aws_pairs_of_the_map_and_drops_the_rest() {
        let c = WorkerConfig::from_env(&env(&[
            ("ONBOARDING_DOCUMENTS_URL", "s3://docs"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
            ("AWS_SESSION_TOKEN", "FwoGZXIvYXdzE"),
            ("AWS_REGION", " eu-west-1 "),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_ALLOW_HTTP", "true"),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://127.0.0.1:1234/creds",
            ),
            ("AWS_PROFILE", ""),
            ("DATABASE_URL", "sqlite:x.db"),
            ("HOME", "/root"),
            ("aws_region", "lower-case-is-not-aws"),
        ]))
        .unwrap();
        let settings = s3_settings(&c);
        let names: Vec<_> = settings.iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                "AWS_ACCESS_KEY_ID",
                "AWS_ALLOW_HTTP",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_DEFAULT_REGION",
                "AWS_ENDPOINT_URL",
                "AWS_REGION",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ]
        );
        assert_eq!(settings.get("AWS_REGION"), Some("eu-west-1"));
        assert_eq!(
            settings.get("AWS_ENDPOINT_URL"),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(settings.max_attempts(), None);
        // The local store keeps nothing of the AWS variables.
        let local = WorkerConfig::from_env(&env(&[("AWS_SECRET_ACCESS_KEY", "x")])).unwrap();
        assert!(matches!(local.documents, DocumentsLocation::Local(_)));
    }

    #[test]
    fn s3_settings_never_show_a_secret_value() {
        let c = WorkerConfig::from_env(&env(&[
            ("ONBOARDING_DOCUMENTS_URL", "s3://docs/p"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
            ("AWS_SESSION_TOKEN", "FwoGZXIvYXdzE"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
            ("AWS_REGION", "eu-west-1"),
        ]))
        .unwrap();
        let shown = format!("{c:?}");
        for secret in ["AKIDEXAMPLE", "wJalrXUtnFEMI", "FwoGZXIvYXdzE", "eu-west-1"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("AWS_SECRET_ACCESS_KEY"), "{shown}");
        let redacted = s3_settings(&c).redact(
            "key AKIDEXAMPLE secret wJalrXUtnFEMI token FwoGZXIvYXdzE file /var/run/token in eu-west-1",
        );
        assert_eq!(
            redacted,
            "key *** secret *** token *** file /var/run/token in eu-west-1"
        );
    }

    #[test]
    fn s3_max_attempts_is_a_number_of_at_least_one() {
        let url = ("ONBOARDING_DOCUMENTS_URL", "s3://docs");
        let c = WorkerConfig::from_env(&env(&[url, ("AWS_MAX_ATTEMPTS", "3")])).unwrap();
        assert_eq!(s3_settings(&c).max_attempts(), Some(3));
        for bad in ["0", "-1", "many"] {
            let e = WorkerConfig::from_env(&env(&[url, ("AWS_MAX_ATTEMPTS", bad)]))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("AWS_MAX_ATTEMPTS") && e.contains("at least 1"),
                "{e}"
            );
        }
    }
}
