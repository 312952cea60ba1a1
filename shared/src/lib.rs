//! What both switchyard binaries share: configuration, the Redis key layout, the task model, the
//! Lua scripts of every state change, and Redis access.
//!
//! # Layout
//! - [`config`]: environment variables → one typed struct per concern (Redis, process,
//!   dispatcher, worker, LLM, tools), typo detection.
//! - [`healthcheck`]: the `healthcheck` subcommand of both binaries (`GET /health`, exit 0/1).
//! - [`keys`]: every Redis key name (SPEC §4), in one place, and recognising them in a scan.
//! - [`lane`]: priorities and the per-tenant, per-priority sub-streams of a queue (fair
//!   dispatch), named in task ids.
//! - [`task`]: task ids, kinds, states, payload validation.
//! - [`record`]: the stored task record (field names, the queued shape, the typed decode).
//! - [`chat`]: a chat task's result (`{response, model, provider, session_id, usage}`).
//! - [`completion`]: the `/v1` request a chat task carries and an answer's tool calls.
//! - [`events`]: the events stream's entry format (`{id, state}` or a batch's `{ids, state}`).
//! - [`output`]: a task's output stream format (text deltas per attempt, end marks).
//! - [`console`]: the web console's login sessions (record, writer, reader).
//! - [`paused`]: which queues are paused (written by the dispatcher's pause/resume routes,
//!   read by workers on every heartbeat and on a pub/sub notice).
//! - [`registry`]: the worker registry record and its status (written by the heartbeat, listed
//!   by the dispatcher).
//! - [`scripts`]: one module per task state transition (enqueue, start, complete, fail, …),
//!   each beside its `.lua` script with one typed wrapper.
//! - [`tenant`]: tenants (API keys with scopes and quotas): the record, key hashes, the
//!   requests-per-minute window.
//! - `cluster`: cluster mode's calls over several queues, split one per queue.
//! - [`connect`]: one connection type over standalone, Sentinel and Cluster, TLS settings.
//! - [`sentinel`]: the Sentinel-resolved primary, asked again after a failover.
//! - [`store`]: connection pool, blocking connections, group set-up, record reads.
//! - [`metrics`]: metric names and the Prometheus recorder.
//! - [`duty`]: the loop every background duty runs in (pace, logging, backoff).
//! - [`retry`]: retrying Redis calls with backoff while Redis is unreachable.
//! - [`serve`]: the HTTP server loop of both binaries (header read timeout, graceful shutdown).
//! - [`signals`]: SIGTERM/SIGINT → graceful shutdown.
//! - [`runtime`]: the tokio runtime both binaries run on (`RUNTIME_THREADS`).
//! - [`clock`]: time as the records store it.
//! - [`telemetry`]: log set-up.
//! - `test_support` (unit tests only): stream entries built from fields.

pub mod chat;
pub mod clock;
mod cluster;
pub mod completion;
pub mod config;
pub mod connect;
pub mod console;
pub mod duty;
pub mod events;
pub mod healthcheck;
pub mod keys;
pub mod lane;
pub mod metrics;
pub mod output;
pub mod paused;
pub mod record;
pub mod registry;
pub mod retry;
pub mod runtime;
pub mod scripts;
pub mod sentinel;
pub mod serve;
pub mod signals;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod tenant;
#[cfg(test)]
mod test_support;

pub use redis;
pub use store::Pool;
