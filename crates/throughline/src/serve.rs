//! `throughline serve SERVICE`: runs one reference service as this process, so `throughline up`
//! can start each as a separate process from its own executable. Each service's own binary does
//! the same; configuration comes from the environment in both cases. The services are those of
//! the systems in [`crate::systems::SYSTEMS`].

use throughline_harness::Service;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The service to run (e.g. onboarding-api, onboarding-lambda).
    #[arg(value_parser = crate::systems::parse_service)]
    pub service: Service,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let env = std::env::vars().collect();
    (args.service.run)(env).map_err(anyhow::Error::from_boxed)
}
