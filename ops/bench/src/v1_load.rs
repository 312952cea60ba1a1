//! The streaming phase's `/v1` clients: streamed chat completions through the OpenAI-compatible
//! front door (`POST /v1/chat/completions` with `stream: true`), started one every
//! [`TOKEN_INTERVAL`](crate::streaming::TOKEN_INTERVAL) like the `/api` ones, timed to their
//! first content chunk (the role chunk, sent at once, does not count).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::error::BenchError;
use crate::stream_load::{arrival, client, read_until};

/// What the `/v1` streams showed.
#[derive(Debug, Default)]
pub struct ViaV1 {
    /// Times to first content, µs.
    pub ttft_us: Vec<u64>,
    /// Streams that did not end with `[DONE]` after the whole answer.
    pub incomplete: usize,
}

/// The text of every content delta of a `/v1` stream, and whether it ended with `[DONE]`.
fn answer(text: &str) -> (String, bool) {
    let mut out = String::new();
    let mut done = false;
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            done = true;
            continue;
        }
        if let Ok(v) = serde_json::from_str::<Value>(data)
            && let Some(c) = v["choices"][0]["delta"]["content"].as_str()
        {
            out.push_str(c);
        }
    }
    (out, done)
}

async fn one(
    http: reqwest::Client,
    url: String,
    secret: String,
    i: usize,
    began: Instant,
) -> (Option<u64>, String, bool) {
    let body = json!({"model": "bench", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    tokio::time::sleep_until(arrival(began, i)).await;
    let sent = Instant::now();
    let Ok(resp) = http
        .post(&url)
        .bearer_auth(&secret)
        .json(&body)
        .send()
        .await
    else {
        return (None, String::new(), false);
    };
    // The provider's first token is `w0`; the role chunk's content is empty.
    let (at, text) = read_until(
        resp,
        |t| t.contains("\"content\":\"w0"),
        |t| t.contains("[DONE]") || t.contains("\"error\""),
    )
    .await;
    let (answer, done) = answer(&text);
    (at.map(|a| (a - sent).as_micros() as u64), answer, done)
}

/// Runs `n` streamed completions through the `/v1` of the dispatcher at `base_url`, one every
/// `TOKEN_INTERVAL`, each expecting `expected` as its whole content.
pub async fn v1_ttft(
    base_url: &str,
    secret: &str,
    n: usize,
    expected: &str,
) -> Result<ViaV1, BenchError> {
    let http = client(Duration::from_secs(300))?;
    let url = format!("{base_url}/v1/chat/completions");
    let began = Instant::now();
    let readers: Vec<_> = (0..n)
        .map(|i| {
            let (h, u, s) = (http.clone(), url.clone(), secret.to_owned());
            tokio::spawn(one(h, u, s, i, began))
        })
        .collect();
    let mut out = ViaV1::default();
    for r in readers {
        let (ttft, text, done) = r.await?;
        out.ttft_us.extend(ttft);
        out.incomplete += usize::from(!(done && text == expected));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_the_content_deltas_and_done_is_the_end_mark() {
        let text = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"w0\"}}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\" w1\"}}]}\n\n\
                    data: {\"choices\":[],\"usage\":{}}\n\ndata: [DONE]\n\n";
        assert_eq!(answer(text), ("w0 w1".to_owned(), true));
        assert_eq!(answer("data: {\"error\":{}}\n\n"), (String::new(), false));
    }
}
