//! The service graph: client/producer spans paired with server/consumer spans, in either arrival
//! order, through parent/child or span links; virtual nodes for databases, queues and peers.
//!
//! Each client span pairs at most once and a producer once per consumer service among its
//! children (a fan-out), so every message is counted once on each edge, and a batch span linking
//! to many messages never takes one from the per-message CONSUMER span that processes it (see
//! [`ServiceGraph`] for the rules).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::{ConnectionType, NodeKind, ServiceGraphEdge, SpanKind};
use crate::facts::{IdHash, NameHash, SpanFacts};
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

fn connection_code(connection: ConnectionType) -> u8 {
    match connection {
        ConnectionType::Direct => 0,
        ConnectionType::MessagingSystem => 1,
        ConnectionType::Database => 2,
        ConnectionType::VirtualNode => 3,
    }
}

fn connection_type(code: u8) -> ConnectionType {
    match code {
        1 => ConnectionType::MessagingSystem,
        2 => ConnectionType::Database,
        3 => ConnectionType::VirtualNode,
        _ => ConnectionType::Direct,
    }
}

/// (client, client kind, server, server kind, connection), names as numbers of
/// [`ServiceGraph::names`].
type EdgeKey = (u32, u8, u32, u8, u8);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeAgg {
    pub calls: u64,
    pub failed_calls: u64,
    /// As the server saw it.
    pub latency: Hist,
    /// As the client saw it.
    #[serde(default)]
    pub client_latency: Hist,
}

/// One half of a pair waiting for the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingHalf {
    #[serde(with = "crate::checkpoint::arc_str")]
    pub service: Arc<str>,
    /// Virtual node of a client that never meets its server.
    pub peer: Option<(u8, String)>,
    pub start_unix_nanos: u64,
    pub duration_nanos: u64,
    pub error: bool,
    /// A PRODUCER or CONSUMER span.
    pub messaging: bool,
    /// When it arrived, so that an expiry entry is only acted on for the half that made it.
    pub arrival: u64,
    /// The span's own (trace, span) id.
    pub id: (u128, u64),
    /// A server's parent, when it has one.
    pub parent: Option<(u128, u64)>,
    /// A server's links.
    pub links: Vec<(u128, u64)>,
    /// A producer's consumer services already paired with it through a child span: a message
    /// fanned out to several queues reaches one consumer per service (a second child of a
    /// service already paired is a redelivery and counts nothing).
    #[serde(default)]
    pub paired: Vec<String>,
}

impl PendingHalf {
    /// Every key a server waits under: its parent and each link.
    fn keys(&self) -> impl Iterator<Item = &(u128, u64)> {
        self.parent.iter().chain(&self.links)
    }
}

/// What an expiry entry points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Waiting {
    Client((u128, u64)),
    Server((u128, u64)),
}

/// The service graph and the halves still waiting for a partner.
///
/// Clients wait under their own id. Servers wait under their parent and each link, several
/// servers possibly under one key (a message's CONSUMER span under its producer as a child, the
/// batch span under it as a link). A client that arrives takes its child first, else the waiting
/// server with the fewest links; a server that arrives takes its parent, else its one linked
/// client if exactly one of its links is waiting (a batch span linking to several waiting
/// messages takes none of them and leaves each to its own CONSUMER span). A producer takes every
/// waiting child, one per service, and stays waiting until it settles for children of other
/// services; a producer answered by a child is no longer a batch span's to take by link.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceGraph {
    /// Node names; edges refer to them by position.
    names: Vec<String>,
    #[serde(skip)]
    name_ids: HashMap<String, u32, NameHash>,
    #[serde(with = "crate::checkpoint::as_vec")]
    edges: HashMap<EdgeKey, BTreeMap<u64, EdgeAgg>, NameHash>,
    /// Waiting clients by their own id.
    #[serde(with = "crate::checkpoint::as_vec")]
    clients: HashMap<(u128, u64), PendingHalf, IdHash>,
    /// Waiting servers by their own id.
    #[serde(with = "crate::checkpoint::as_vec")]
    servers: HashMap<(u128, u64), PendingHalf, IdHash>,
    /// Server ids by the keys they wait under, in arrival order.
    #[serde(with = "crate::checkpoint::as_vec")]
    waiting: HashMap<(u128, u64), Vec<(u128, u64)>, IdHash>,
    /// (arrival, half) in arrival order, to expire halves after the settle time.
    expiry: VecDeque<(u64, Waiting)>,
    /// Halves that expired without a partner and without a virtual node to go to.
    pub unpaired: u64,
}

fn is_client(kind: i32) -> bool {
    kind == SpanKind::Client as i32 || kind == SpanKind::Producer as i32
}

fn is_server(kind: i32) -> bool {
    kind == SpanKind::Server as i32 || kind == SpanKind::Consumer as i32
}

fn is_messaging(kind: i32) -> bool {
    kind == SpanKind::Producer as i32 || kind == SpanKind::Consumer as i32
}

/// The connection of a pair: messaging when either half is a PRODUCER or CONSUMER span (the
/// connector sets it from whichever half it sees).
fn pair_connection(client_messaging: bool, server_messaging: bool) -> ConnectionType {
    if client_messaging || server_messaging {
        ConnectionType::MessagingSystem
    } else {
        ConnectionType::Direct
    }
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
        connection: ConnectionType,
        start: u64,
        (server_duration, client_duration): (u64, u64),
        failed: bool,
    ) {
        let key = (
            self.name_id(client.0),
            node_code(client.1),
            self.name_id(server.0),
            node_code(server.1),
            connection_code(connection),
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
        agg.latency.record(server_duration);
        agg.client_latency.record(client_duration);
    }

    fn half(f: &SpanFacts, arrival: u64) -> PendingHalf {
        PendingHalf {
            service: Arc::clone(&f.service),
            peer: f.peer.as_ref().map(|(k, n)| (node_code(*k), n.clone())),
            start_unix_nanos: f.start_unix_nanos,
            duration_nanos: f.duration_nanos(),
            error: f.is_error(),
            messaging: is_messaging(f.kind),
            arrival,
            id: (f.trace_id, f.span_id),
            parent: (f.parent_span_id != 0).then_some((f.trace_id, f.parent_span_id)),
            links: f.links.clone(),
            paired: Vec::new(),
        }
    }

    /// The messaging node a half names (`messaging.system/destination`), if any.
    fn messaging_node(half: &PendingHalf) -> Option<&str> {
        match &half.peer {
            Some((code, name)) if *code == node_code(NodeKind::MessagingSystem) => {
                Some(name.as_str())
            }
            _ => None,
        }
    }

    /// Counts one message from `client` to `server`. When either names its messaging node, the
    /// message goes through them: producer → its destination (a bus, a queue) → the consumer's
    /// queue when it is another node → consumer; else one service-to-service edge. `first` is
    /// false when this producer already reached a consumer of another service (a fan-out): its
    /// edge to its own destination was counted then.
    fn pair(&mut self, client: &PendingHalf, server: &PendingHalf, first: bool) {
        let messaging = client.messaging || server.messaging;
        let produced_to = Self::messaging_node(client).filter(|_| messaging);
        let consumed_from = Self::messaging_node(server).filter(|_| messaging);
        if produced_to.is_none() && consumed_from.is_none() {
            self.add_edge(
                (&client.service, NodeKind::Service),
                (&server.service, NodeKind::Service),
                pair_connection(client.messaging, server.messaging),
                client.start_unix_nanos,
                (server.duration_nanos, client.duration_nanos),
                client.error || server.error,
            );
            return;
        }
        let queue = NodeKind::MessagingSystem;
        let connection = ConnectionType::MessagingSystem;
        let produced_to = produced_to.map(str::to_owned);
        let consumed_from = consumed_from
            .filter(|c| Some(*c) != produced_to.as_deref())
            .map(str::to_owned);
        if let Some(p) = &produced_to
            && first
        {
            self.add_edge(
                (&client.service, NodeKind::Service),
                (p, queue),
                connection,
                client.start_unix_nanos,
                (client.duration_nanos, client.duration_nanos),
                client.error,
            );
        }
        if let Some(c) = &consumed_from {
            // Between two messaging nodes: the time the message waited, from the send's end to
            // the consumer's start.
            let waited = server
                .start_unix_nanos
                .saturating_sub(client.start_unix_nanos + client.duration_nanos);
            match &produced_to {
                Some(p) => self.add_edge(
                    (p, queue),
                    (c, queue),
                    connection,
                    client.start_unix_nanos,
                    (waited, waited),
                    false,
                ),
                None => self.add_edge(
                    (&client.service, NodeKind::Service),
                    (c, queue),
                    connection,
                    client.start_unix_nanos,
                    (client.duration_nanos, client.duration_nanos),
                    client.error,
                ),
            }
        }
        let last = consumed_from.or(produced_to).unwrap_or_default();
        self.add_edge(
            (&last, queue),
            (&server.service, NodeKind::Service),
            connection,
            server.start_unix_nanos,
            (server.duration_nanos, server.duration_nanos),
            server.error,
        );
    }

    pub fn record(&mut self, f: &SpanFacts, arrival: u64) {
        if is_client(f.kind) {
            if let Some((NodeKind::Database, db)) = &f.peer {
                // A database never answers with a span of its own: the edge is known now.
                self.add_edge(
                    (&f.service, NodeKind::Service),
                    (db, NodeKind::Database),
                    ConnectionType::Database,
                    f.start_unix_nanos,
                    (f.duration_nanos(), f.duration_nanos()),
                    f.is_error(),
                );
                return;
            }
            let mut client = Self::half(f, arrival);
            if client.messaging && self.pair_children(&mut client) {
                // Kept until it settles, for children in other services still to come.
                self.expiry.push_back((arrival, Waiting::Client(client.id)));
                self.clients.insert(client.id, client);
                return;
            }
            if let Some(server) = self.best_server_for(client.id) {
                self.pair(&client, &server, true);
                return;
            }
            self.expiry.push_back((arrival, Waiting::Client(client.id)));
            self.clients.insert(client.id, client);
        } else if is_server(f.kind) {
            let server = Self::half(f, arrival);
            if let Some(parent) = server.parent
                && let Some(mut client) = self.clients.remove(&parent)
            {
                if !client.messaging {
                    self.pair(&client, &server, true);
                    return;
                }
                if !client.paired.iter().any(|s| **s == *server.service) {
                    let first = client.paired.is_empty();
                    self.pair(&client, &server, first);
                    client.paired.push(server.service.to_string());
                }
                self.clients.insert(parent, client);
                return;
            }
            // A producer already paired through a child is not a batch span's to take.
            let mut linked = server
                .links
                .iter()
                .filter(|l| self.clients.get(l).is_some_and(|c| c.paired.is_empty()));
            if let (Some(only), None) = (linked.next().copied(), linked.next())
                && let Some(client) = self.clients.remove(&only)
            {
                self.pair(&client, &server, true);
                return;
            }
            if server.parent.is_none() && server.links.is_empty() {
                return;
            }
            for key in server.keys() {
                self.waiting.entry(*key).or_default().push(server.id);
            }
            self.expiry.push_back((arrival, Waiting::Server(server.id)));
            self.servers.insert(server.id, server);
        }
    }

    /// Pairs a producer with its waiting CONSUMER children, one per service (the rest are
    /// redeliveries, answered and dropped); whether it had any.
    fn pair_children(&mut self, client: &mut PendingHalf) -> bool {
        let Some(ids) = self.waiting.get(&client.id) else {
            return false;
        };
        let children: Vec<(u128, u64)> = ids
            .iter()
            .filter(|id| {
                self.servers
                    .get(id)
                    .is_some_and(|s| s.parent == Some(client.id))
            })
            .copied()
            .collect();
        for id in &children {
            if let Some(server) = self.take_server(*id)
                && !client.paired.iter().any(|s| **s == *server.service)
            {
                let first = client.paired.is_empty();
                self.pair(client, &server, first);
                client.paired.push(server.service.to_string());
            }
        }
        !children.is_empty()
    }

    /// Takes the waiting server that `client` answers best: its child, else the one with the
    /// fewest links (a message's own CONSUMER span before a batch span), the earliest on a tie.
    fn best_server_for(&mut self, client: (u128, u64)) -> Option<PendingHalf> {
        let ids = self.waiting.get(&client)?;
        let best = ids
            .iter()
            .filter_map(|id| self.servers.get(id))
            .min_by_key(|s| (s.parent != Some(client), s.links.len()))?
            .id;
        self.take_server(best)
    }

    /// Removes a waiting server and its entries under every key.
    fn take_server(&mut self, id: (u128, u64)) -> Option<PendingHalf> {
        let half = self.servers.remove(&id)?;
        for key in half.keys() {
            if let Some(ids) = self.waiting.get_mut(key) {
                ids.retain(|other| *other != id);
                if ids.is_empty() {
                    self.waiting.remove(key);
                }
            }
        }
        Some(half)
    }

    /// Gives up on halves that waited longer than `settle_nanos`: a client with a virtual peer
    /// becomes an edge to that peer; any other lone half is counted as unpaired.
    pub fn expire(&mut self, now: u64, settle_nanos: u64) {
        while let Some(&(arrival, what)) = self.expiry.front() {
            if arrival.saturating_add(settle_nanos) > now {
                break;
            }
            self.expiry.pop_front();
            match what {
                Waiting::Client(id) => {
                    // Only the half that made this entry (a later one with the same id has its own).
                    if self.clients.get(&id).is_none_or(|h| h.arrival != arrival) {
                        continue;
                    }
                    let Some(half) = self.clients.remove(&id) else {
                        continue;
                    };
                    if !half.paired.is_empty() {
                        // Answered by its children: nothing left to count.
                        continue;
                    }
                    match &half.peer {
                        Some((kind, name)) => {
                            let name = name.clone();
                            self.add_edge(
                                (&half.service, NodeKind::Service),
                                (&name, node_kind(*kind)),
                                ConnectionType::VirtualNode,
                                half.start_unix_nanos,
                                (half.duration_nanos, half.duration_nanos),
                                half.error,
                            );
                        }
                        None => self.unpaired += 1,
                    }
                }
                Waiting::Server(id) => {
                    if self.servers.get(&id).is_none_or(|h| h.arrival != arrival) {
                        continue;
                    }
                    if self.take_server(id).is_some() {
                        self.unpaired += 1;
                    }
                }
            }
        }
    }

    pub fn dependencies(&self, start: u64, end: u64) -> Vec<ServiceGraphEdge> {
        let mut out = Vec::new();
        let name = |id: &u32| self.names.get(*id as usize).cloned().unwrap_or_default();
        for ((client, ck, server, sk, connection), minutes) in &self.edges {
            let mut total = EdgeAgg::default();
            for agg in minutes.range(minute_of(start)..end).map(|(_, a)| a) {
                total.calls += agg.calls;
                total.failed_calls += agg.failed_calls;
                total.latency.merge(&agg.latency);
                total.client_latency.merge(&agg.client_latency);
            }
            if total.calls > 0 {
                out.push(ServiceGraphEdge {
                    client: name(client),
                    client_kind: node_kind(*ck),
                    server: name(server),
                    server_kind: node_kind(*sk),
                    connection: connection_type(*connection),
                    calls: total.calls,
                    failed_calls: total.failed_calls,
                    latency: total.latency.to_api(),
                    client_latency: total.client_latency.to_api(),
                });
            }
        }
        out.sort_by(|a, b| {
            (&a.client, &a.server, a.connection).cmp(&(&b.client, &b.server, b.connection))
        });
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
            pattern: None,
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
        assert!(g.clients.is_empty() && g.servers.is_empty());
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
        assert_eq!(
            g.dependencies(0, u64::MAX)[0].connection,
            ConnectionType::MessagingSystem,
            "a PRODUCER answered by a CONSUMER is a messaging edge"
        );
        assert!(
            g.clients.contains_key(&(7, 3)),
            "the client waits for its own server"
        );
        assert!(g.waiting.is_empty() && g.servers.is_empty());
    }

    /// The onboarding worker's shapes: an invocation SERVER span (root), a batch CONSUMER span
    /// under it linking to every message, and per message a CONSUMER span that is the producer's
    /// child (`parent`) or a root linking to the batch span and the producer (`link`).
    fn lambda_batch(producers: &[u64], parent_mode: bool) -> Vec<SpanFacts> {
        let mut out = Vec::new();
        let mut invocation = span("lambda", 100, 0, SpanKind::Server);
        invocation.trace_id = 99;
        let mut batch = span("lambda", 101, 100, SpanKind::Consumer);
        batch.trace_id = 99;
        batch.links = producers.iter().map(|p| (7, *p)).collect();
        for (i, p) in producers.iter().enumerate() {
            let id = 200 + i as u64;
            out.push(if parent_mode {
                span("lambda", id, *p, SpanKind::Consumer)
            } else {
                let mut c = span("lambda", id, 0, SpanKind::Consumer);
                c.trace_id = 98;
                c.links = vec![(99, 101), (7, *p)];
                c
            });
        }
        // Spans are exported as they end: the records, then the batch, then the invocation.
        out.push(batch);
        out.push(invocation);
        out
    }

    #[test]
    fn every_message_counts_once_on_its_edge_whatever_the_arrival_order() {
        let producers: Vec<u64> = (1..=5).collect();
        for parent_mode in [true, false] {
            for order in ["producers first", "consumers first", "interleaved"] {
                let mut g = ServiceGraph::default();
                let sends: Vec<SpanFacts> = producers
                    .iter()
                    .map(|p| {
                        let mut send = span("api", *p, 50, SpanKind::Producer);
                        send.peer =
                            Some((NodeKind::MessagingSystem, "aws_sqs/onboarding-queue".into()));
                        send
                    })
                    .collect();
                let received = lambda_batch(&producers, parent_mode);
                match order {
                    "producers first" => {
                        sends.iter().for_each(|f| g.record(f, 1));
                        received.iter().for_each(|f| g.record(f, 2));
                    }
                    "consumers first" => {
                        received.iter().for_each(|f| g.record(f, 1));
                        sends.iter().for_each(|f| g.record(f, 2));
                    }
                    _ => {
                        // Separate exports: two sends, the worker's batch, the other sends.
                        sends[..2].iter().for_each(|f| g.record(f, 1));
                        received.iter().for_each(|f| g.record(f, 2));
                        sends[2..].iter().for_each(|f| g.record(f, 3));
                    }
                }
                g.expire(3 + SETTLE, SETTLE);
                let found = g.dependencies(0, u64::MAX);
                let what = format!("parent mode {parent_mode}, {order}: {found:?}");
                // Through the queue both halves name: api → queue → lambda, five each.
                let hops: Vec<(&str, &str, u64)> = found
                    .iter()
                    .map(|e| (e.client.as_str(), e.server.as_str(), e.calls))
                    .collect();
                assert_eq!(
                    hops,
                    [
                        ("api", "aws_sqs/onboarding-queue", 5),
                        ("aws_sqs/onboarding-queue", "lambda", 5)
                    ],
                    "{what}"
                );
                assert!(
                    found
                        .iter()
                        .all(|e| e.connection == ConnectionType::MessagingSystem),
                    "{what}"
                );
            }
        }
    }

    #[test]
    fn a_message_fanned_out_to_three_services_goes_through_the_bus_and_each_queue() {
        let q = NodeKind::MessagingSystem;
        let s = NodeKind::Service;
        let e = |c: &str, ck, sv: &str, sk| (c.to_owned(), ck, sv.to_owned(), sk, 1, 0);
        for consumers_first in [false, true] {
            let mut g = ServiceGraph::default();
            let mut send = span("api", 1, 0, SpanKind::Producer);
            send.peer = Some((q, "aws_eventbridge/events".into()));
            let consumer = |service: &str, id: u64| {
                let mut c = span(service, id, 1, SpanKind::Consumer);
                c.peer = Some((q, format!("aws_sqs/{service}-queue")));
                c
            };
            let consumers = [
                consumer("validator", 2),
                consumer("file-generator", 3),
                consumer("notifier", 4),
                // The validator's message delivered a second time.
                consumer("validator", 5),
            ];
            if consumers_first {
                consumers.iter().for_each(|c| g.record(c, 0));
                g.record(&send, 1);
            } else {
                g.record(&send, 0);
                consumers.iter().for_each(|c| g.record(c, 1));
            }
            g.expire(1 + SETTLE, SETTLE);
            let mut found = edges(&g);
            found.sort();
            let mut want = vec![e("api", s, "aws_eventbridge/events", q)];
            for w in ["validator", "file-generator", "notifier"] {
                let queue = format!("aws_sqs/{w}-queue");
                want.push(e("aws_eventbridge/events", q, &queue, q));
                want.push(e(&queue, q, w, s));
            }
            want.sort();
            assert_eq!(found, want, "consumers first: {consumers_first}");
            assert_eq!(g.unpaired, 0, "consumers first: {consumers_first}");
            assert!(g.clients.is_empty() && g.servers.is_empty());
            assert!(
                g.dependencies(0, u64::MAX)
                    .iter()
                    .all(|e| e.connection == ConnectionType::MessagingSystem)
            );
        }
    }

    #[test]
    fn a_queue_named_by_both_halves_is_one_node_between_them() {
        let q = NodeKind::MessagingSystem;
        let mut g = ServiceGraph::default();
        let mut send = span("api", 1, 0, SpanKind::Producer);
        send.peer = Some((q, "aws_sqs/work".into()));
        let mut receive = span("lambda", 2, 1, SpanKind::Consumer);
        receive.peer = Some((q, "aws_sqs/work".into()));
        g.record(&send, 0);
        g.record(&receive, 1);
        let mut found = edges(&g);
        found.sort();
        assert_eq!(
            found,
            vec![
                (
                    "api".into(),
                    NodeKind::Service,
                    "aws_sqs/work".into(),
                    q,
                    1,
                    0
                ),
                (
                    "aws_sqs/work".into(),
                    q,
                    "lambda".into(),
                    NodeKind::Service,
                    1,
                    0
                ),
            ]
        );
    }

    #[test]
    fn producers_without_destinations_keep_the_service_to_service_edge() {
        let mut g = ServiceGraph::default();
        g.record(&span("api", 1, 0, SpanKind::Producer), 0);
        g.record(&span("validator", 2, 1, SpanKind::Consumer), 1);
        g.record(&span("notifier", 3, 1, SpanKind::Consumer), 1);
        g.expire(1 + SETTLE, SETTLE);
        let mut found = edges(&g);
        found.sort();
        assert_eq!(found, vec![svc("api", "notifier"), svc("api", "validator")]);
    }

    #[test]
    fn a_redelivered_message_still_counts_once() {
        for consumers_first in [false, true] {
            let mut g = ServiceGraph::default();
            let send = span("api", 1, 0, SpanKind::Producer);
            let first = span("lambda", 2, 1, SpanKind::Consumer);
            let second = span("lambda", 3, 1, SpanKind::Consumer);
            if consumers_first {
                g.record(&first, 0);
                g.record(&second, 1);
                g.record(&send, 2);
            } else {
                g.record(&send, 0);
                g.record(&first, 1);
                g.record(&second, 2);
            }
            g.expire(2 + SETTLE, SETTLE);
            assert_eq!(edges(&g), vec![svc("api", "lambda")], "{consumers_first}");
        }
    }

    #[test]
    fn an_expiring_half_leaves_a_later_one_under_the_same_key_waiting() {
        let mut g = ServiceGraph::default();
        // A consumer waits; a second delivery of the same message replaces it later.
        g.record(&span("lambda", 2, 1, SpanKind::Consumer), 0);
        g.record(&span("lambda", 3, 1, SpanKind::Consumer), 8);
        // The first one's settle time is over, the second one's is not.
        g.expire(SETTLE, SETTLE);
        g.record(&span("api", 1, 0, SpanKind::Producer), SETTLE + 1);
        assert_eq!(edges(&g), vec![svc("api", "lambda")]);
    }

    #[test]
    fn database_calls_are_edges_at_once() {
        let mut g = ServiceGraph::default();
        let mut db = span("worker", 4, 3, SpanKind::Client);
        db.peer = Some((NodeKind::Database, "postgresql/onboarding".into()));
        db.status_code = 2;
        g.record(&db, 0);
        assert_eq!(
            g.dependencies(0, u64::MAX)[0].connection,
            ConnectionType::Database
        );
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
        assert!(g.clients.is_empty() && g.servers.is_empty() && g.waiting.is_empty());
        assert!(
            g.dependencies(0, u64::MAX)
                .iter()
                .all(|e| e.connection == ConnectionType::VirtualNode)
        );
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
