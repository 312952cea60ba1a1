//! A `/v1` client's chat-completions body in Anthropic's words: `system` and `developer` messages
//! become the system prompt; content strings and parts (`text`, `image_url` as a base64 or URL
//! image source) become content blocks; an assistant's `tool_calls` become `tool_use` blocks and
//! `tool` messages `tool_result` blocks in a user turn, with consecutive turns of one role merged
//! (the API wants them alternating); `tools`, `tool_choice`, `parallel_tool_calls`, `stop`,
//! `max_completion_tokens`/`max_tokens`, `temperature`, `top_p` and `user` are translated. Every
//! other field has no Anthropic meaning and is dropped (the README's compatibility table lists
//! them). A part or tool this API cannot take is refused with the parameter named.

use serde_json::{Map, Value, json};
use switchyard_shared::completion::CompletionBody;

/// Why a body cannot be sent to Anthropic: the parameter and the problem
/// (`messages[1].content[0].type: …`).
pub type Refusal = String;

/// The messages API body for `body`, asking `model`, with `default_max_tokens` when the body
/// names no limit (the API requires one).
pub fn completion_body(
    model: &str,
    body: &CompletionBody,
    default_max_tokens: u32,
) -> Result<Value, Refusal> {
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let max_tokens = match body
        .get("max_completion_tokens")
        .filter(|v| !v.is_null())
        .map(|v| ("max_completion_tokens", v))
        .or_else(|| {
            body.get("max_tokens")
                .filter(|v| !v.is_null())
                .map(|v| ("max_tokens", v))
        }) {
        None => u64::from(default_max_tokens),
        Some((param, v)) => v
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{param}: must be a positive integer"))?,
    };
    out.insert("max_tokens".into(), json!(max_tokens));
    let (system, messages) = messages(body.get("messages"))?;
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(messages));
    for field in ["temperature", "top_p"] {
        if let Some(v) = body.get(field).filter(|v| !v.is_null()) {
            out.insert(field.into(), v.clone());
        }
    }
    if let Some(stop) = stop_sequences(body.get("stop"))? {
        out.insert("stop_sequences".into(), stop);
    }
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = tools(body.get("tools"))? {
        out.insert("tools".into(), tools);
    }
    if let Some(choice) = tool_choice(body)? {
        out.insert("tool_choice".into(), choice);
    }
    out.insert("stream".into(), json!(true));
    Ok(Value::Object(out))
}

/// The system prompt's parts and the alternating user/assistant turns.
fn messages(messages: Option<&Value>) -> Result<(Vec<String>, Vec<Value>), Refusal> {
    let messages = messages
        .and_then(Value::as_array)
        .ok_or("messages: must be an array")?;
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let content = m.get("content").unwrap_or(&Value::Null);
        let (role, blocks) = match m.get("role").and_then(Value::as_str) {
            Some("system" | "developer") => {
                let text: String = blocks(content, &format!("{param}.content"))?
                    .iter()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n");
                system.push(text);
                continue;
            }
            Some("user") => ("user", blocks(content, &format!("{param}.content"))?),
            Some("assistant") => ("assistant", assistant_blocks(m, &param)?),
            Some("tool") => ("user", vec![tool_result(m, &param)?]),
            _ => return Err(format!("{param}.role: unknown")),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, held)) if *last == role => held.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, turns))
}

/// Content blocks of a message's `content`: a string, an array of parts, or nothing.
fn blocks(content: &Value, param: &str) -> Result<Vec<Value>, Refusal> {
    let text = |t: &str| (!t.is_empty()).then(|| json!({"type": "text", "text": t}));
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(text(s).into_iter().collect()),
        Value::Array(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let param = format!("{param}[{j}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => out.extend(text(
                        part.get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| format!("{param}.text: must be a string"))?,
                    )),
                    Some("image_url") => out.push(image(part, &param)?),
                    // An assistant's refusal is text the model wrote; Anthropic has no such part.
                    Some("refusal") => {
                        out.extend(part.get("refusal").and_then(Value::as_str).and_then(text))
                    }
                    Some(other) => {
                        return Err(format!(
                            "{param}.type: {other:?} parts cannot be sent to anthropic (text and image_url can)"
                        ));
                    }
                    None => return Err(format!("{param}.type: is required")),
                }
            }
            Ok(out)
        }
        _ => Err(format!("{param}: must be a string or an array of parts")),
    }
}

/// An `image_url` part: a `data:` URL becomes a base64 source, an http(s) URL a URL source.
fn image(part: &Value, param: &str) -> Result<Value, Refusal> {
    let url = part
        .get("image_url")
        .and_then(|u| u.get("url").or(Some(u)))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{param}.image_url.url: must be a string"))?;
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest.split_once(";base64,").ok_or_else(|| {
            format!("{param}.image_url.url: a data URL must be base64 (data:<type>;base64,<data>)")
        })?;
        return Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}),
        );
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(format!(
        "{param}.image_url.url: must be a data: or http(s) URL"
    ))
}

/// An assistant message's text and its `tool_calls` as `tool_use` blocks.
fn assistant_blocks(m: &Value, param: &str) -> Result<Vec<Value>, Refusal> {
    let mut out = blocks(
        m.get("content").unwrap_or(&Value::Null),
        &format!("{param}.content"),
    )?;
    let calls = match m.get("tool_calls") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(format!("{param}.tool_calls: must be an array")),
    };
    for (j, call) in calls.iter().enumerate() {
        let param = format!("{param}.tool_calls[{j}]");
        let field = |path: &str| call.pointer(path).and_then(Value::as_str);
        let id = field("/id").ok_or_else(|| format!("{param}.id: must be a string"))?;
        let name = field("/function/name")
            .ok_or_else(|| format!("{param}.function.name: must be a string"))?;
        let arguments = field("/function/arguments").unwrap_or("");
        let input: Value = if arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(arguments)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| format!("{param}.function.arguments: must be a JSON object"))?
        };
        out.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(out)
}

/// A `tool` message as a `tool_result` block.
fn tool_result(m: &Value, param: &str) -> Result<Value, Refusal> {
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{param}.tool_call_id: must be a string"))?;
    let content = match m.get("content") {
        Some(Value::String(s)) => json!(s),
        Some(other) => Value::Array(blocks(other, &format!("{param}.content"))?),
        None => json!(""),
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}

/// `stop`, a string or a list of strings, as `stop_sequences`.
fn stop_sequences(stop: Option<&Value>) -> Result<Option<Value>, Refusal> {
    match stop {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
            Ok(Some(Value::Array(list.clone())))
        }
        Some(_) => Err("stop: must be a string or an array of strings".into()),
    }
}

/// Function `tools` as Anthropic tools (`name`, `description`, `input_schema`).
fn tools(tools: Option<&Value>) -> Result<Option<Value>, Refusal> {
    let list = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => return Err("tools: must be an array".into()),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(format!(
                "tools[{i}].type: only function tools can be sent to anthropic"
            ));
        }
        let f = tool.get("function").unwrap_or(&Value::Null);
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("tools[{i}].function.name: must be a string"))?;
        let mut t = json!({
            "name": name,
            "input_schema": f.get("parameters").filter(|p| p.is_object()).cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        });
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            t["description"] = json!(d);
        }
        out.push(t);
    }
    Ok(Some(Value::Array(out)))
}

/// `tool_choice` (`auto`, `none`, `required` → `any`, a named function → `tool`), with
/// `parallel_tool_calls: false` as `disable_parallel_tool_use`.
fn tool_choice(body: &CompletionBody) -> Result<Option<Value>, Refusal> {
    let mut choice = match body.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            other => return Err(format!("tool_choice: unknown value {other:?}")),
        }),
        Some(v) => {
            let name = v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .filter(|_| v.get("type").and_then(Value::as_str) == Some("function"))
                .ok_or("tool_choice: must be auto, none, required or {type: function, function: {name}}")?;
            Some(json!({"type": "tool", "name": name}))
        }
    };
    let serial = body.get("parallel_tool_calls") == Some(&Value::Bool(false));
    let has_tools = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    if serial && has_tools {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        // `none` takes no such flag: no tool is used at all.
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    Ok(choice)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
