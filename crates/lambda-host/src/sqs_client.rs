//! The SQS client the event source mapping polls with, from the environment: against a loopback
//! endpoint (the local broker) it needs no AWS credentials; elsewhere it is the SDK's default chain.

use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};

/// The region when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set.
const DEFAULT_REGION: &str = "us-east-1";

/// The SQS endpoint the SDK would use (`AWS_ENDPOINT_URL_SQS`, else `AWS_ENDPOINT_URL`), when it
/// is on a loopback host.
pub fn loopback_endpoint(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let endpoint = env("AWS_ENDPOINT_URL_SQS")
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .filter(|url| !url.trim().is_empty())?;
    is_loopback_url(&endpoint).then_some(endpoint)
}

/// Whether `url`'s host is `localhost` or a loopback address.
fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A client for a loopback endpoint from `env` alone: the region from `AWS_REGION` or
/// `AWS_DEFAULT_REGION` (else `us-east-1`), the credentials from `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` when both are set, else static dummy ones (the local broker checks
/// none). `None` when the endpoint is not on loopback.
pub fn loopback_client(env: &dyn Fn(&str) -> Option<String>) -> Option<aws_sdk_sqs::Client> {
    let endpoint = loopback_endpoint(env)?;
    let region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            Credentials::new(id, secret, env("AWS_SESSION_TOKEN"), None, "environment")
        }
        _ => Credentials::new("test", "test", None, None, "loopback-dummy"),
    };
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .build();
    Some(aws_sdk_sqs::Client::from_conf(config))
}

/// The client for the process environment: [`loopback_client`] when the endpoint is on loopback,
/// else the SDK's default chain (endpoint, region and credentials as the AWS SDKs read them).
pub async fn client_from_env() -> aws_sdk_sqs::Client {
    let env = |name: &str| std::env::var(name).ok();
    match loopback_client(&env) {
        Some(client) => client,
        None => {
            let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            aws_sdk_sqs::Client::new(&aws)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for url in [
            "http://127.0.0.1:9324",
            "http://localhost:9324/",
            "http://[::1]:9324",
            "http://127.1.2.3",
            "HTTP://LOCALHOST",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "https://sqs.us-east-1.amazonaws.com",
            "http://10.0.0.1:9324",
            "http://localhost.example:9324",
            "http://127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }
}
