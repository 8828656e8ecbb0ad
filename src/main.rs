// Note for the dataset helper: `mod dataset` is declared in src/lib.rs now (pub mod dataset);
// do not add it here. Test with: cargo test --lib dataset

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    brisk::telemetry::init();
    match brisk::cli::run(brisk::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
