//! The service graph: client/producer spans paired with server/consumer spans, in either arrival
//! order, through parent/child or span links; virtual nodes for databases, queues and peers.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::api::{NodeKind, ServiceGraphEdge, SpanKind};
use crate::facts::SpanFacts;
use crate::metrics::{Hist, minute_of};

fn node_code(kind: NodeKind) -> u8 {
    match kind {
        NodeKind::Service => 0,
        NodeKind::MessagingSystem => 1,
        NodeKind::Database => 2,
        NodeKind::External => 3,
    }
}

fn node_kind(code: u8) -> NodeKind {
    match code {
        1 => NodeKind::MessagingSystem,
        2 => NodeKind::Database,
        3 => NodeKind::External,
        _ => NodeKind::Service,
    }
}

/// (client, client kind, server, server kind)
type EdgeKey = (String, u8, String, u8);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeAgg {
    pub calls: u64,
    pub failed_calls: u64,
    pub latency: Hist,
}

/// One half of a pair waiting for the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingHalf {
    pub is_client: bool,
    pub service: String,
    /// Virtual node of a client that never meets its server.
    pub peer: Option<(u8, String)>,
    pub start_unix_nanos: u64,
    pub duration_nanos: u64,
    pub error: bool,
    /// Every key this half waits under (a server waits under its parent and each link).
    pub keys: Vec<(u128, u64)>,
}

/// The service graph and the halves still waiting for a partner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceGraph {
    #[serde(with = "crate::checkpoint::as_vec")]
    edges: HashMap<EdgeKey, BTreeMap<u64, EdgeAgg>>,
    #[serde(with = "crate::checkpoint::as_vec")]
    pending: HashMap<(u128, u64), PendingHalf>,
    /// (arrival, key) in arrival order, to expire halves after the settle time.
    expiry: VecDeque<(u64, (u128, u64))>,
    /// Halves that expired without a partner and without a virtual node to go to.
    pub unpaired: u64,
}

fn is_client(kind: i32) -> bool {
    kind == SpanKind::Client as i32 || kind == SpanKind::Producer as i32
}

fn is_server(kind: i32) -> bool {
    kind == SpanKind::Server as i32 || kind == SpanKind::Consumer as i32
}

impl ServiceGraph {
    fn add_edge(
        &mut self,
        client: (&str, NodeKind),
        server: (&str, NodeKind),
        start: u64,
        duration: u64,
        failed: bool,
    ) {
        let key = (
            client.0.to_owned(),
            node_code(client.1),
            server.0.to_owned(),
            node_code(server.1),
        );
        let agg = self
            .edges
            .entry(key)
            .or_default()
            .entry(minute_of(start))
            .or_default();
        agg.calls += 1;
        if failed {
            agg.failed_calls += 1;
        }
        agg.latency.record(duration);
    }

    pub fn record(&mut self, f: &SpanFacts, arrival: u64) {
        if is_client(f.kind) {
            if let Some((NodeKind::Database, db)) = &f.peer {
                // A database never answers with a span of its own: the edge is known now.
                let db = db.clone();
                self.add_edge(
                    (&f.service, NodeKind::Service),
                    (&db, NodeKind::Database),
                    f.start_unix_nanos,
                    f.duration_nanos(),
                    f.is_error(),
                );
                return;
            }
            let key = (f.trace_id, f.span_id);
            if self.pending.get(&key).is_some_and(|h| !h.is_client)
                && let Some(server) = self.take(key)
            {
                self.add_edge(
                    (&f.service, NodeKind::Service),
                    (&server.service, NodeKind::Service),
                    f.start_unix_nanos,
                    server.duration_nanos,
                    f.is_error() || server.error,
                );
                return;
            }
            self.wait(
                PendingHalf {
                    is_client: true,
                    service: f.service.to_string(),
                    peer: f.peer.as_ref().map(|(k, n)| (node_code(*k), n.clone())),
                    start_unix_nanos: f.start_unix_nanos,
                    duration_nanos: f.duration_nanos(),
                    error: f.is_error(),
                    keys: vec![key],
                },
                arrival,
            );
        } else if is_server(f.kind) {
            let mut keys = Vec::with_capacity(1 + f.links.len());
            if f.parent_span_id != 0 {
                keys.push((f.trace_id, f.parent_span_id));
            }
            keys.extend(f.links.iter().copied());
            for key in &keys {
                if self.pending.get(key).is_some_and(|h| h.is_client)
                    && let Some(client) = self.take(*key)
                {
                    self.add_edge(
                        (&client.service, NodeKind::Service),
                        (&f.service, NodeKind::Service),
                        client.start_unix_nanos,
                        f.duration_nanos(),
                        client.error || f.is_error(),
                    );
                    return;
                }
            }
            if !keys.is_empty() {
                self.wait(
                    PendingHalf {
                        is_client: false,
                        service: f.service.to_string(),
                        peer: None,
                        start_unix_nanos: f.start_unix_nanos,
                        duration_nanos: f.duration_nanos(),
                        error: f.is_error(),
                        keys,
                    },
                    arrival,
                );
            }
        }
    }

    fn wait(&mut self, half: PendingHalf, arrival: u64) {
        for key in &half.keys {
            self.expiry.push_back((arrival, *key));
        }
        let keys = half.keys.clone();
        for key in keys {
            self.pending.insert(key, half.clone());
        }
    }

    /// Removes a waiting half and every other key it waits under.
    fn take(&mut self, key: (u128, u64)) -> Option<PendingHalf> {
        let half = self.pending.remove(&key)?;
        for other in &half.keys {
            if *other != key {
                self.pending.remove(other);
            }
        }
        Some(half)
    }

    /// Gives up on halves that waited longer than `settle_nanos`: a client with a virtual peer
    /// becomes an edge to that peer; any other lone half is counted as unpaired.
    pub fn expire(&mut self, now: u64, settle_nanos: u64) {
        while let Some(&(arrival, key)) = self.expiry.front() {
            if arrival.saturating_add(settle_nanos) > now {
                break;
            }
            self.expiry.pop_front();
            let Some(half) = self.take(key) else { continue };
            match (&half.peer, half.is_client) {
                (Some((kind, name)), true) => {
                    let name = name.clone();
                    self.add_edge(
                        (&half.service, NodeKind::Service),
                        (&name, node_kind(*kind)),
                        half.start_unix_nanos,
                        half.duration_nanos,
                        half.error,
                    );
                }
                _ => self.unpaired += 1,
            }
        }
    }

    pub fn dependencies(&self, start: u64, end: u64) -> Vec<ServiceGraphEdge> {
        let mut out = Vec::new();
        for ((client, ck, server, sk), minutes) in &self.edges {
            let mut total = EdgeAgg::default();
            for agg in minutes.range(minute_of(start)..end).map(|(_, a)| a) {
                total.calls += agg.calls;
                total.failed_calls += agg.failed_calls;
                total.latency.merge(&agg.latency);
            }
            if total.calls > 0 {
                out.push(ServiceGraphEdge {
                    client: client.clone(),
                    client_kind: node_kind(*ck),
                    server: server.clone(),
                    server_kind: node_kind(*sk),
                    calls: total.calls,
                    failed_calls: total.failed_calls,
                    latency: total.latency.to_api(),
                });
            }
        }
        out.sort_by(|a, b| (&a.client, &a.server).cmp(&(&b.client, &b.server)));
        out
    }

    pub fn prune(&mut self, cutoff: u64) {
        for minutes in self.edges.values_mut() {
            *minutes = minutes.split_off(&minute_of(cutoff));
        }
        self.edges.retain(|_, m| !m.is_empty());
    }
}
