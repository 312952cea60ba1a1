//! A failover under load, as the Sentinel and Cluster tests run it: clients submit tasks
//! non-stop, the test kills a primary and waits for the promotion, the clients go on until 100
//! more were accepted; then every accepted task must end `succeeded`. Measured: how long the
//! API refused, and how many accepted tasks were lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Dispatcher, poll_until};

/// One submission: when it was sent and answered, its status, and the task id when accepted.
type Answer = (Instant, Instant, u16, Option<String>);

/// What one failover run measured.
#[derive(Debug, Clone, Copy)]
pub struct Failover {
    /// From the kill to the first acceptance of a task sent after it: only a promoted primary
    /// can have taken it.
    pub api_back: Duration,
    /// From the moment the test saw the promotion to that acceptance.
    pub after_promotion: Duration,
    /// Tasks the API accepted.
    pub accepted: usize,
    /// Submissions refused (all 503).
    pub refused: usize,
    /// Accepted tasks that did not end `succeeded` within 90 s.
    pub lost: usize,
}

impl Failover {
    /// The figures on one line, after `what`.
    pub fn print(&self, what: &str) {
        println!(
            "{what}: API accepting again {:.2} s after the SIGKILL ({:.2} s after the promotion); \
             {} accepted, {} refused (503), {} lost",
            self.api_back.as_secs_f64(),
            self.after_promotion.as_secs_f64(),
            self.accepted,
            self.refused,
            self.lost
        );
    }
}

/// Submits `body(i)` tasks from `n` concurrent clients until `stop`, recording every answer.
fn flow(
    d: &Arc<Dispatcher>,
    n: usize,
    body: fn(u64) -> Value,
    stop: &Arc<AtomicBool>,
) -> Arc<Mutex<Vec<Answer>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    for c in 0..n as u64 {
        let (d, stop, log) = (d.clone(), stop.clone(), log.clone());
        tokio::spawn(async move {
            let mut i = c * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let sent = Instant::now();
                let (s, v) = d.request("POST", "/api/tasks", Some(body(i))).await;
                let id = (s == 202).then(|| v["id"].as_str().unwrap_or_default().to_owned());
                log.lock()
                    .expect("not poisoned")
                    .push((sent, Instant::now(), s, id));
            }
        });
    }
    log
}

fn accepted_after(log: &Mutex<Vec<Answer>>, t: Instant) -> usize {
    let log = log.lock().expect("not poisoned");
    log.iter()
        .filter(|(_, at, s, _)| *at > t && *s == 202)
        .count()
}

/// Four clients submit `body` tasks through `d`; once 100 were accepted, `kill_and_promote`
/// kills the primary and returns the moment of the SIGKILL once a replica was promoted; after
/// 100 more acceptances the clients stop and every accepted task is checked.
pub async fn under_load(
    d: &Arc<Dispatcher>,
    body: fn(u64) -> Value,
    kill_and_promote: impl FnOnce() -> Instant,
) -> Failover {
    let stop = Arc::new(AtomicBool::new(false));
    let log = flow(d, 4, body, &stop);
    let began = Instant::now();
    poll_until(
        "100 tasks accepted before the kill",
        Duration::from_secs(60),
        || async { (accepted_after(&log, began) >= 100).then_some(()) },
    )
    .await;
    let killed_at = kill_and_promote();
    let promoted_at = Instant::now();
    println!(
        "promotion seen {:?} after the kill",
        promoted_at - killed_at
    );
    poll_until(
        "100 tasks accepted after the promotion",
        Duration::from_secs(60),
        || async { (accepted_after(&log, promoted_at) >= 100).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let answers = std::mem::take(&mut *log.lock().expect("not poisoned"));
    let back_at = answers
        .iter()
        .filter(|(sent, _, s, _)| *sent > killed_at && *s == 202)
        .map(|(_, at, _, _)| *at)
        .min();
    let refused: Vec<u16> = answers
        .iter()
        .filter(|(_, _, s, _)| *s != 202)
        .map(|(_, _, s, _)| *s)
        .collect();
    assert!(
        refused.iter().all(|s| *s == 503),
        "refusals are 503 only: {refused:?}"
    );
    let ids: Vec<String> = answers.into_iter().filter_map(|(_, _, _, id)| id).collect();
    Failover {
        api_back: back_at.map_or(Duration::ZERO, |at| at - killed_at),
        // How long after the promotion the API still refused: our share.
        after_promotion: back_at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(promoted_at)
        }),
        accepted: ids.len(),
        refused: refused.len(),
        lost: lost(d, &ids).await,
    }
}

/// How many of `ids` do not end `succeeded` within 90 s (or are unknown).
async fn lost(d: &Dispatcher, ids: &[String]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut lost = 0;
    for id in ids {
        loop {
            let (s, t) = d.request("GET", &format!("/api/tasks/{id}"), None).await;
            if s == 200 && t["state"] == "succeeded" {
                break;
            }
            if Instant::now() > deadline || s == 404 {
                lost += 1;
                println!("lost task {id}: {s} {t}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    lost
}
