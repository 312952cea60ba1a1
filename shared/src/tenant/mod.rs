//! Tenants (issue 21): a tenant is an API key with scopes and quotas. The stored record (one
//! typed writer, [`Tenant::fields`], and one reader, [`Tenant::decode`]), the key's hash, and the
//! few Redis operations on them. The dispatcher checks keys and enforces `rpm` at enqueue
//! ([`rpm`]); workers read `tpm` and `max_running` from the same record ([`load`]) and enforce
//! `max_running` through [`running`] (`tpm` through the provider limits' budget scripts, on
//! [`Keys::tenant_tokens`](crate::keys::Keys::tenant_tokens)).
//!
//! # Layout
//! - [`rpm`]: the requests-per-minute window at enqueue.
//! - [`running`]: the slots of `max_running`, shared by every worker.
//!
//! Only the SHA-256 of a key is stored: keys are 256 random bits, so a fast hash is enough (no
//! password-style stretching) and a key → tenant lookup is one `GET` of
//! [`Keys::tenant_key`](crate::keys::Keys::tenant_key), without a scan. Every tenant key shares
//! the `{tenants}` hash tag, so create and revoke are one `MULTI` on one cluster slot.

pub mod rpm;
pub mod running;

use std::collections::HashMap;
use std::fmt::Write as _;

use rand::RngCore;
use redis::aio::ConnectionLike;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::keys::Keys;
use crate::store::StoreError;

/// Largest value of a quota (`rpm`, `tpm`, `max_running`).
pub const MAX_QUOTA: u64 = 1_000_000_000;
/// What every key starts with, so a leaked one is recognisable (secret scanners, logs).
pub const KEY_PREFIX: &str = "sy_";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Enqueue, chat, `/v1`; read, stream, cancel and replay its own tasks.
    Submit,
    /// Read everything (queues, workers, metrics, every tenant's tasks and dead letters);
    /// change nothing.
    Read,
    /// Everything, tenants included: what `ROOT_NODE_SECRET` may do.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [Scope::Submit, Scope::Read, Scope::Admin];

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }

    /// The scope named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A tenant's quotas; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Quotas {
    /// Tasks enqueued per minute.
    pub rpm: Option<u64>,
    /// LLM tokens per minute (enforced by workers).
    pub tpm: Option<u64>,
    /// Tasks running at once (enforced by workers).
    pub max_running: Option<u64>,
}

/// A tenant, as stored (the key itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Id (`tn-…`), the `tenant` field of its tasks and the `tenant` label of its metrics.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// What its key may do (sorted, no duplicates).
    pub scopes: Vec<Scope>,
    /// Its quotas.
    #[serde(flatten)]
    pub quotas: Quotas,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// SHA-256 of its key, hex.
    #[serde(skip)]
    pub key_hash: String,
}

/// Stored field names.
mod field {
    pub const ID: &str = "id";
    pub const NAME: &str = "name";
    pub const SCOPES: &str = "scopes";
    pub const RPM: &str = "rpm";
    pub const TPM: &str = "tpm";
    pub const MAX_RUNNING: &str = "max_running";
    pub const CREATED_AT: &str = "created_at";
    pub const KEY_HASH: &str = "key_hash";
}

impl Tenant {
    /// Whether its key has `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The hash fields of the record; a quota that is `None` is absent.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let scopes: Vec<&str> = self.scopes.iter().map(|s| s.as_str()).collect();
        let mut f = vec![
            (field::ID, self.id.clone()),
            (field::NAME, self.name.clone()),
            (field::SCOPES, scopes.join(",")),
            (field::CREATED_AT, self.created_at.clone()),
            (field::KEY_HASH, self.key_hash.clone()),
        ];
        for (name, q) in self.quota_fields() {
            if let Some(v) = q {
                f.push((name, v.to_string()));
            }
        }
        f
    }

    fn quota_fields(&self) -> [(&'static str, Option<u64>); 3] {
        [
            (field::RPM, self.quotas.rpm),
            (field::TPM, self.quotas.tpm),
            (field::MAX_RUNNING, self.quotas.max_running),
        ]
    }

    /// Reads a record written by [`Tenant::fields`].
    pub fn decode(mut h: HashMap<String, String>) -> Result<Self, String> {
        let mut take = |name: &str| h.remove(name).ok_or_else(|| format!("no field {name}"));
        let id = take(field::ID)?;
        let name = take(field::NAME)?;
        let scopes = take(field::SCOPES)?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| Scope::parse(s).ok_or_else(|| format!("unknown scope {s:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        let created_at = take(field::CREATED_AT)?;
        let key_hash = take(field::KEY_HASH)?;
        let mut quota = |name: &str| {
            h.remove(name)
                .map(|v| v.parse::<u64>().map_err(|_| format!("{name}: {v:?}")))
                .transpose()
        };
        let quotas = Quotas {
            rpm: quota(field::RPM)?,
            tpm: quota(field::TPM)?,
            max_running: quota(field::MAX_RUNNING)?,
        };
        Ok(Self {
            id,
            name,
            scopes,
            quotas,
            created_at,
            key_hash,
        })
    }
}

/// A new tenant id.
pub fn new_tenant_id() -> String {
    format!("tn-{}", uuid::Uuid::now_v7().simple())
}

/// A new key: [`KEY_PREFIX`] and 256 random bits in hex.
pub fn new_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex(&bytes))
}

/// SHA-256 of `key`, hex: what Redis keeps.
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn malformed(id: &str, message: String) -> StoreError {
    StoreError::Reply {
        script: "tenant record",
        message: format!("tenant {id}: {message}"),
    }
}

/// Writes a new tenant: its record, its key hash → id, its id in the list; one `MULTI`.
pub async fn create<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    t: &Tenant,
) -> Result<(), StoreError> {
    redis::pipe()
        .atomic()
        .hset_multiple(keys.tenant(&t.id), &t.fields())
        .ignore()
        .set(keys.tenant_key(&t.key_hash), &t.id)
        .ignore()
        .sadd(keys.tenants(), &t.id)
        .ignore()
        .query_async::<()>(con)
        .await?;
    Ok(())
}

/// The tenant `id`, if it exists.
pub async fn load<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    id: &str,
) -> Result<Option<Tenant>, StoreError> {
    let h: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.tenant(id))
        .query_async(con)
        .await?;
    if h.is_empty() {
        return Ok(None);
    }
    Tenant::decode(h).map(Some).map_err(|m| malformed(id, m))
}

/// The tenant whose key hashes to `key_hash`, if any (two reads: the id, then the record).
pub async fn by_key_hash<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    key_hash: &str,
) -> Result<Option<Tenant>, StoreError> {
    let id: Option<String> = redis::cmd("GET")
        .arg(keys.tenant_key(key_hash))
        .query_async(con)
        .await?;
    let Some(id) = id else {
        return Ok(None);
    };
    // A record rewritten with another key no longer answers to this one.
    Ok(load(con, keys, &id)
        .await?
        .filter(|t| t.key_hash == key_hash))
}

/// Every tenant, oldest first.
pub async fn list<C: ConnectionLike>(con: &mut C, keys: &Keys) -> Result<Vec<Tenant>, StoreError> {
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.tenants())
        .query_async(con)
        .await?;
    // An empty pipeline is an error in the client ("empty command"), not an empty answer.
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.hgetall(keys.tenant(id));
    }
    let records: Vec<HashMap<String, String>> = pipe.query_async(con).await?;
    let mut out = Vec::with_capacity(ids.len());
    for (id, h) in ids.iter().zip(records) {
        // Revoked between the two reads.
        if h.is_empty() {
            continue;
        }
        out.push(Tenant::decode(h).map_err(|m| malformed(id, m))?);
    }
    // Ids are UUIDv7: their order is creation order.
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Rewrites tenant `t`'s name, scopes and quotas (a quota now `None` is removed); one `MULTI`.
pub async fn update<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    t: &Tenant,
) -> Result<(), StoreError> {
    let key = keys.tenant(&t.id);
    let mut pipe = redis::pipe();
    pipe.atomic().hset_multiple(&key, &t.fields()).ignore();
    for (name, q) in t.quota_fields() {
        if q.is_none() {
            pipe.hdel(&key, name).ignore();
        }
    }
    pipe.query_async::<()>(con).await?;
    Ok(())
}

/// Revokes tenant `t`: its key stops working and its record and list entry go; one `MULTI`.
/// Its tasks keep their `tenant` field.
pub async fn delete<C: ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    t: &Tenant,
) -> Result<(), StoreError> {
    redis::pipe()
        .atomic()
        .del(keys.tenant_key(&t.key_hash))
        .ignore()
        .del(keys.tenant(&t.id))
        .ignore()
        .srem(keys.tenants(), &t.id)
        .ignore()
        .query_async::<()>(con)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(quotas: Quotas) -> Tenant {
        Tenant {
            id: new_tenant_id(),
            name: "team a".into(),
            scopes: vec![Scope::Submit, Scope::Read],
            quotas,
            created_at: "2026-01-01T00:00:00Z".into(),
            key_hash: hash_key("sy_x"),
        }
    }

    #[test]
    fn a_record_reads_back_as_written_with_and_without_quotas() {
        for quotas in [
            Quotas::default(),
            Quotas {
                rpm: Some(1),
                tpm: Some(MAX_QUOTA),
                max_running: Some(7),
            },
        ] {
            let t = sample(quotas);
            let h: HashMap<String, String> = t
                .fields()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            assert_eq!(Tenant::decode(h), Ok(t));
        }
    }

    #[test]
    fn a_malformed_record_is_an_error_naming_the_field() {
        let mut h: HashMap<String, String> = sample(Quotas::default())
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        h.insert("rpm".into(), "-1".into());
        assert!(
            Tenant::decode(h.clone())
                .expect_err("bad rpm")
                .starts_with("rpm")
        );
        h.insert("scopes".into(), "submit,root".into());
        assert!(Tenant::decode(h).expect_err("bad scope").contains("root"));
    }

    #[test]
    fn keys_are_random_and_only_their_sha256_is_kept() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 64);
        // SHA-256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
