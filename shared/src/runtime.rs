//! Builds the tokio runtime both binaries run on, as `RUNTIME_THREADS` asks: by default one
//! thread for everything, else a pool.
//!
//! One thread is the default because both processes mostly wait on Redis, HTTP peers and LLM
//! providers, and a pool pays for every hand-off between its threads with a wake-up: under load
//! that cost the worker about 40 % and the dispatcher about 35 % of their CPU per task (README,
//! Performance). A pool still helps a dispatcher that must serve more requests than one core
//! parses; deployments usually add replicas instead.

use crate::config::RuntimeConfig;

/// A runtime with I/O and timers for `cfg`.
pub fn build(cfg: &RuntimeConfig) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if cfg.runtime_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if cfg.runtime_threads > 1 {
            b.worker_threads(cfg.runtime_threads);
        }
        b
    };
    builder.enable_all().build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor(threads: usize) -> tokio::runtime::RuntimeFlavor {
        let rt = build(&RuntimeConfig {
            runtime_threads: threads,
        })
        .expect("runtime");
        rt.handle().runtime_flavor()
    }

    #[test]
    fn one_thread_is_a_current_thread_runtime_and_more_a_pool() {
        use tokio::runtime::RuntimeFlavor::{CurrentThread, MultiThread};
        assert_eq!(flavor(1), CurrentThread);
        assert_eq!(flavor(0), MultiThread);
        assert_eq!(flavor(3), MultiThread);
        let rt = build(&RuntimeConfig { runtime_threads: 3 }).expect("runtime");
        assert_eq!(rt.metrics().num_workers(), 3);
    }
}
