//! Reserving a provider call against a budget the whole fleet shares (`limit_reserve.lua`): one
//! call per provider request answers either the pause a provider asked for or when the request
//! may start and how many tokens it holds.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionLike;

use crate::store::StoreError;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("limit_reserve.lua")));

/// A budget and what one call asks of it.
#[derive(Debug, Clone)]
pub struct Reservation<'a> {
    /// The budget's key ([`Keys::limit_budget`](crate::keys::Keys::limit_budget)).
    pub budget: &'a str,
    /// The pause key of the call's provider and model; `None` for a budget nothing pauses (a
    /// tenant's `tpm`, [`Keys::tenant_tokens`](crate::keys::Keys::tenant_tokens)).
    pub pause: Option<&'a str>,
    /// Requests per window; 0 = none.
    pub requests: u64,
    /// Tokens per window; 0 = none.
    pub tokens: u64,
    /// The window.
    pub window: Duration,
    /// The prompt's estimated tokens, before the budget's calibration.
    pub prompt_estimate: u64,
    /// Most completion tokens the call may produce (`max_tokens`); 0 = no cap.
    pub completion_cap: u64,
}

/// What the budget answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// The provider paused this model: nothing reserved; ask again after this long.
    Paused(Duration),
    /// Reserved: the call may start after `wait` and holds `cost` tokens until settled.
    Granted {
        /// How long to sleep before calling.
        wait: Duration,
        /// Tokens reserved.
        cost: u64,
    },
}

/// Reserves one call on `r.budget`, unless `r.pause` is set: `limit_reserve.lua`.
pub async fn limit_reserve<C: ConnectionLike>(
    con: &mut C,
    r: &Reservation<'_>,
) -> Result<Reserved, StoreError> {
    let mut inv = SCRIPT.key(r.budget);
    if let Some(pause) = r.pause {
        inv.key(pause);
    }
    let reply: (i64, i64, i64) = inv
        .arg(r.requests)
        .arg(r.tokens)
        .arg(r.window.as_millis() as u64)
        .arg(r.prompt_estimate)
        .arg(r.completion_cap)
        .invoke_async(con)
        .await?;
    Ok(decode(reply))
}

fn decode((pause_ms, wait_ms, cost): (i64, i64, i64)) -> Reserved {
    let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
    if pause_ms > 0 {
        Reserved::Paused(ms(pause_ms))
    } else {
        Reserved::Granted {
            wait: ms(wait_ms),
            cost: cost.max(0) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_decode_into_a_pause_or_a_grant() {
        assert_eq!(
            decode((1500, 0, 0)),
            Reserved::Paused(Duration::from_millis(1500))
        );
        assert_eq!(
            decode((0, 40, 120)),
            Reserved::Granted {
                wait: Duration::from_millis(40),
                cost: 120
            }
        );
        assert_eq!(
            decode((-2, -1, 7)),
            Reserved::Granted {
                wait: Duration::ZERO,
                cost: 7
            }
        );
    }
}
