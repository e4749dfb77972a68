//! The platform's log lines (`START`, `END`, `REPORT`, timeouts), worded as Lambda writes them to
//! the function's log stream, and where they go.

use std::time::Duration;

/// Where the host writes its platform log lines. The function's own stdout and stderr are not
/// routed here: they pass straight through to the host's.
pub trait PlatformLog: Send + Sync + std::fmt::Debug {
    /// Writes one line (no trailing newline).
    fn line(&self, line: &str);

    /// Writes one line of an invocation: `context` says which trace the invocation's records
    /// belong to (when they all carry one) and whether the line reports a failure. Plain
    /// writers ignore it.
    fn invocation_line(&self, line: &str, context: &LineContext) {
        let _ = context;
        self.line(line);
    }
}

/// What is known about an invocation when its platform line is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineContext {
    /// The trace id every record of the batch carries (W3C `traceparent` in the message
    /// attributes, else `AWSTraceHeader`); `None` when they carry none or differ.
    pub trace_id: Option<[u8; 16]>,
    /// The line reports a timeout or an error.
    pub error: bool,
}

/// Writes platform lines to stdout, as [`StdoutLog`], and emits each as an OpenTelemetry log
/// record through `logger` (an OTLP log exporter's, whose resource names the function as the
/// service): severity INFO, or ERROR for timeouts and errors, in the invocation's trace when
/// known, as CloudWatch gets them from Lambda.
pub struct OtlpLog<L> {
    logger: L,
}

impl<L> OtlpLog<L> {
    pub fn new(logger: L) -> Self {
        Self { logger }
    }
}

impl<L> std::fmt::Debug for OtlpLog<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpLog").finish_non_exhaustive()
    }
}

impl<L: opentelemetry::logs::Logger + Send + Sync> PlatformLog for OtlpLog<L> {
    fn line(&self, line: &str) {
        self.invocation_line(line, &LineContext::default());
    }

    fn invocation_line(&self, line: &str, context: &LineContext) {
        use opentelemetry::logs::{LogRecord as _, Severity};
        StdoutLog.line(line);
        let mut record = self.logger.create_log_record();
        let now = std::time::SystemTime::now();
        record.set_timestamp(now);
        record.set_observed_timestamp(now);
        let (number, text) = if context.error {
            (Severity::Error, "ERROR")
        } else {
            (Severity::Info, "INFO")
        };
        record.set_severity_number(number);
        record.set_severity_text(text);
        record.set_body(line.to_owned().into());
        if let Some(id) = context.trace_id {
            record.set_trace_context(
                opentelemetry::trace::TraceId::from_bytes(id),
                opentelemetry::trace::SpanId::INVALID,
                None,
            );
        }
        self.logger.emit(record);
    }
}

/// The trace id every record carries, `None` when one carries none or they differ.
pub fn batch_trace_id(records: &[aws_lambda_events::event::sqs::SqsMessage]) -> Option<[u8; 16]> {
    use opentelemetry::trace::TraceContextExt as _;
    let propagator = throughline_propagation::TraceContextPropagator::new();
    let mut found = None;
    for record in records {
        let cx = throughline_carriers::extract_lambda_sqs_record(&propagator, record);
        let sc = cx.span().span_context().clone();
        if !sc.is_valid() {
            return None;
        }
        let id = sc.trace_id().to_bytes();
        if found.is_some_and(|f| f != id) {
            return None;
        }
        found = Some(id);
    }
    found
}

/// Writes platform lines to the host's stdout, interleaved with the function's output as in
/// CloudWatch.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutLog;

impl PlatformLog for StdoutLog {
    fn line(&self, line: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the host; the line is lost as it would be on a full disk.
        let _ = writeln!(out, "{line}");
    }
}

/// What one invocation's `REPORT` line says.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationReport {
    pub request_id: String,
    pub duration: Duration,
    pub memory_size_mb: u32,
    pub max_memory_used_mb: u64,
    /// Set on the first invocation of a new (cold) environment.
    pub init_duration: Option<Duration>,
    /// `Some("timeout")` or `Some("error")` when the environment did not finish the invocation.
    pub status: Option<&'static str>,
}

pub fn start_line(request_id: &str) -> String {
    format!("START RequestId: {request_id} Version: $LATEST")
}

pub fn end_line(request_id: &str) -> String {
    format!("END RequestId: {request_id}")
}

/// `<timestamp> <request id> Task timed out after 3.00 seconds`
pub fn timeout_line(request_id: &str, timeout: Duration) -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!(
        "{now} {request_id} Task timed out after {:.2} seconds",
        timeout.as_secs_f64()
    )
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The tab-separated `REPORT` line. Billed duration is rounded up to the millisecond and, as
/// Lambda bills the init phase since August 2025, includes the init duration on a cold start.
pub fn report_line(report: &InvocationReport) -> String {
    let billed = millis(report.duration + report.init_duration.unwrap_or_default()).ceil() as u64;
    let mut line = format!(
        "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
        report.request_id,
        millis(report.duration),
        report.memory_size_mb,
        report.max_memory_used_mb,
    );
    if let Some(init) = report.init_duration {
        line.push_str(&format!("Init Duration: {:.2} ms\t", millis(init)));
    }
    if let Some(status) = report.status {
        line.push_str(&format!("Status: {status}\t"));
    }
    line
}

/// The peak resident set (`VmHWM`) in MB from the text of `/proc/<pid>/status`, rounded up.
pub fn peak_rss_mb(proc_status: &str) -> Option<u64> {
    let line = proc_status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb.div_ceil(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_carries_init_duration_only_when_given() {
        let mut report = InvocationReport {
            request_id: "8f507cfc-0000-4697-b07a-ac58fc914c95".into(),
            duration: Duration::from_micros(3_640),
            memory_size_mb: 128,
            max_memory_used_mb: 63,
            init_duration: None,
            status: None,
        };
        assert_eq!(
            report_line(&report),
            "REPORT RequestId: 8f507cfc-0000-4697-b07a-ac58fc914c95\tDuration: 3.64 ms\t\
             Billed Duration: 4 ms\tMemory Size: 128 MB\tMax Memory Used: 63 MB\t"
        );
        report.init_duration = Some(Duration::from_micros(139_200));
        report.status = Some("timeout");
        assert_eq!(
            report_line(&report),
            "REPORT RequestId: 8f507cfc-0000-4697-b07a-ac58fc914c95\tDuration: 3.64 ms\t\
             Billed Duration: 143 ms\tMemory Size: 128 MB\tMax Memory Used: 63 MB\t\
             Init Duration: 139.20 ms\tStatus: timeout\t"
        );
    }

    #[test]
    fn start_and_end_lines() {
        assert_eq!(start_line("r-1"), "START RequestId: r-1 Version: $LATEST");
        assert_eq!(end_line("r-1"), "END RequestId: r-1");
        assert!(
            timeout_line("r-1", Duration::from_secs(3))
                .ends_with(" r-1 Task timed out after 3.00 seconds")
        );
    }

    #[test]
    fn peak_rss_is_read_from_proc_status() {
        let status = "Name:\tpython3\nVmPeak:\t  30000 kB\nVmHWM:\t   20481 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(peak_rss_mb(status), Some(21));
        assert_eq!(peak_rss_mb("Name:\tx\n"), None);
    }
}
