//! Stage one of configuration: the raw `OTEL_*`, `THROUGHLINE_OTLP_*` and platform variables, as
//! strings, read from an environment handed in by the caller (never from the process environment
//! directly).

use std::collections::HashMap;

/// The environment variables telemetry reads, as raw strings. An empty value counts as unset, as
/// the OpenTelemetry specification says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEnv {
    vars: HashMap<String, String>,
}

impl RawEnv {
    /// Keeps the variables telemetry cares about (`OTEL_*`, `THROUGHLINE_OTLP_*`, `AWS_*`,
    /// `ECS_*`, `HOSTNAME`, `RUST_LOG`) from any iterator of pairs, such as `std::env::vars()` or
    /// a test's table.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, _)| is_relevant(k))
            .collect();
        Self { vars }
    }

    /// The value of `name`, trimmed, or `None` when it is unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value of the signal-specific variable if set, else the generic one, with the name of
    /// the variable that supplied it (for error messages).
    pub fn get_either<'a>(
        &'a self,
        specific: &'a str,
        generic: &'a str,
    ) -> Option<(&'a str, &'a str)> {
        self.get(specific)
            .map(|v| (specific, v))
            .or_else(|| self.get(generic).map(|v| (generic, v)))
    }
}

fn is_relevant(name: &str) -> bool {
    name.starts_with("OTEL_")
        || name.starts_with("THROUGHLINE_OTLP_")
        || name.starts_with("AWS_")
        || name.starts_with("ECS_")
        || name == "HOSTNAME"
        || name == "RUST_LOG"
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for RawEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::from_pairs(iter)
    }
}
