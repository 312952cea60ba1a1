//! `session_append.lua`: one chat turn per task, the history capped, the session expiring.

use std::time::Duration;

use switchyard_shared::scripts;

use crate::env::Env;

fn message(role: &str, content: &str, task_id: &str) -> String {
    serde_json::json!({"role": role, "content": content, "task_id": task_id}).to_string()
}

/// Appends task `task`'s turn `n` (a question and its answer) to session `s1`, keeping at most
/// four messages; whether it was appended.
async fn append(env: &mut Env, task: &str, n: u32) -> bool {
    let user = message("user", &format!("question {n}"), task);
    let assistant = message("assistant", &format!("answer {n}"), task);
    let ttl = Duration::from_secs(900);
    scripts::session_append(
        &mut env.con,
        &env.keys,
        "s1",
        task,
        &user,
        &assistant,
        4,
        ttl,
    )
    .await
    .expect("session_append")
}

#[tokio::test]
async fn session_append_adds_a_turn_once_caps_the_history_and_sets_a_ttl() {
    let mut env = Env::new().await;
    let key = env.keys.session("s1");

    assert!(append(&mut env, "tool-T1", 1).await);
    let list: Vec<String> = env.redis("LRANGE", (&key, 0, -1)).await;
    assert_eq!(
        list,
        vec![
            message("user", "question 1", "tool-T1"),
            message("assistant", "answer 1", "tool-T1"),
        ]
    );
    let got_ttl: i64 = env.redis("TTL", &key).await;
    assert!(got_ttl > 0 && got_ttl <= 900, "session TTL {got_ttl}");

    assert!(
        !append(&mut env, "tool-T1", 1).await,
        "a re-run of the same task appends nothing"
    );
    let len: u64 = env.redis("LLEN", &key).await;
    assert_eq!(len, 2);

    assert!(append(&mut env, "tool-T2", 2).await);
    assert!(append(&mut env, "tool-T3", 3).await);
    let list: Vec<String> = env.redis("LRANGE", (&key, 0, -1)).await;
    assert_eq!(list.len(), 4, "capped at max messages");
    assert_eq!(
        list[0],
        message("user", "question 2", "tool-T2"),
        "oldest turn dropped"
    );
    assert_eq!(list[3], message("assistant", "answer 3", "tool-T3"));
}
