//! The reference systems' own rules, which `throughline up` loads for the systems it runs:
//!
//! - **onboarding** (seed 000's "next steps for production"): the API's error rate over 5 %,
//!   Lambda throttling, SQS message age over five minutes, end-to-end success under 95 %;
//! - **shop** (seed 003's Flow Alert attributes): slow queries, pool exhaustion, failed
//!   checkouts, and their cascade as a flow. Its times are demo minutes: `up --minute-secs`
//!   shortens them with the demo.

/// The onboarding rules (seed 000). Throttles and queue age are stored OTLP metrics (the Lambda
/// host's `aws.lambda.throttles`, the broker's `aws.sqs.approximate_age_of_oldest_message`).
pub const ONBOARDING: &str = r#"groups:
  - name: onboarding
    interval: 15s
    rules:
      - alert: OnboardingErrorRate
        metric: error_rate
        service: onboarding-api
        window: 5m
        above: 0.05
        for: 1m
        labels: {severity: critical, system: onboarding}
        annotations:
          summary: "onboarding-api answers {{ $value }} of its requests with an error (over 5 %)"
      - alert: OnboardingLambdaThrottles
        metric: otlp
        name: aws.lambda.throttles
        aggregation: sum
        window: 5m
        above: 0
        labels: {severity: warning, system: onboarding}
        annotations:
          summary: "onboarding-lambda was throttled {{ $value }} times in 5 minutes"
      - alert: OnboardingQueueAge
        metric: otlp
        name: aws.sqs.approximate_age_of_oldest_message
        aggregation: max
        window: 5m
        above: 300
        labels: {severity: warning, system: onboarding}
        annotations:
          summary: "the oldest onboarding message waited {{ $value }} s (over 5 minutes)"
      - alert: OnboardingEndToEndSuccess
        metric: whole_trace_share
        window: 10m
        below: 0.95
        for: 2m
        labels: {severity: critical, system: onboarding}
        annotations:
          summary: "only {{ $value }} of traces arrived whole end to end (under 95 %)"
"#;

/// The shop rules (seed 003) with times in demo minutes of `minute_secs` seconds (60: real
/// minutes). Traffic is not compressed with the demo, so the failed-checkout count (five a
/// minute) shrinks with its window.
pub fn shop(minute_secs: f64) -> String {
    let f = if minute_secs.is_finite() && minute_secs > 0.0 {
        minute_secs / 60.0
    } else {
        1.0
    };
    // Demo seconds to a duration, never under `floor_ms`.
    let d = |secs: f64, floor_ms: f64| {
        let ms = (secs * 1000.0 * f).max(floor_ms).round() as u64;
        if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    };
    format!(
        r#"groups:
  - name: shop
    interval: {interval}
    rules:
      - alert: SlowQueries
        spans:
          service: product-catalog
          where: 'db.slow_query = true'
        window: {window}
        above: 0
        labels: {{severity: warning, system: shop}}
        annotations:
          summary: "{{{{ $value }}}} slow category queries (full table scans) in the last {window}"
      - alert: PoolExhausted
        spans:
          service: checkout
          where: 'db.connection.pool.exhausted = true'
        window: {window}
        above: 0
        labels: {{severity: critical, system: shop}}
        annotations:
          summary: "{{{{ $value }}}} checkouts found the connection pool exhausted in the last {window}"
      - alert: CheckoutFailures
        spans:
          service: checkout
          where: 'checkout.failed = true'
        window: {window}
        above: {failures}
        labels: {{severity: critical, system: shop}}
        annotations:
          summary: "{{{{ $value }}}} failed checkouts in the last {window}"
      - alert: BlackFridayCascade
        flow: [SlowQueries, PoolExhausted, CheckoutFailures]
        within: {within}
        labels: {{severity: critical, system: shop}}
        annotations:
          summary: "slow queries, then pool exhaustion, then failed checkouts: the Black Friday cascade"
"#,
        interval = d(5.0, 500.0),
        window = d(60.0, 2000.0),
        within = d(15.0 * 60.0, 10_000.0),
        // Five a (demo) minute, in proportion when the window is shorter.
        failures = (5.0 * (60_000.0 * f).max(2000.0) / 60_000.0).floor(),
    )
}

/// The built-in rules of system `name` (`minute_secs`: the shop's demo minute).
pub fn for_system(name: &str, minute_secs: f64) -> Option<String> {
    match name {
        "onboarding" => Some(ONBOARDING.to_owned()),
        "shop" => Some(shop(minute_secs)),
        _ => None,
    }
}
