//! `sy`: the switchyard command line. Every command is one or a few calls of the dispatcher's
//! HTTP API (`SWITCHYARD_URL`, `SWITCHYARD_TOKEN`), so it works from any host that reaches it.
//!
//! # Layout
//! - [`args`]: the command line (clap derive), with the exit codes in its help.
//! - [`client`]: HTTP calls and SSE streams; failures as [`client::CliError`] with exit codes.
//! - [`output`]: tables and `key: value` lists for people, JSON for scripts.
//! - [`commands`]: one file per command group.

mod args;
mod client;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sy: cannot start the async runtime: {e}");
            return ExitCode::from(client::exit::REFUSED);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::from(client::exit::OK),
        Err(e) => {
            eprintln!("sy: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
