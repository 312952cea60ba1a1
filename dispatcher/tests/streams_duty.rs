//! The output fan-out duty through `tick()` against a real Redis: every client of a task gets
//! each read, a client whose buffer is full is dropped (and a late one is told what it missed),
//! and a new subscription interrupts a blocked `XREAD` instead of waiting for its timeout.

mod common;

use std::time::{Duration, Instant};

use common::{api, delta};
use switchyard_dispatcher::streams::Hub;
use switchyard_tests::connection;

const TASK: &str = "chat-01JDX3N4Z7Q8R9S0T1V2W3X4Y5";

#[tokio::test]
async fn tick_fans_out_to_every_client_and_drops_one_whose_buffer_is_full() {
    let api = api();
    let hub = Hub::new(1);
    let mut tail = api.output_tail(&hub);
    let key = api.state.keys.output("chat", TASK);
    let (mut slow, _) = hub.subscribe(&key, "0-0");
    let (mut quick, _) = hub.subscribe(&key, "0-0");
    api.append(&key, &[delta(1, "a")]).await;
    assert_eq!(tail.tick().await.expect("tick"), 1);
    assert_eq!(
        quick.rx.recv().await.expect("chunk")[0].entry,
        delta(1, "a")
    );
    api.append(&key, &[delta(1, "b")]).await;
    assert_eq!(tail.tick().await.expect("tick"), 1);
    assert_eq!(
        quick.rx.recv().await.expect("chunk")[0].entry,
        delta(1, "b")
    );
    // The slow client still holds its first read: it was dropped rather than buffered for.
    assert_eq!(slow.rx.recv().await.expect("chunk")[0].entry, delta(1, "a"));
    assert!(slow.rx.recv().await.is_none(), "dropped from the fan-out");
    assert_eq!(hub.clients(), 1);
    // A later subscriber is told what the fan-out read before it came.
    let (_late, gap) = hub.subscribe(&key, "0-0");
    assert!(
        gap.is_some(),
        "the entries read before must be read by the late client"
    );
}

#[tokio::test]
async fn a_new_subscription_interrupts_a_blocked_read() {
    let api = api();
    let hub = Hub::new(8);
    let mut tail = api.output_tail(&hub);
    let idle = api.state.keys.output("chat", TASK);
    let (_idle, _) = hub.subscribe(&idle, "0-0");
    api.append(&idle, &[delta(1, "a")]).await;
    // Connects and reads that entry, so the timed read below is one blocked XREAD.
    assert_eq!(tail.tick().await.expect("tick"), 1);
    let reading = tokio::spawn(async move {
        let began = Instant::now();
        let r = tail.tick().await;
        (began.elapsed(), r)
    });
    let con = connection(api.redis_url()).await;
    switchyard_tests::poll_until("the XREAD to block", Duration::from_secs(5), || {
        let mut con = con.clone();
        async move {
            let clients: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut con)
                .await
                .ok()?;
            clients
                .lines()
                .any(|l| l.contains("cmd=xread") && l.contains("flags=b"))
                .then_some(())
        }
    })
    .await;
    let fresh = api
        .state
        .keys
        .output("chat", "chat-01JDX3N4Z7Q8R9S0T1V2W3X4Y6");
    let (_fresh, _) = hub.subscribe(&fresh, "0-0");
    let (took, r) = reading.await.expect("join");
    r.expect("tick");
    assert!(
        took < Duration::from_millis(1_500),
        "the blocked read ended after {took:?}, not at its 2 s block"
    );
}
