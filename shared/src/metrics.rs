//! Prometheus metrics: every metric name the project exports (prefix `switchyard_`), their help
//! texts, and the process-wide recorder both binaries render on `GET /metrics`. The Grafana
//! dashboard in `ops/grafana/` queries exactly these names.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

// Dispatcher: queue state, sampled from Redis by one duty every few seconds.
/// Gauge{queue}: entries in the stream (`XLEN`): waiting plus in flight.
pub const QUEUE_DEPTH: &str = "switchyard_queue_depth";
/// Gauge{queue}: entries delivered to a worker and not finished.
pub const QUEUE_PENDING: &str = "switchyard_queue_pending";
/// Gauge{queue}: entries not yet delivered (depth − pending).
pub const QUEUE_WAITING: &str = "switchyard_queue_waiting";
/// Gauge{queue}: the group's lag as Redis reports it (absent when Redis cannot tell).
pub const QUEUE_LAG: &str = "switchyard_queue_lag";
/// Gauge{queue}: age of the oldest entry still pending, seconds (0 when none).
pub const QUEUE_OLDEST_PENDING_AGE: &str = "switchyard_queue_oldest_pending_age_seconds";
/// Gauge{queue}: tasks in the delayed set (retry backoff or scheduled).
pub const QUEUE_DELAYED: &str = "switchyard_queue_delayed";
/// Gauge{queue}: entries in the dead-letter stream.
pub const QUEUE_DEAD: &str = "switchyard_queue_dead";
/// Gauge{queue}: 1 while the queue is paused (workers take no new entries from it), else 0.
pub const QUEUE_PAUSED: &str = "switchyard_queue_paused";
/// Gauge{queue}: consumers in the group.
pub const QUEUE_CONSUMERS: &str = "switchyard_queue_consumers";
/// Gauge{queue,state}: tasks per state (current for queued/running/retrying, since creation for
/// terminal states).
pub const TASKS_BY_STATE: &str = "switchyard_tasks";
/// Gauge{status}: workers by status (idle, busy, draining, offline).
pub const WORKERS: &str = "switchyard_workers";
/// Gauge: seconds the last queue sample took.
pub const SAMPLE_DURATION: &str = "switchyard_stats_sample_duration_seconds";

// Dispatcher: requests and task flow.
/// Counter{queue,kind}: tasks accepted.
pub const TASKS_ENQUEUED: &str = "switchyard_tasks_enqueued_total";
/// Counter{queue,state}: tasks that reached a terminal state (from the events streams).
pub const TASKS_FINISHED: &str = "switchyard_tasks_finished_total";
/// Histogram{queue,state}: enqueue → terminal state, seconds.
pub const TASK_LATENCY: &str = "switchyard_task_latency_seconds";
/// Counter{tenant}: tasks accepted from a tenant's key (the label is the id of a tenant that
/// exists, never client input; the admin key's tasks are not counted here).
pub const TENANT_TASKS_ENQUEUED: &str = "switchyard_tenant_tasks_enqueued_total";
/// Counter{tenant}: requests refused for the tenant's `rpm` quota (429).
pub const TENANT_RATE_LIMITED: &str = "switchyard_tenant_rate_limited_total";
/// Histogram{tenant,cause}: how long a worker held a tenant's task back for its quota, seconds:
/// `running` (all `max_running` slots held) or `tokens` (its `tpm` budget). Recorded only for
/// tasks that waited; the label is the id of a tenant whose record the worker read.
pub const TENANT_WAIT: &str = "switchyard_tenant_wait_seconds";
/// Counter{tenant}: LLM tokens (prompt + completion, as the provider reported them) used by a
/// tenant's tasks, counted by workers for tenants with a `tpm` quota.
pub const TENANT_TOKENS: &str = "switchyard_tenant_tokens_total";
/// Counter{method,route,status}: HTTP requests answered.
pub const HTTP_REQUESTS: &str = "switchyard_http_requests_total";
/// Histogram{method,route}: HTTP request duration, seconds.
pub const HTTP_DURATION: &str = "switchyard_http_request_duration_seconds";

// Worker.
/// Counter{queue,outcome}: attempts ended (succeeded, retrying, failed, dead, cancelled,
/// handed_back, fenced, abandoned).
pub const WORKER_ATTEMPTS: &str = "switchyard_worker_attempts_total";
/// Histogram{queue,task}: attempt run time, seconds (`task` is the tool name or `chat`).
pub const WORKER_RUN_TIME: &str = "switchyard_worker_run_seconds";
/// Histogram{queue}: enqueue → attempt start, seconds.
pub const WORKER_WAIT_TIME: &str = "switchyard_worker_wait_seconds";
/// Gauge: tasks running on this worker.
pub const WORKER_IN_FLIGHT: &str = "switchyard_worker_in_flight";
/// Counter{queue,source}: entries taken over from other workers (`dead` worker, expired `lease`).
pub const WORKER_RECLAIMED: &str = "switchyard_worker_reclaimed_total";
/// Counter{provider,model}: LLM calls made.
pub const LLM_REQUESTS: &str = "switchyard_llm_requests_total";
/// Histogram{provider,model}: LLM call latency, seconds.
pub const LLM_LATENCY: &str = "switchyard_llm_request_seconds";
/// Counter{provider,model,type}: LLM tokens used, `type` = prompt | completion.
pub const LLM_TOKENS: &str = "switchyard_llm_tokens_total";
/// Histogram{provider,model,cause}: how long a provider call waited before it was made, seconds;
/// `cause` = budget (the shared `*_RPM` / `*_TPM` schedule) | pause (a provider's 429).
pub const LLM_LIMIT_WAIT: &str = "switchyard_llm_limit_wait_seconds";
/// Counter{provider,model}: pauses recorded for the fleet after a provider's 429 with
/// `Retry-After`.
pub const LLM_LIMIT_PAUSES: &str = "switchyard_llm_limit_pauses_total";

/// Histogram buckets, seconds: sub-millisecond queue hops up to five-minute LLM calls.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns the handle that renders it. Later calls
/// (tests building several routers in one process) get the same handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours just stays empty.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// Runs the exporter's upkeep (histogram maintenance) every few seconds until `shutdown`.
pub async fn upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => handle.run_upkeep(),
        }
    }
}

fn describe() {
    describe_gauge!(
        QUEUE_DEPTH,
        "Entries in the queue stream (XLEN): waiting plus in flight."
    );
    describe_gauge!(
        QUEUE_PENDING,
        "Entries delivered to a worker and not finished."
    );
    describe_gauge!(QUEUE_WAITING, "Entries not yet delivered to any worker.");
    describe_gauge!(QUEUE_LAG, "Consumer group lag as reported by Redis.");
    describe_gauge!(
        QUEUE_OLDEST_PENDING_AGE,
        Unit::Seconds,
        "Age of the oldest pending entry."
    );
    describe_gauge!(
        QUEUE_DELAYED,
        "Tasks waiting for a retry backoff or a scheduled time."
    );
    describe_gauge!(QUEUE_DEAD, "Entries in the dead-letter stream.");
    describe_gauge!(QUEUE_CONSUMERS, "Consumers in the queue's group.");
    describe_gauge!(
        QUEUE_PAUSED,
        "1 while the queue is paused: workers take no new entries from it."
    );
    describe_gauge!(
        TASKS_BY_STATE,
        "Tasks per state (terminal states: since the queue began)."
    );
    describe_gauge!(WORKERS, "Workers by status.");
    describe_gauge!(
        SAMPLE_DURATION,
        Unit::Seconds,
        "Duration of the last queue sample."
    );
    describe_counter!(TASKS_ENQUEUED, "Tasks accepted by the dispatcher.");
    describe_counter!(TASKS_FINISHED, "Tasks that reached a terminal state.");
    describe_histogram!(TASK_LATENCY, Unit::Seconds, "Enqueue to terminal state.");
    describe_counter!(TENANT_TASKS_ENQUEUED, "Tasks accepted per tenant.");
    describe_counter!(
        TENANT_RATE_LIMITED,
        "Requests refused for a tenant's rpm quota."
    );
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered.");
    describe_histogram!(
        TENANT_WAIT,
        Unit::Seconds,
        "Time a tenant's task waited for its quota."
    );
    describe_counter!(
        TENANT_TOKENS,
        "LLM tokens used per tenant with a tpm quota."
    );
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request duration.");
    describe_counter!(WORKER_ATTEMPTS, "Attempts ended, by outcome.");
    describe_histogram!(WORKER_RUN_TIME, Unit::Seconds, "Attempt run time.");
    describe_histogram!(WORKER_WAIT_TIME, Unit::Seconds, "Enqueue to attempt start.");
    describe_gauge!(WORKER_IN_FLIGHT, "Tasks running on this worker.");
    describe_counter!(
        WORKER_RECLAIMED,
        "Entries taken over from dead or hung workers."
    );
    describe_counter!(LLM_REQUESTS, "LLM provider calls.");
    describe_histogram!(LLM_LATENCY, Unit::Seconds, "LLM provider call latency.");
    describe_counter!(LLM_TOKENS, "LLM tokens used.");
}

pub use crate::task::created_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_project_prefix() {
        for n in [
            QUEUE_DEPTH,
            QUEUE_PENDING,
            QUEUE_WAITING,
            QUEUE_LAG,
            QUEUE_OLDEST_PENDING_AGE,
            QUEUE_DELAYED,
            QUEUE_DEAD,
            QUEUE_CONSUMERS,
            QUEUE_PAUSED,
            TASKS_BY_STATE,
            WORKERS,
            SAMPLE_DURATION,
            TASKS_ENQUEUED,
            TASKS_FINISHED,
            TASK_LATENCY,
            HTTP_REQUESTS,
            HTTP_DURATION,
            WORKER_ATTEMPTS,
            WORKER_RUN_TIME,
            WORKER_WAIT_TIME,
            WORKER_IN_FLIGHT,
            WORKER_RECLAIMED,
            LLM_REQUESTS,
            LLM_LATENCY,
            LLM_TOKENS,
        ] {
            assert!(n.starts_with("switchyard_"), "{n}");
        }
    }

    #[test]
    fn creation_time_is_read_back_from_the_id() {
        let before = crate::clock::now_ms();
        let id = crate::task::new_task_id("tool");
        let after = crate::clock::now_ms();
        let t = created_ms(&id).expect("valid id");
        assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
        assert_eq!(created_ms("garbage"), None);
    }
}
