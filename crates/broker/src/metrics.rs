//! Per-queue figures in the Prometheus text exposition format, for `GET /metrics`.

use std::fmt::Write as _;

use std::sync::atomic::Ordering;

use crate::state::State;
use crate::store::StoreStats;

/// A metric family: name, help text, and (queue, value) samples.
type Family = (&'static str, &'static str, Vec<(String, u64)>);

/// Renders every queue's depth and counters at `now_ms`, and the storage writer's counts.
pub fn render(state: &State, stats: &StoreStats, now_ms: u64) -> String {
    let mut gauges: [Family; 5] = [
        (
            "throughline_broker_messages_visible",
            "Messages available for receipt",
            vec![],
        ),
        (
            "throughline_broker_messages_in_flight",
            "Messages received and not yet deleted or visible again",
            vec![],
        ),
        (
            "throughline_broker_messages_delayed",
            "Messages waiting out their delay",
            vec![],
        ),
        (
            "throughline_broker_oldest_message_age_seconds",
            "Age of the oldest message in the queue",
            vec![],
        ),
        (
            "throughline_broker_receives_waiting",
            "ReceiveMessage calls long polling the queue",
            vec![],
        ),
    ];
    let mut counters: [Family; 4] = [
        (
            "throughline_broker_messages_sent_total",
            "Messages sent to the queue",
            vec![],
        ),
        (
            "throughline_broker_messages_received_total",
            "Messages handed out by ReceiveMessage",
            vec![],
        ),
        (
            "throughline_broker_messages_deleted_total",
            "Messages deleted by consumers",
            vec![],
        ),
        (
            "throughline_broker_messages_moved_to_dead_letter_total",
            "Messages moved to the dead-letter queue",
            vec![],
        ),
    ];
    for (name, queue) in &state.queues {
        let depth = queue.depth(now_ms);
        let c = queue.counters;
        for (slot, value) in gauges.iter_mut().zip([
            depth.visible,
            depth.in_flight,
            depth.delayed,
            depth.oldest_age_secs,
            queue.waiting.load(Ordering::Relaxed),
        ]) {
            slot.2.push((name.clone(), value));
        }
        for (slot, value) in
            counters
                .iter_mut()
                .zip([c.sent, c.received, c.deleted, c.moved_to_dead_letter])
        {
            slot.2.push((name.clone(), value));
        }
    }
    let mut out = String::new();
    for (kind, family) in [("gauge", &gauges[..]), ("counter", &counters[..])] {
        for (metric, help, samples) in family.iter() {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
            for (queue, value) in samples {
                // Queue names are [A-Za-z0-9_-], so they need no escaping in a label value.
                let _ = writeln!(out, "{metric}{{queue=\"{queue}\"}} {value}");
            }
        }
    }
    for (metric, help, value) in [
        (
            "throughline_broker_storage_commits_total",
            "Storage transactions committed (one WAL fsync each)",
            &stats.commits,
        ),
        (
            "throughline_broker_storage_requests_committed_total",
            "Requests whose changes were committed; divided by commits, the group-commit size",
            &stats.submissions,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {metric} {help}\n# TYPE {metric} counter\n{metric} {}",
            value.load(Ordering::Relaxed)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Queue;

    #[test]
    fn renders_each_queue_under_each_metric() {
        let mut state = State::default();
        let mut q = Queue::new("orders".into(), 0);
        q.counters.sent = 3;
        state.queues.insert("orders".into(), q);
        let text = render(&state, &StoreStats::default(), 0);
        assert!(text.contains("# TYPE throughline_broker_messages_sent_total counter\n"));
        assert!(text.contains("throughline_broker_messages_sent_total{queue=\"orders\"} 3\n"));
        assert!(text.contains("throughline_broker_messages_visible{queue=\"orders\"} 0\n"));
    }
}
