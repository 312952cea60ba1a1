//! The web console's login sessions (issue 22): the record [`Keys::console_session`] holds for
//! one signed-in browser, with its one writer ([`open`]), reader ([`read`]) and remover
//! ([`close`]). The browser holds a random token in an `HttpOnly` cookie; Redis keeps only the
//! token's SHA-256 as the key name, so a copy of Redis gives no usable cookie. The record is one
//! JSON string set with `PX` in one command: it expires on its own.

use std::time::Duration;

use rand::RngCore;
use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};

use crate::keys::Keys;
use crate::store::StoreError;
use crate::tenant::hash_key;

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    /// `ROOT_NODE_SECRET`.
    Admin,
    /// A tenant's key: the tenant is read again on every request, so a revoked key ends the
    /// session at once.
    Tenant {
        /// The tenant id.
        id: String,
    },
}

/// One session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleSession {
    /// Who signed in.
    pub principal: Principal,
    /// The token every action must carry (CSRF), random per session.
    pub csrf: String,
    /// When the session ends (ms since the epoch).
    pub expires_ms: u64,
}

/// 256 random bits in hex: a session token or a CSRF token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stores `session` under the hash of `token` for `ttl`.
pub async fn open<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    token: &str,
    session: &ConsoleSession,
    ttl: Duration,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(session).map_err(|e| StoreError::Reply {
        script: "console session",
        message: e.to_string(),
    })?;
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    redis::cmd("SET")
        .arg(keys.console_session(&hash_key(token)))
        .arg(json)
        .arg("PX")
        .arg(ttl_ms)
        .query_async::<()>(con)
        .await?;
    Ok(())
}

/// The session of `token`; `None` when there is none (never was, logged out, or expired). A
/// record that does not decode counts as none.
pub async fn read<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    token: &str,
) -> Result<Option<ConsoleSession>, StoreError> {
    let raw: Option<String> = redis::cmd("GET")
        .arg(keys.console_session(&hash_key(token)))
        .query_async(con)
        .await?;
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

/// Ends the session of `token` (logout).
pub async fn close<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    token: &str,
) -> Result<(), StoreError> {
    redis::cmd("DEL")
        .arg(keys.console_session(&hash_key(token)))
        .query_async::<()>(con)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_round_trips_through_its_json() {
        let s = ConsoleSession {
            principal: Principal::Tenant { id: "tn-1".into() },
            csrf: new_token(),
            expires_ms: 5,
        };
        let json = serde_json::to_string(&s).expect("encodes");
        assert!(json.contains(r#""kind":"tenant""#), "{json}");
        assert_eq!(serde_json::from_str::<ConsoleSession>(&json).ok(), Some(s));
        assert_eq!(new_token().len(), 64);
        assert_ne!(new_token(), new_token());
    }
}
