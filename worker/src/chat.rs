//! Runs a chat task: builds the conversation from the session history in Redis and the payload
//! (or takes a `/v1` client's whole chat-completions body, which carries its own history), asks
//! the providers (in fallback order), and appends the turn to the session once the answer
//! exists, so a failed or retried call never leaves half a turn behind.

use serde_json::Value;
use switchyard_shared::chat::{ChatResult, ChatUsage};
use switchyard_shared::completion;
use switchyard_shared::scripts;
use switchyard_shared::task::{ChatMessage, ChatPayload, decode_payload};
use tracing::debug;

use crate::context::Ctx;
use crate::providers::{ChatRequest, Conversation, Provider, Sink};
use crate::tools::ToolError;

/// A session message as stored: the message plus the task that wrote it, which makes appending
/// a turn idempotent.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredMessage {
    role: String,
    content: String,
    #[serde(default)]
    task_id: String,
}

/// Runs the chat task `task_id` with `payload`, streaming the answer (text and tool-call
/// pieces) to `sink`, and returns its result JSON.
pub async fn run(
    ctx: &Ctx,
    provider: &Provider,
    task_id: &str,
    payload: &Value,
    sink: &Sink,
) -> Result<Value, ToolError> {
    let mut p: ChatPayload =
        decode_payload(payload).map_err(|e| ToolError::Permanent(e.to_string()))?;
    let (req, new_message) = match p.completion.take() {
        Some(body) => {
            completion::validate(&body).map_err(|e| ToolError::Permanent(e.to_string()))?;
            (ChatRequest::Completion(body), None)
        }
        None => {
            let (conversation, new_message) = conversation(ctx, &p).await?;
            (ChatRequest::Conversation(conversation), Some(new_message))
        }
    };
    let answer = provider.complete(&req, sink).await.map_err(|e| {
        if e.is_retryable() {
            ToolError::Retryable(e.to_string())
        } else {
            ToolError::Permanent(e.to_string())
        }
    })?;
    debug!(
        task_id,
        provider = answer.provider,
        model = %answer.model,
        prompt_tokens = answer.usage.prompt_tokens,
        completion_tokens = answer.usage.completion_tokens,
        finish_reason = answer.finish_reason.as_deref(),
        tool_calls = answer.tool_calls.len(),
        "chat answered"
    );
    if let (Some(session), Some(new_message)) = (&p.session_id, &new_message) {
        append_turn(ctx, session, task_id, new_message, &answer.text).await?;
    }
    Ok(ChatResult {
        response: answer.text,
        model: answer.model,
        provider: answer.provider.to_owned(),
        session_id: p.session_id,
        usage: ChatUsage {
            prompt_tokens: answer.usage.prompt_tokens,
            completion_tokens: answer.usage.completion_tokens,
        },
        finish_reason: answer.finish_reason,
        tool_calls: answer.tool_calls,
    }
    .to_value())
}

/// An `/api/chat` payload's conversation (the session's history, then the payload's messages)
/// and the new user message that a session keeps with the answer.
async fn conversation(
    ctx: &Ctx,
    p: &ChatPayload,
) -> Result<(Conversation, ChatMessage), ToolError> {
    let mut messages = Vec::new();
    if let Some(session) = &p.session_id {
        messages = load_history(ctx, session).await?;
    }
    let new_message = match (&p.message, &p.messages) {
        (Some(m), _) => ChatMessage {
            role: "user".into(),
            content: m.clone(),
        },
        (None, Some(ms)) => {
            let mut ms = ms.clone();
            let last = ms.pop().ok_or_else(|| {
                ToolError::Permanent("payload: messages: must not be empty".into())
            })?;
            messages.extend(ms);
            last
        }
        (None, None) => {
            return Err(ToolError::Permanent(
                "payload: needs `message` or `messages`".into(),
            ));
        }
    };
    messages.push(new_message.clone());
    let conversation = Conversation {
        model: p.model.clone(),
        system: p.system.clone(),
        messages,
    };
    Ok((conversation, new_message))
}

async fn load_history(ctx: &Ctx, session: &str) -> Result<Vec<ChatMessage>, ToolError> {
    let mut con = ctx
        .pool
        .get()
        .await
        .map_err(|e| ToolError::Retryable(format!("loading session history: {e}")))?;
    let raw: Vec<String> = redis::cmd("LRANGE")
        .arg(ctx.keys.session(session))
        .arg(0)
        .arg(-1)
        .query_async(&mut *con)
        .await
        .map_err(|e| ToolError::Retryable(format!("loading session history: {e}")))?;
    // A malformed entry (written by hand) is skipped rather than failing every later turn.
    Ok(raw
        .iter()
        .filter_map(|m| serde_json::from_str::<StoredMessage>(m).ok())
        .map(|m| ChatMessage {
            role: m.role,
            content: m.content,
        })
        .collect())
}

async fn append_turn(
    ctx: &Ctx,
    session: &str,
    task_id: &str,
    user: &ChatMessage,
    answer: &str,
) -> Result<(), ToolError> {
    let encode = |role: &str, content: &str| {
        serde_json::to_string(&StoredMessage {
            role: role.to_owned(),
            content: content.to_owned(),
            task_id: task_id.to_owned(),
        })
        .map_err(|e| ToolError::Permanent(format!("encoding session message: {e}")))
    };
    let user_json = encode("user", &user.content)?;
    let answer_json = encode("assistant", answer)?;
    let mut con = ctx
        .pool
        .get()
        .await
        .map_err(|e| ToolError::Retryable(format!("saving session turn: {e}")))?;
    scripts::session_append(
        &mut *con,
        &ctx.keys,
        session,
        task_id,
        &user_json,
        &answer_json,
        ctx.cfg.llm.session_max_messages,
        ctx.cfg.llm.session_ttl,
    )
    .await
    .map_err(|e| ToolError::Retryable(format!("saving session turn: {e}")))?;
    Ok(())
}
