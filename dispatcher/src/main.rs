//! `dispatcher`: reads its settings from the environment and serves until SIGTERM/SIGINT.
//! `dispatcher healthcheck` checks a running one instead (exit 0 when its `/health` answers 200).

use anyhow::Context;
use switchyard_dispatcher::{Settings, run};
use switchyard_shared::healthcheck::{self, Component};
use switchyard_shared::{config, runtime, signals, telemetry};

/// mimalloc instead of glibc malloc: allocation and free were about a third of this binary's
/// CPU under load (perf), with glibc's `malloc_consolidate` alone at 3-4 %.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // `dispatcher healthcheck`: GET /health on its own port, exit 0/1 (for container healthchecks).
    healthcheck::run_if_requested(Component::Dispatcher);
    let settings = Settings::from_vars(&config::env_vars())?;
    telemetry::init(&settings.log).map_err(anyhow::Error::msg)?;
    let runtime = runtime::build(&settings.runtime).context("starting the tokio runtime")?;
    runtime.block_on(async {
        let shutdown = signals::shutdown_on_signals();
        run(settings, shutdown).await
    })?;
    Ok(())
}
