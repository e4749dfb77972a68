//! The webhook receiver as its own binary; configured from the environment (`OTEL_*`,
//! `NEDLIA_WEBHOOK_*`).

fn main() -> std::process::ExitCode {
    match events_webhook::run_main(std::env::vars().collect()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "external-service: {}",
                throughline_service_kit::ErrorChain(&e)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
