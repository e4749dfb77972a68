//! The service map: services and their virtual neighbours (queues, databases, external hosts),
//! laid out left to right by call direction, as SVG.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use throughline_store::{NodeKind, ServiceGraphEdge, TraceQuery, TraceReader};

use crate::OtlpEndpoints;
use crate::error::PageError;
use crate::histogram;
use crate::html::{self, Esc, Nav, Url};
use crate::pages::no_data_help;
use crate::pages::queue_hops::{self, MapMemory};
use crate::params::{self, Params};

const NODE_W: f64 = 170.0;
const NODE_H: f64 = 48.0;
const COL_GAP: f64 = 170.0;
const ROW_GAP: f64 = 44.0;
const MARGIN: f64 = 24.0;
/// How many recent traces are sampled to find the entry points.
const ENTRY_SAMPLE: usize = 50;

type NodeKey = (String, NodeKind);

/// A node placed on the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    pub layer: usize,
    pub row: usize,
    /// Calls into the node and how many failed (for pure clients, calls out of it).
    pub calls: u64,
    pub failed: u64,
}

/// Assigns each node a layer (longest path from the entry points — services where traces
/// start — so callers sit left of callees; calls that close a cycle are left out of the layering) and a row within its layer (ordered by
/// the mean row of its callers, to keep edges short).
pub fn layout(edges: &[ServiceGraphEdge], entry_points: &[String]) -> Vec<Node> {
    let mut index: HashMap<NodeKey, usize> = HashMap::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut id = |name: &str, kind: NodeKind, nodes: &mut Vec<Node>| -> usize {
        *index.entry((name.to_owned(), kind)).or_insert_with(|| {
            nodes.push(Node {
                name: name.to_owned(),
                kind,
                layer: 0,
                row: 0,
                calls: 0,
                failed: 0,
            });
            nodes.len() - 1
        })
    };
    let mut pairs = Vec::with_capacity(edges.len());
    for e in edges {
        let c = id(&e.client, e.client_kind, &mut nodes);
        let s = id(&e.server, e.server_kind, &mut nodes);
        nodes[s].calls += e.calls;
        nodes[s].failed += e.failed_calls;
        pairs.push((c, s));
    }
    for &(c, _) in &pairs {
        if !pairs.iter().any(|&(_, s)| s == c) && nodes[c].calls == 0 {
            // A pure client (an entry point): its health is that of the calls it makes.
            let (calls, failed) = edges
                .iter()
                .zip(&pairs)
                .filter(|(_, p)| p.0 == c)
                .fold((0, 0), |(a, b), (e, _)| (a + e.calls, b + e.failed_calls));
            nodes[c].calls = calls;
            nodes[c].failed = failed;
        }
    }
    // Cut cycles: a depth-first walk from the entry points (then from nodes nobody calls, then
    // the rest by name) drops the edges that lead back to a node on the walk's stack.
    let n = nodes.len();
    let mut out_edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, &(c, _)) in pairs.iter().enumerate() {
        out_edges[c].push(k);
    }
    let mut starts: Vec<usize> = entry_points
        .iter()
        .filter_map(|e| index.get(&(e.clone(), NodeKind::Service)).copied())
        .collect();
    let mut rest: Vec<usize> = (0..n).collect();
    rest.sort_by_key(|&i| {
        (
            pairs.iter().any(|&(c, s)| s == i && c != i),
            nodes[i].name.clone(),
        )
    });
    starts.extend(rest);
    let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    let mut back = vec![false; pairs.len()];
    for &root in &starts {
        if state[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&k) = out_edges[v].get(*next) {
                *next += 1;
                let w = pairs[k].1;
                match state[w] {
                    0 => {
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => back[k] = true,
                    _ => {}
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
    }
    // Longest-path layering over the remaining (acyclic) edges.
    for _ in 0..n {
        let mut changed = false;
        for (k, &(c, s)) in pairs.iter().enumerate() {
            if !back[k] && c != s && nodes[s].layer < nodes[c].layer + 1 {
                nodes[s].layer = nodes[c].layer + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let layers = nodes.iter().map(|x| x.layer).max().map_or(0, |m| m + 1);
    for layer in 0..layers {
        let mut members: Vec<(f64, String, usize)> = nodes
            .iter()
            .enumerate()
            .filter(|(_, x)| x.layer == layer)
            .map(|(i, x)| {
                let callers: Vec<f64> = pairs
                    .iter()
                    .filter(|&&(c, s)| s == i && nodes[c].layer < layer)
                    .map(|&(c, _)| nodes[c].row as f64)
                    .collect();
                let key = if callers.is_empty() {
                    f64::MAX
                } else {
                    callers.iter().sum::<f64>() / callers.len() as f64
                };
                (key, x.name.clone(), i)
            })
            .collect();
        members.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        for (row, (_, _, i)) in members.into_iter().enumerate() {
            nodes[i].row = row;
        }
    }
    nodes
}

fn health_class(calls: u64, failed: u64) -> &'static str {
    if calls == 0 {
        return "idle";
    }
    let share = failed as f64 / calls as f64;
    if share >= 0.05 {
        "bad"
    } else if share >= 0.01 {
        "warn"
    } else {
        "ok"
    }
}

fn kind_label(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Service => "service",
        NodeKind::MessagingSystem => "queue",
        NodeKind::Database => "database",
        NodeKind::External => "external",
    }
}

/// Where a click on a node leads: its traces.
fn node_href(name: &str, kind: NodeKind, lookback: &str, edges: &[ServiceGraphEdge]) -> String {
    let caller = edges
        .iter()
        .find(|e| e.server == name && e.server_kind == kind)
        .map(|e| e.client.as_str());
    match (kind, caller) {
        (NodeKind::Service, _) | (_, None) => {
            format!("/search?service={}&lookback={}", Url(name), Url(lookback))
        }
        (_, Some(caller)) => format!("/search?service={}&lookback={}", Url(caller), Url(lookback)),
    }
}

pub fn page(
    reader: &dyn TraceReader,
    memory: &MapMemory,
    params: &Params,
    now: u64,
    endpoints: &OtlpEndpoints,
) -> Result<String, PageError> {
    let (start, end) = params::window(params, now)?;
    let lookback = params.get("lookback").unwrap_or("1h");
    let edges = reader.dependencies(start, end)?;
    let mut body = String::with_capacity(16 * 1024);
    let _ = write!(
        body,
        "<h1>Service map</h1><p class=\"muted\">Calls between {} and {} UTC. Callers on the left; click a node or an edge for its traces.</p>",
        html::timestamp(start),
        html::timestamp(end)
    );
    if edges.is_empty() {
        if reader.services()?.is_empty() {
            body.push_str(&no_data_help(endpoints));
        } else {
            body.push_str("<section class=\"empty\" data-testid=\"no-edges\"><h2>No calls between services in this window</h2><p>Try a longer window, such as <a href=\"/map?lookback=1d\">the last day</a>. Edges appear when a client or producer span meets its server or consumer span, or names a peer (<code>server.address</code>, <code>messaging.destination.name</code>, <code>db.system</code>).</p></section>");
        }
        return Ok(html::page("Service map", Nav::Map, &body));
    }
    let edges = queue_hops::with_queues(reader, memory, edges, start, end)?;
    // Where recent traces start: the map's left edge. One bounded search, remembered a while.
    let entry_points = memory.entry_points(|| {
        let recent = reader.find_traces(&TraceQuery {
            start_unix_nanos: start,
            end_unix_nanos: end,
            limit: ENTRY_SAMPLE,
            ..TraceQuery::default()
        })?;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for t in recent {
            if let Some(s) = t.root_service {
                *counts.entry(s).or_default() += 1;
            }
        }
        let mut ranked: Vec<(String, usize)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok::<_, PageError>(ranked.into_iter().map(|e| e.0).collect())
    })?;
    body.push_str(&svg(&edges, &entry_points, (end - start).max(1), lookback));
    legend(&mut body);
    Ok(html::page("Service map", Nav::Map, &body))
}

fn legend(body: &mut String) {
    body.push_str("<p class=\"legend\"><span class=\"sw ok\"></span> under 1% errors <span class=\"sw warn\"></span> 1–5% <span class=\"sw bad\"></span> 5% or more <span class=\"sw idle\"></span> no calls in · shapes: rounded = service, square = queue, cylinder = database, dashed = external</p>");
}

/// The map as SVG.
pub fn svg(
    edges: &[ServiceGraphEdge],
    entry_points: &[String],
    window_nanos: u64,
    lookback: &str,
) -> String {
    let nodes = layout(edges, entry_points);
    let pos: HashMap<NodeKey, (f64, f64)> = nodes
        .iter()
        .map(|n| {
            let x = MARGIN + n.layer as f64 * (NODE_W + COL_GAP);
            let y = MARGIN + n.row as f64 * (NODE_H + ROW_GAP);
            ((n.name.clone(), n.kind), (x, y))
        })
        .collect();
    let width = nodes.iter().map(|n| n.layer).max().unwrap_or(0) as f64 * (NODE_W + COL_GAP)
        + NODE_W
        + 2.0 * MARGIN;
    let height = nodes.iter().map(|n| n.row).max().unwrap_or(0) as f64 * (NODE_H + ROW_GAP)
        + NODE_H
        + 2.0 * MARGIN
        + 70.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "<div class=\"map-wrap\"><svg class=\"map\" data-testid=\"service-map\" viewBox=\"0 0 {width:.0} {height:.0}\" width=\"{width:.0}\" height=\"{height:.0}\" role=\"group\" aria-label=\"service map\">\
<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>"
    );
    // Merge edges that share both ends (the store may split them by kind of call).
    let mut merged: BTreeMap<(NodeKey, NodeKey), ServiceGraphEdge> = BTreeMap::new();
    for e in edges {
        let key = (
            (e.client.clone(), e.client_kind),
            (e.server.clone(), e.server_kind),
        );
        merged
            .entry(key)
            .and_modify(|m| {
                m.calls += e.calls;
                m.failed_calls += e.failed_calls;
                histogram::merge(&mut m.latency, &e.latency);
            })
            .or_insert_with(|| e.clone());
    }
    let minutes = window_nanos as f64 / 6e10;
    let layer_of: HashMap<NodeKey, usize> = nodes
        .iter()
        .map(|n| ((n.name.clone(), n.kind), n.layer))
        .collect();
    for e in merged.values() {
        let (Some(&(cx, cy)), Some(&(sx, sy))) = (
            pos.get(&(e.client.clone(), e.client_kind)),
            pos.get(&(e.server.clone(), e.server_kind)),
        ) else {
            continue;
        };
        let (x1, y1) = (cx + NODE_W, cy + NODE_H / 2.0);
        let (x2, y2) = (sx, sy + NODE_H / 2.0);
        let forward = x2 > x1;
        let layers = |key: &NodeKey| layer_of.get(key).copied().unwrap_or(0);
        let (from, to) = (
            layers(&(e.client.clone(), e.client_kind)),
            layers(&(e.server.clone(), e.server_kind)),
        );
        // The lowest node of the layers an edge skips over, if any: a straight curve would run
        // behind them (a database called by a service and by that service's queue consumer).
        let skipped_bottom = nodes
            .iter()
            .filter(|n| forward && n.layer > from && n.layer < to)
            .map(|n| pos[&(n.name.clone(), n.kind)].1 + NODE_H)
            .reduce(f64::max);
        let (path, lx, ly) = if let Some(bottom) = skipped_bottom {
            // Under the skipped nodes, then up into the callee.
            let low = bottom.max(y1.max(y2)) + ROW_GAP / 2.0;
            let (a, b) = (x1 + COL_GAP / 2.0, x2 - COL_GAP / 2.0);
            let path = format!(
                "M{x1:.1},{y1:.1} C{a:.1},{y1:.1} {x1:.1},{low:.1} {a:.1},{low:.1} L{b:.1},{low:.1} C{x2:.1},{low:.1} {b:.1},{y2:.1} {x2:.1},{y2:.1}"
            );
            (path, (a + b) / 2.0, low + 14.0)
        } else if forward {
            let mid = (x1 + x2) / 2.0;
            let path =
                format!("M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}");
            (path, mid, (y1 + y2) / 2.0 - 20.0)
        } else {
            // A call back to the left (a cycle): from the bottom of the caller, under the nodes.
            let (bx1, bx2) = (cx + NODE_W / 2.0, sx + NODE_W / 2.0);
            let bottom = cy.max(sy) + NODE_H;
            let low = bottom + ROW_GAP * 1.2;
            let path = format!(
                "M{bx1:.1},{:.1} C{bx1:.1},{low:.1} {bx2:.1},{low:.1} {bx2:.1},{:.1}",
                cy + NODE_H,
                sy + NODE_H
            );
            (path, (bx1 + bx2) / 2.0, bottom + ROW_GAP * 1.2 + 8.0)
        };
        let rate = e.calls as f64 / minutes.max(1e-9);
        let p95 = histogram::quantile_ms(&e.latency, 0.95);
        let line1 = format!(
            "{}/min · {} err",
            if rate >= 10.0 {
                format!("{rate:.0}")
            } else {
                format!("{rate:.2}")
            },
            html::percent(e.failed_calls, e.calls),
        );
        let line2 = format!(
            "p95 {}",
            p95.map_or_else(|| "–".to_owned(), html::duration_ms)
        );
        let label = format!("{line1} · {line2}");
        let text = format!(
            "<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\">{}<tspan x=\"{lx:.1}\" dy=\"13\">{}</tspan></text>",
            Esc(&line1),
            Esc(&line2)
        );
        let href = edge_href(e, lookback);
        let _ = write!(
            out,
            "<a class=\"edge {}\" href=\"{}\" aria-label=\"{} calls {}: {}\"><title>{} → {}: {} calls, {} failed</title>\
<path d=\"{path}\" marker-end=\"url(#arrow)\"/>{text}</a>",
            health_class(e.calls, e.failed_calls),
            Esc(&href),
            Esc(&e.client),
            Esc(&e.server),
            Esc(&label),
            Esc(&e.client),
            Esc(&e.server),
            e.calls,
            e.failed_calls,
        );
    }
    for n in &nodes {
        let (x, y) = pos[&(n.name.clone(), n.kind)];
        let href = node_href(&n.name, n.kind, lookback, edges);
        let shape = match n.kind {
            NodeKind::Service => format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"12\"/>"
            ),
            NodeKind::MessagingSystem => format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"2\"/>"
            ),
            NodeKind::Database => format!(
                "<path d=\"M{x:.1},{:.1} a{:.1},6 0 0,1 {NODE_W},0 v{:.1} a{:.1},6 0 0,1 -{NODE_W},0 z\"/>",
                y + 6.0,
                NODE_W / 2.0,
                NODE_H - 12.0,
                NODE_W / 2.0
            ),
            NodeKind::External => format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\" stroke-dasharray=\"5 4\"/>"
            ),
        };
        // A virtual node named `system/name` shows its name, and its system under it.
        let (system, short) = match (n.kind, n.name.split_once('/')) {
            (NodeKind::Service, _) | (_, None) => (None, n.name.as_str()),
            (_, Some((system, rest))) => (Some(system), rest),
        };
        let name = if short.chars().count() > 20 {
            format!("{}…", short.chars().take(19).collect::<String>())
        } else {
            short.to_owned()
        };
        let subtitle = match system {
            Some(system) => format!("{} · {system}", kind_label(n.kind)),
            None => kind_label(n.kind).to_owned(),
        };
        let _ = write!(
            out,
            "<a class=\"node {} {}\" href=\"{}\" data-testid=\"map-node\" data-name=\"{}\" data-kind=\"{}\" aria-label=\"{} {}: {} calls, {} errors\"><title>{} ({})</title>{shape}\
<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"nm\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"nk\">{} · {}</text></a>",
            kind_label(n.kind),
            health_class(n.calls, n.failed),
            Esc(&href),
            Esc(&n.name),
            kind_label(n.kind),
            kind_label(n.kind),
            Esc(&n.name),
            n.calls,
            html::percent(n.failed, n.calls),
            Esc(&n.name),
            kind_label(n.kind),
            x + NODE_W / 2.0,
            y + 21.0,
            Esc(&name),
            x + NODE_W / 2.0,
            y + 37.0,
            Esc(&subtitle),
            html::percent(n.failed, n.calls),
        );
    }
    out.push_str("</svg></div>");
    out
}

fn edge_href(e: &ServiceGraphEdge, lookback: &str) -> String {
    let mut href = format!(
        "/search?service={}&lookback={}",
        Url(&e.client),
        Url(lookback)
    );
    if e.failed_calls > 0 {
        href.push_str("&errors=true");
    }
    href
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(
        client: &str,
        ck: NodeKind,
        server: &str,
        sk: NodeKind,
        calls: u64,
        failed: u64,
    ) -> ServiceGraphEdge {
        ServiceGraphEdge {
            client: client.into(),
            client_kind: ck,
            server: server.into(),
            server_kind: sk,
            connection: throughline_store::ConnectionType::Direct,
            calls,
            failed_calls: failed,
            latency: histogram::empty(),
            client_latency: histogram::empty(),
        }
    }

    fn find<'a>(nodes: &'a [Node], name: &str) -> &'a Node {
        nodes.iter().find(|n| n.name == name).unwrap()
    }

    #[test]
    fn layers_follow_call_direction() {
        use NodeKind::*;
        let nodes = layout(
            &[
                edge("lambda", Service, "api", Service, 3, 0),
                edge("queue", MessagingSystem, "lambda", Service, 10, 0),
                edge("api", Service, "queue", MessagingSystem, 10, 0),
                edge("web", Service, "api", Service, 10, 1),
                edge("lambda", Service, "postgres", Database, 5, 1),
            ],
            &["web".to_owned()],
        );
        let layer = |n| find(&nodes, n).layer;
        assert_eq!(
            (
                layer("web"),
                layer("api"),
                layer("queue"),
                layer("lambda"),
                layer("postgres")
            ),
            (0, 1, 2, 3, 4)
        );
        assert_eq!(
            (
                find(&nodes, "postgres").calls,
                find(&nodes, "postgres").failed
            ),
            (5, 1)
        );
        // The entry point takes the health of the calls it makes.
        assert_eq!(find(&nodes, "web").calls, 10);
    }

    #[test]
    fn cycles_terminate() {
        use NodeKind::*;
        let cycle = [
            edge("a", Service, "b", Service, 1, 0),
            edge("b", Service, "a", Service, 1, 0),
        ];
        let nodes = layout(&cycle, &["b".to_owned()]);
        assert_eq!(nodes.len(), 2);
        assert_eq!((find(&nodes, "b").layer, find(&nodes, "a").layer), (0, 1));
        // Without entry points a cycle still gets finite layers.
        let nodes = layout(&cycle, &[]);
        assert!(nodes.iter().all(|n| n.layer < 2));
    }

    /// The numbers of the `d` attribute of the edge whose label starts with `label`, as (x, y).
    fn edge_points(svg: &str, label: &str) -> Vec<(f64, f64)> {
        let at = svg
            .find(&format!("aria-label=\"{label}"))
            .expect("the edge is drawn");
        let d = &svg[at..];
        let d = &d[d.find("d=\"").expect("a path") + 3..];
        let d = &d[..d.find('"').expect("the path ends")];
        let numbers: Vec<f64> = d
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter(|t| !t.is_empty())
            .filter_map(|t| t.parse().ok())
            .collect();
        numbers.chunks(2).map(|p| (p[0], p[1])).collect()
    }

    #[test]
    fn a_database_called_by_two_services_shows_both_edges_in_the_open() {
        use NodeKind::*;
        // onboarding-api writes to sqlite and sends to a queue whose consumer writes to sqlite
        // too: api (layer 0) → queue (1) → lambda (2) → sqlite (3), and api → sqlite.
        let edges = [
            edge("onboarding-api", Service, "jobs", MessagingSystem, 10, 0),
            edge("jobs", MessagingSystem, "onboarding-lambda", Service, 10, 0),
            edge("onboarding-lambda", Service, "sqlite", Database, 10, 0),
            edge("onboarding-api", Service, "sqlite", Database, 10, 0),
        ];
        let svg = svg(
            &edges,
            &["onboarding-api".to_owned()],
            60 * 1_000_000_000,
            "1h",
        );
        let points = edge_points(&svg, "onboarding-api calls sqlite");
        // The nodes of the skipped layers sit on row 0 (y from MARGIN to MARGIN + NODE_H); the
        // edge must leave that band rather than run behind them.
        assert!(
            points.iter().any(|&(_, y)| y > MARGIN + NODE_H),
            "the edge runs behind the queue and the lambda: {points:?}"
        );
        assert!(svg.contains("aria-label=\"onboarding-lambda calls sqlite"));
    }

    #[test]
    fn svg_labels_edges_and_escapes_names() {
        use NodeKind::*;
        let svg = svg(
            &[edge("api<x>", Service, "jobs", MessagingSystem, 120, 6)],
            &[],
            60 * 1_000_000_000,
            "1h",
        );
        assert!(svg.contains("api&lt;x&gt;"));
        assert!(!svg.contains("api<x>"));
        assert!(svg.contains("120/min · 5.0% err"), "{svg}");
        assert!(svg.contains("data-kind=\"queue\""));
        assert!(svg.contains("class=\"node queue bad\""));
    }
}
