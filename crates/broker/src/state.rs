//! The broker's shared state: queues and rules behind one mutex, and the storage writer that every
//! change goes through. The lock is never held across `.await`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::message::Message;
use crate::queue::{Owner, Queue, Settings, apply_attributes};
use crate::rule::Rule;
use crate::store::{self, Loaded, StoreError, WriteOp, Writer};

/// Milliseconds since the Unix epoch, the clock SQS timestamps use.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How a queue is stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredQueue {
    attributes: BTreeMap<String, String>,
    created_secs: u64,
    modified_secs: u64,
}

/// Queues, rules and the next sequence number.
#[derive(Debug, Default)]
pub struct State {
    pub queues: BTreeMap<String, Queue>,
    pub rules: BTreeMap<String, Rule>,
    /// The region and account of the queues (set by [`Shared::new`]).
    pub owner: Owner,
    next_seq: u64,
}

impl State {
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn queue(&self, name: &str) -> Result<&Queue, ApiError> {
        self.queues
            .get(name)
            .ok_or_else(ApiError::queue_does_not_exist)
    }

    pub fn queue_mut(&mut self, name: &str) -> Result<&mut Queue, ApiError> {
        self.queues
            .get_mut(name)
            .ok_or_else(ApiError::queue_does_not_exist)
    }

    /// Creates `name` with `attributes`, or checks that an existing queue has the same ones.
    /// Returns the change to persist, if any.
    pub fn create_queue(
        &mut self,
        name: &str,
        attributes: &BTreeMap<String, String>,
        now_secs: u64,
    ) -> Result<Option<WriteOp>, ApiError> {
        if let Some(existing) = self.queues.get(name) {
            let mut settings = existing.settings.clone();
            let mut stored = existing.attributes.clone();
            apply_attributes(&mut settings, &mut stored, attributes)?;
            if settings != existing.settings {
                return Err(ApiError::queue_name_exists(name));
            }
            return Ok(None);
        }
        let mut queue = Queue::new(name.to_owned(), now_secs);
        let mut settings = Settings::default();
        apply_attributes(&mut settings, &mut queue.attributes, attributes)?;
        self.check_redrive(name, &settings)?;
        queue.settings = settings;
        let op = queue_op(&queue);
        self.queues.insert(name.to_owned(), queue);
        Ok(Some(op))
    }

    /// Applies `attributes` to an existing queue.
    pub fn set_queue_attributes(
        &mut self,
        name: &str,
        attributes: &BTreeMap<String, String>,
        now_secs: u64,
    ) -> Result<WriteOp, ApiError> {
        let queue = self.queue(name)?;
        let mut settings = queue.settings.clone();
        let mut stored = queue.attributes.clone();
        apply_attributes(&mut settings, &mut stored, attributes)?;
        self.check_redrive(name, &settings)?;
        let queue = self.queue_mut(name)?;
        queue.settings = settings;
        queue.attributes = stored;
        queue.modified_secs = now_secs;
        // Waiters re-read the settings (a shorter wait) on wake-up.
        queue.notify.notify_waiters();
        Ok(queue_op(queue))
    }

    fn check_redrive(&self, name: &str, settings: &Settings) -> Result<(), ApiError> {
        if let Some(redrive) = &settings.redrive
            && (redrive.dead_letter_queue == name
                || !self.queues.contains_key(&redrive.dead_letter_queue)
                || self.owner.local_queue(&redrive.dead_letter_arn).is_none())
        {
            return Err(ApiError::invalid_attribute_value(format!(
                "Value for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist: {}",
                redrive.dead_letter_arn
            )));
        }
        Ok(())
    }

    /// Puts a new message on `queue` and returns the change to persist.
    pub fn enqueue(&mut self, queue: &str, message: Message) -> Result<WriteOp, ApiError> {
        let q = self.queue_mut(queue)?;
        q.counters.sent += 1;
        q.insert(message.clone());
        Ok(WriteOp::Insert {
            queue: queue.to_owned(),
            message: Box::new(message),
        })
    }

    /// Receives up to `max` messages from `queue` at `now_ms`, hiding each for `visibility_ms`.
    /// Expired messages are dropped and over-received ones move to the dead-letter queue on the
    /// way. Returns the received messages and the changes to persist.
    pub fn receive(
        &mut self,
        queue: &str,
        max: usize,
        visibility_ms: u64,
        now_ms: u64,
    ) -> Result<(Vec<Message>, Vec<WriteOp>), ApiError> {
        let q = self.queue_mut(queue)?;
        let retention_ms = u64::from(q.settings.retention_secs) * 1000;
        let redrive = q.settings.redrive.clone();
        let mut received = Vec::new();
        let mut ops = Vec::new();
        let mut to_dead_letter = Vec::new();
        let mut taken = Vec::new();
        while received.len() < max {
            let Some(seq) = q.pop_available(now_ms) else {
                break;
            };
            let Some(message) = q.message_mut(seq) else {
                continue;
            };
            if message.sent_ms + retention_ms <= now_ms {
                q.remove(seq);
                ops.push(WriteOp::Delete { seq });
                continue;
            }
            if let Some(r) = &redrive
                && message.receive_count >= r.max_receive_count
            {
                if let Some(mut m) = q.remove(seq) {
                    m.available_at_ms = now_ms;
                    to_dead_letter.push(m);
                }
                continue;
            }
            message.receive_count += 1;
            message.first_receive_ms.get_or_insert(now_ms);
            message.available_at_ms = now_ms + visibility_ms;
            ops.push(WriteOp::SetDelivery {
                seq,
                available_at_ms: message.available_at_ms,
                receive_count: message.receive_count,
                first_receive_ms: message.first_receive_ms,
            });
            received.push(message.clone());
            taken.push((seq, message.available_at_ms));
        }
        // Scheduled only now, so a zero visibility timeout cannot hand one message out twice
        // in the same receive.
        for (seq, at) in taken {
            q.schedule_again(seq, at);
        }
        q.counters.received += received.len() as u64;
        if let Some(r) = redrive.filter(|_| !to_dead_letter.is_empty()) {
            q.counters.moved_to_dead_letter += to_dead_letter.len() as u64;
            if let Some(dlq) = self.queues.get_mut(&r.dead_letter_queue) {
                for m in to_dead_letter {
                    ops.push(WriteOp::Move {
                        seq: m.seq,
                        queue: r.dead_letter_queue.clone(),
                    });
                    ops.push(WriteOp::SetDelivery {
                        seq: m.seq,
                        available_at_ms: m.available_at_ms,
                        receive_count: m.receive_count,
                        first_receive_ms: m.first_receive_ms,
                    });
                    dlq.insert(m);
                }
            } else {
                // The dead-letter queue was deleted: AWS keeps such messages out of reach too.
                for m in to_dead_letter {
                    ops.push(WriteOp::Delete { seq: m.seq });
                }
            }
        }
        Ok((received, ops))
    }

    pub fn delete_queue(&mut self, name: &str) -> Result<WriteOp, ApiError> {
        let queue = self
            .queues
            .remove(name)
            .ok_or_else(ApiError::queue_does_not_exist)?;
        queue.notify.notify_waiters();
        Ok(WriteOp::DeleteQueue {
            name: name.to_owned(),
        })
    }

    /// Rebuilds the state from what storage read back.
    pub fn restore(loaded: Loaded) -> Result<Self, StoreError> {
        let mut state = State {
            next_seq: store::max_seq(&loaded.messages),
            ..State::default()
        };
        for (name, json) in loaded.queues {
            let stored: StoredQueue =
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                    table: "queues",
                    detail: format!("{name}: {e}"),
                })?;
            let mut queue = Queue::new(name.clone(), stored.created_secs);
            queue.modified_secs = stored.modified_secs;
            let mut settings = Settings::default();
            let mut attributes = BTreeMap::new();
            apply_attributes(&mut settings, &mut attributes, &stored.attributes).map_err(|e| {
                StoreError::Corrupt {
                    table: "queues",
                    detail: format!("{name}: {e}"),
                }
            })?;
            queue.settings = settings;
            queue.attributes = attributes;
            state.queues.insert(name, queue);
        }
        for (queue, message) in loaded.messages {
            if let Some(q) = state.queues.get_mut(&queue) {
                q.insert(message);
            }
        }
        for (name, json) in loaded.rules {
            let rule: Rule = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                table: "rules",
                detail: format!("{name}: {e}"),
            })?;
            state.rules.insert(name, rule);
        }
        Ok(state)
    }
}

/// The change that stores `queue`'s attributes.
pub fn queue_op(queue: &Queue) -> WriteOp {
    let stored = StoredQueue {
        attributes: queue.attributes.clone(),
        created_secs: queue.created_secs,
        modified_secs: queue.modified_secs,
    };
    WriteOp::PutQueue {
        name: queue.name.clone(),
        // Serialising a map of strings and integers cannot fail.
        json: serde_json::to_string(&stored).unwrap_or_default(),
    }
}

/// The state and the writer that persists its changes.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    pub writer: Writer,
    /// The region and account of the queues, in URLs, ARNs and event envelopes.
    pub owner: Owner,
}

impl Shared {
    pub fn new(mut state: State, writer: Writer, owner: Owner) -> Self {
        state.owner = owner.clone();
        Self {
            state: Mutex::new(state),
            writer,
            owner,
        }
    }

    /// Locks the state. A panic while holding the lock cannot leave a half-made change that
    /// matters more than stopping the broker would, so a poisoned lock is used as is.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `change` under the lock; its writes are queued in order before the lock is released,
    /// and the result is returned only once they are on disk.
    pub async fn change<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<(T, Vec<WriteOp>), ApiError>,
    ) -> Result<T, ApiError> {
        let (value, done) = {
            let mut state = self.lock();
            let (value, ops) = change(&mut state)?;
            if ops.is_empty() {
                return Ok(value);
            }
            (value, self.writer.submit(ops))
        };
        store::durable(done)
            .await
            .map_err(|_| ApiError::internal())?;
        Ok(value)
    }

    pub fn queue_arn(&self, name: &str) -> String {
        self.owner.queue_arn(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqs::event_message;

    #[test]
    fn messages_older_than_the_retention_period_are_never_delivered() {
        let mut state = State::default();
        let attributes = BTreeMap::from([("MessageRetentionPeriod".to_owned(), "60".to_owned())]);
        state.create_queue("q", &attributes, 0).unwrap();
        let old = event_message(&mut state, "old".into(), None, 0);
        let old_seq = old.seq;
        state.enqueue("q", old).unwrap();
        let young = event_message(&mut state, "young".into(), None, 30_000);
        state.enqueue("q", young).unwrap();
        // One millisecond before its 60 s are up the old message is still delivered …
        let (got, _) = state.receive("q", 10, 0, 59_999).unwrap();
        assert_eq!(
            got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["old", "young"]
        );
        // … and at 60 s it is dropped (and deleted from storage), the young one still delivered.
        let (got, ops) = state.receive("q", 10, 0, 60_000).unwrap();
        assert_eq!(
            got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["young"]
        );
        assert!(
            ops.iter()
                .any(|op| matches!(op, WriteOp::Delete { seq } if *seq == old_seq))
        );
        let (got, _) = state.receive("q", 10, 0, 90_000).unwrap();
        assert!(got.is_empty(), "the young message expires too");
    }
}
