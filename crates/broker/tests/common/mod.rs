//! Starts an in-process broker on loopback and builds AWS SDK clients pointed at it.
#![allow(dead_code)] // each test file uses a different part of this module

use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use throughline_broker::{Broker, BrokerConfig, BrokerHandle};

pub struct Running {
    pub handle: BrokerHandle,
    pub dir: tempfile::TempDir,
}

pub async fn start() -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let handle = start_in(BrokerConfig::new(dir.path())).await;
    Running { handle, dir }
}

pub async fn start_in(config: BrokerConfig) -> BrokerHandle {
    let broker = Broker::open(config).await.expect("open broker");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    broker.serve(listener).expect("serve")
}

fn credentials() -> Credentials {
    Credentials::new("AKIDTEST", "test-secret", None, None, "tests")
}

pub fn sqs(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

pub fn events(endpoint: &str) -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
        .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}

/// The error code the SDK surfaces for a failed call.
pub fn code<E, R>(result: Result<impl Sized, aws_sdk_sqs::error::SdkError<E, R>>) -> String
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => "ok".to_owned(),
        Err(err) => err
            .as_service_error()
            .and_then(|e| e.code())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("not a service error: {err:?}")),
    }
}
