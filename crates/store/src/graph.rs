//! The service graph: client/producer spans paired with server/consumer spans, in either arrival
//! order, through parent/child or span links; virtual nodes for databases, queues and peers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::{NodeKind, ServiceGraphEdge, SpanKind};
use crate::facts::{IdHash, SpanFacts};
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

/// (client, client kind, server, server kind), names as numbers of [`ServiceGraph::names`].
type EdgeKey = (u32, u8, u32, u8);

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
    #[serde(with = "crate::checkpoint::arc_str")]
    pub service: Arc<str>,
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
    /// Node names; edges refer to them by position.
    names: Vec<String>,
    #[serde(skip)]
    name_ids: HashMap<String, u32>,
    #[serde(with = "crate::checkpoint::as_vec")]
    edges: HashMap<EdgeKey, BTreeMap<u64, EdgeAgg>>,
    #[serde(with = "crate::checkpoint::as_vec")]
    pending: HashMap<(u128, u64), PendingHalf, IdHash>,
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
    fn name_id(&mut self, name: &str) -> u32 {
        if self.name_ids.len() != self.names.len() {
            // Loaded from a checkpoint: the reverse map is rebuilt, not stored.
            self.name_ids = self
                .names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i as u32))
                .collect();
        }
        if let Some(id) = self.name_ids.get(name) {
            return *id;
        }
        self.names.push(name.to_owned());
        let id = (self.names.len() - 1) as u32;
        self.name_ids.insert(name.to_owned(), id);
        id
    }

    fn add_edge(
        &mut self,
        client: (&str, NodeKind),
        server: (&str, NodeKind),
        start: u64,
        duration: u64,
        failed: bool,
    ) {
        let key = (
            self.name_id(client.0),
            node_code(client.1),
            self.name_id(server.0),
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
                    service: Arc::clone(&f.service),
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
                        service: Arc::clone(&f.service),
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
        if let [key] = half.keys[..] {
            self.pending.insert(key, half);
        } else {
            for key in half.keys.clone() {
                self.pending.insert(key, half.clone());
            }
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
        let name = |id: &u32| self.names.get(*id as usize).cloned().unwrap_or_default();
        for ((client, ck, server, sk), minutes) in &self.edges {
            let mut total = EdgeAgg::default();
            for agg in minutes.range(minute_of(start)..end).map(|(_, a)| a) {
                total.calls += agg.calls;
                total.failed_calls += agg.failed_calls;
                total.latency.merge(&agg.latency);
            }
            if total.calls > 0 {
                out.push(ServiceGraphEdge {
                    client: name(client),
                    client_kind: node_kind(*ck),
                    server: name(server),
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

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: u64 = 10;

    fn span(service: &str, id: u64, parent: u64, kind: SpanKind) -> SpanFacts {
        SpanFacts {
            trace_id: 7,
            span_id: id,
            parent_span_id: parent,
            service: Arc::from(service),
            name: format!("op-{id}"),
            kind: kind as i32,
            status_code: 0,
            start_unix_nanos: 1_000,
            end_unix_nanos: 1_000 + 3_000_000,
            links: Vec::new(),
            peer: None,
        }
    }

    fn edges(g: &ServiceGraph) -> Vec<(String, NodeKind, String, NodeKind, u64, u64)> {
        g.dependencies(0, u64::MAX)
            .into_iter()
            .map(|e| {
                (
                    e.client,
                    e.client_kind,
                    e.server,
                    e.server_kind,
                    e.calls,
                    e.failed_calls,
                )
            })
            .collect()
    }

    fn svc(client: &str, server: &str) -> (String, NodeKind, String, NodeKind, u64, u64) {
        (
            client.into(),
            NodeKind::Service,
            server.into(),
            NodeKind::Service,
            1,
            0,
        )
    }

    #[test]
    fn client_then_server_pairs() {
        let mut g = ServiceGraph::default();
        g.record(&span("web", 1, 0, SpanKind::Client), 0);
        assert!(edges(&g).is_empty());
        g.record(&span("api", 2, 1, SpanKind::Server), 5);
        assert_eq!(edges(&g), vec![svc("web", "api")]);
        assert_eq!(g.pending.len(), 0);
    }

    #[test]
    fn server_then_client_pairs() {
        let mut g = ServiceGraph::default();
        g.record(&span("api", 2, 1, SpanKind::Server), 0);
        g.record(&span("web", 1, 0, SpanKind::Client), 5);
        assert_eq!(edges(&g), vec![svc("web", "api")]);
        let e = &g.dependencies(0, u64::MAX)[0];
        // 3 ms lands in the (2, 4] bucket, seen from the server.
        assert_eq!(e.latency.bucket_counts[1], 1);
    }

    #[test]
    fn producer_and_linked_consumer_pair_in_either_order() {
        for consumer_first in [false, true] {
            let mut g = ServiceGraph::default();
            let producer = span("api", 1, 0, SpanKind::Producer);
            let mut consumer = span("worker", 9, 0, SpanKind::Consumer);
            consumer.trace_id = 8;
            consumer.links = vec![(7, 1)];
            if consumer_first {
                g.record(&consumer, 0);
                g.record(&producer, 1);
            } else {
                g.record(&producer, 0);
                g.record(&consumer, 1);
            }
            assert_eq!(
                edges(&g),
                vec![svc("api", "worker")],
                "consumer first: {consumer_first}"
            );
        }
    }

    #[test]
    fn a_server_waiting_under_parent_and_link_pairs_once() {
        let mut g = ServiceGraph::default();
        let mut consumer = span("worker", 9, 3, SpanKind::Consumer);
        consumer.links = vec![(7, 1)];
        g.record(&consumer, 0);
        g.record(&span("api", 1, 0, SpanKind::Producer), 1);
        g.record(&span("api", 3, 0, SpanKind::Client), 1);
        assert_eq!(edges(&g), vec![svc("api", "worker")]);
        assert!(
            g.pending.contains_key(&(7, 3)),
            "the client waits for its own server"
        );
    }

    #[test]
    fn database_calls_are_edges_at_once() {
        let mut g = ServiceGraph::default();
        let mut db = span("worker", 4, 3, SpanKind::Client);
        db.peer = Some((NodeKind::Database, "postgresql/onboarding".into()));
        db.status_code = 2;
        g.record(&db, 0);
        assert_eq!(
            edges(&g),
            vec![(
                "worker".into(),
                NodeKind::Service,
                "postgresql/onboarding".into(),
                NodeKind::Database,
                1,
                1
            )]
        );
    }

    #[test]
    fn unanswered_producers_and_clients_become_virtual_nodes_after_settling() {
        let mut g = ServiceGraph::default();
        let mut send = span("api", 1, 0, SpanKind::Producer);
        send.peer = Some((NodeKind::MessagingSystem, "aws_sqs/onboarding-queue".into()));
        let mut call = span("api", 2, 0, SpanKind::Client);
        call.peer = Some((NodeKind::External, "payments.example.com".into()));
        let lone = span("api", 3, 0, SpanKind::Client);
        for f in [&send, &call, &lone] {
            g.record(f, 100);
        }
        g.expire(100 + SETTLE - 1, SETTLE);
        assert!(edges(&g).is_empty(), "still settling");
        g.expire(100 + SETTLE, SETTLE);
        let mut found = edges(&g);
        found.sort_by(|a, b| a.2.cmp(&b.2));
        assert_eq!(
            found,
            vec![
                (
                    "api".into(),
                    NodeKind::Service,
                    "aws_sqs/onboarding-queue".into(),
                    NodeKind::MessagingSystem,
                    1,
                    0
                ),
                (
                    "api".into(),
                    NodeKind::Service,
                    "payments.example.com".into(),
                    NodeKind::External,
                    1,
                    0
                ),
            ]
        );
        assert_eq!(g.unpaired, 1);
        assert!(g.pending.is_empty());
    }

    #[test]
    fn edges_are_counted_per_minute_and_pruned() {
        let mut g = ServiceGraph::default();
        let mut db = span("worker", 4, 3, SpanKind::Client);
        db.peer = Some((NodeKind::Database, "redis".into()));
        g.record(&db, 0);
        db.start_unix_nanos = 5 * crate::metrics::MINUTE_NANOS;
        g.record(&db, 0);
        assert_eq!(g.dependencies(0, crate::metrics::MINUTE_NANOS).len(), 1);
        assert_eq!(g.dependencies(0, u64::MAX)[0].calls, 2);
        g.prune(crate::metrics::MINUTE_NANOS);
        assert_eq!(g.dependencies(0, u64::MAX)[0].calls, 1);
    }
}
