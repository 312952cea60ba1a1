//! A one-minute window of recently finished tasks, fed by the events tail, from which
//! `GET /api/metrics` computes throughput and latency percentiles without touching Redis.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Length of the window.
pub const WINDOW_MS: u64 = 60_000;
/// Most finished tasks remembered (bounds memory at very high throughput).
const CAPACITY: usize = 200_000;

#[derive(Debug, Clone)]
struct Finished {
    at_ms: u64,
    queue: String,
    state: String,
    latency_ms: u64,
}

/// The window, shared between the events tail and the API.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    inner: Arc<Mutex<VecDeque<Finished>>>,
}

/// Throughput and latency over the window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Window length, seconds.
    pub window_s: u64,
    /// Tasks finished in the window, all states.
    pub finished: usize,
    /// Of which succeeded.
    pub succeeded: usize,
    /// Finished tasks per second over the window.
    pub throughput_per_s: f64,
    /// Per queue: finished count.
    pub by_queue: std::collections::BTreeMap<String, usize>,
    /// Enqueue → finish latency percentiles of succeeded tasks, ms (`null` without data).
    pub latency_ms: Option<Percentiles>,
}

/// Latency percentiles, ms.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Recent {
    /// Records a task that finished at `at_ms` in `state` after `latency_ms`.
    pub fn record(&self, at_ms: u64, queue: &str, state: &str, latency_ms: u64) {
        let mut w = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.len() >= CAPACITY {
            w.pop_front();
        }
        w.push_back(Finished {
            at_ms,
            queue: queue.to_owned(),
            state: state.to_owned(),
            latency_ms,
        });
    }

    /// Summarises the window ending at `now_ms`, dropping older entries.
    pub fn summary(&self, now_ms: u64) -> Summary {
        let mut w = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let since = now_ms.saturating_sub(WINDOW_MS);
        // Events of different queues interleave slightly out of order: filter, not just pop.
        w.retain(|f| f.at_ms >= since);
        let mut by_queue = std::collections::BTreeMap::new();
        let mut latencies: Vec<u64> = Vec::new();
        for f in w.iter() {
            *by_queue.entry(f.queue.clone()).or_insert(0) += 1;
            if f.state == "succeeded" {
                latencies.push(f.latency_ms);
            }
        }
        latencies.sort_unstable();
        let pct = |p: f64| {
            let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
            latencies[i]
        };
        let latency_ms = (!latencies.is_empty()).then(|| Percentiles {
            p50: pct(0.50),
            p95: pct(0.95),
            p99: pct(0.99),
            max: latencies[latencies.len() - 1],
        });
        Summary {
            window_s: WINDOW_MS / 1000,
            finished: w.len(),
            succeeded: latencies.len(),
            throughput_per_s: w.len() as f64 / (WINDOW_MS as f64 / 1000.0),
            by_queue,
            latency_ms,
        }
    }
}

/// One slice of the window for the console's chart.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Bucket {
    /// Tasks finished in the slice.
    pub finished: usize,
    /// Median enqueue → finish latency of the slice's succeeded tasks, ms.
    pub p50_ms: Option<u64>,
}

impl Recent {
    /// The window ending at `now_ms` in `n` equal slices, oldest first.
    pub fn series(&self, now_ms: u64, n: usize) -> Vec<Bucket> {
        let n = n.max(1);
        let width = WINDOW_MS / n as u64;
        let since = now_ms.saturating_sub(WINDOW_MS);
        let mut slices: Vec<(usize, Vec<u64>)> = vec![(0, Vec::new()); n];
        let w = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for f in w.iter().filter(|f| f.at_ms >= since && f.at_ms <= now_ms) {
            let i = (((f.at_ms - since) / width.max(1)) as usize).min(n - 1);
            slices[i].0 += 1;
            if f.state == "succeeded" {
                slices[i].1.push(f.latency_ms);
            }
        }
        drop(w);
        slices
            .into_iter()
            .map(|(finished, mut l)| {
                l.sort_unstable();
                Bucket {
                    finished,
                    p50_ms: l.get(l.len().saturating_sub(1) / 2).copied(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_window() {
        let r = Recent::default();
        for i in 1..=100u64 {
            r.record(100_000 + i, "tool", "succeeded", i);
        }
        r.record(100_050, "tool", "dead", 5_000);
        r.record(10_000, "tool", "succeeded", 1);
        let s = r.summary(150_000);
        assert_eq!(s.finished, 101, "the entry older than a minute is dropped");
        assert_eq!(s.succeeded, 100);
        assert_eq!(
            s.latency_ms,
            Some(Percentiles {
                p50: 50,
                p95: 95,
                p99: 99,
                max: 100
            })
        );
        assert_eq!(s.by_queue.get("tool"), Some(&101));
        assert_eq!(r.summary(1_000_000).finished, 0);
        assert_eq!(r.summary(1_000_000).latency_ms, None);
    }

    #[test]
    fn the_series_puts_each_task_in_its_slice() {
        let r = Recent::default();
        r.record(1_000, "tool", "succeeded", 7);
        r.record(59_000, "tool", "succeeded", 3);
        r.record(59_500, "tool", "dead", 9);
        let s = r.series(60_000, 12);
        assert_eq!(s.len(), 12);
        assert_eq!(s[0].finished, 1);
        assert_eq!(s[0].p50_ms, Some(7));
        assert_eq!(s[11].finished, 2);
        assert_eq!(s[11].p50_ms, Some(3));
        assert_eq!(s.iter().map(|b| b.finished).sum::<usize>(), 3);
    }
}
