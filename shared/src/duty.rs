//! The one loop every background duty runs in (heartbeat, reclaimer, consumer, promoter,
//! sampler, events tail): wait for the next pass, run it, log a failure with the duty's name and
//! back off while failures repeat, and exit only on shutdown. Each duty keeps its own `tick()`
//! (what tests drive) and adapts it to [`Duty::pass`]; this file owns the waiting.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// First pause after a failed pass of a continuous duty.
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest pause between failed passes.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How passes follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One pass per period; a pass that overruns delays the next rather than bunching them.
    Every(Duration),
    /// Passes back to back: each pass waits inside Redis itself (`XREADGROUP`/`XREAD BLOCK`).
    Continuous,
}

/// What the loop does after a successful pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run the next pass.
    Continue,
    /// The duty has nothing more to do (its capacity was closed, or shutdown was seen inside
    /// the pass).
    Stop,
}

/// A background duty run by [`run`].
pub trait Duty: Send {
    /// The name in every log line (`component = …`).
    const COMPONENT: &'static str;
    /// What a failed pass was doing, for the warning.
    const FAILED: &'static str;
    /// The error of a pass.
    type Error: Display + Send;

    /// One pass. `shutdown` is for passes that wait (for capacity, or in a blocking read).
    fn pass(
        &mut self,
        shutdown: &CancellationToken,
    ) -> impl Future<Output = Result<Next, Self::Error>> + Send;
}

/// How long to wait after the `failures`-th failed pass in a row before the next one, beyond
/// what `pace` waits anyway: `BACKOFF_BASE · 2^(failures-1)` up to `BACKOFF_MAX`, but never past
/// one period of a periodic duty. A periodic duty already waits a period between passes, and
/// stretching it would let a heartbeat outlive its record's TTL during a short Redis outage.
pub fn backoff(pace: Pace, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let pause = BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_MAX);
    match pace {
        Pace::Every(period) => pause.min(period).saturating_sub(period),
        Pace::Continuous => pause,
    }
}

/// Runs `duty` at `pace` until `shutdown` (or the duty answers [`Next::Stop`]). A pass in
/// progress is never cut short: each duty decides inside its pass whether shutdown ends it.
pub async fn run<D: Duty>(mut duty: D, pace: Pace, shutdown: CancellationToken) {
    let mut interval = match pace {
        Pace::Every(period) => {
            let mut i = tokio::time::interval(period);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            Some(i)
        }
        Pace::Continuous => None,
    };
    let mut failures = 0u32;
    loop {
        if let Some(interval) = interval.as_mut() {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
        } else if shutdown.is_cancelled() {
            break;
        }
        match duty.pass(&shutdown).await {
            Ok(Next::Continue) => failures = 0,
            Ok(Next::Stop) => break,
            Err(e) => {
                failures = failures.saturating_add(1);
                let pause = backoff(pace, failures);
                warn!(
                    component = D::COMPONENT,
                    error = %e,
                    failures,
                    retry_in_ms = pause.as_millis() as u64,
                    "{}",
                    D::FAILED
                );
                if !pause.is_zero() {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }
    debug!(component = D::COMPONENT, "stopped");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn continuous_duties_back_off_exponentially_up_to_the_cap() {
        let ms = |n| backoff(Pace::Continuous, n).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(5)],
            [100, 200, 400, 800, 1600]
        );
        assert_eq!(ms(6), 2000);
        assert_eq!(ms(u32::MAX), 2000);
    }

    #[test]
    fn periodic_duties_never_wait_longer_than_their_period() {
        for period_ms in [20, 500, 5_000] {
            let pace = Pace::Every(Duration::from_millis(period_ms));
            for n in [1, 3, 10, u32::MAX] {
                assert_eq!(
                    backoff(pace, n),
                    Duration::ZERO,
                    "{period_ms} ms, {n} failures"
                );
            }
        }
    }

    /// Fails its first `fail` passes, then stops after `stop_after` passes in all.
    struct Flaky {
        passes: Arc<AtomicU32>,
        fail: u32,
        stop_after: u32,
    }

    impl Duty for Flaky {
        const COMPONENT: &'static str = "flaky";
        const FAILED: &'static str = "flaky pass failed";
        type Error = String;

        async fn pass(&mut self, _: &CancellationToken) -> Result<Next, String> {
            let n = self.passes.fetch_add(1, Ordering::SeqCst) + 1;
            if n <= self.fail {
                Err(format!("failure {n}"))
            } else if n >= self.stop_after {
                Ok(Next::Stop)
            } else {
                Ok(Next::Continue)
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_duty_keeps_running_until_it_stops() {
        let passes = Arc::new(AtomicU32::new(0));
        let duty = Flaky {
            passes: passes.clone(),
            fail: 3,
            stop_after: 5,
        };
        let began = tokio::time::Instant::now();
        run(duty, Pace::Continuous, CancellationToken::new()).await;
        assert_eq!(passes.load(Ordering::SeqCst), 5);
        // Three failures: 100 + 200 + 400 ms of backoff, no waiting after the successes.
        assert_eq!(began.elapsed(), Duration::from_millis(700));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_a_periodic_duty_between_passes() {
        let passes = Arc::new(AtomicU32::new(0));
        let duty = Flaky {
            passes: passes.clone(),
            fail: 0,
            stop_after: u32::MAX,
        };
        let shutdown = CancellationToken::new();
        let looping = tokio::spawn(run(
            duty,
            Pace::Every(Duration::from_millis(100)),
            shutdown.clone(),
        ));
        // The first tick of an interval is immediate, then one per period.
        tokio::time::sleep(Duration::from_millis(250)).await;
        shutdown.cancel();
        looping.await.expect("the loop ends");
        assert_eq!(passes.load(Ordering::SeqCst), 3);
    }
}
