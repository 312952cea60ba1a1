//! What load one model put on a [`ProviderServer`]: the most calls it had in flight at once, and
//! the tokens it was charged in every rolling window (for per-tenant quotas, where each tenant's
//! tasks ask for their own model).

use std::time::{Duration, Instant};

use crate::provider_server::ProviderServer;

impl ProviderServer {
    /// The most requests for `model` in flight at once: each counts from its arrival until its
    /// answer was sent completely (or its client went away).
    pub fn max_concurrent(&self, model: &str) -> usize {
        self.max_concurrent_after(model, None)
    }

    /// [`ProviderServer::max_concurrent`] among the requests that arrived after `after`.
    pub fn max_concurrent_after(&self, model: &str, after: Option<Instant>) -> usize {
        let mut edges: Vec<(Instant, i64)> = Vec::new();
        let requests = self.requests();
        let arrived = |s: &&crate::Served| after.is_none_or(|t| s.received > t);
        for s in requests.iter().filter(|s| s.model == model).filter(arrived) {
            let end = s.finished.or(s.closed_early).unwrap_or_else(Instant::now);
            edges.push((s.received, 1));
            edges.push((end, -1));
        }
        // Ends before starts at the same instant: a call that begins as another ends is not
        // counted with it.
        edges.sort_by_key(|(at, d)| (*at, *d));
        let (mut now, mut most) = (0i64, 0i64);
        for (_, d) in edges {
            now += d;
            most = most.max(now);
        }
        most as usize
    }

    /// The tokens charged for `model` in every rolling `window` that starts between its first
    /// answered call and `until - window`, stepping by `step`: `(start offset, tokens)`.
    pub fn rolling_windows_of(
        &self,
        model: &str,
        window: Duration,
        step: Duration,
        until: Instant,
    ) -> Vec<(Duration, u64)> {
        let seen: Vec<(Instant, u64)> = self
            .tokens_seen()
            .into_iter()
            .filter(|(_, m, _)| m == model)
            .map(|(at, _, n)| (at, n))
            .collect();
        let Some(first) = seen.iter().map(|(at, _)| *at).min() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut start = first;
        while start + window <= until {
            let total = seen
                .iter()
                .filter(|(at, _)| *at >= start && *at < start + window)
                .map(|(_, n)| n)
                .sum();
            out.push((start - first, total));
            start += step;
        }
        out
    }
}
