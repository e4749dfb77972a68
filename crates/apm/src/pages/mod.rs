//! One module per page; shared pieces (integrity badges, the no-data help) live here, finding
//! badges and sentences in [`findings`].

pub mod alerts;
pub mod dashboards;
pub mod database;
pub mod errors;
mod findings;
pub mod integrity;
pub mod logs;
pub mod map;
pub mod pipeline;
pub mod queue_hops;
pub mod search;
pub mod services;
mod span_detail;
pub mod trace;
mod trace_tree;

use std::fmt::Write as _;

use throughline_store::{IntegrityProblem, TraceIntegrity};

use crate::OtlpEndpoints;
use crate::html::Esc;

/// The badge a trace's integrity shows in lists: whole, settling, or incomplete with its reasons.
pub fn integrity_badge(integrity: &TraceIntegrity) -> String {
    match integrity {
        TraceIntegrity::Whole => {
            "<span class=\"badge whole\" title=\"a root span is present and every parent arrived\">whole</span>".to_owned()
        }
        TraceIntegrity::Settling => {
            "<span class=\"badge settling\" title=\"younger than the settle time: spans may still arrive\">settling</span>".to_owned()
        }
        TraceIntegrity::Incomplete(problems) => {
            let reasons = problems.iter().map(problem_text).collect::<Vec<_>>().join("; ");
            format!("<span class=\"badge broken\">incomplete</span> <span class=\"reason\">{}</span>", Esc(&reasons))
        }
    }
}

/// A reason a trace is not whole, in words.
pub fn problem_text(problem: &IntegrityProblem) -> String {
    match problem {
        IntegrityProblem::MissingRoot => "missing root span".to_owned(),
        IntegrityProblem::OrphanSpans {
            count,
            missing_parents,
        } => {
            let mut s = format!(
                "{count} orphan span{} (missing parent{}",
                if *count == 1 { "" } else { "s" },
                if missing_parents.len() == 1 { "" } else { "s" }
            );
            for (i, p) in missing_parents.iter().take(3).enumerate() {
                let _ = write!(s, "{}{p}", if i == 0 { " " } else { ", " });
            }
            if missing_parents.len() > 3 {
                let _ = write!(s, " and {} more", missing_parents.len() - 3);
            }
            s.push(')');
            s
        }
    }
}

/// What to do when the store holds nothing yet: point an SDK at the collector.
pub fn no_data_help(endpoints: &OtlpEndpoints) -> String {
    format!(
        "<section class=\"empty\" data-testid=\"no-data\"><h2>No traces yet</h2>\
<p>Point an OpenTelemetry SDK at the collector and send a request through your service:</p>\
<pre><code>export OTEL_EXPORTER_OTLP_ENDPOINT={grpc}\n\
export OTEL_SERVICE_NAME=my-service\n</code></pre>\
<p>OTLP over gRPC listens on <code>{grpc}</code> and over HTTP on <code>{http}</code>. \
Or start the reference system with <code>cargo run --release -- up</code>, which sends traces here by itself.</p></section>",
        grpc = Esc(&endpoints.grpc),
        http = Esc(&endpoints.http),
    )
}

#[cfg(test)]
mod tests {
    use throughline_store::SpanId;

    use super::*;

    #[test]
    fn badges_name_the_reason() {
        assert!(integrity_badge(&TraceIntegrity::Whole).contains(">whole<"));
        let b = integrity_badge(&TraceIntegrity::Incomplete(vec![
            IntegrityProblem::MissingRoot,
            IntegrityProblem::OrphanSpans {
                count: 2,
                missing_parents: vec![SpanId([1; 8])],
            },
        ]));
        assert!(
            b.contains("missing root span; 2 orphan spans (missing parent 0101010101010101)"),
            "{b}"
        );
    }
}
