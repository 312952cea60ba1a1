//! `bench`: runs the switchyard benchmark (see `bench --help` and `ops/bench.sh`), prints the
//! table and the `BENCH_JSON` line, and exits 1 when the run failed. Ctrl-C or SIGTERM stops it,
//! and every process it started, at once.

use std::process::ExitCode;

use anyhow::Context;
use switchyard_bench::config::{self, Command, USAGE};

fn main() -> anyhow::Result<ExitCode> {
    let cfg = match config::parse(std::env::args().skip(1), |k| std::env::var(k).ok())? {
        Command::Help => {
            print!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Command::Run(cfg) => cfg,
    };
    // Two threads: the bench shares the machine with Redis, the dispatcher and the worker.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    if cfg.redis != switchyard_bench::topology::Topology::Plain {
        return topology(&runtime, &cfg);
    }
    let outcome = runtime.block_on(async {
        // A backstop over the phases' own deadlines, which normally end the run first.
        let hard = cfg.timeout + std::time::Duration::from_secs(60);
        tokio::select! {
            r = tokio::time::timeout(hard, switchyard_bench::run(&cfg)) => match r {
                Ok(r) => r.map_err(anyhow::Error::from),
                Err(_) => Err(anyhow::anyhow!("the run exceeded --timeout-s by a minute")),
            },
            // Dropping the run future drops every process guard: all children are killed.
            s = stop_signal() => Err(anyhow::anyhow!("stopped by {s}")),
        }
    });
    drop(runtime);
    let report = outcome.context("benchmark aborted")?;
    Ok(print(
        cfg.json_only,
        || report.table(),
        &report.json_line(),
        report.ok,
    ))
}

/// `--redis tls|cluster`: the comparison, its table and its JSON line.
fn topology(runtime: &tokio::runtime::Runtime, cfg: &config::Config) -> anyhow::Result<ExitCode> {
    let report = runtime.block_on(async {
        tokio::select! {
            r = switchyard_bench::topology::run(cfg) => r.map_err(anyhow::Error::from),
            s = stop_signal() => Err(anyhow::anyhow!("stopped by {s}")),
        }
    });
    let report = report.context("benchmark aborted")?;
    Ok(print(
        cfg.json_only,
        || report.table(),
        &report.json_line(),
        report.ok,
    ))
}

/// Prints the table (unless `json_only`) and the JSON line; the exit code says `ok`.
fn print(json_only: bool, table: impl FnOnce() -> String, json: &str, ok: bool) -> ExitCode {
    if !json_only {
        println!("{}", table());
    }
    println!("{json}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without handlers the default action (terminate) applies; the watchdogs clean up.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
