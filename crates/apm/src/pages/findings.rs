//! Findings (N+1 queries and their kin) in words and badges, shared by the search results, the
//! trace page and the Database page.

use throughline_store::{Finding, FindingKind};

use crate::html::{self, Esc};

/// The short label of a kind, as badges show it.
pub fn kind_label(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::NPlusOneDb => "N+1 queries",
        FindingKind::RepeatedHttp => "repeated HTTP call",
        FindingKind::UnbatchedSend => "unbatched sends",
    }
}

/// What to do about a finding.
fn advice(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::NPlusOneDb => "load them in one query",
        FindingKind::RepeatedHttp => "fetch them in one call",
        FindingKind::UnbatchedSend => "send them in one batch",
    }
}

/// A statement as a sentence quotes it: a select list of several columns is elided
/// (`SELECT … FROM placements WHERE video_id = ?`).
pub fn short_statement(statement: &str) -> String {
    if let Some(rest) = statement.strip_prefix("SELECT ")
        && let Some(at) = rest.find(" FROM ")
        && (at > 12 || rest[..at].contains(','))
    {
        return format!("SELECT …{}", &rest[at..]);
    }
    statement.to_owned()
}

/// The finding in one sentence: "7 × `SELECT … FROM placements WHERE video_id = ?` under
/// `GET /v1/videos`, 63.0 ms: load them in one query".
pub fn sentence(f: &Finding, parent_name: Option<&str>) -> String {
    let under = match parent_name {
        Some(name) => format!(" under `{name}`"),
        None => String::new(),
    };
    let what = match f.kind {
        FindingKind::UnbatchedSend => format!("send to `{}`", f.statement),
        _ => format!("`{}`", short_statement(&f.statement)),
    };
    format!(
        "{} × {what}{under}, {}: {}",
        f.count,
        html::duration(f.duration_nanos),
        advice(f.kind)
    )
}

/// One badge per kind found, for a trace in a list or its header.
pub fn badges(findings: &[&Finding]) -> String {
    let mut kinds: Vec<FindingKind> = findings.iter().map(|f| f.kind).collect();
    kinds.sort();
    kinds.dedup();
    kinds
        .into_iter()
        .map(|k| {
            let n = findings.iter().filter(|f| f.kind == k).count();
            format!(
                "<span class=\"badge finding\" data-testid=\"finding-badge\" data-kind=\"{}\" title=\"{n} finding{} in this trace\">{}</span>",
                k.as_str(),
                if n == 1 { "" } else { "s" },
                Esc(kind_label(k))
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use throughline_store::{SpanId, TraceId};

    use super::*;

    #[test]
    fn a_finding_reads_as_the_issue_writes_it() {
        let f = Finding {
            kind: FindingKind::NPlusOneDb,
            trace_id: TraceId([1; 16]),
            parent_span_id: SpanId([2; 8]),
            span_ids: vec![SpanId([3; 8]); 7],
            statement: "SELECT id, slot, ad_id FROM placements WHERE video_id = ?".into(),
            count: 7,
            duration_nanos: 61_000_000,
            service: "videos".into(),
            start_unix_nanos: 0,
        };
        assert_eq!(
            sentence(&f, Some("GET /v1/videos")),
            "7 × `SELECT … FROM placements WHERE video_id = ?` under `GET /v1/videos`, 61.0 ms: load them in one query"
        );
        assert_eq!(short_statement("SELECT a FROM t"), "SELECT a FROM t");
        assert!(badges(&[&f, &f]).contains("2 findings"));
    }
}
