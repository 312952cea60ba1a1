//! The worker side of streamed answers through the real binaries (issue 17), with the `openai`
//! (and `anthropic`) provider pointed at the local provider server: a chat task's text reaches its output stream
//! coalesced into a few entries of attempt 1 ending in an end entry, and adds up to the result; a
//! worker SIGKILLed mid-answer leaves its partial attempt 1 and the next attempt writes attempt 2
//! (the session holds the turn once); cancelling a running chat closes the provider connection.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};
use switchyard_shared::output::{AttemptEnd, Entry};
use switchyard_tests::provider_server::Wire;
use switchyard_tests::{
    ProviderServer, Reply, connection, env_pairs, output_entries, poll_until, shared_redis,
    spawn_dispatcher, spawn_worker, unique_prefix,
};

const LONG: Duration = Duration::from_secs(60);

/// A chat task of `session` for `POST /api/tasks`.
fn chat(session: &str) -> Value {
    json!({"kind": "chat", "payload": {"session_id": session, "message": "count"}})
}

/// The output stream of chat task `id`: entries with their ids' millisecond parts.
async fn output(con: &mut MultiplexedConnection, prefix: &str, id: &str) -> Vec<(u64, Entry)> {
    output_entries(con, &format!("{prefix}{{chat}}:out:{id}")).await
}

fn text(entries: &[(u64, Entry)], attempt: u32) -> String {
    entries
        .iter()
        .filter_map(|(_, e)| match e {
            Entry::Delta { attempt: a, text } if *a == attempt => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_answer_streams_into_its_output_stream_in_a_few_entries_and_an_end() {
    streams_into_the_output_stream(Wire::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_answer_streams_into_its_output_stream_in_a_few_entries_and_an_end() {
    streams_into_the_output_stream(Wire::Anthropic).await;
}

async fn streams_into_the_output_stream(wire: Wire) {
    let server = ProviderServer::start(Reply::tokens(60).delay(Duration::from_millis(10))).await;
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let env = server.worker_env(wire);
    let _w = spawn_worker(redis.url(), &prefix, "w-stream", &env_pairs(&env)).await;

    let id = d.submit(chat("s1")).await;
    let task = d.wait_state(&id, "succeeded", LONG).await;
    let response = task["result"]["response"].as_str().expect("response");
    assert_eq!(response, Reply::tokens(60).answer());
    assert_eq!(task["result"]["usage"]["completion_tokens"], 60, "{task}");

    let mut con = connection(redis.url()).await;
    let got = output(&mut con, &prefix, &id).await;
    assert!(got.iter().all(|(_, e)| e.attempt() == 1), "{got:?}");
    assert_eq!(text(&got, 1), response, "the deltas add up to the result");
    let deltas = got.len() - 1;
    println!("60 tokens over ~600 ms: {deltas} delta entries and an end entry");
    // ~600 ms of tokens in 100 ms flushes, plus the first token on its own.
    assert!(
        (3..=30).contains(&deltas),
        "60 tokens coalesced into {deltas} delta entries"
    );
    assert_eq!(
        got.last().map(|(_, e)| e.clone()),
        Some(Entry::End {
            attempt: 1,
            end: AttemptEnd::Finished
        })
    );
    let spread = got.last().map_or(0, |(ms, _)| *ms) - got[0].0;
    assert!(
        spread >= 300,
        "entries were written while the answer arrived, not at its end: {spread} ms"
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}{{chat}}:out:{id}"))
        .query_async(&mut con)
        .await
        .expect("pttl");
    assert!(pttl > 0, "the output stream expires: {pttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_answer_is_followed_by_attempt_2_and_one_session_turn() {
    let server = ProviderServer::start(Reply::tokens(20)).await;
    // The first request answers slowly enough to be killed in the middle.
    server.push(Reply::tokens(400).delay(Duration::from_millis(20)));
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let env = server.worker_env(Wire::OpenAi);
    let w1 = spawn_worker(redis.url(), &prefix, "w-victim", &env_pairs(&env)).await;

    let id = d.submit(chat("s-kill")).await;
    let mut con = connection(redis.url()).await;
    poll_until("attempt 1 text in the output stream", LONG, || {
        let mut con = con.clone();
        let (prefix, id) = (prefix.clone(), id.clone());
        async move {
            let got = output(&mut con, &prefix, &id).await;
            (got.len() >= 2).then_some(())
        }
    })
    .await;
    w1.proc.sigkill();
    let _w2 = spawn_worker(redis.url(), &prefix, "w-heir", &env_pairs(&env)).await;

    let task = d.wait_state(&id, "succeeded", LONG).await;
    assert_eq!(task["attempts"], 2, "{task}");
    let response = task["result"]["response"].as_str().expect("response");
    assert_eq!(response, Reply::tokens(20).answer());

    let got = output(&mut con, &prefix, &id).await;
    let first_of_2 = got
        .iter()
        .position(|(_, e)| e.attempt() == 2)
        .expect("attempt 2 wrote entries");
    assert!(
        got[..first_of_2]
            .iter()
            .all(|(_, e)| matches!(e, Entry::Delta { attempt: 1, .. })),
        "attempt 1 left text and no end entry: {got:?}"
    );
    assert!(!text(&got, 1).is_empty());
    assert!(
        got[first_of_2..].iter().all(|(_, e)| e.attempt() == 2),
        "{got:?}"
    );
    assert_eq!(text(&got, 2), response);
    assert_eq!(
        got.last().map(|(_, e)| e.clone()),
        Some(Entry::End {
            attempt: 2,
            end: AttemptEnd::Finished
        })
    );
    let turn: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{prefix}session:s-kill"))
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .expect("lrange");
    assert_eq!(
        turn.len(),
        2,
        "one user and one assistant message: {turn:?}"
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_chat_closes_the_provider_connection_within_a_second() {
    let server = ProviderServer::start(Reply::tokens(500).delay(Duration::from_millis(20))).await;
    let redis = shared_redis();
    let prefix = unique_prefix();
    let d = spawn_dispatcher(redis.url(), &prefix, &[]).await;
    let env = server.worker_env(Wire::OpenAi);
    let _w = spawn_worker(redis.url(), &prefix, "w-cancel", &env_pairs(&env)).await;

    let id = d.submit(chat("s-cancel")).await;
    poll_until("the first token served", LONG, || async {
        server.requests().first().and_then(|r| r.first_token)
    })
    .await;
    let cancelled_at = Instant::now();
    let (s, v) = d.request("DELETE", &format!("/api/tasks/{id}"), None).await;
    assert_eq!(s, 202, "{v}");
    let closed = poll_until("the provider sees its connection closed", LONG, || async {
        server.requests()[0].closed_early
    })
    .await;
    let after = closed.saturating_duration_since(cancelled_at);
    println!("provider connection closed {after:?} after the cancel");
    assert!(
        after < Duration::from_secs(1),
        "closed {after:?} after the cancel"
    );
    assert!(server.tokens_served() < 500);
    let task = d.wait_state(&id, "cancelled", LONG).await;
    assert_eq!(task["attempts"], 1, "{task}");

    let mut con = connection(redis.url()).await;
    let got = output(&mut con, &prefix, &id).await;
    assert_eq!(
        got.last().map(|(_, e)| e.clone()),
        Some(Entry::End {
            attempt: 1,
            end: AttemptEnd::Failed
        }),
        "the cancelled attempt ends its text"
    );
}
