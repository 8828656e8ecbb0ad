use clap::Parser;
use std::time::Duration;

/// mimalloc: a hit allocates a few small objects, and glibc's malloc took
/// about an eighth of its time (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Blocking threads run SQLite statements and large compressions: the
    // database gate bounds the first, so a few dozen suffice, and idle ones
    // leave soon (each holds on to memory it freed while it lives).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(32)
        .thread_keep_alive(Duration::from_secs(1))
        .build()
        .expect("the operating system starts threads");
    let outcome = runtime.block_on(brisk::cli::run(brisk::cli::Cli::parse()));
    // What is left after a shutdown (requests past the grace period,
    // background work) is dropped, which cancels its statements; a blocking
    // SQLite call gets one second to see that.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
