//! Export destinations: `--export-otlp URL` and the standard `OTEL_EXPORTER_OTLP_*` variables,
//! parsed as the OpenTelemetry specification says (headers as comma-separated `key=value` with
//! percent-decoded values, the timeout in milliseconds, `gzip` or `none`).

use std::path::PathBuf;
use std::time::Duration;

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

/// One upstream the collector forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The URL as given: names the destination in logs, errors and figures.
    pub name: String,
    pub protocol: Protocol,
    /// `host:port`.
    pub authority: String,
    /// The base path of an OTLP/HTTP endpoint (`/v1/traces` etc. are appended); empty for gRPC.
    pub path: String,
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

impl ExportDefaults {
    /// The defaults from `OTEL_EXPORTER_OTLP_{HEADERS,TIMEOUT,COMPRESSION,CERTIFICATE,
    /// CLIENT_CERTIFICATE,CLIENT_KEY}`, read through `var`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let mut out = Self::default();
        if let Some(headers) = var("OTEL_EXPORTER_OTLP_HEADERS") {
            out.headers = parse_headers("OTEL_EXPORTER_OTLP_HEADERS", &headers)?;
        }
        if let Some(timeout) = var("OTEL_EXPORTER_OTLP_TIMEOUT") {
            let ms: u64 = timeout.trim().parse().map_err(|_| {
                bad(
                    "OTEL_EXPORTER_OTLP_TIMEOUT",
                    format!("{timeout:?} is not a number of milliseconds"),
                )
            })?;
            out.timeout = Duration::from_millis(ms);
        }
        if let Some(compression) = var("OTEL_EXPORTER_OTLP_COMPRESSION") {
            out.gzip = parse_compression("OTEL_EXPORTER_OTLP_COMPRESSION", &compression)?;
        }
        out.tls.ca_file = var("OTEL_EXPORTER_OTLP_CERTIFICATE").map(PathBuf::from);
        out.tls.client_cert = var("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE").map(PathBuf::from);
        out.tls.client_key = var("OTEL_EXPORTER_OTLP_CLIENT_KEY").map(PathBuf::from);
        Ok(out)
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
            headers: defaults.headers.clone(),
            tls: defaults.tls.clone(),
            gzip: defaults.gzip,
            timeout: defaults.timeout,
        })
    }

    /// The destination named by `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_EXPORTER_OTLP_PROTOCOL`
    /// (`grpc` or `http/protobuf`, the specification's default), `None` when no endpoint is set.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        defaults: &ExportDefaults,
    ) -> Result<Option<Self>, SettingError> {
        let Some(endpoint) = var("OTEL_EXPORTER_OTLP_ENDPOINT") else {
            return Ok(None);
        };
        let protocol = var("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or_else(|| "http/protobuf".into());
        let insecure =
            var("OTEL_EXPORTER_OTLP_INSECURE").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let setting = "OTEL_EXPORTER_OTLP_ENDPOINT";
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
                    Some(url) => url,
                    None if insecure => format!("grpc://{endpoint}"),
                    None => format!("grpcs://{endpoint}"),
                }
            }
            other => {
                return Err(bad(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    format!("{other:?} is not grpc or http/protobuf"),
                ));
            }
        };
        let mut destination = Self::parse(setting, url.trim_end_matches('/'), defaults)?;
        destination.name = endpoint;
        Ok(Some(destination))
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
