//! The API's configuration, read once from an environment map and validated: a bad value stops
//! start-up naming the setting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use throughline_service_kit::{AllowedHosts, AllowedHostsError};

/// Where the API listens unless `NEDLIA_API_ADDR` says otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8020";
/// The bus `placement.created` goes to unless `NEDLIA_EVENT_BUS` says otherwise.
pub const DEFAULT_BUS: &str = "nedlia-events";

/// A setting that stopped start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {value:?} {problem}")]
    Invalid {
        name: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error(transparent)]
    Database(#[from] events_db::OpenError),
    #[error(transparent)]
    AllowedHosts(#[from] AllowedHostsError),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub addr: SocketAddr,
    /// The SQLite file or the PostgreSQL database and schema (`DATABASE_URL`,
    /// `EVENTS_DATABASE_SCHEMA`).
    pub database: events_db::Location,
    pub event_bus: String,
    /// `AWS_ENDPOINT_URL_EVENTBRIDGE` (or `AWS_ENDPOINT_URL`): the local broker; AWS when unset.
    pub eventbridge_endpoint: Option<String>,
    pub region: String,
    /// `NEDLIA_DETAIL_TRACE=off` leaves `detail._trace` out, so only the X-Ray `TraceHeader`
    /// carries the trace (the fall-back's test); on by default.
    pub detail_trace: bool,
    /// `NEDLIA_SQL_COMMENTER=off` turns the SQL commenter off; on by default, as the seed asks.
    pub sql_commenter: bool,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub allowed_hosts: AllowedHosts,
}

impl ApiConfig {
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let addr = parse(
            get("NEDLIA_API_ADDR").unwrap_or(DEFAULT_ADDR),
            "NEDLIA_API_ADDR",
            "is not an ip:port address",
        )?;
        let switch = |name: &'static str| -> Result<bool, ConfigError> {
            match get(name).map(str::to_ascii_lowercase).as_deref() {
                None | Some("on" | "true" | "1") => Ok(true),
                Some("off" | "false" | "0") => Ok(false),
                Some(_) => Err(ConfigError::Invalid {
                    name,
                    value: get(name).unwrap_or_default().to_owned(),
                    problem: "is not on or off",
                }),
            }
        };
        let request_timeout = match get("NEDLIA_REQUEST_TIMEOUT_MS") {
            None => Duration::from_secs(10),
            Some(v) => Duration::from_millis(parse(
                v,
                "NEDLIA_REQUEST_TIMEOUT_MS",
                "is not a number of milliseconds",
            )?),
        };
        Ok(Self {
            addr,
            database: events_db::location_from_env(env)?,
            event_bus: get("NEDLIA_EVENT_BUS").unwrap_or(DEFAULT_BUS).to_owned(),
            eventbridge_endpoint: get("AWS_ENDPOINT_URL_EVENTBRIDGE")
                .or_else(|| get("AWS_ENDPOINT_URL"))
                .map(str::to_owned),
            region: get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .unwrap_or("us-east-1")
                .to_owned(),
            detail_trace: switch("NEDLIA_DETAIL_TRACE")?,
            sql_commenter: switch("NEDLIA_SQL_COMMENTER")?,
            request_timeout,
            max_body_bytes: 16 * 1024,
            allowed_hosts: AllowedHosts::from_env(env)?,
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
    fn defaults_and_bad_values_name_their_setting() {
        let config = ApiConfig::from_env(&env(&[])).unwrap();
        assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(config.event_bus, DEFAULT_BUS);
        assert!(config.detail_trace && config.sql_commenter);
        let err = ApiConfig::from_env(&env(&[("NEDLIA_API_ADDR", "nowhere")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "NEDLIA_API_ADDR: \"nowhere\" is not an ip:port address"
        );
        let err = ApiConfig::from_env(&env(&[("NEDLIA_DETAIL_TRACE", "maybe")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "NEDLIA_DETAIL_TRACE: \"maybe\" is not on or off"
        );
        let off = ApiConfig::from_env(&env(&[("NEDLIA_DETAIL_TRACE", "off")])).unwrap();
        assert!(!off.detail_trace);
    }
}
