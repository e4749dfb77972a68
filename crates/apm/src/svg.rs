//! Small SVG charts: a line chart of one series over time, and a stacked share chart.

use std::fmt::Write as _;

use crate::html::{self, Esc};

const W: f64 = 240.0;
const H: f64 = 64.0;
const PAD_TOP: f64 = 14.0;
const PAD_BOTTOM: f64 = 12.0;

/// One line of a chart: its name, colour and a value per time (`None` for a gap).
#[derive(Debug)]
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub values: Vec<Option<f64>>,
}

/// A small line chart over `times`, all series on one scale. `label` titles it and `format`
/// renders values; the first series' largest value is shown in the corner.
pub fn line_chart(
    label: &str,
    times: &[u64],
    series: &[Series<'_>],
    format: &dyn Fn(f64) -> String,
) -> String {
    let mut out = String::new();
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0_f64, |a, &b| a.max(b));
    let latest = series
        .first()
        .and_then(|s| s.values.iter().rev().find_map(|v| *v));
    let peak = series
        .first()
        .and_then(|s| s.values.iter().flatten().copied().reduce(f64::max));
    let summary = match latest {
        Some(v) => format!("{label}: latest {}, max {}", format(v), format(max)),
        None => format!("{label}: no data in this window"),
    };
    let _ = write!(
        out,
        "<figure class=\"chart\"><svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">\
<text x=\"2\" y=\"10\" class=\"ct\">{}</text><text x=\"{}\" y=\"10\" class=\"cv\" text-anchor=\"end\">{}</text>\
<line x1=\"0\" y1=\"{}\" x2=\"{W}\" y2=\"{}\" class=\"base\"/>",
        Esc(&summary),
        Esc(label),
        W - 2.0,
        Esc(&peak
            .map(|v| format!("max {}", format(v)))
            .unwrap_or_else(|| "–".to_owned())),
        H - PAD_BOTTOM,
        H - PAD_BOTTOM
    );
    if times.len() >= 2 {
        let step = W / (times.len() - 1) as f64;
        let scale = if max > 0.0 {
            (H - PAD_TOP - PAD_BOTTOM) / max
        } else {
            0.0
        };
        let mut dots = String::new();
        for s in series {
            let mut path = String::new();
            let mut pen_down = false;
            for (i, v) in s.values.iter().enumerate().take(times.len()) {
                let alone = v.is_some()
                    && (i == 0 || s.values[i - 1].is_none())
                    && s.values.get(i + 1).is_none_or(Option::is_none);
                if let (true, Some(v)) = (alone, v) {
                    // A lone value draws no line: mark it with a dot.
                    let _ = write!(
                        dots,
                        "<circle class=\"dot\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{}\"/>",
                        i as f64 * step,
                        H - PAD_BOTTOM - v * scale,
                        s.colour
                    );
                }
                match v {
                    Some(v) => {
                        let x = i as f64 * step;
                        let y = H - PAD_BOTTOM - v * scale;
                        let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
                        pen_down = true;
                    }
                    None => pen_down = false,
                }
            }
            if !path.is_empty() {
                let _ = write!(
                    out,
                    "<path d=\"{path}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"><title>{}</title></path>",
                    s.colour,
                    Esc(s.name)
                );
            }
        }
        out.push_str(&dots);
        if let (Some(first), Some(last)) = (times.first(), times.last()) {
            let _ = write!(
                out,
                "<text x=\"0\" y=\"{H}\" class=\"ax\">{}</text><text x=\"{W}\" y=\"{H}\" class=\"ax\" text-anchor=\"end\">{}</text>",
                html::clock(*first),
                html::clock(*last)
            );
        }
    }
    out.push_str("</svg>");
    if series.len() > 1 {
        out.push_str("<figcaption>");
        for s in series {
            let _ = write!(
                out,
                "<span style=\"--c:{}\">{}</span> ",
                s.colour,
                Esc(s.name)
            );
        }
        out.push_str("</figcaption>");
    }
    out.push_str("</figure>");
    out
}

/// A bar per bucket showing the share of `good` in `good + bad` (green) and `bad` (red), with
/// `pending` (grey) on top; buckets with nothing are left empty.
pub fn share_chart(label: &str, buckets: &[(u64, u64, u64, u64)]) -> String {
    const CW: f64 = 720.0;
    const CH: f64 = 140.0;
    let mut out = String::new();
    let (good, bad): (u64, u64) = buckets.iter().fold((0, 0), |(g, b), x| (g + x.1, b + x.2));
    let _ = write!(
        out,
        "<figure class=\"chart wide\"><svg viewBox=\"0 0 {CW} {CH}\" role=\"img\" aria-label=\"{}: {} whole over the window\">\
<text x=\"2\" y=\"11\" class=\"ct\">{}</text>",
        Esc(label),
        html::percent(good, good + bad),
        Esc(label),
    );
    let plot_h = CH - 30.0;
    if !buckets.is_empty() {
        let bw = CW / buckets.len() as f64;
        for (i, &(t, whole, broken, settling)) in buckets.iter().enumerate() {
            let total = whole + broken + settling;
            if total == 0 {
                continue;
            }
            let x = i as f64 * bw;
            let mut y = CH - 14.0;
            for (count, class) in [(whole, "whole"), (broken, "broken"), (settling, "settling")] {
                if count == 0 {
                    continue;
                }
                let h = plot_h * count as f64 / total as f64;
                y -= h;
                let _ = write!(
                    out,
                    "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" class=\"{class}\"><title>{} {}: {count} {class}</title></rect>",
                    x + 0.5,
                    (bw - 1.0).max(0.5),
                    html::clock(t),
                    html::percent(count, total)
                );
            }
        }
        if let (Some(first), Some(last)) = (buckets.first(), buckets.last()) {
            let _ = write!(
                out,
                "<text x=\"0\" y=\"{CH}\" class=\"ax\">{}</text><text x=\"{CW}\" y=\"{CH}\" class=\"ax\" text-anchor=\"end\">{}</text>",
                html::clock(first.0),
                html::clock(last.0)
            );
        }
    }
    out.push_str("</svg></figure>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_chart_breaks_at_gaps_and_escapes_its_label() {
        let series = [Series {
            name: "p95",
            colour: "red",
            values: vec![Some(1.0), None, Some(2.0), Some(4.0)],
        }];
        let svg = line_chart("p95 <ms>", &[0, 60, 120, 180], &series, &|v| format!("{v}"));
        assert!(svg.contains("p95 &lt;ms&gt;"));
        // Two pen-down runs: one for the first point, one after the gap.
        assert_eq!(svg.matches('M').count(), 2, "{svg}");
        assert!(svg.contains("latest 4, max 4"));
    }

    #[test]
    fn empty_chart_says_so() {
        let svg = line_chart("rate", &[], &[], &|v| format!("{v}"));
        assert!(svg.contains("no data in this window"));
    }

    #[test]
    fn share_chart_stacks_each_bucket() {
        let svg = share_chart("whole", &[(0, 3, 1, 0), (60, 0, 0, 0), (120, 2, 0, 2)]);
        assert_eq!(svg.matches("class=\"whole\"").count(), 2);
        assert_eq!(svg.matches("class=\"broken\"").count(), 1);
        assert_eq!(svg.matches("class=\"settling\"").count(), 1);
        assert!(svg.contains("83.3% whole"), "{svg}");
    }
}
