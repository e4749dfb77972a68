//! The product catalog as its own binary; configured from the environment (`OTEL_*`,
//! `DATABASE_URL`, `SHOP_*`, `DEMO_*`).

fn main() -> std::process::ExitCode {
    match shop_catalog::entry::run_main(std::env::vars().collect()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "product-catalog: {}",
                throughline_service_kit::ErrorChain(&e)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
