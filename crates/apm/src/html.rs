//! HTML writing: escaping, the page frame every page shares, and formatting of times and durations.

use std::fmt::{self, Display, Write as _};

/// Text escaped for HTML element content and double-quoted attribute values.
#[derive(Debug, Clone, Copy)]
pub struct Esc<'a>(pub &'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = 0;
        for (i, c) in self.0.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&self.0[last..i])?;
            f.write_str(rep)?;
            last = i + c.len_utf8();
        }
        f.write_str(&self.0[last..])
    }
}

/// Text percent-encoded for a URL query value (then safe inside a quoted attribute).
#[derive(Debug, Clone, Copy)]
pub struct Url<'a>(pub &'a str);

impl Display for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                f.write_char(b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

/// Which top-level page is open, to mark it in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Search,
    Trace,
    Map,
    Services,
    Database,
    Errors,
    Logs,
    Integrity,
    Dashboards,
    Alerts,
    Pipeline,
    None,
}

/// Wraps a page body in the shared frame: head, header with navigation and the trace-id box.
pub fn page(title: &str, nav: Nav, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{} · throughline</title><link rel=\"icon\" href=\"data:,\">\
<link rel=\"stylesheet\" href=\"/static/apm.css\"><script src=\"/static/apm.js\" defer></script>\
</head><body><a class=\"skip\" href=\"#main\">Skip to content</a><header class=\"top\">\
<a class=\"brand\" href=\"/search\">throughline</a><nav aria-label=\"pages\">",
        Esc(title)
    );
    for (target, href, label) in [
        (Nav::Search, "/search", "Search"),
        (Nav::Map, "/map", "Service map"),
        (Nav::Services, "/services", "Services"),
        (Nav::Database, "/database", "Database"),
        (Nav::Errors, "/errors", "Errors"),
        (Nav::Logs, "/logs", "Logs"),
        (Nav::Integrity, "/integrity", "Integrity"),
        (Nav::Dashboards, "/dashboards", "Dashboards"),
        (Nav::Alerts, "/alerts", "Alerts"),
        (Nav::Pipeline, "/pipeline", "Pipeline"),
    ] {
        let current = if target == nav {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(out, "<a href=\"{href}\"{current}>{label}</a>");
    }
    let _ = write!(
        out,
        "</nav><form class=\"tid\" action=\"/trace\" method=\"get\" role=\"search\">\
<label for=\"tid\" class=\"sr\">Trace id</label>\
<input id=\"tid\" name=\"id\" placeholder=\"Trace id… (press /)\" autocomplete=\"off\" spellcheck=\"false\" \
pattern=\"[0-9a-fA-F]{{1,32}}\" title=\"up to 32 hex digits\">\
<button type=\"submit\">Open</button></form></header><main id=\"main\">{body}</main></body></html>"
    );
    out
}

/// A duration in the unit a person reads best (µs, ms, s, min).
pub fn duration(nanos: u64) -> String {
    let n = nanos as f64;
    if nanos < 1_000 {
        format!("{nanos} ns")
    } else if nanos < 1_000_000 {
        format!("{:.0} µs", n / 1e3)
    } else if nanos < 10_000_000 {
        format!("{:.2} ms", n / 1e6)
    } else if nanos < 1_000_000_000 {
        format!("{:.1} ms", n / 1e6)
    } else if nanos < 60_000_000_000 {
        format!("{:.2} s", n / 1e9)
    } else {
        format!("{:.1} min", n / 6e10)
    }
}

/// A duration in milliseconds (from histograms) in the same style as [`duration`].
pub fn duration_ms(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "–".to_owned();
    }
    duration((ms * 1e6) as u64)
}

/// A Unix-nanosecond time as `YYYY-MM-DD HH:MM:SS.mmm` UTC.
pub fn timestamp(unix_nanos: u64) -> String {
    let secs = unix_nanos / 1_000_000_000;
    let millis = (unix_nanos / 1_000_000) % 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{millis:03}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Short time of day `HH:MM` UTC, for chart axes.
pub fn clock(unix_nanos: u64) -> String {
    let rem = (unix_nanos / 1_000_000_000) % 86_400;
    format!("{:02}:{:02}", rem / 3600, (rem / 60) % 60)
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A share as a percentage with one decimal.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// Well-separated colours for services (red is kept for errors).
const PALETTE: &[&str] = &[
    "#2f6fdf", "#d9822b", "#2a9d6f", "#8a4fd8", "#c2417b", "#0f8fa3", "#a8841a", "#3f51b5",
    "#6b8e23", "#b5651d", "#00897b", "#7a5c99",
];

/// Service colours: each known service gets its own palette colour by its place in the sorted
/// list of services, so every page shows a service in the same colour and the first dozen never
/// share one. Services not in the list fall back to a colour from a hash of the name.
#[derive(Debug, Default)]
pub struct Palette(std::collections::HashMap<String, &'static str>);

impl Palette {
    pub fn new(services: &[String]) -> Self {
        let mut sorted: Vec<&String> = services.iter().collect();
        sorted.sort();
        sorted.dedup();
        Palette(
            sorted
                .into_iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), PALETTE[i % PALETTE.len()]))
                .collect(),
        )
    }

    pub fn colour(&self, service: &str) -> &'static str {
        self.0.get(service).copied().unwrap_or_else(|| {
            // FNV-1a: stable across runs and platforms, unlike the std hasher.
            let mut h: u32 = 0x811c_9dc5;
            for b in service.bytes() {
                h ^= u32::from(b);
                h = h.wrapping_mul(0x0100_0193);
            }
            PALETTE[h as usize % PALETTE.len()]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            Esc("<a href=\"x\">'&'</a>").to_string(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(Esc("plain ünïcode").to_string(), "plain ünïcode");
    }

    #[test]
    fn url_encodes_reserved_bytes() {
        assert_eq!(Url("a b&c=d/é").to_string(), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(512), "512 ns");
        assert_eq!(duration(1_500), "2 µs");
        assert_eq!(duration(1_234_567), "1.23 ms");
        assert_eq!(duration(250_000_000), "250.0 ms");
        assert_eq!(duration(2_500_000_000), "2.50 s");
        assert_eq!(duration(90_000_000_000), "1.5 min");
    }

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000");
        // 2024-02-29T12:34:56.789Z
        assert_eq!(
            timestamp(1_709_210_096_789_000_000),
            "2024-02-29 12:34:56.789"
        );
    }

    #[test]
    fn known_services_get_distinct_colours_in_name_order() {
        let names: Vec<String> = (0..12).map(|i| format!("svc-{i:02}")).rev().collect();
        let p = Palette::new(&names);
        let colours: std::collections::HashSet<&str> = names.iter().map(|n| p.colour(n)).collect();
        assert_eq!(colours.len(), 12);
        assert_eq!(p.colour("svc-00"), PALETTE[0]);
        assert_eq!(p.colour("unknown"), p.colour("unknown"));
    }
}
