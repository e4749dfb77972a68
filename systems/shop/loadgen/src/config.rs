//! The load generator's settings, from the environment map: raw strings in, typed values with
//! defaults out, a bad value named by its setting.

use std::collections::HashMap;
use std::net::SocketAddr;

use shop_db::{DemoClock, DemoConfigError};

pub const ADDR_ENV: &str = "SHOP_LOADGEN_ADDR";
pub const CATALOG_URL_ENV: &str = "SHOP_CATALOG_URL";
pub const CHECKOUT_URL_ENV: &str = "SHOP_CHECKOUT_URL";
pub const PEAK_RATE_ENV: &str = "SHOP_PEAK_RATE";
pub const MAX_IN_FLIGHT_ENV: &str = "SHOP_MAX_IN_FLIGHT";

/// A setting the load generator cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting}: {value:?} {problem}")]
    Invalid {
        setting: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error(transparent)]
    Demo(#[from] DemoConfigError),
}

/// The load generator's validated settings.
#[derive(Debug, Clone)]
pub struct LoadgenConfig {
    pub addr: SocketAddr,
    pub catalog_url: String,
    pub checkout_url: String,
    /// Journeys a second at the demo's peak.
    pub peak_rate: f64,
    /// Journeys of the continuous traffic in flight at most.
    pub max_in_flight: usize,
    pub demo: DemoClock,
}

impl LoadgenConfig {
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let text = |setting: &'static str, default: &str| {
            env.get(setting)
                .map_or(default, String::as_str)
                .trim()
                .to_owned()
        };
        let invalid = |setting, value: String, problem| ConfigError::Invalid {
            setting,
            value,
            problem,
        };
        let addr = text(ADDR_ENV, "127.0.0.1:8010");
        let addr = addr
            .parse()
            .map_err(|_| invalid(ADDR_ENV, addr, "is not an address like 127.0.0.1:8010"))?;
        let url = |setting, default| {
            let value = text(setting, default).trim_end_matches('/').to_owned();
            match reqwest::Url::parse(&value) {
                Ok(_) => Ok(value),
                Err(_) => Err(invalid(setting, value, "is not a URL")),
            }
        };
        let catalog_url = url(CATALOG_URL_ENV, "http://127.0.0.1:8014")?;
        let checkout_url = url(CHECKOUT_URL_ENV, "http://127.0.0.1:8016")?;
        let rate = text(PEAK_RATE_ENV, "20");
        let peak_rate = rate
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r > 0.0)
            .ok_or_else(|| {
                invalid(
                    PEAK_RATE_ENV,
                    rate,
                    "is not a positive number of journeys a second",
                )
            })?;
        let flight = text(MAX_IN_FLIGHT_ENV, "64");
        let max_in_flight = flight
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                invalid(
                    MAX_IN_FLIGHT_ENV,
                    flight,
                    "is not a positive number of journeys",
                )
            })?;
        Ok(Self {
            addr,
            catalog_url,
            checkout_url,
            peak_rate,
            max_in_flight,
            demo: DemoClock::from_env(env)?,
        })
    }
}
