//! The onboarding worker as a Lambda binary (deployable as is: a container image's entry point
//! or a `bootstrap`); configured from the environment.

fn main() -> std::process::ExitCode {
    match onboarding_lambda::entry::run_main(std::env::vars().collect()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once, after the error that it caused.
            eprintln!(
                "onboarding-lambda: {}",
                throughline_instrument::ErrorChain(&e)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
