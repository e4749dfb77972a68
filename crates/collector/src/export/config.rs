//! Export destinations: `--export-otlp URL` and the standard `OTEL_EXPORTER_OTLP_*` variables,
//! parsed as the OpenTelemetry specification says (headers as comma-separated `key=value` with
//! percent-decoded values, the timeout in milliseconds, `gzip` or `none`).
//!
//! Every setting has its per-signal variable, `OTEL_EXPORTER_OTLP_{TRACES,LOGS,METRICS}_*`,
//! which overrides the generic one for that signal. Over OTLP/HTTP the generic endpoint is a
//! base (`/v1/traces` etc. appended to its path) while a per-signal endpoint is used as-is (no
//! path: the root path). Signals whose settings come out the same share one destination (one
//! queue); a signal with no endpoint in either variable is not forwarded.

use std::path::PathBuf;
use std::time::Duration;

use crate::self_metrics::Signal;

/// The wire protocol toward a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC; `tls` for `grpcs://`.
    Grpc { tls: bool },
    /// OTLP/HTTP with protobuf bodies; `tls` for `https://`.
    Http { tls: bool },
}

/// TLS material beyond the system roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// A PEM bundle of CA certificates trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate (mutual TLS), with its key.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Which signals a destination carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalSet {
    pub traces: bool,
    pub logs: bool,
    pub metrics: bool,
}

impl SignalSet {
    pub const ALL: Self = Self {
        traces: true,
        logs: true,
        metrics: true,
    };
    pub const NONE: Self = Self {
        traces: false,
        logs: false,
        metrics: false,
    };

    pub fn contains(self, signal: Signal) -> bool {
        match signal {
            Signal::Traces => self.traces,
            Signal::Logs => self.logs,
            Signal::Metrics => self.metrics,
        }
    }

    pub fn insert(&mut self, signal: Signal) {
        match signal {
            Signal::Traces => self.traces = true,
            Signal::Logs => self.logs = true,
            Signal::Metrics => self.metrics = true,
        }
    }

    /// `traces,logs`, for names.
    pub fn names(self) -> String {
        Signal::ALL
            .iter()
            .filter(|s| self.contains(**s))
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Default for SignalSet {
    fn default() -> Self {
        Self::ALL
    }
}

/// One upstream the collector forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The URL as given: names the destination in logs, errors and figures.
    pub name: String,
    pub protocol: Protocol,
    /// `host:port`.
    pub authority: String,
    /// The base path of an OTLP/HTTP endpoint (`/v1/traces` etc. are appended), or with
    /// `exact_path` the whole path; empty for gRPC.
    pub path: String,
    /// The path is the endpoint's own (a per-signal variable's URL, used as-is).
    pub exact_path: bool,
    /// The signals sent here (all, unless per-signal variables split them).
    pub signals: SignalSet,
    pub headers: Vec<(String, String)>,
    pub tls: TlsFiles,
    pub gzip: bool,
    pub timeout: Duration,
}

/// A setting that does not parse; names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingError {
    pub setting: String,
    pub message: String,
}

fn bad(setting: &str, message: impl Into<String>) -> SettingError {
    SettingError {
        setting: setting.to_owned(),
        message: message.into(),
    }
}

/// The OTLP exporter default timeout (specification: 10 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings shared by every destination unless a flag says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportDefaults {
    pub headers: Vec<(String, String)>,
    pub tls: TlsFiles,
    pub gzip: bool,
    pub timeout: Duration,
}

impl Default for ExportDefaults {
    fn default() -> Self {
        Self {
            headers: Vec::new(),
            tls: TlsFiles::default(),
            gzip: true,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The variable `OTEL_EXPORTER_OTLP_{SUFFIX}`, or with a signal its per-signal variable
/// `OTEL_EXPORTER_OTLP_{TRACES|LOGS|METRICS}_{SUFFIX}`.
pub fn env_name(signal: Option<Signal>, suffix: &str) -> String {
    match signal {
        None => format!("OTEL_EXPORTER_OTLP_{suffix}"),
        Some(s) => format!(
            "OTEL_EXPORTER_OTLP_{}_{suffix}",
            s.as_str().to_ascii_uppercase()
        ),
    }
}

impl ExportDefaults {
    /// The defaults from `OTEL_EXPORTER_OTLP_{HEADERS,TIMEOUT,COMPRESSION,CERTIFICATE,
    /// CLIENT_CERTIFICATE,CLIENT_KEY}`, read through `var`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let mut out = Self::default();
        out.apply_env(None, &var)?;
        Ok(out)
    }

    /// The defaults of one signal: the generic variables, each overridden by its per-signal
    /// variable (`OTEL_EXPORTER_OTLP_TRACES_HEADERS` over `OTEL_EXPORTER_OTLP_HEADERS`, …).
    pub fn from_env_for(
        signal: Signal,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingError> {
        let mut out = Self::default();
        out.apply_env(None, &var)?;
        out.apply_env(Some(signal), &var)?;
        Ok(out)
    }

    fn apply_env(
        &mut self,
        signal: Option<Signal>,
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), SettingError> {
        let name = |suffix: &str| env_name(signal, suffix);
        let headers_var = name("HEADERS");
        if let Some(headers) = var(&headers_var) {
            self.headers = parse_headers(&headers_var, &headers)?;
        }
        let timeout_var = name("TIMEOUT");
        if let Some(timeout) = var(&timeout_var) {
            let ms: u64 = timeout.trim().parse().map_err(|_| {
                bad(
                    &timeout_var,
                    format!("{timeout:?} is not a number of milliseconds"),
                )
            })?;
            self.timeout = Duration::from_millis(ms);
        }
        let compression_var = name("COMPRESSION");
        if let Some(compression) = var(&compression_var) {
            self.gzip = parse_compression(&compression_var, &compression)?;
        }
        for (suffix, slot) in [
            ("CERTIFICATE", &mut self.tls.ca_file),
            ("CLIENT_CERTIFICATE", &mut self.tls.client_cert),
            ("CLIENT_KEY", &mut self.tls.client_key),
        ] {
            if let Some(path) = var(&name(suffix)) {
                *slot = Some(PathBuf::from(path));
            }
        }
        Ok(())
    }
}

/// `gzip` or `none`.
pub fn parse_compression(setting: &str, value: &str) -> Result<bool, SettingError> {
    match value.trim() {
        "gzip" => Ok(true),
        "none" | "" => Ok(false),
        other => Err(bad(setting, format!("{other:?} is not gzip or none"))),
    }
}

/// `k1=v1,k2=v2` with percent-encoded values (W3C Baggage's format, as the specification
/// says); whitespace around keys and values is trimmed.
pub fn parse_headers(setting: &str, value: &str) -> Result<Vec<(String, String)>, SettingError> {
    let mut out = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad(setting, format!("{pair:?} is not key=value")))?;
        let key = k.trim();
        if key.is_empty() {
            return Err(bad(setting, format!("{pair:?} has an empty key")));
        }
        let decoded = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| {
                bad(
                    setting,
                    format!("the value of {key:?} is not UTF-8 once decoded"),
                )
            })?;
        out.push((key.to_owned(), decoded.into_owned()));
    }
    Ok(out)
}

/// One `--export-header k=v` (the value taken literally).
pub fn parse_header_flag(value: &str) -> Result<(String, String), SettingError> {
    let (k, v) = value
        .split_once('=')
        .ok_or_else(|| bad("--export-header", format!("{value:?} is not key=value")))?;
    if k.trim().is_empty() {
        return Err(bad(
            "--export-header",
            format!("{value:?} has an empty key"),
        ));
    }
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

impl Destination {
    /// Parses `grpc://host:port`, `grpcs://host:port`, `http://host:port[/base]`,
    /// `https://…`, or a bare `host:port` (gRPC, plaintext), with `defaults` applied.
    pub fn parse(
        setting: &str,
        url: &str,
        defaults: &ExportDefaults,
    ) -> Result<Self, SettingError> {
        let url = url.trim();
        let (protocol, rest) = if let Some(rest) = url.strip_prefix("grpc://") {
            (Protocol::Grpc { tls: false }, rest)
        } else if let Some(rest) = url.strip_prefix("grpcs://") {
            (Protocol::Grpc { tls: true }, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (Protocol::Http { tls: false }, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (Protocol::Http { tls: true }, rest)
        } else if url.contains("://") {
            return Err(bad(
                setting,
                format!("{url:?}: the scheme is not grpc, grpcs, http or https"),
            ));
        } else {
            (Protocol::Grpc { tls: false }, url)
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let valid_authority = authority
            .parse::<http::uri::Authority>()
            .ok()
            .is_some_and(|a| !a.host().is_empty());
        if !valid_authority {
            return Err(bad(setting, format!("{url:?} has no valid host[:port]")));
        }
        if matches!(protocol, Protocol::Grpc { .. }) && !path.trim_matches('/').is_empty() {
            return Err(bad(
                setting,
                format!(
                    "{url:?}: a gRPC endpoint has no path (the OTLP services' paths are fixed)"
                ),
            ));
        }
        let default_port = match protocol {
            Protocol::Grpc { .. } => 4317,
            Protocol::Http { tls: false } => 4318,
            Protocol::Http { tls: true } => 443,
        };
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:{default_port}")
        };
        Ok(Self {
            name: url.to_owned(),
            protocol,
            authority,
            path: path.to_owned(),
            exact_path: false,
            signals: SignalSet::ALL,
            headers: defaults.headers.clone(),
            tls: defaults.tls.clone(),
            gzip: defaults.gzip,
            timeout: defaults.timeout,
        })
    }

    /// The destination named by `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_EXPORTER_OTLP_PROTOCOL`
    /// (`grpc` or `http/protobuf`, the specification's default), `None` when no endpoint is set.
    /// The per-signal variables are not read here; see [`Destination::all_from_env`].
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        defaults: &ExportDefaults,
    ) -> Result<Option<Self>, SettingError> {
        Self::signal_from_env(None, &var, defaults)
    }

    /// One signal's destination (`signal: None`: the generic variables only).
    fn signal_from_env(
        signal: Option<Signal>,
        var: &impl Fn(&str) -> Option<String>,
        defaults: &ExportDefaults,
    ) -> Result<Option<Self>, SettingError> {
        let own = signal.and_then(|s| {
            let name = env_name(Some(s), "ENDPOINT");
            var(&name).map(|v| (name, v))
        });
        let exact = own.is_some();
        let Some((setting, endpoint)) = own.or_else(|| {
            var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(|v| ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), v))
        }) else {
            return Ok(None);
        };
        let pick = |suffix: &str| {
            signal
                .and_then(|s| {
                    let name = env_name(Some(s), suffix);
                    var(&name).map(|v| (name, v))
                })
                .or_else(|| {
                    let name = env_name(None, suffix);
                    var(&name).map(|v| (name, v))
                })
        };
        let (protocol_var, protocol) = pick("PROTOCOL")
            .unwrap_or_else(|| (env_name(None, "PROTOCOL"), "http/protobuf".into()));
        let insecure = pick("INSECURE").is_some_and(|(_, v)| v.trim().eq_ignore_ascii_case("true"));
        let url = match protocol.trim() {
            "http/protobuf" => endpoint.clone(),
            "grpc" => {
                // The gRPC exporter takes an http(s) URL; https (or no scheme, unless insecure)
                // means TLS.
                let rest = endpoint
                    .strip_prefix("http://")
                    .map(|r| format!("grpc://{r}"))
                    .or_else(|| {
                        endpoint
                            .strip_prefix("https://")
                            .map(|r| format!("grpcs://{r}"))
                    });
                match rest {
                    Some(url) => url.trim_end_matches('/').to_owned(),
                    None if insecure => format!("grpc://{}", endpoint.trim_end_matches('/')),
                    None => format!("grpcs://{}", endpoint.trim_end_matches('/')),
                }
            }
            other => {
                return Err(bad(
                    &protocol_var,
                    format!("{other:?} is not grpc or http/protobuf"),
                ));
            }
        };
        let mut destination = Self::parse(&setting, &url, defaults)?;
        if matches!(destination.protocol, Protocol::Http { .. }) && exact {
            // As-is: no path is the root path.
            destination.exact_path = true;
            if destination.path.is_empty() {
                destination.path = "/".into();
            }
        }
        destination.name = endpoint;
        Ok(Some(destination))
    }

    /// The destinations the `OTEL_EXPORTER_OTLP_*` variables name, generic and per-signal:
    /// each signal's settings resolved (per-signal over generic, then `tune` — the command
    /// line's flags — over both), and signals that come out alike sharing one destination.
    /// Empty when no endpoint variable is set.
    pub fn all_from_env(
        var: impl Fn(&str) -> Option<String>,
        tune: impl Fn(&mut ExportDefaults) -> Result<(), SettingError>,
    ) -> Result<Vec<Self>, SettingError> {
        let mut out: Vec<Self> = Vec::new();
        for signal in Signal::ALL {
            let mut defaults = ExportDefaults::from_env_for(signal, &var)?;
            tune(&mut defaults)?;
            let Some(mut destination) = Self::signal_from_env(Some(signal), &var, &defaults)?
            else {
                continue;
            };
            destination.signals = SignalSet::NONE;
            destination.signals.insert(signal);
            let alike = out.iter_mut().find(|d| {
                Self {
                    signals: destination.signals,
                    ..(*d).clone()
                } == destination
            });
            match alike {
                Some(d) => d.signals.insert(signal),
                None => out.push(destination),
            }
        }
        for d in &mut out {
            if d.signals != SignalSet::ALL {
                d.name = format!("{} ({})", d.name, d.signals.names());
            }
        }
        Ok(out)
    }

    /// The URL an OTLP/HTTP destination takes `signal` at: the base path with `/v1/<signal>`
    /// appended, or the exact path as given. `None` for gRPC.
    pub fn http_url(&self, signal: Signal) -> Option<String> {
        let Protocol::Http { tls } = self.protocol else {
            return None;
        };
        let scheme = if tls { "https" } else { "http" };
        Some(if self.exact_path {
            format!("{scheme}://{}{}", self.authority, self.path)
        } else {
            format!(
                "{scheme}://{}{}/v1/{}",
                self.authority,
                self.path.trim_end_matches('/'),
                signal.as_str()
            )
        })
    }

    /// A file-system-safe name for the destination's queue directory.
    pub fn queue_dir_name(&self) -> String {
        let mut out: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        out.truncate(100);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_choose_the_protocol_and_default_ports() {
        let d = ExportDefaults::default();
        let grpc = Destination::parse("--export-otlp", "collector:4317", &d).expect("bare");
        assert_eq!(grpc.protocol, Protocol::Grpc { tls: false });
        assert_eq!(grpc.authority, "collector:4317");
        let tls =
            Destination::parse("--export-otlp", "grpcs://ingress.example.com", &d).expect("grpcs");
        assert_eq!(
            (tls.protocol, tls.authority.as_str()),
            (Protocol::Grpc { tls: true }, "ingress.example.com:4317")
        );
        let http = Destination::parse("--export-otlp", "https://otlp.example.com/otlp/", &d)
            .expect("https");
        assert_eq!(http.protocol, Protocol::Http { tls: true });
        assert_eq!(
            (http.authority.as_str(), http.path.as_str()),
            ("otlp.example.com:443", "/otlp/")
        );
        let err = Destination::parse("--export-otlp", "ftp://x:1", &d).expect_err("scheme");
        assert_eq!(err.setting, "--export-otlp");
        assert!(Destination::parse("--export-otlp", "grpc://h:1/v1/traces", &d).is_err());
        assert!(Destination::parse("--export-otlp", "http://", &d).is_err());
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn urls(destinations: &[Destination]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for d in destinations {
            for signal in Signal::ALL {
                if d.signals.contains(signal) {
                    out.push((
                        signal.as_str().to_owned(),
                        d.http_url(signal).expect("HTTP"),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut out: Vec<_> = list
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn endpoint_urls_follow_the_specifications_examples() {
        let none = |_: &mut ExportDefaults| Ok(());
        // Example 1: one generic endpoint; the signal paths appended; one destination.
        let one = Destination::all_from_env(
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]),
            none,
        )
        .expect("valid");
        assert_eq!(one.len(), 1, "all signals alike share one queue");
        assert_eq!(one[0].signals, SignalSet::ALL);
        assert_eq!(
            urls(&one),
            pairs(&[
                ("logs", "http://collector:4318/v1/logs"),
                ("metrics", "http://collector:4318/v1/metrics"),
                ("traces", "http://collector:4318/v1/traces"),
            ])
        );
        // Example 2: per-signal endpoints are used as-is (no path: the root path); logs have
        // no endpoint set and are not forwarded.
        let two = Destination::all_from_env(
            env(&[
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://collector:4318",
                ),
                (
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    "https://collector.example.com/v1/metrics",
                ),
            ]),
            none,
        )
        .expect("valid");
        assert_eq!(
            urls(&two),
            pairs(&[
                ("metrics", "https://collector.example.com:443/v1/metrics"),
                ("traces", "http://collector:4318/"),
            ])
        );
        // Example 3: a generic base with a path, and a per-signal override kept verbatim.
        let three = Destination::all_from_env(
            env(&[
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "http://collector:4318/mycollector/",
                ),
                (
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    "https://collector.example.com/v1/metrics/",
                ),
            ]),
            none,
        )
        .expect("valid");
        assert_eq!(
            urls(&three),
            pairs(&[
                ("logs", "http://collector:4318/mycollector/v1/logs"),
                ("metrics", "https://collector.example.com:443/v1/metrics/"),
                ("traces", "http://collector:4318/mycollector/v1/traces"),
            ])
        );
        assert_eq!(three.len(), 2);
        let names: Vec<&str> = three.iter().map(|d| d.name.as_str()).collect();
        assert!(
            names.contains(&"http://collector:4318/mycollector/ (traces,logs)"),
            "{names:?}"
        );
        assert_ne!(three[0].queue_dir_name(), three[1].queue_dir_name());
    }

    #[test]
    fn per_signal_settings_override_the_generic_ones_and_flags_override_both() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20all"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
                "authorization=Bearer%20logs",
            ),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "700"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
                "/etc/ca-metrics.pem",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "true"),
        ];
        let found = Destination::all_from_env(env(&vars), |_| Ok(())).expect("valid");
        assert_eq!(found.len(), 3, "each signal differs: {found:#?}");
        let of = |signal| {
            found
                .iter()
                .find(|d| d.signals.contains(signal))
                .expect("a destination")
        };
        let traces = of(Signal::Traces);
        assert_eq!(traces.protocol, Protocol::Grpc { tls: false });
        assert_eq!(traces.authority, "collector:4317");
        assert_eq!(traces.timeout, Duration::from_millis(5000));
        let logs = of(Signal::Logs);
        assert_eq!(
            logs.headers,
            vec![("authorization".to_owned(), "Bearer logs".to_owned())]
        );
        assert!(!logs.gzip);
        let metrics = of(Signal::Metrics);
        assert_eq!(metrics.timeout, Duration::from_millis(700));
        assert_eq!(
            metrics.headers,
            vec![("authorization".to_owned(), "Bearer all".to_owned())]
        );
        assert_eq!(
            metrics.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ca-metrics.pem"))
        );
        // A flag (applied through `tune`) wins over both.
        let flagged = Destination::all_from_env(env(&vars), |d| {
            d.timeout = Duration::from_millis(42);
            Ok(())
        })
        .expect("valid");
        assert!(
            flagged
                .iter()
                .all(|d| d.timeout == Duration::from_millis(42))
        );
        // Errors name the per-signal variable.
        let err = Destination::all_from_env(
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "soon"),
            ]),
            |_| Ok(()),
        )
        .expect_err("bad timeout");
        assert_eq!(err.setting, "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT");
        let err = Destination::all_from_env(
            env(&[
                ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
            ]),
            |_| Ok(()),
        )
        .expect_err("bad protocol");
        assert_eq!(err.setting, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL");
    }

    #[test]
    fn headers_parse_as_the_specification_says() {
        let parsed =
            parse_headers("H", " authorization = Bearer%20abc%3D ,x-team=core,, ").expect("parse");
        assert_eq!(
            parsed,
            vec![
                ("authorization".to_owned(), "Bearer abc=".to_owned()),
                ("x-team".to_owned(), "core".to_owned())
            ]
        );
        let err = parse_headers("OTEL_EXPORTER_OTLP_HEADERS", "novalue").expect_err("bad");
        assert_eq!(err.setting, "OTEL_EXPORTER_OTLP_HEADERS");
        assert_eq!(
            parse_header_flag("authorization=Bearer a=b").expect("flag"),
            ("authorization".to_owned(), "Bearer a=b".to_owned())
        );
    }

    #[test]
    fn the_environment_names_a_destination_and_its_defaults() {
        let env = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("https://api.example.com:4317".to_owned()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_owned()),
            "OTEL_EXPORTER_OTLP_TIMEOUT" => Some("2500".to_owned()),
            "OTEL_EXPORTER_OTLP_COMPRESSION" => Some("none".to_owned()),
            "OTEL_EXPORTER_OTLP_HEADERS" => Some("authorization=Bearer%20t".to_owned()),
            _ => None,
        };
        let defaults = ExportDefaults::from_env(env).expect("defaults");
        assert_eq!(defaults.timeout, Duration::from_millis(2500));
        assert!(!defaults.gzip);
        let d = Destination::from_env(env, &defaults)
            .expect("parse")
            .expect("set");
        assert_eq!(d.protocol, Protocol::Grpc { tls: true });
        assert_eq!(
            d.headers,
            vec![("authorization".to_owned(), "Bearer t".to_owned())]
        );
        let bad_timeout = |k: &str| (k == "OTEL_EXPORTER_OTLP_TIMEOUT").then(|| "10s".to_owned());
        assert_eq!(
            ExportDefaults::from_env(bad_timeout)
                .expect_err("bad")
                .setting,
            "OTEL_EXPORTER_OTLP_TIMEOUT"
        );
    }
}
