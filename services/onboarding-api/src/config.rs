//! The API's configuration: read from an environment map (never the process environment
//! directly, so tests pass their own), validated once at start-up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The default listen address (the seeds' port).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";
/// The default queue name.
pub const DEFAULT_QUEUE: &str = "onboarding-queue";
/// The default SQLite file, relative to the working directory.
pub const DEFAULT_DATABASE: &str = "data/onboarding.sqlite3";

/// Validated configuration of the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Where `main` listens (`ONBOARDING_API_ADDR`); [`crate::serve`] takes a bound listener.
    pub addr: SocketAddr,
    /// The SQLite file (`DATABASE_URL` as `sqlite:PATH`, or a plain path).
    pub database_path: PathBuf,
    /// The queue's name (`ONBOARDING_QUEUE_NAME`); its url is resolved with `GetQueueUrl`.
    pub queue_name: String,
    /// `AWS_ENDPOINT_URL_SQS` or `AWS_ENDPOINT_URL`: the local broker; unset means real AWS.
    pub sqs_endpoint: Option<String>,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION`, `us-east-1` when neither is set.
    pub region: String,
    /// How long start-up waits for the queue to exist (`ONBOARDING_QUEUE_WAIT_MS`).
    pub queue_wait: Duration,
    /// Deadline of one queue call (`ONBOARDING_QUEUE_TIMEOUT_MS`).
    pub queue_timeout: Duration,
    /// Deadline of a whole request (`ONBOARDING_REQUEST_TIMEOUT_MS`).
    pub request_timeout: Duration,
    /// Largest accepted body (`ONBOARDING_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {value:?} {problem}")]
    Invalid {
        name: &'static str,
        value: String,
        problem: &'static str,
    },
}

impl ApiConfig {
    /// Reads the configuration from an environment map, applying defaults.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let addr = parse(
            get("ONBOARDING_API_ADDR").unwrap_or(DEFAULT_ADDR),
            "ONBOARDING_API_ADDR",
            "is not an ip:port address",
        )?;
        let database_path = database_path(get("DATABASE_URL").unwrap_or(DEFAULT_DATABASE))?;
        let ms = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match get(name) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => parse::<u64>(v, name, "is not a number of milliseconds")
                    .map(Duration::from_millis),
            }
        };
        let max_body_bytes = match get("ONBOARDING_MAX_BODY_BYTES") {
            None => 16 * 1024,
            Some(v) => parse(v, "ONBOARDING_MAX_BODY_BYTES", "is not a number of bytes")?,
        };
        Ok(Self {
            addr,
            database_path,
            queue_name: get("ONBOARDING_QUEUE_NAME")
                .unwrap_or(DEFAULT_QUEUE)
                .to_owned(),
            sqs_endpoint: get("AWS_ENDPOINT_URL_SQS")
                .or_else(|| get("AWS_ENDPOINT_URL"))
                .map(str::to_owned),
            region: get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .unwrap_or("us-east-1")
                .to_owned(),
            queue_wait: ms("ONBOARDING_QUEUE_WAIT_MS", 10_000)?,
            queue_timeout: ms("ONBOARDING_QUEUE_TIMEOUT_MS", 5_000)?,
            request_timeout: ms("ONBOARDING_REQUEST_TIMEOUT_MS", 10_000)?,
            max_body_bytes,
        })
    }
}

fn parse<T: std::str::FromStr>(
    v: &str,
    name: &'static str,
    problem: &'static str,
) -> Result<T, ConfigError> {
    v.parse().map_err(|_| ConfigError::Invalid {
        name,
        value: v.to_owned(),
        problem,
    })
}

/// `sqlite:PATH`, `sqlite://PATH` or a plain path. PostgreSQL is not in this build.
fn database_path(url: &str) -> Result<PathBuf, ConfigError> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return Err(ConfigError::Invalid {
            name: "DATABASE_URL",
            value: redact_password(url),
            problem: "names PostgreSQL, which this build does not support yet (use sqlite:PATH)",
        });
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.contains("://") {
        return Err(ConfigError::Invalid {
            name: "DATABASE_URL",
            value: url.to_owned(),
            problem: "is not sqlite:PATH or a file path",
        });
    }
    Ok(PathBuf::from(path))
}

fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
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
        let c = ApiConfig::from_env(&HashMap::new()).unwrap();
        assert_eq!(c.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(c.database_path, PathBuf::from(DEFAULT_DATABASE));
        assert_eq!(c.queue_name, DEFAULT_QUEUE);
        assert_eq!(c.sqs_endpoint, None);
        assert_eq!(c.region, "us-east-1");
    }

    #[test]
    fn reads_standard_names_first() {
        let c = ApiConfig::from_env(&env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:2"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("DATABASE_URL", "sqlite:///tmp/x.db"),
        ]))
        .unwrap();
        assert_eq!(c.sqs_endpoint.as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.database_path, PathBuf::from("/tmp/x.db"));
    }

    #[test]
    fn refuses_bad_values_naming_them() {
        let e = ApiConfig::from_env(&env(&[("ONBOARDING_API_ADDR", "localhost")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ONBOARDING_API_ADDR: \"localhost\""),
            "{e}"
        );
        let e =
            ApiConfig::from_env(&env(&[("DATABASE_URL", "postgres://u:secret@db/x")])).unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(e.to_string().contains("PostgreSQL"), "{e}");
        let e = ApiConfig::from_env(&env(&[("ONBOARDING_QUEUE_TIMEOUT_MS", "soon")])).unwrap_err();
        assert!(e.to_string().contains("ONBOARDING_QUEUE_TIMEOUT_MS"), "{e}");
    }
}
