//! Log set-up for both binaries: a `tracing` subscriber filtered by `LOG_LEVEL`, printing pretty
//! lines or JSON by `LOG_FORMAT`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Errors if `LOG_LEVEL` is not a valid filter.
pub fn init(cfg: &LogConfig) -> Result<(), String> {
    let filter = EnvFilter::try_new(&cfg.log_level).map_err(|e| {
        format!(
            "configuration: LOG_LEVEL {:?} is invalid: {e}",
            cfg.log_level
        )
    })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match cfg.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    result.map_err(|e| format!("log set-up: {e}"))
}
