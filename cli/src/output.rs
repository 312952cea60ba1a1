//! What `sy` prints: aligned tables and `key: value` lists for people, JSON for scripts
//! (`--json`: the API's answer as it came, or one object per line for streams).

use serde_json::Value;

/// Prints `v` as pretty JSON.
pub fn json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Prints `v` as one line of JSON (streams).
pub fn json_line(v: &Value) {
    println!("{v}");
}

/// A cell of a table: strings without quotes, `null` as `-`, other values as JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Prints `rows` under `headers`, columns padded to their widest cell; a note when empty.
pub fn table(headers: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
        return;
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints an object's fields as `key: value` lines, nested objects as compact JSON.
pub fn fields(v: &Value) {
    let Some(map) = v.as_object() else {
        println!("{}", cell(v));
        return;
    };
    let width = map.keys().map(String::len).max().unwrap_or(0);
    for (k, val) in map {
        let shown = match val {
            Value::Object(_) => val.to_string(),
            other => cell(other),
        };
        println!("{k:<width$}  {shown}");
    }
}

/// A short excerpt of `s` for a table cell.
pub fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!(
            "{}…",
            s.chars().take(max.saturating_sub(1)).collect::<String>()
        )
    }
}
