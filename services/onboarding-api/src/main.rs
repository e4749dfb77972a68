//! The onboarding API as its own binary (deployable alone, e.g. on ECS); configured from the
//! environment (`OTEL_*`, `AWS_*`, `DATABASE_URL`, `ONBOARDING_*`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let config = onboarding_api::ApiConfig::from_env(&env)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        onboarding_api::serve(config, onboarding_api::Telemetry::global(), listener, shutdown).await?;
        Ok(())
    })
}
