//! The `atoll` binary: `serve` and `demo` run the server; every other command is
//! a client of the admin API (like `gh`), with tables by default and `--json`
//! for scripts.

mod cli;
mod gateway_cli;
mod log_line;
mod output;
mod push_cli;
mod release_cli;
mod sim;
mod switch_cli;
mod sync_cli;

use clap::Parser;

/// mimalloc instead of glibc's allocator: a request allocates many small,
/// short-lived buffers, and glibc's malloc and free were about 18 % of the
/// gateway's CPU under load (perf, bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
