//! The queue of a chat task, by its model (`MODEL_ROUTES`): the one rule `POST /api/chat` and
//! `POST /v1/chat/completions` share.

use switchyard_shared::config::DEFAULT_CHAT_QUEUE;

use crate::state::AppState;

/// No `MODEL_ROUTES` entry matches the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no queue serves model {model:?}: no MODEL_ROUTES pattern matches it")]
pub struct Unrouted {
    /// The model asked for.
    pub model: String,
}

/// The queue a chat task for `model` goes to: the first `MODEL_ROUTES` entry that matches, `chat`
/// without routes. A task that names no model goes where the pattern `*` sends it, else to
/// `chat` (its worker picks its own `LLM_MODEL`).
pub fn chat_queue(state: &AppState, model: Option<&str>) -> Result<String, Unrouted> {
    let routes = &state.cfg.model_routes;
    match model {
        Some(m) => routes.queue_for(m).map(str::to_owned).ok_or(Unrouted {
            model: m.to_owned(),
        }),
        None => Ok(routes
            .queue_for("")
            .unwrap_or(DEFAULT_CHAT_QUEUE)
            .to_owned()),
    }
}
