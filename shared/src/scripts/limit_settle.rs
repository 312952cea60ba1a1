//! Settling a reserved provider call with the tokens the provider reported
//! (`limit_settle.lua`): the shared token schedule is corrected by the difference and the
//! budget's estimate learns from the call.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionLike;

use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("limit_settle.lua")));

/// A finished call against a budget.
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    /// The budget's key.
    pub budget: &'a str,
    /// Tokens per window; 0 = none.
    pub tokens: u64,
    /// The window.
    pub window: Duration,
    /// Tokens the reservation held.
    pub reserved: u64,
    /// The prompt's estimate as it was sent to the reservation.
    pub prompt_estimate: u64,
    /// Prompt tokens the provider reported.
    pub prompt_tokens: u64,
    /// Completion tokens the provider reported.
    pub completion_tokens: u64,
}

/// Settles one call: `limit_settle.lua`.
pub async fn limit_settle<C: ConnectionLike>(
    con: &mut C,
    s: &Settlement<'_>,
) -> Result<(), StoreError> {
    let _: i64 = SCRIPT
        .key(s.budget)
        .arg(s.tokens)
        .arg(s.window.as_millis() as u64)
        .arg(s.reserved)
        .arg(s.prompt_estimate)
        .arg(s.prompt_tokens)
        .arg(s.completion_tokens)
        .invoke_async(con)
        .await?;
    Ok(())
}
