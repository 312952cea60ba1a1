//! The tenants page (admin): the list, create (the key shown once, on the answer page, never
//! stored), change quotas, revoke. Each action is the API's handler with the form turned into
//! its JSON body, so the checks and messages are the API's.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::html::{self, esc};
use super::session::UiSession;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::tenants;
use crate::state::AppState;

/// Query of the tenants page.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantsQuery {
    /// What the last action did.
    #[serde(default)]
    pub done: Option<String>,
}

/// `GET /ui/tenants`.
pub async fn page(
    s: UiSession,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<TenantsQuery>,
) -> Result<Response, ApiError> {
    let body = format!(
        "{}{}",
        html::flash(q.done.as_deref()),
        list(&s, &state).await?
    );
    Ok(html::page(&s, "tenants", "Tenants", &body))
}

async fn list(s: &UiSession, state: &AppState) -> Result<String, ApiError> {
    let axum::Json(v) = tenants::list(State(state.clone())).await?;
    let rows: Vec<String> = v["tenants"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|t| row(s, t))
        .collect();
    let quota = |name: &str| {
        format!(r#"<label>{name} <input name="{name}" size="8" placeholder="unlimited"></label>"#)
    };
    Ok(format!(
        r#"{}<h2>New tenant</h2><form method="post" action="/ui/tenants" id="create">{}<label>name <input name="name" id="tenant-name"></label> <label><input type="checkbox" name="scopes" value="submit" checked> submit</label> <label><input type="checkbox" name="scopes" value="read"> read</label> <label><input type="checkbox" name="scopes" value="admin"> admin</label> {} {} {} <button type="submit" id="create-tenant">create</button></form>"#,
        html::table(
            "tenants",
            &[
                "tenant",
                "name",
                "scopes",
                "rpm · tpm · max running",
                "created",
                ""
            ],
            &rows,
            "no tenants yet"
        ),
        html::csrf_field(s),
        quota("rpm"),
        quota("tpm"),
        quota("max_running"),
    ))
}

fn row(s: &UiSession, t: &Value) -> String {
    let id = t["id"].as_str().unwrap_or("");
    let q = &t["quotas"];
    let field = |name: &str| {
        let v = q[name].as_u64().map_or(String::new(), |n| n.to_string());
        format!(r#"<input name="{name}" value="{v}" size="7" placeholder="∞">"#)
    };
    let scopes: Vec<&str> = t["scopes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    format!(
        r#"<tr><td>{id}</td><td>{}</td><td>{}</td><td><form method="post" action="/ui/tenants/{id}" class="inline">{}{}{}{}<button type="submit">save quotas</button></form></td><td>{}</td><td>{}</td></tr>"#,
        esc(t["name"].as_str().unwrap_or("")),
        esc(&scopes.join(", ")),
        html::csrf_field(s),
        field("rpm"),
        field("tpm"),
        field("max_running"),
        esc(t["created_at"].as_str().unwrap_or("")),
        html::button(
            s,
            crate::http::access::Need::Admin,
            &format!("/ui/tenants/{id}/revoke"),
            "revoke",
            "revoke"
        ),
        id = esc(id),
    )
}

/// The quota fields of a form as the API's body: empty = unlimited (`null`), else a number.
fn quotas(form: &std::collections::HashMap<String, String>, body: &mut Map<String, Value>) {
    for name in ["rpm", "tpm", "max_running"] {
        if let Some(v) = form.get(name) {
            let v = v.trim();
            let value = if v.is_empty() {
                Value::Null
            } else {
                v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n))
            };
            body.insert(name.to_owned(), value);
        }
    }
}

/// `POST /ui/tenants`: the API's create; the answer page shows the key, once.
pub async fn create(
    s: UiSession,
    State(state): State<AppState>,
    form: Bytes,
) -> Result<Response, ApiError> {
    let f = html::form(&form);
    let mut body = Map::new();
    body.insert(
        "name".into(),
        json!(f.get("name").cloned().unwrap_or_default()),
    );
    body.insert("scopes".into(), json!(html::form_all(&form, "scopes")));
    let mut q = Map::new();
    quotas(&f, &mut q);
    // An empty quota box on creation means "not set", as the API's absent field.
    body.extend(q.into_iter().filter(|(_, v)| !v.is_null()));
    let (_, axum::Json(t)) = tenants::create(State(state.clone()), ApiJson(body)).await?;
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<p class="flash">Tenant <b>{}</b> created. Its key is shown this once; Redis keeps only its hash:</p><pre id="new-key">{}</pre>"#,
        esc(t["name"].as_str().unwrap_or("")),
        esc(t["key"].as_str().unwrap_or("")),
    );
    page.push_str(&list(&s, &state).await?);
    Ok(html::page(&s, "tenants", "Tenants", &page))
}

/// `POST /ui/tenants/{id}`: the API's update of the quotas.
pub async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    form: Bytes,
) -> Result<Response, ApiError> {
    let mut body = Map::new();
    quotas(&html::form(&form), &mut body);
    let _updated = tenants::update(State(state), ApiPath(id), ApiJson(body)).await?;
    Ok(html::see_other("/ui/tenants?done=quotas+saved"))
}

/// `POST /ui/tenants/{id}/revoke`: the API's revoke.
pub async fn revoke(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let _revoked = tenants::revoke(State(state), ApiPath(id)).await?;
    Ok(html::see_other("/ui/tenants?done=revoked"))
}
