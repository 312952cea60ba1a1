//! The queue of a chat task, by its model (`MODEL_ROUTES`): the one rule `POST /api/chat` and
//! `POST /v1/chat/completions` share.

use switchyard_shared::config::{DEFAULT_CHAT_QUEUE, ModelRoutes};

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
    queue_for(&state.cfg.model_routes, model)
}

fn queue_for(routes: &ModelRoutes, model: Option<&str>) -> Result<String, Unrouted> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_goes_to_its_route_and_no_model_to_the_catch_all_or_chat() {
        let routes = ModelRoutes::parse("gpt-*=chat-openai,*=chat-local").expect("valid");
        assert_eq!(
            queue_for(&routes, Some("gpt-4o")).as_deref(),
            Ok("chat-openai")
        );
        assert_eq!(queue_for(&routes, None).as_deref(), Ok("chat-local"));
        let routes = ModelRoutes::parse("gpt-*=chat-openai").expect("valid");
        assert_eq!(queue_for(&routes, None).as_deref(), Ok("chat"));
        assert_eq!(
            queue_for(&routes, Some("llama3")),
            Err(Unrouted {
                model: "llama3".into()
            })
        );
        assert_eq!(
            queue_for(&ModelRoutes::default(), Some("x")).as_deref(),
            Ok("chat")
        );
    }
}
