//! nedlia-api as its own binary; configured from the environment (`OTEL_*`, `AWS_*`,
//! `DATABASE_URL`, `NEDLIA_*`).

fn main() -> std::process::ExitCode {
    match events_api::entry::run_main(std::env::vars().collect()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nedlia-api: {}", throughline_service_kit::ErrorChain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
