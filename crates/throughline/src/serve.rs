//! `throughline serve SERVICE`: runs one reference service as this process, so `throughline up`
//! can start each as a separate process from its own executable. Each service's own binary does
//! the same; configuration comes from the environment in both cases.

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The service to run.
    #[arg(value_enum)]
    pub service: Service,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// The onboarding API (HTTP, port 8000 unless ONBOARDING_API_ADDR says otherwise).
    OnboardingApi,
    /// The onboarding worker: a Lambda binary, run under `throughline lambda` or on AWS.
    OnboardingLambda,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let env = std::env::vars().collect();
    match args.service {
        Service::OnboardingApi => onboarding_api::entry::run_main(env)?,
        Service::OnboardingLambda => onboarding_lambda::entry::run_main(env)?,
    }
    Ok(())
}
