//! Puts the queue back on the map. The store pairs a PRODUCER span with its CONSUMER span into
//! one service-to-service edge; the map shows such an edge as `producer → queue → consumer`,
//! naming the queue as the store names messaging nodes (`messaging.system/destination`). The
//! queue is read from a few sampled traces, so the work per map is bounded. The split halves are
//! merged with the store's own edges to the same queue (messages no consumer span answered), so
//! every message is counted once on each edge of the map.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry_semantic_conventions::attribute::{MESSAGING_DESTINATION_NAME, MESSAGING_SYSTEM};
use throughline_store::{
    ConnectionType, KeyValue, NodeKind, ServiceGraphEdge, SpanKind, StoreError, StoredSpan,
    TraceQuery, TraceReader,
};

use crate::histogram;
use crate::pages::span_detail::value_text;

/// Traces read per producer/consumer edge to find its queue's name.
const SAMPLED_TRACES: usize = 2;
/// How long a learned queue name (or entry-point list) is reused before it is looked up again.
const REMEMBER_FOR: Duration = Duration::from_secs(120);

/// (producer service, consumer service)
type ServicePair = (String, String);

/// What the map learned by sampling traces, kept for a while so that reloading the map costs
/// one `dependencies` read. The lock is only held to copy in or out, never across a store read.
#[derive(Debug, Default)]
pub struct MapMemory {
    queues: Mutex<HashMap<ServicePair, (Instant, Option<String>)>>,
    entry_points: Mutex<Option<(Instant, Vec<String>)>>,
}

impl MapMemory {
    fn queue(&self, pair: &(String, String)) -> Option<Option<String>> {
        let queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        queues
            .get(pair)
            .filter(|(at, _)| at.elapsed() < REMEMBER_FOR)
            .map(|(_, q)| q.clone())
    }

    fn remember_queue(&self, pair: (String, String), queue: Option<String>) {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded: a map has few producer/consumer pairs; drop stale ones when it grows.
        if queues.len() > 1_000 {
            queues.retain(|_, (at, _)| at.elapsed() < REMEMBER_FOR);
        }
        queues.insert(pair, (Instant::now(), queue));
    }

    /// The remembered entry points, or `load`'s, remembered.
    pub fn entry_points<E>(
        &self,
        load: impl FnOnce() -> Result<Vec<String>, E>,
    ) -> Result<Vec<String>, E> {
        if let Some((at, v)) = &*self
            .entry_points
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            && at.elapsed() < REMEMBER_FOR
        {
            return Ok(v.clone());
        }
        let v = load()?;
        *self
            .entry_points
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), v.clone()));
        Ok(v)
    }
}

fn attribute<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attrs.iter().find(|kv| kv.key == key)
}

/// The store's name for the messaging node of a span's attributes, if it names one.
pub fn queue_name(attrs: &[KeyValue]) -> Option<String> {
    let system = value_text(attribute(attrs, MESSAGING_SYSTEM)?.value.as_ref());
    match attribute(attrs, MESSAGING_DESTINATION_NAME).map(|kv| value_text(kv.value.as_ref())) {
        Some(dest) if !dest.is_empty() => Some(format!("{system}/{dest}")),
        _ => Some(system),
    }
}

/// The queue between `producer_service` and `consumer_service` in one trace, if a consumer
/// span of the one is the child of, or links to, a producer span of the other.
pub fn queue_in_trace(
    spans: &[StoredSpan],
    producer_service: &str,
    consumer_service: &str,
) -> Option<String> {
    let producers: HashMap<&[u8], &StoredSpan> = spans
        .iter()
        .filter(|s| s.service_name == producer_service && s.span.kind == SpanKind::Producer as i32)
        .map(|s| (s.span.span_id.as_slice(), s))
        .collect();
    spans
        .iter()
        .filter(|s| s.service_name == consumer_service && s.span.kind == SpanKind::Consumer as i32)
        .find_map(|c| {
            let producer = producers
                .get(c.span.parent_span_id.as_slice())
                .or_else(|| {
                    c.span
                        .links
                        .iter()
                        .find_map(|l| producers.get(l.span_id.as_slice()))
                })?;
            queue_name(&producer.span.attributes).or_else(|| queue_name(&c.span.attributes))
        })
}

/// `edges` with each producer/consumer service edge split around its queue node.
pub fn with_queues(
    reader: &dyn TraceReader,
    memory: &MapMemory,
    edges: Vec<ServiceGraphEdge>,
    start_unix_nanos: u64,
    end_unix_nanos: u64,
) -> Result<Vec<ServiceGraphEdge>, StoreError> {
    let mut out = Vec::with_capacity(edges.len() + 4);
    for e in edges {
        if e.client_kind != NodeKind::Service || e.server_kind != NodeKind::Service {
            out.push(e);
            continue;
        }
        let messaging = e.connection == ConnectionType::MessagingSystem;
        let pair = (e.client.clone(), e.server.clone());
        let queue = if let Some(known) = memory.queue(&pair) {
            known
        } else if messaging {
            let sample = reader.find_traces(&TraceQuery {
                service: Some(e.server.clone()),
                start_unix_nanos,
                end_unix_nanos,
                limit: SAMPLED_TRACES,
                ..TraceQuery::default()
            })?;
            let mut found = None;
            for t in sample {
                found = queue_in_trace(&reader.trace(t.trace_id)?, &e.client, &e.server);
                if found.is_some() {
                    break;
                }
            }
            memory.remember_queue(pair, found.clone());
            found
        } else {
            None
        };
        match queue {
            Some(queue) => {
                out.push(ServiceGraphEdge {
                    server: queue.clone(),
                    server_kind: NodeKind::MessagingSystem,
                    ..e.clone()
                });
                out.push(ServiceGraphEdge {
                    client: queue,
                    client_kind: NodeKind::MessagingSystem,
                    ..e
                });
            }
            None => out.push(e),
        }
    }
    Ok(merged(out))
}

/// One edge per (client, server) node pair: the calls, failures and latencies of edges between
/// the same two nodes added up (whatever their connection type), in first-seen order.
pub fn merged(edges: Vec<ServiceGraphEdge>) -> Vec<ServiceGraphEdge> {
    let mut index: HashMap<(String, NodeKind, String, NodeKind), usize> = HashMap::new();
    let mut out: Vec<ServiceGraphEdge> = Vec::with_capacity(edges.len());
    for e in edges {
        let key = (
            e.client.clone(),
            e.client_kind,
            e.server.clone(),
            e.server_kind,
        );
        match index.get(&key) {
            Some(&i) => {
                let into = &mut out[i];
                into.calls += e.calls;
                into.failed_calls += e.failed_calls;
                histogram::merge(&mut into.latency, &e.latency);
                histogram::merge(&mut into.client_latency, &e.client_latency);
            }
            None => {
                index.insert(key, out.len());
                out.push(e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use throughline_store::{AnyValue, Resource, Span};

    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.to_owned())),
            }),
            ..Default::default()
        }
    }

    fn stored(
        service: &str,
        id: u8,
        parent: Option<u8>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> StoredSpan {
        StoredSpan {
            service_name: service.to_owned(),
            resource: Resource::default(),
            scope: None,
            span: Span {
                span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
                parent_span_id: parent
                    .map(|p| vec![0, 0, 0, 0, 0, 0, 0, p])
                    .unwrap_or_default(),
                kind: kind as i32,
                attributes,
                ..Default::default()
            },
        }
    }

    fn edge(client: (&str, NodeKind), server: (&str, NodeKind), calls: u64) -> ServiceGraphEdge {
        let mut latency = histogram::empty();
        latency.bucket_counts[0] = calls;
        latency.count = calls;
        ServiceGraphEdge {
            client: client.0.to_owned(),
            client_kind: client.1,
            server: server.0.to_owned(),
            server_kind: server.1,
            connection: ConnectionType::MessagingSystem,
            calls,
            failed_calls: 1,
            client_latency: latency.clone(),
            latency,
        }
    }

    #[test]
    fn edges_between_the_same_nodes_are_added_up() {
        let queue = ("aws_sqs/jobs", NodeKind::MessagingSystem);
        let api = ("api", NodeKind::Service);
        let worker = ("worker", NodeKind::Service);
        let mut unanswered = edge(api, queue, 4);
        unanswered.connection = ConnectionType::VirtualNode;
        let out = merged(vec![
            edge(api, queue, 10),
            edge(queue, worker, 10),
            unanswered,
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].calls, out[0].failed_calls), (14, 2));
        assert_eq!(out[0].latency.count, 14);
        assert_eq!(out[1].calls, 10);
    }

    #[test]
    fn names_the_queue_as_the_store_does() {
        assert_eq!(
            queue_name(&[
                kv(MESSAGING_SYSTEM, "aws_sqs"),
                kv(MESSAGING_DESTINATION_NAME, "jobs")
            ])
            .as_deref(),
            Some("aws_sqs/jobs")
        );
        assert_eq!(
            queue_name(&[kv(MESSAGING_SYSTEM, "kafka")]).as_deref(),
            Some("kafka")
        );
        assert_eq!(queue_name(&[kv(MESSAGING_DESTINATION_NAME, "jobs")]), None);
    }

    #[test]
    fn finds_the_queue_between_producer_and_consumer_services() {
        let spans = vec![
            stored("api", 1, None, SpanKind::Server, vec![]),
            stored(
                "api",
                2,
                Some(1),
                SpanKind::Producer,
                vec![
                    kv(MESSAGING_SYSTEM, "aws_sqs"),
                    kv(MESSAGING_DESTINATION_NAME, "jobs"),
                ],
            ),
            stored("worker", 3, Some(2), SpanKind::Consumer, vec![]),
        ];
        assert_eq!(
            queue_in_trace(&spans, "api", "worker").as_deref(),
            Some("aws_sqs/jobs")
        );
        assert_eq!(queue_in_trace(&spans, "worker", "api"), None);
    }
}
