//! Why an OTLP export failed, in words a user can act on: the endpoint, the protocol, the
//! exporter's own error, and what a short probe of the endpoint shows, so that an OTLP/HTTP
//! export that reached a gRPC (HTTP/2-only) port, a gRPC export that reached an HTTP/1.1 port, or
//! a port nobody listens on is named as such (the exporters' own errors say only "network
//! error" or "broken pipe").

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::config::{OtlpConfig, OtlpProtocol};

/// How long the probe may take, connect and answer together.
const PROBE_TIMEOUT: Duration = Duration::from_millis(750);

/// Where one OTLP exporter sends: what a failure message names.
#[derive(Debug, Clone)]
pub(crate) struct ExportTarget {
    signal: &'static str,
    endpoint: String,
    protocol: OtlpProtocol,
}

impl ExportTarget {
    pub(crate) fn new(signal: &'static str, otlp: &OtlpConfig) -> Self {
        Self {
            signal,
            endpoint: otlp.endpoint.clone(),
            protocol: otlp.protocol,
        }
    }

    /// The message for a failed export with the exporter's `error`; probes the endpoint.
    pub(crate) async fn explain(&self, error: &str) -> String {
        let protocol = match self.protocol {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        };
        let finding = match probe(&self.endpoint).await {
            Some(finding) => hint(self.protocol, finding),
            None => String::new(),
        };
        format!(
            "OTLP {} export to {} over {protocol} failed: {error}{finding}",
            self.signal, self.endpoint
        )
    }
}

/// What the endpoint did with a plain HTTP/1.1 request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finding {
    /// Connection refused.
    NothingListens,
    /// An HTTP/1.x status line came back.
    SpeaksHttp1,
    /// An HTTP/2 frame (the server's SETTINGS or a GOAWAY) came back: an HTTP/2-only server.
    SpeaksOnlyHttp2,
}

fn hint(protocol: OtlpProtocol, finding: Finding) -> String {
    match (protocol, finding) {
        (_, Finding::NothingListens) => "; nothing is listening there (connection refused)".into(),
        (OtlpProtocol::HttpProtobuf, Finding::SpeaksOnlyHttp2) => {
            "; the endpoint speaks only HTTP/2, as a gRPC receiver does: this OTLP/HTTP export \
             reached a gRPC port (use the OTLP/HTTP port, usually 4318, or set \
             OTEL_EXPORTER_OTLP_PROTOCOL=grpc)"
                .into()
        }
        (OtlpProtocol::Grpc, Finding::SpeaksHttp1) => {
            "; the endpoint answers HTTP/1.1, as an OTLP/HTTP receiver does: this gRPC export \
             probably reached an HTTP port (use the gRPC port, usually 4317, or set \
             OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)"
                .into()
        }
        _ => String::new(),
    }
}

/// `host:port` of an `http://` URL (port 80 when absent); `None` for anything else (an
/// `https://` endpoint is not probed: the probe speaks plain text).
fn authority(endpoint: &str) -> Option<String> {
    let rest = endpoint.strip_prefix("http://")?;
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .filter(|a| !a.is_empty())?;
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    Some(if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    })
}

async fn probe(endpoint: &str) -> Option<Finding> {
    let authority = authority(endpoint)?;
    let attempt = async {
        let mut stream = match tokio::net::TcpStream::connect(&authority).await {
            Ok(stream) => stream,
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Some(Finding::NothingListens);
            }
            Err(_) => return None,
        };
        let request = format!("GET / HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = [0u8; 16];
        let mut read = 0;
        while read < 9 {
            match stream.read(&mut answer[read..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
        classify(&answer[..read])
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
}

fn classify(answer: &[u8]) -> Option<Finding> {
    if answer.starts_with(b"HTTP/1.") {
        return Some(Finding::SpeaksHttp1);
    }
    // An HTTP/2 frame header: 3 bytes of length, then the type: 0x4 SETTINGS, 0x7 GOAWAY.
    match answer.get(3) {
        Some(0x04 | 0x07) if answer.len() >= 9 => Some(Finding::SpeaksOnlyHttp2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_and_answers() {
        assert_eq!(
            authority("http://127.0.0.1:4318/v1/traces").as_deref(),
            Some("127.0.0.1:4318")
        );
        assert_eq!(
            authority("http://collector/v1/traces").as_deref(),
            Some("collector:80")
        );
        assert_eq!(
            authority("http://[::1]:4317").as_deref(),
            Some("[::1]:4317")
        );
        assert_eq!(authority("https://collector:4318"), None);
        assert_eq!(classify(b"HTTP/1.1 400 Bad"), Some(Finding::SpeaksHttp1));
        assert_eq!(
            classify(&[0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0]),
            Some(Finding::SpeaksOnlyHttp2)
        );
        assert_eq!(classify(b"SSH-2.0-Open"), None);
    }
}
