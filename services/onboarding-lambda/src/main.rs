//! The onboarding worker as a Lambda binary (deployable as is: a container image's entry point
//! or a `bootstrap`); configured from the environment.

fn main() -> Result<(), lambda_runtime::Error> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let config = onboarding_lambda::WorkerConfig::from_env(&env)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let telemetry = onboarding_lambda::WorkerTelemetry {
            tracer: opentelemetry::global::tracer("onboarding-lambda"),
            meter: opentelemetry::global::meter("onboarding-lambda"),
            flush: None,
        };
        let worker = onboarding_lambda::Worker::new(config, telemetry)?;
        onboarding_lambda::run(worker).await
    })
}
