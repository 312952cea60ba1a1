//! The provider limiter against a real Redis, several limiters standing for several workers:
//! calls start no earlier than the shared schedule allows, settling moves the schedule by the
//! reported usage and calibrates the estimate, and a pause holds one model only while the
//! sleeping call lends its slot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_shared::config::{RedisConfig, WorkerConfig};
use switchyard_shared::keys::Keys;
use switchyard_shared::scripts::{self, Reservation, Reserved, Settlement};
use switchyard_shared::store;
use switchyard_tests::{connection, shared_redis, unique_prefix};
use switchyard_worker::limiter::{Estimate, Limiter, Slots};
use tokio::sync::Semaphore;

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// One worker's limiter under `prefix` with the limit variables `limits`.
fn limiter(prefix: &str, limits: &[(&str, &str)], slots: Option<Slots>) -> Limiter {
    let url = shared_redis().url();
    let redis = RedisConfig::from_vars(&vars(&[("REDIS_URL", url), ("QUEUE_PREFIX", prefix)]))
        .expect("redis config");
    let cfg = WorkerConfig::from_vars(&vars(limits)).expect("worker config");
    let pool = store::create_pool(&redis).expect("pool");
    Limiter::new(pool, Keys::new(prefix), &cfg, slots)
}

/// A request body of 400 characters in one message: 104 estimated tokens.
fn body_104() -> serde_json::Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(400)}]})
}

#[tokio::test]
async fn calls_of_three_workers_start_no_sooner_than_the_shared_token_schedule() {
    let prefix = unique_prefix();
    // 1000 tokens a second: a 104-token call every 104 ms, whoever asks.
    let settings = [("OPENAI_TPM", "1000"), ("LLM_LIMIT_WINDOW_MS", "1000")];
    let workers: Vec<Limiter> = (0..3).map(|_| limiter(&prefix, &settings, None)).collect();
    let estimate = Estimate::of(&body_104());
    assert_eq!(estimate.prompt, 104);
    let began = Instant::now();
    let mut calls = Vec::new();
    for w in &workers {
        for _ in 0..8 {
            let w = w.clone();
            calls.push(tokio::spawn(async move {
                let ticket = w.admit("openai", "m", estimate).await;
                assert!(ticket.is_some(), "a budget applies");
                began.elapsed()
            }));
        }
    }
    let mut starts = Vec::new();
    for c in calls {
        starts.push(c.await.expect("admitted"));
    }
    starts.sort();
    // Every reservation was made after `began`, so the schedule starts no sooner: the i-th call
    // may not start before i calls' worth of budget has passed since then (a late wake-up on a
    // loaded machine only makes it later, never earlier).
    for (i, at) in starts.iter().enumerate() {
        let due = Duration::from_millis(104 * i as u64);
        assert!(
            *at + Duration::from_millis(3) >= due,
            "call {i} started at {at:?}, before its turn at {due:?}"
        );
        assert!(
            *at <= due + Duration::from_millis(1_000),
            "call {i} started at {at:?}, long after its turn at {due:?}"
        );
    }
}

#[tokio::test]
async fn settling_moves_the_schedule_by_the_usage_and_calibrates_the_estimate() {
    let prefix = unique_prefix();
    let keys = Keys::new(&prefix);
    let mut con = connection(shared_redis().url()).await;
    let (budget, pause) = (
        keys.limit_budget("openai", None),
        keys.limit_pause("openai", "m"),
    );
    let reservation = Reservation {
        budget: &budget,
        pause: Some(&pause),
        requests: 0,
        tokens: 60_000,
        window: Duration::from_secs(60),
        prompt_estimate: 100,
        completion_cap: 0,
    };
    let first = scripts::limit_reserve(&mut con, &reservation)
        .await
        .expect("reserve");
    assert_eq!(
        first,
        Reserved::Granted {
            wait: Duration::ZERO,
            cost: 100
        }
    );
    // The provider counted twice the prompt and 300 completion tokens: 400 more than reserved.
    scripts::limit_settle(
        &mut con,
        &Settlement {
            budget: &budget,
            tokens: 60_000,
            window: Duration::from_secs(60),
            reserved: 100,
            prompt_estimate: 100,
            prompt_tokens: 200,
            completion_tokens: 300,
        },
    )
    .await
    .expect("settle");
    let Reserved::Granted { wait, cost } = scripts::limit_reserve(&mut con, &reservation)
        .await
        .expect("reserve")
    else {
        panic!("not paused");
    };
    // 1000 tokens a second: the first call's 500 tokens hold the budget for 500 ms.
    assert!(
        wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
        "{wait:?}"
    );
    assert_eq!(cost, 200 + 300, "prompt ×2 and the completion learnt");
    let capped = Reservation {
        completion_cap: 10,
        ..reservation
    };
    let Reserved::Granted { cost, .. } = scripts::limit_reserve(&mut con, &capped)
        .await
        .expect("reserve")
    else {
        panic!("not paused");
    };
    assert_eq!(
        cost, 210,
        "the completion estimate never exceeds max_tokens"
    );
}

#[tokio::test]
async fn a_pause_holds_that_model_for_every_worker_and_lends_the_slot() {
    let prefix = unique_prefix();
    let settings = [("OPENAI_RPM", "100000"), ("LLM_RETRY_MAX_MS", "5000")];
    let permits = Arc::new(Semaphore::new(1));
    let own = permits
        .clone()
        .try_acquire_owned()
        .expect("the task's slot");
    let sleeper = limiter(&prefix, &settings, Some(Slots::new(permits.clone(), 1)));
    let other_worker = limiter(&prefix, &settings, None);
    assert!(
        other_worker
            .pause("openai", "model-a", Duration::from_millis(600))
            .await
    );
    let began = Instant::now();
    let paused = tokio::spawn({
        let sleeper = sleeper.clone();
        async move {
            sleeper
                .admit("openai", "model-a", Estimate::default())
                .await;
            began.elapsed()
        }
    });
    sleeper
        .admit("openai", "model-b", Estimate::default())
        .await;
    assert!(
        began.elapsed() < Duration::from_millis(300),
        "another model is not paused"
    );
    // While model-a sleeps, its slot serves other work.
    let lent = switchyard_tests::poll_until("the slot lent", Duration::from_secs(2), || {
        let p = permits.clone();
        async move { (p.available_permits() == 1).then_some(()) }
    });
    lent.await;
    let waited = paused.await.expect("admitted");
    assert!(
        waited >= Duration::from_millis(590) && waited < Duration::from_millis(2_000),
        "model-a waited {waited:?} for a 600 ms pause"
    );
    assert_eq!(permits.available_permits(), 0, "the slot is back");
    drop(own);
    // A Retry-After beyond LLM_RETRY_MAX_MS is capped.
    assert!(
        sleeper
            .pause("openai", "model-c", Duration::from_secs(3_600))
            .await
    );
    let mut con = connection(shared_redis().url()).await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(Keys::new(&prefix).limit_pause("openai", "model-c"))
        .query_async(&mut con)
        .await
        .expect("PTTL");
    assert!(ttl > 0 && ttl <= 5_000, "{ttl}");
}
