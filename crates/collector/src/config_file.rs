//! `--config FILE`: the pipeline in YAML, validated at start-up. Unknown fields are errors, and
//! every error names the field (`export[1].endpoint: …`, `processors.redaction.secret_keys: …`).
//!
//! ```yaml
//! store: true                      # false: forward only (sidecar)
//! export:
//!   - endpoint: grpcs://ingress.example.com:443
//!     headers: { authorization: "Bearer …" }
//!     compression: gzip            # or none
//!     timeout_ms: 10000
//!     ca_file: /etc/ssl/extra-ca.pem
//!     client_cert: /etc/otel/client.pem
//!     client_key: /etc/otel/client.key
//! queue: { max_bytes: 1073741824, max_age_secs: 604800, sync_writes: false }
//! retry: { initial_ms: 1000, max_ms: 30000 }
//! processors:
//!   redaction:
//!     enabled: true
//!     secret_keys: [authorization, cookie, password]   # default: DEFAULT_SECRET_KEYS
//!     emails: true
//!     card_numbers: true
//!     bearer_tokens: true
//!   resource:
//!     set: { deployment.environment: production }
//!     insert: { cx.application.name: shop }
//!   tail_sampling:                 # absent: every span kept
//!     ratio: 0.1                   # of traces neither errors nor slow
//!     slow_ms: 1000                # a span this long keeps its trace; null: no slow rule
//!     decision_wait_ms: 5000       # decided once no span arrived for this long
//!     max_trace_wait_ms: 60000
//!     max_pending_traces: 100000   # beyond: the oldest is decided at once
//!     decision_cache: 500000       # decisions remembered for late spans
//!     spool_max_bytes: 1073741824  # beyond: exports refused with 429 / RESOURCE_EXHAUSTED
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::export::config::{self, Destination, ExportDefaults, SettingError};
use crate::export::{QueueConfig, RetryPolicy};
use crate::processors::{DEFAULT_SECRET_KEYS, Redaction, ResourceEdits};
use crate::tail_sampling::TailSamplingConfig;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub store: Option<bool>,
    #[serde(default)]
    pub export: Vec<ExportEntry>,
    pub queue: Option<QueueEntry>,
    pub retry: Option<RetryEntry>,
    #[serde(default)]
    pub processors: ProcessorsEntry,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportEntry {
    pub endpoint: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub compression: Option<String>,
    pub timeout_ms: Option<u64>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueEntry {
    pub max_bytes: Option<u64>,
    pub max_age_secs: Option<u64>,
    pub sync_writes: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryEntry {
    pub initial_ms: Option<u64>,
    pub max_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorsEntry {
    pub redaction: Option<RedactionEntry>,
    #[serde(default)]
    pub resource: ResourceEntry,
    pub tail_sampling: Option<TailSamplingEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailSamplingEntry {
    pub ratio: f64,
    #[serde(default = "default_slow_ms")]
    pub slow_ms: Option<u64>,
    pub decision_wait_ms: Option<u64>,
    pub max_trace_wait_ms: Option<u64>,
    pub max_pending_traces: Option<usize>,
    pub decision_cache: Option<usize>,
    pub spool_max_bytes: Option<u64>,
}

#[allow(clippy::unnecessary_wraps)] // serde's default must return the field's type
fn default_slow_ms() -> Option<u64> {
    Some(1000)
}

impl TailSamplingEntry {
    /// The sampler's settings, validated; errors name the field under `processors.tail_sampling`.
    pub fn config(&self) -> Result<TailSamplingConfig, String> {
        let mut config = TailSamplingConfig {
            ratio: self.ratio,
            slow: self.slow_ms.map(Duration::from_millis),
            ..TailSamplingConfig::default()
        };
        if let Some(ms) = self.decision_wait_ms {
            config.decision_wait = Duration::from_millis(ms);
        }
        if let Some(ms) = self.max_trace_wait_ms {
            config.max_trace_wait = Duration::from_millis(ms);
        } else {
            config.max_trace_wait = config.max_trace_wait.max(config.decision_wait);
        }
        if let Some(n) = self.max_pending_traces {
            config.max_pending_traces = n;
            if self.decision_cache.is_none() {
                config.decision_cache = config.decision_cache.max(n);
            }
        }
        if let Some(n) = self.decision_cache {
            config.decision_cache = n;
        }
        if let Some(bytes) = self.spool_max_bytes {
            config.spool.max_bytes = bytes;
        }
        config.validate("processors.tail_sampling.")?;
        Ok(config)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionEntry {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub secret_keys: Option<Vec<String>>,
    #[serde(default = "yes")]
    pub emails: bool,
    #[serde(default = "yes")]
    pub card_numbers: bool,
    #[serde(default = "yes")]
    pub bearer_tokens: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceEntry {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub insert: BTreeMap<String, String>,
}

/// Why the config file is not usable; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The pipeline a config file describes, ready to merge with flags.
#[derive(Debug, Default)]
pub struct PipelineFile {
    pub store: Option<bool>,
    pub destinations: Vec<Destination>,
    pub queue: Option<QueueEntry>,
    pub retry: Option<RetryEntry>,
    pub redaction: Option<Redaction>,
    pub resource: ResourceEdits,
    pub tail_sampling: Option<TailSamplingConfig>,
}

impl PipelineFile {
    /// Reads and validates `path`; `defaults` (from the environment) apply to its destinations.
    pub fn load(path: &Path, defaults: &ExportDefaults) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, defaults).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Validates YAML text; the error names the field.
    pub fn parse(text: &str, defaults: &ExportDefaults) -> Result<Self, String> {
        let file: FileConfig = if text.trim().is_empty() {
            FileConfig::default()
        } else {
            serde_norway::from_str(text).map_err(|err| err.to_string())?
        };
        let mut destinations = Vec::new();
        for (i, entry) in file.export.iter().enumerate() {
            let field = |name: &str| format!("export[{i}].{name}");
            let mut defaults = defaults.clone();
            for (k, v) in &entry.headers {
                if k.trim().is_empty() {
                    return Err(format!("{}: a header name is empty", field("headers")));
                }
                defaults
                    .headers
                    .retain(|(key, _)| !key.eq_ignore_ascii_case(k));
                defaults.headers.push((k.clone(), v.clone()));
            }
            if let Some(c) = &entry.compression {
                defaults.gzip = config::parse_compression(&field("compression"), c)
                    .map_err(|e| e.to_string())?;
            }
            if let Some(ms) = entry.timeout_ms {
                if ms == 0 {
                    return Err(format!("{}: must be above 0", field("timeout_ms")));
                }
                defaults.timeout = Duration::from_millis(ms);
            }
            for (value, slot) in [
                (&entry.ca_file, &mut defaults.tls.ca_file),
                (&entry.client_cert, &mut defaults.tls.client_cert),
                (&entry.client_key, &mut defaults.tls.client_key),
            ] {
                if let Some(path) = value {
                    *slot = Some(path.clone());
                }
            }
            let destination = Destination::parse(&field("endpoint"), &entry.endpoint, &defaults)
                .map_err(|e: SettingError| e.to_string())?;
            destinations.push(destination);
        }
        if let Some(retry) = &file.retry {
            let initial = retry.initial_ms.unwrap_or(1000);
            let max = retry.max_ms.unwrap_or(30_000);
            if initial == 0 || initial > max {
                return Err("retry.initial_ms: must be above 0 and at most retry.max_ms".into());
            }
        }
        let redaction = match &file.processors.redaction {
            Some(r) if r.enabled => {
                let secret_keys = match &r.secret_keys {
                    Some(keys) => {
                        if let Some(i) = keys.iter().position(|k| k.trim().is_empty()) {
                            return Err(format!("processors.redaction.secret_keys[{i}]: empty"));
                        }
                        keys.iter().map(|k| k.to_ascii_lowercase()).collect()
                    }
                    None => DEFAULT_SECRET_KEYS
                        .iter()
                        .map(|k| (*k).to_owned())
                        .collect(),
                };
                Some(Redaction {
                    secret_keys,
                    emails: r.emails,
                    card_numbers: r.card_numbers,
                    bearer_tokens: r.bearer_tokens,
                })
            }
            _ => None,
        };
        for (section, map) in [
            ("set", &file.processors.resource.set),
            ("insert", &file.processors.resource.insert),
        ] {
            if map.keys().any(|k| k.trim().is_empty()) {
                return Err(format!(
                    "processors.resource.{section}: an attribute key is empty"
                ));
            }
        }
        let tail_sampling = file
            .processors
            .tail_sampling
            .as_ref()
            .map(TailSamplingEntry::config)
            .transpose()?;
        Ok(Self {
            tail_sampling,
            store: file.store,
            destinations,
            queue: file.queue,
            retry: file.retry,
            redaction,
            resource: ResourceEdits {
                set: file.processors.resource.set.into_iter().collect(),
                insert: file.processors.resource.insert.into_iter().collect(),
            },
        })
    }

    /// The queue settings, file over `base`.
    pub fn queue_config(&self, mut base: QueueConfig) -> QueueConfig {
        if let Some(q) = &self.queue {
            base.max_bytes = q.max_bytes.unwrap_or(base.max_bytes);
            base.max_age = q.max_age_secs.map_or(base.max_age, Duration::from_secs);
            base.sync_writes = q.sync_writes.unwrap_or(base.sync_writes);
        }
        base
    }

    /// The retry policy, file over `base`.
    pub fn retry_policy(&self, mut base: RetryPolicy) -> RetryPolicy {
        if let Some(r) = &self.retry {
            base.initial = r.initial_ms.map_or(base.initial, Duration::from_millis);
            base.max = r.max_ms.map_or(base.max, Duration::from_millis);
        }
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let text = r#"
store: false
export:
  - endpoint: grpcs://ingress.example.com:443
    headers: { authorization: "Bearer abc" }
    compression: none
    timeout_ms: 2000
  - endpoint: http://127.0.0.1:4318
queue: { max_bytes: 1000, sync_writes: true }
retry: { initial_ms: 10, max_ms: 100 }
processors:
  redaction: { secret_keys: [Token] }
  resource:
    set: { deployment.environment: prod }
    insert: { cx.application.name: shop }
  tail_sampling: { ratio: 0.25, slow_ms: null, decision_wait_ms: 700 }
"#;
        let file = PipelineFile::parse(text, &ExportDefaults::default()).expect("valid");
        assert_eq!(file.store, Some(false));
        assert_eq!(file.destinations.len(), 2);
        assert_eq!(
            file.destinations[0].headers,
            vec![("authorization".to_owned(), "Bearer abc".to_owned())]
        );
        assert!(!file.destinations[0].gzip);
        assert!(file.destinations[1].gzip);
        assert_eq!(
            file.redaction.as_ref().map(|r| r.secret_keys.clone()),
            Some(vec!["token".to_owned()])
        );
        assert_eq!(
            file.resource.insert,
            vec![("cx.application.name".to_owned(), "shop".to_owned())]
        );
        let sampling = file
            .tail_sampling
            .as_ref()
            .expect("tail sampling configured");
        assert_eq!(sampling.ratio, 0.25);
        assert_eq!(sampling.slow, None, "slow_ms: null turns the slow rule off");
        assert_eq!(sampling.decision_wait, Duration::from_millis(700));
        let queue = file.queue_config(QueueConfig::default());
        assert_eq!((queue.max_bytes, queue.sync_writes), (1000, true));
        assert_eq!(
            file.retry_policy(RetryPolicy::default()).initial,
            Duration::from_millis(10)
        );
    }

    #[test]
    fn errors_name_the_field() {
        let d = ExportDefaults::default();
        let unknown = PipelineFile::parse("exprot: []", &d).expect_err("typo");
        assert!(unknown.contains("exprot"), "{unknown}");
        let nested = PipelineFile::parse("processors: { redaction: { emails: yes-please } }", &d)
            .expect_err("bad bool");
        assert!(
            nested.contains("emails") || nested.contains("processors"),
            "{nested}"
        );
        let endpoint =
            PipelineFile::parse("export: [{ endpoint: 'ftp://x:1' }]", &d).expect_err("scheme");
        assert!(endpoint.starts_with("export[0].endpoint"), "{endpoint}");
        let compression =
            PipelineFile::parse("export: [{ endpoint: 'h:1', compression: zstd }]", &d)
                .expect_err("zstd");
        assert!(
            compression.starts_with("export[0].compression"),
            "{compression}"
        );
        let retry = PipelineFile::parse("retry: { initial_ms: 0 }", &d).expect_err("zero");
        assert!(retry.starts_with("retry.initial_ms"), "{retry}");
        let ratio = PipelineFile::parse("processors: { tail_sampling: { ratio: 1.5 } }", &d)
            .expect_err("ratio");
        assert!(
            ratio.starts_with("processors.tail_sampling.ratio"),
            "{ratio}"
        );
        let wait = PipelineFile::parse(
            "processors: { tail_sampling: { ratio: 0.1, decision_wait_ms: 0 } }",
            &d,
        )
        .expect_err("wait");
        assert!(
            wait.starts_with("processors.tail_sampling.decision_wait_ms"),
            "{wait}"
        );
        let unknown =
            PipelineFile::parse("processors: { tail_sampling: { ratio: 0.1, slow: 5 } }", &d)
                .expect_err("unknown field");
        assert!(unknown.contains("slow"), "{unknown}");
    }
}
