//! A durable local broker that speaks the AWS SQS JSON protocol and EventBridge, so services
//! using `aws-sdk-sqs`, `aws-sdk-eventbridge` or boto3 run unchanged against it.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use throughline_broker::{Broker, BrokerConfig};
//! let broker = Broker::open(BrokerConfig::new("/tmp/broker-data")).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9324").await?;
//! let handle = broker.serve(listener)?;
//! println!("AWS_ENDPOINT_URL_SQS={}", handle.endpoint_url());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Every change is committed to SQLite (WAL, `synchronous=FULL`) by one writer thread, grouping
//! concurrent requests into one commit, before the request that made it is answered.

mod config;
mod digest;
mod error;
mod events;
mod http;
mod message;
mod metrics;
mod pattern;
mod queue;
mod rule;
mod sqs;
mod state;
mod store;

pub use config::{
    AccountIdError, BrokerConfig, DEFAULT_ACCOUNT_ID, DeadLetter, Declarations, QueueDeclaration,
    RuleDeclaration, TargetDeclaration, check_account_id,
};
pub use digest::{md5_of_attributes, md5_of_body};
pub use error::ApiError;
pub use message::{AttributeValue, Attributes};
pub use store::StoreError;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use throughline_service_kit::{HttpServer, ServeConfig};

use crate::state::{Shared, State, now_ms};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("declared {what} is refused")]
    Declaration {
        what: String,
        #[source]
        source: ApiError,
    },
    #[error("the listener's address could not be read")]
    Listener(#[source] std::io::Error),
    #[error("the storage could not be opened: the opening task stopped")]
    OpenTask,
    #[error("the broker's account id is refused")]
    AccountId(#[source] config::AccountIdError),
}

/// An opened broker, ready to serve.
#[derive(Debug, Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

/// How long in-flight requests (long polls included) get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The broker's serving settings: the service kit's defaults, its 8 MiB body limit answered in
/// AWS's `__type` shape, a request deadline above the 20 s long poll, and a 2 s shutdown grace.
pub fn default_serve_config() -> ServeConfig {
    ServeConfig {
        body_limit: Some(http::body_limit()),
        request_timeout: Some(http::REQUEST_TIMEOUT),
        shutdown_grace: SHUTDOWN_GRACE,
        ..ServeConfig::default()
    }
}

impl Broker {
    /// Opens the data directory, restores queues, messages and rules, and applies the declared
    /// queues and rules.
    pub async fn open(config: BrokerConfig) -> Result<Self, BrokerError> {
        let dir = config.data_dir.clone();
        let sync_writes = config.sync_writes;
        let (loaded, writer) = tokio::task::spawn_blocking(move || store::open(&dir, sync_writes))
            .await
            .map_err(|_| BrokerError::OpenTask)??;
        let state = State::restore(loaded)?;
        config::check_account_id(&config.account_id).map_err(BrokerError::AccountId)?;
        let owner = queue::Owner {
            region: config.region,
            account_id: config.account_id,
        };
        let shared = Arc::new(Shared::new(state, writer, owner));
        let broker = Self { shared };
        broker.declare(&config.declarations).await?;
        Ok(broker)
    }

    async fn declare(&self, declarations: &Declarations) -> Result<(), BrokerError> {
        let now = now_ms() / 1000;
        // Queues without a dead-letter queue first, so every redrive target exists when needed.
        let mut queues: Vec<&QueueDeclaration> = declarations.queues.iter().collect();
        queues.sort_by_key(|q| q.dead_letter.is_some());
        for q in queues {
            let mut attributes = q.attributes.clone();
            if let Some(dl) = &q.dead_letter {
                let policy = serde_json::json!({
                    "deadLetterTargetArn": self.shared.queue_arn(&dl.queue),
                    "maxReceiveCount": dl.max_receive_count,
                });
                attributes.insert("RedrivePolicy".into(), policy.to_string());
            }
            let fail = |source| BrokerError::Declaration {
                what: format!("queue {:?}", q.name),
                source,
            };
            if !queue::valid_queue_name(&q.name) {
                return Err(fail(ApiError::invalid_parameter(
                    "queue name must be 1 to 80 of A-Z a-z 0-9 - _",
                )));
            }
            self.shared
                .change(|s| {
                    let op = if s.queues.contains_key(&q.name) {
                        s.set_queue_attributes(&q.name, &attributes, now)?
                    } else {
                        match s.create_queue(&q.name, &attributes, now)? {
                            Some(op) => op,
                            None => return Ok(((), vec![])),
                        }
                    };
                    Ok(((), vec![op]))
                })
                .await
                .map_err(fail)?;
        }
        for r in &declarations.rules {
            let fail = |source| BrokerError::Declaration {
                what: format!("rule {:?}", r.name),
                source,
            };
            let pattern = r.event_pattern.to_string();
            events::check_rule(&r.name, &pattern).map_err(fail)?;
            let mut targets = BTreeMap::new();
            for t in &r.targets {
                let arn = self.shared.queue_arn(&t.queue);
                events::check_target(&self.shared.owner, &t.id, &arn)
                    .map_err(|(code, message)| fail(ApiError::events(&code, message)))?;
                targets.insert(
                    t.id.clone(),
                    rule::Target {
                        id: t.id.clone(),
                        arn,
                        input: None,
                        input_path: None,
                    },
                );
            }
            let rule = rule::Rule {
                name: r.name.clone(),
                event_bus: r.event_bus.clone().unwrap_or_else(|| "default".into()),
                event_pattern: pattern,
                enabled: true,
                description: None,
                targets,
            };
            self.shared
                .change(|s| Ok(((), vec![events::put_rule_in(s, rule)?])))
                .await
                .map_err(fail)?;
        }
        Ok(())
    }

    /// Serves the SQS and EventBridge protocols and `/metrics` on `listener` until
    /// [`BrokerHandle::shutdown`], with [`default_serve_config`].
    pub fn serve(self, listener: tokio::net::TcpListener) -> Result<BrokerHandle, BrokerError> {
        self.serve_with(listener, default_serve_config())
    }

    /// [`Broker::serve`] with other serving settings (timeouts, limits, allowed hosts).
    pub fn serve_with(
        self,
        listener: tokio::net::TcpListener,
        config: ServeConfig,
    ) -> Result<BrokerHandle, BrokerError> {
        let router = http::router(self.shared.clone());
        let server = throughline_service_kit::spawn_http(listener, router, config)
            .map_err(BrokerError::Listener)?;
        Ok(BrokerHandle {
            addr: server.local_addr(),
            server,
            broker: self,
        })
    }
}

/// One queue's depth and counters at one instant (what CloudWatch's `AWS/SQS` reports).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSnapshot {
    pub queue: String,
    pub visible: u64,
    pub not_visible: u64,
    pub delayed: u64,
    pub oldest_age_secs: u64,
    /// Counters since the broker started (they restart at zero with it).
    pub sent: u64,
    pub received: u64,
    pub deleted: u64,
    pub moved_to_dead_letter: u64,
}

impl Broker {
    /// Every queue's depth and counters now, by queue name.
    pub fn queue_snapshots(&self) -> Vec<QueueSnapshot> {
        let now = now_ms();
        let state = self.shared.lock();
        state
            .queues
            .iter()
            .map(|(name, q)| {
                let depth = q.depth(now);
                QueueSnapshot {
                    queue: name.clone(),
                    visible: depth.visible,
                    not_visible: depth.in_flight,
                    delayed: depth.delayed,
                    oldest_age_secs: depth.oldest_age_secs,
                    sent: q.counters.sent,
                    received: q.counters.received,
                    deleted: q.counters.deleted,
                    moved_to_dead_letter: q.counters.moved_to_dead_letter,
                }
            })
            .collect()
    }
}

/// A running broker: its address, and a graceful stop.
#[derive(Debug)]
pub struct BrokerHandle {
    addr: SocketAddr,
    server: HttpServer,
    broker: Broker,
}

impl BrokerHandle {
    /// The address the broker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`, for `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL_EVENTBRIDGE` or `endpoint_url`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The broker being served.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Stops accepting connections, lets in-flight requests finish (up to 2 s) and returns.
    /// Every acknowledged change is already on disk.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// Waits until the server stops (after [`BrokerHandle::shutdown`] from elsewhere, or never).
    pub async fn wait(&mut self) {
        self.server.wait().await;
    }
}
