//! Reads the body of `POST /v1/chat/completions`: one JSON object (nothing after it), within
//! `MAX_BODY_BYTES`, checked by [`completion::validate`], with the fields only the dispatcher
//! reads (`stream`, `stream_options`, `detach`) taken out. Everything else goes to the worker as
//! the client sent it, unknown fields too.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::Value;
use switchyard_shared::completion::{self, CompletionBody, DISPATCHER_ONLY};
use switchyard_shared::task::PayloadError;

use super::error::V1Error;
use crate::state::AppState;

/// A checked completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// What goes to the worker.
    pub body: CompletionBody,
    /// `stream`.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// `detach`: the task runs on when the client leaves.
    pub detach: bool,
}

impl CompletionRequest {
    /// The model asked for.
    pub fn model(&self) -> &str {
        completion::model(&self.body).unwrap_or_default()
    }
}

impl FromRequest<AppState> for CompletionRequest {
    type Rejection = V1Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, V1Error> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                V1Error::from(crate::http::error::ApiError::TooLarge(
                    state.cfg.max_body_bytes,
                ))
            } else {
                V1Error::invalid(
                    None,
                    format!("could not read the request body: {}", e.body_text()),
                )
            }
        })?;
        parse(&bytes)
    }
}

/// Parses and checks a request body.
pub fn parse(bytes: &[u8]) -> Result<CompletionRequest, V1Error> {
    let mut body = json_object(bytes)?;
    let flag = |body: &CompletionBody, name: &str| match body.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(V1Error::invalid(
            Some(name),
            format!("{name}: must be a boolean"),
        )),
    };
    let stream = flag(&body, "stream")?;
    let detach = flag(&body, "detach")?;
    let include_usage = include_usage(&body, stream)?;
    completion::validate(&body).map_err(|e| match e {
        // "<param>: <what>", as `validate` names the parameter.
        PayloadError::Malformed(m) => {
            let param = m.split_once(": ").map(|(p, _)| p.to_owned());
            V1Error::invalid(param.as_deref(), m)
        }
        PayloadError::UnknownTool(m) => V1Error::invalid(None, m),
    })?;
    for f in DISPATCHER_ONLY {
        body.remove(*f);
    }
    Ok(CompletionRequest {
        body,
        stream,
        include_usage,
        detach,
    })
}

/// The body as one JSON object, nothing after it.
fn json_object(bytes: &[u8]) -> Result<CompletionBody, V1Error> {
    if bytes.is_empty() {
        return Err(V1Error::invalid(
            None,
            "request body is empty; expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: Value = serde::Deserialize::deserialize(&mut de)
        .map_err(|e| V1Error::invalid(None, format!("invalid JSON: {e}")))?;
    // One JSON value: anything after it is refused rather than silently dropped.
    de.end().map_err(|e| {
        V1Error::invalid(
            None,
            format!(
                "invalid JSON: trailing data after the JSON value at line {} column {}",
                e.line(),
                e.column()
            ),
        )
    })?;
    match value {
        Value::Object(body) => Ok(body),
        _ => Err(V1Error::invalid(
            None,
            "the request body must be a JSON object",
        )),
    }
}

/// `stream_options.include_usage`, checked (only with `stream: true`).
fn include_usage(body: &CompletionBody, stream: bool) -> Result<bool, V1Error> {
    Ok(match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => {
            if !stream {
                return Err(V1Error::invalid(
                    Some("stream_options"),
                    "stream_options: only allowed when stream is true",
                ));
            }
            match o.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(V1Error::invalid(
                        Some("stream_options.include_usage"),
                        "stream_options.include_usage: must be a boolean",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(V1Error::invalid(
                Some("stream_options"),
                "stream_options: must be an object",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(body: &str) -> (u16, Option<String>, String) {
        let e = parse(body.as_bytes()).expect_err(body);
        (e.status.as_u16(), e.param, e.message)
    }

    #[test]
    fn a_valid_body_loses_only_the_dispatcher_fields() {
        let r = parse(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,
            "stream_options":{"include_usage":true},"detach":true,"temperature":0.2,"x_future":[1]}"#,
        )
        .expect("valid");
        assert!(r.stream && r.include_usage && r.detach);
        assert_eq!(r.model(), "m");
        let mut keys: Vec<&str> = r.body.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["messages", "model", "temperature", "x_future"]);
    }

    #[test]
    fn bad_bodies_are_400_naming_the_parameter() {
        let user = r#"[{"role":"user","content":"hi"}]"#;
        let cases = [
            ("".to_owned(), None, "empty"),
            ("{".to_owned(), None, "invalid JSON"),
            ("[1]".to_owned(), None, "JSON object"),
            (
                format!(r#"{{"model":"m","messages":{user}}} x"#),
                None,
                "trailing",
            ),
            (
                format!(r#"{{"model":"m","messages":{user},"stream":"yes"}}"#),
                Some("stream"),
                "boolean",
            ),
            (
                format!(r#"{{"model":"m","messages":{user},"stream_options":{{}}}}"#),
                Some("stream_options"),
                "stream is true",
            ),
            (
                format!(
                    r#"{{"model":"m","messages":{user},"stream":true,"stream_options":{{"include_usage":1}}}}"#
                ),
                Some("stream_options.include_usage"),
                "boolean",
            ),
            (
                format!(r#"{{"model":"m","messages":{user},"n":2}}"#),
                Some("n"),
                "only 1",
            ),
            (
                r#"{"model":"m","messages":[{"role":"robot"}]}"#.to_owned(),
                Some("messages[0].role"),
                "one of",
            ),
            (
                format!(r#"{{"messages":{user}}}"#),
                Some("model"),
                "required",
            ),
            (
                format!(r#"{{"model":"m","messages":{user},"detach":1}}"#),
                Some("detach"),
                "boolean",
            ),
        ];
        for (body, param, part) in cases {
            let (status, p, m) = param_of(&body);
            assert_eq!(status, 400, "{body}");
            assert_eq!(p.as_deref(), param, "{body}: {m}");
            assert!(m.contains(part), "{body}: {m}");
        }
    }
}
