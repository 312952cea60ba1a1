//! Streamed answers through the real binaries (issue 17) with a local provider server speaking
//! the OpenAI and the Anthropic SSE formats: the first `delta` reaches the client before the
//! provider finished, the deltas add up to `done`, usage is recorded; a client resumes after k
//! events on a second dispatcher and gets exactly the rest; a worker SIGKILLed mid-stream shows
//! as `restart`, then the whole new attempt, and the session holds the turn once.

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_shared::keys::Keys;
use switchyard_tests::provider_server::{ProviderServer, Reply, Wire};
use switchyard_tests::sse::SseEvent;
use switchyard_tests::{
    connection, env_pairs, shared_redis, spawn_dispatcher, spawn_worker, unique_prefix,
};

const LONG: Duration = Duration::from_secs(30);

/// The text of the deltas after the last `restart`.
fn answer_text(events: &[SseEvent]) -> String {
    let from = events
        .iter()
        .rposition(|e| e.event == "restart")
        .map_or(0, |i| i + 1);
    events[from..]
        .iter()
        .filter(|e| e.event == "delta")
        .map(|e| e.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn first_delta_before_the_provider_finished(wire: Wire) {
    let provider = ProviderServer::start(Reply::tokens(30).delay(Duration::from_millis(40))).await;
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let env = provider.worker_env(wire);
    let _w = spawn_worker(redis.url(), &prefix, "w1", &env_pairs(&env)).await;

    let mut s = d
        .chat_stream(json!({"message": "hi", "stream": true}))
        .await;
    let start = s.expect("start", LONG).await;
    assert_eq!(start.event, "start");
    assert_eq!(start.id.as_deref(), Some("0-0-0"));
    let task_id = start.json()["task_id"]
        .as_str()
        .expect("task_id")
        .to_owned();
    let (first, at) = tokio::time::timeout(LONG, s.next())
        .await
        .expect("a first event")
        .expect("stream open");
    assert_eq!(first.event, "delta", "{first:?}");
    let served = provider.requests();
    assert_eq!(served.len(), 1);
    assert!(
        served[0].finished.is_none_or(|f| f > at),
        "the first delta came after the provider finished sending"
    );
    let mut events = vec![first];
    events.extend(s.rest(LONG).await);
    let done = events.last().expect("events").clone();
    assert_eq!(done.event, "done", "{done:?}");
    let done = done.json();
    assert_eq!(answer_text(&events), Reply::tokens(30).answer());
    assert_eq!(done["response"], Reply::tokens(30).answer());
    assert_eq!(done["task_id"], task_id.as_str());
    assert_eq!(done["usage"]["completion_tokens"], 30, "{done}");
    let task = d.task(&task_id).await;
    assert_eq!(task["result"]["usage"]["completion_tokens"], 30, "{task}");
    let ids: Vec<&str> = events.iter().filter_map(|e| e.id.as_deref()).collect();
    assert_eq!(ids.len(), events.len(), "every event has an id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_stream_reaches_the_client_before_the_provider_finished() {
    first_delta_before_the_provider_finished(Wire::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_stream_reaches_the_client_before_the_provider_finished() {
    first_delta_before_the_provider_finished(Wire::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resuming_on_a_second_dispatcher_gets_exactly_the_rest() {
    let provider = ProviderServer::start(Reply::tokens(40).delay(Duration::from_millis(30))).await;
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d1 = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let d2 = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let env = provider.worker_env(Wire::OpenAi);
    let _w = spawn_worker(redis.url(), &prefix, "w1", &env_pairs(&env)).await;

    let mut s = d1
        .chat_stream(json!({"message": "hi", "stream": true}))
        .await;
    let mut seen = vec![];
    for k in 0..6 {
        seen.push(s.expect(&format!("event {k}"), LONG).await);
    }
    drop(s);
    let task_id = seen[0].json()["task_id"]
        .as_str()
        .expect("task_id")
        .to_owned();
    let last = seen[5].id.clone().expect("id");
    // Within the default grace: the task runs on.
    let mut resumed = d2.task_stream(&task_id, Some(&last)).await;
    let rest = resumed.rest(LONG).await;
    assert_eq!(rest.last().map(|e| e.event.as_str()), Some("done"));

    let mut whole = d1.task_stream(&task_id, None).await;
    let all = whole.rest(LONG).await;
    assert_eq!(
        all[..6],
        seen[..],
        "the first events are the same on a later stream"
    );
    assert_eq!(all[6..], rest[..], "the resumed stream is exactly the rest");
    assert_eq!(answer_text(&all), Reply::tokens(40).answer());
    let task = d2.task(&task_id).await;
    assert_eq!(task["state"], "succeeded", "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_shows_a_restart_and_the_session_holds_the_turn_once() {
    let tokens = 50;
    let provider =
        ProviderServer::start(Reply::tokens(tokens).delay(Duration::from_millis(40))).await;
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let env = provider.worker_env(Wire::OpenAi);
    let w1 = spawn_worker(redis.url(), &prefix, "w1", &env_pairs(&env)).await;
    let w2 = spawn_worker(redis.url(), &prefix, "w2", &env_pairs(&env)).await;

    let body = json!({"session_id": "kill", "message": "hi", "stream": true});
    let mut s = d.chat_stream(body).await;
    let start = s.expect("start", LONG).await;
    let task_id = start.json()["task_id"]
        .as_str()
        .expect("task_id")
        .to_owned();
    let mut events = vec![start];
    for k in 0..5 {
        events.push(s.expect(&format!("delta {k}"), LONG).await);
    }
    let task = d.task(&task_id).await;
    let victim = if task["worker"] == "w1" { &w1 } else { &w2 };
    victim.proc.sigkill();
    let killed_at = Instant::now();
    events.extend(s.rest(Duration::from_secs(60)).await);

    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    let restart = names
        .iter()
        .position(|n| *n == "restart")
        .unwrap_or_else(|| panic!("no restart in {names:?}"));
    assert_eq!(events[restart].json()["attempt"], 2);
    assert_eq!(names.last(), Some(&"done"));
    let done = events.last().expect("done").json();
    assert_eq!(answer_text(&events), Reply::tokens(tokens).answer());
    assert_eq!(done["response"], Reply::tokens(tokens).answer());
    let after = &names[restart + 1..names.len() - 1];
    assert!(after.iter().all(|n| *n == "delta"), "{names:?}");
    eprintln!(
        "restart and the whole new attempt within {:?} of the kill",
        killed_at.elapsed()
    );

    let mut con = connection(redis.url()).await;
    let session: Vec<String> = redis::cmd("LRANGE")
        .arg(Keys::new(&prefix).session("kill"))
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .expect("session");
    assert_eq!(session.len(), 2, "one turn: {session:?}");
    assert!(
        session[1].contains(&Reply::tokens(tokens).answer()),
        "{session:?}"
    );
    d.wait_state(&task_id, "succeeded", LONG).await;
}
