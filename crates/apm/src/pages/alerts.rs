//! The Alerts view: every rule with its state, its value now, what it watches, its history,
//! and for span rules the matching traces one click away.

use std::fmt::Write as _;

use throughline_alerts::{AlertStatus, Alerts, State};

use crate::html::{self, Esc, Nav, Url};

fn badge(state: State) -> String {
    let class = match state {
        State::Firing => "broken",
        State::Pending => "pending",
        State::Resolved => "whole",
        State::Inactive => "settling",
    };
    format!(
        "<span class=\"badge {class}\" data-state=\"{s}\">{s}</span>",
        s = state.as_str()
    )
}

fn when(t: &Option<String>) -> String {
    t.as_deref().map_or_else(
        || "–".to_owned(),
        |t| Esc(&t.replace('T', " ").replace('Z', "")).to_string(),
    )
}

/// The page over the running rules (`None`: the collector runs without rules).
pub fn page(alerts: Option<&Alerts>) -> String {
    let mut body = String::with_capacity(16 * 1024);
    body.push_str("<h1>Alerts</h1>");
    let statuses: Vec<AlertStatus> = alerts.map(Alerts::statuses).unwrap_or_default();
    if statuses.is_empty() {
        body.push_str(
            "<section class=\"empty\" data-testid=\"no-alerts\"><h2>No alert rules</h2>\
<p>Give the collector a rules file: <code>throughline collector --alert-rules rules.yaml</code> \
(check one with <code>throughline alerts check rules.yaml</code>); <code>throughline up</code> loads \
the reference systems' own rules. Deliver with <code>--alert-webhook URL</code> or \
<code>--alertmanager-url URL</code>. The same list is <a href=\"/api/throughline/alerts\">JSON</a>.</p></section>",
        );
        return html::page("Alerts", Nav::Alerts, &body);
    }
    let firing = statuses.iter().filter(|s| s.state == State::Firing).count();
    let pending = statuses
        .iter()
        .filter(|s| s.state == State::Pending)
        .count();
    let _ = write!(
        body,
        "<p class=\"muted\">{} rules: <strong>{firing} firing</strong>, {pending} pending. \
As <a href=\"/api/throughline/alerts\">JSON</a>.</p>",
        statuses.len()
    );
    body.push_str("<table class=\"alerts\" data-testid=\"alerts\"><thead><tr><th>State</th><th>Alert</th><th>Condition</th><th class=\"num\">Value</th><th>Since (UTC)</th><th>Summary</th><th>Traces</th></tr></thead><tbody>");
    for s in &statuses {
        let traces = if s.kind == "spans" {
            let mut t = format!(
                "<a href=\"{}\" data-testid=\"matching\">search</a>",
                Esc(&relative(&s.generator_url))
            );
            for id in s.recent_traces.iter().take(5) {
                let _ = write!(
                    t,
                    " <a class=\"tid\" href=\"/trace/{id}\">{}</a>",
                    &id[..8.min(id.len())]
                );
            }
            t
        } else if s.kind == "metric" {
            format!(
                "<a href=\"{}\">service</a>",
                Esc(&relative(&s.generator_url))
            )
        } else {
            String::new()
        };
        let summary = s
            .annotations
            .get("summary")
            .or_else(|| s.annotations.get("description"))
            .map_or("", String::as_str);
        let error = s.error.as_deref().map_or_else(String::new, |e| {
            format!(
                "<div class=\"reason\" data-testid=\"rule-error\">{}</div>",
                Esc(e)
            )
        });
        let _ = write!(
            body,
            "<tr id=\"{anchor}\" class=\"{row}\" data-alert=\"{name}\"><td>{badge}</td><td><strong>{name}</strong> <span class=\"muted\">{group}</span></td>\
<td>{cond}{error}</td><td class=\"num\">{value}</td><td>{since}</td><td>{summary}</td><td>{traces}</td></tr>",
            anchor = Url(&s.alert),
            row = if s.state == State::Firing { "err" } else { "" },
            badge = badge(s.state),
            name = Esc(&s.alert),
            group = Esc(&s.group),
            cond = Esc(&s.condition),
            value = Esc(&s.value_text),
            since = when(&s.since),
            summary = Esc(summary),
        );
        if !s.history.is_empty() {
            let _ = write!(
                body,
                "<tr class=\"history\"><td></td><td colspan=\"6\"><details><summary>History of {} ({} changes)</summary><ol>",
                Esc(&s.alert),
                s.history.len()
            );
            for h in &s.history {
                let _ = write!(
                    body,
                    "<li>{} {} <span class=\"muted\">value {}</span></li>",
                    when(&Some(h.at.clone())),
                    badge(h.state),
                    Esc(&throughline_alerts::rules::format_value(h.value))
                );
            }
            body.push_str("</ol></details></td></tr>");
        }
    }
    body.push_str("</tbody></table>");
    html::page("Alerts", Nav::Alerts, &body)
}

/// The APM-relative part of a generator URL (the page links within itself).
fn relative(url: &str) -> String {
    match url
        .find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
    {
        Some(p) => url[p..].to_owned(),
        None => url.to_owned(),
    }
}
