//! The onboarding API as its own binary (deployable alone, e.g. on ECS); configured from the
//! environment (`OTEL_*`, `AWS_*`, `DATABASE_URL`, `ONBOARDING_*`).

fn main() -> std::process::ExitCode {
    match onboarding_api::entry::run_main(std::env::vars().collect()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "onboarding-api: {}",
                throughline_service_kit::ErrorChain(&e)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
