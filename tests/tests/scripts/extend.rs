//! `extend.lua`: the lease of entries this consumer still holds is refreshed; the ones it lost
//! are reported and left alone.

use switchyard_shared::keys::GROUP;
use switchyard_shared::scripts;

use crate::env::{Env, QUEUE};

#[tokio::test]
async fn extend_refreshes_owned_entries_and_reports_lost_ones() {
    let mut env = Env::new().await;
    let kept = env.running("w1", 3).await;
    let lost = env.running("w1", 3).await;
    // Age the kept entry as if its task had run for a minute, without a new delivery.
    let args = (env.stream(), GROUP, "w1", 0, &kept.entry);
    let _: Vec<String> = env.redis("XCLAIM", (args, "IDLE", 60_000, "JUSTID")).await;
    env.xclaim("w2", &lost.entry).await;
    let before = env.pending().await;
    let aged = before
        .iter()
        .find(|p| p.0 == kept.entry)
        .expect("kept pending");
    assert!(aged.2 >= 60_000, "aged idle {}", aged.2);

    let gone = scripts::extend(
        &mut env.con,
        &env.keys,
        QUEUE,
        "w1",
        &[kept.entry.clone(), lost.entry.clone()],
    )
    .await
    .expect("extend");
    assert_eq!(gone, vec![lost.entry.clone()]);

    let after = env.pending().await;
    let fresh = after
        .iter()
        .find(|p| p.0 == kept.entry)
        .expect("kept pending");
    assert_eq!(fresh.1, "w1");
    assert!(fresh.2 < 10_000, "idle reset, got {}", fresh.2);
    assert_eq!(fresh.3, aged.3, "extending does not count as a delivery");
    let other = after
        .iter()
        .find(|p| p.0 == lost.entry)
        .expect("lost pending");
    assert_eq!(other.1, "w2", "the other consumer's entry is left alone");
}
