//! `/api/tenants` (admin only): create, list, read, update and revoke tenant API keys. A key is
//! shown once, in the answer to its creation; Redis keeps only its SHA-256.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use switchyard_shared::clock;
use switchyard_shared::task::is_valid_key;
use switchyard_shared::tenant::{self, MAX_QUOTA, Quotas, Scope, Tenant};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// Longest tenant name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// The fields a body may carry.
const FIELDS: [&str; 5] = ["name", "scopes", "rpm", "tpm", "max_running"];

/// `POST /api/tenants` `{name, scopes, rpm?, tpm?, max_running?}`: 201 with the tenant and its
/// `key`, shown this once.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_fields(&body)?;
    let name = name(body.get("name").ok_or_else(|| missing("name"))?)?;
    let scopes = scopes(body.get("scopes").ok_or_else(|| missing("scopes"))?)?;
    let key = tenant::new_key();
    let t = Tenant {
        id: tenant::new_tenant_id(),
        name,
        scopes,
        quotas: Quotas {
            rpm: quota(&body, "rpm")?.flatten(),
            tpm: quota(&body, "tpm")?.flatten(),
            max_running: quota(&body, "max_running")?.flatten(),
        },
        created_at: clock::now_rfc3339(),
        key_hash: tenant::hash_key(&key),
    };
    let mut con = state.pool.get().await?;
    tenant::create(&mut *con, &state.keys, &t).await?;
    tracing::info!(tenant = %t.id, name = %t.name, "tenant created");
    let mut v = json!(t);
    v["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /api/tenants`: every tenant (without keys), oldest first.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut con = state.pool.get().await?;
    let tenants = tenant::list(&mut *con, &state.keys).await?;
    Ok(Json(json!({ "count": tenants.len(), "tenants": tenants })))
}

/// `GET /api/tenants/{id}`: one tenant (without its key).
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Tenant>, ApiError> {
    load(&state, &id).await.map(Json)
}

/// `PATCH /api/tenants/{id}` `{name?, scopes?, rpm?, tpm?, max_running?}`: the fields given
/// replace the stored ones; a quota set to `null` becomes unlimited. Answers the tenant.
pub async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Tenant>, ApiError> {
    check_fields(&body)?;
    let mut t = load(&state, &id).await?;
    if let Some(v) = body.get("name") {
        t.name = name(v)?;
    }
    if let Some(v) = body.get("scopes") {
        t.scopes = scopes(v)?;
    }
    for (field, slot) in [
        ("rpm", &mut t.quotas.rpm),
        ("tpm", &mut t.quotas.tpm),
        ("max_running", &mut t.quotas.max_running),
    ] {
        if let Some(q) = quota(&body, field)? {
            *slot = q;
        }
    }
    let mut con = state.pool.get().await?;
    tenant::update(&mut *con, &state.keys, &t).await?;
    state.tenants.forget(&t.key_hash);
    tracing::info!(tenant = %t.id, "tenant updated");
    Ok(Json(t))
}

/// `DELETE /api/tenants/{id}`: revokes the tenant's key (401 from then on: at once on this
/// dispatcher, within `TENANT_CACHE_MS` on the others). Its tasks keep running.
pub async fn revoke(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let t = load(&state, &id).await?;
    let mut con = state.pool.get().await?;
    tenant::delete(&mut *con, &state.keys, &t).await?;
    state.tenants.forget(&t.key_hash);
    tracing::info!(tenant = %t.id, "tenant revoked");
    Ok(Json(json!({ "id": t.id, "revoked": true })))
}

async fn load(state: &AppState, id: &str) -> Result<Tenant, ApiError> {
    let not_found = || ApiError::NotFound(format!("no tenant {id:?}"));
    // Ids come from us; anything else is not one, and never becomes part of a key name.
    if !is_valid_key(id) {
        return Err(not_found());
    }
    let mut con = state.pool.get().await?;
    tenant::load(&mut *con, &state.keys, id)
        .await?
        .ok_or_else(not_found)
}

fn missing(field: &str) -> ApiError {
    ApiError::BadRequest(format!("{field}: missing field"))
}

fn check_fields(body: &Map<String, Value>) -> Result<(), ApiError> {
    match body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        Some(k) => Err(ApiError::BadRequest(format!(
            "{k}: unknown field; expected one of {}",
            FIELDS.join(", ")
        ))),
        None => Ok(()),
    }
}

fn name(v: &Value) -> Result<String, ApiError> {
    match v.as_str() {
        Some(s)
            if !s.trim().is_empty()
                && s.chars().count() <= MAX_NAME_CHARS
                && !s.chars().any(char::is_control) =>
        {
            Ok(s.to_owned())
        }
        _ => Err(ApiError::BadRequest(format!(
            "name: must be a string of 1 to {MAX_NAME_CHARS} printable characters"
        ))),
    }
}

fn scopes(v: &Value) -> Result<Vec<Scope>, ApiError> {
    let bad = || {
        ApiError::BadRequest(
            "scopes: must be a non-empty list of \"submit\", \"read\", \"admin\"".to_owned(),
        )
    };
    let list = v.as_array().filter(|a| !a.is_empty()).ok_or_else(bad)?;
    let mut out = list
        .iter()
        .map(|s| s.as_str().and_then(Scope::parse).ok_or_else(bad))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// Quota `field` of `body`: `None` when absent, `Some(None)` when `null` (unlimited),
/// `Some(Some(n))` for an integer in 1..=[`MAX_QUOTA`]; anything else is a 400 naming it.
fn quota(body: &Map<String, Value>, field: &str) -> Result<Option<Option<u64>>, ApiError> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_QUOTA).contains(&n) => Ok(Some(Some(n))),
            _ => Err(ApiError::BadRequest(format!(
                "{field}: must be an integer from 1 to {MAX_QUOTA} (absent or null: unlimited), got {v}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_outside_one_to_a_billion_are_refused_naming_the_field() {
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("5"),
            json!(1_000_000_001u64),
            json!(true),
        ] {
            let body = Map::from_iter([("tpm".to_owned(), bad.clone())]);
            let e = quota(&body, "tpm").expect_err("refused").to_string();
            assert!(e.starts_with("tpm: "), "{bad}: {e}");
        }
        let ok = Map::from_iter([
            ("rpm".to_owned(), json!(1)),
            ("tpm".to_owned(), json!(MAX_QUOTA)),
            ("max_running".to_owned(), Value::Null),
        ]);
        assert_eq!(quota(&ok, "rpm").ok(), Some(Some(Some(1))));
        assert_eq!(quota(&ok, "tpm").ok(), Some(Some(Some(MAX_QUOTA))));
        assert_eq!(quota(&ok, "max_running").ok(), Some(Some(None)));
        assert_eq!(quota(&ok, "absent").ok(), Some(None));
    }

    #[test]
    fn scopes_must_be_known_and_are_kept_sorted_once() {
        assert_eq!(
            scopes(&json!(["read", "submit", "read"])).ok(),
            Some(vec![Scope::Submit, Scope::Read])
        );
        for bad in [json!([]), json!(["root"]), json!("submit"), json!([1])] {
            assert!(scopes(&bad).is_err(), "{bad}");
        }
    }
}
