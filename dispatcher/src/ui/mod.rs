//! The web console at `/ui` (issue 22): server-rendered pages over the API's own handlers, a
//! session login with CSRF-checked actions, and one live SSE feed for the overview.
//!
//! # Layout
//! - [`session`]: login, logout, the session and CSRF check in front of every page and action.
//! - [`html`]: escaping, the page frame, forms, answers.
//! - [`assets`]: the embedded stylesheet and script.
//! - [`overview`]: the overview page and its live feed (`/ui/live`).
//! - [`queue`]: one queue: numbers, pause/resume, its tasks by state with paging.
//! - [`listing`]: one page of a queue's tasks in one state, by cursor.
//! - [`task`]: one task: record, timeline, live output.
//! - [`workers`]: the workers page.
//! - [`dead`]: dead letters: retry, delete, retry all.
//! - [`tenants`]: tenants (admin): create, quotas, revoke.

pub mod assets;
pub mod dead;
pub mod html;
pub mod listing;
pub mod overview;
pub mod queue;
pub mod session;
pub mod task;
pub mod tenants;
pub mod workers;

use axum::routing::{get, post};
use axum::{Router, middleware};

use crate::state::AppState;

/// The console's routes, behind the session check.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/ui", get(overview::landing))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/assets/app.css", get(assets::css))
        .route("/ui/assets/app.js", get(assets::js))
        .route("/ui/overview", get(overview::page))
        .route("/ui/live", get(overview::live))
        .route("/ui/queues/{queue}", get(queue::page))
        .route("/ui/queues/{queue}/pause", post(queue::pause_action))
        .route("/ui/queues/{queue}/resume", post(queue::resume_action))
        .route("/ui/tasks/{id}", get(task::page))
        .route("/ui/tasks/{id}/stream", get(task::output))
        .route("/ui/workers", get(workers::page))
        .route("/ui/dead", get(dead::page))
        .route("/ui/dead/retry-all", post(dead::retry_all))
        .route("/ui/dead/{id}/retry", post(dead::retry_one))
        .route("/ui/dead/{id}/delete", post(dead::delete_one))
        .route("/ui/tenants", get(tenants::page).post(tenants::create))
        .route("/ui/tenants/{id}", post(tenants::update))
        .route("/ui/tenants/{id}/revoke", post(tenants::revoke))
        .route_layer(middleware::from_fn_with_state(
            state,
            session::require_session,
        ))
}
