//! The onboarding worker as a Lambda binary (deployable as is: a container image's entry point
//! or a `bootstrap`); configured from the environment.

fn main() -> std::process::ExitCode {
    match onboarding_lambda::entry::run_main(std::env::vars().collect()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "onboarding-lambda: {}",
                throughline_service_kit::ErrorChain(&e)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
