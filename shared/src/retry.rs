//! Retrying a Redis operation while Redis is unreachable: exponential backoff with jitter
//! (`backon`), capped, until it succeeds, fails for another reason, or the caller gives up.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// First pause after a failure.
const MIN_DELAY: Duration = Duration::from_millis(50);
/// Longest pause between tries.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Runs `op` until it succeeds or fails with an error other than "Redis unavailable". Gives up
/// with the last error when `give_up` fires. `what` names the operation in the warnings.
pub async fn while_unavailable<T, F, Fut>(
    what: &str,
    give_up: &CancellationToken,
    op: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_jitter()
        .without_max_times();
    let attempt = op
        .retry(backoff)
        .when(|e: &StoreError| e.is_unavailable() && !give_up.is_cancelled())
        .notify(|e, pause| {
            tracing::warn!(operation = what, error = %e, retry_in_ms = pause.as_millis() as u64, "redis unavailable; retrying");
        });
    tokio::select! {
        r = attempt => r,
        () = give_up.cancelled() => Err(StoreError::GaveUp(what.to_owned())),
    }
}
