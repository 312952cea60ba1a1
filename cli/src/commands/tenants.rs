//! `sy tenants ls|create|revoke`, against the tenants API of issue 21 (`GET`/`POST
//! /api/tenants`, `DELETE /api/tenants/{id}`; admin key).

use reqwest::Method;
use serde_json::json;

use super::segment;
use crate::args::Tenants;
use crate::client::{CliError, Client, DEFAULT_TIMEOUT};
use crate::output;

/// Runs one `sy tenants` action.
pub async fn run(client: &Client, action: Tenants, json: bool) -> Result<(), CliError> {
    match action {
        Tenants::Ls => {
            let v = client.get("/api/tenants").await?;
            if json {
                output::json(&v);
                return Ok(());
            }
            let list = v["tenants"]
                .as_array()
                .or(v.as_array())
                .map(Vec::as_slice)
                .unwrap_or_default();
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|t| {
                    ["id", "name", "scopes", "rpm", "tpm", "max_running"]
                        .iter()
                        .map(|k| output::cell(&t[*k]))
                        .collect()
                })
                .collect();
            output::table(
                &["ID", "NAME", "SCOPES", "RPM", "TPM", "MAX RUNNING"],
                &rows,
                "no tenants",
            );
            Ok(())
        }
        Tenants::Create {
            name,
            scopes,
            rpm,
            tpm,
            max_running,
        } => {
            let mut body = json!({"name": name, "scopes": scopes});
            for (k, v) in [("rpm", rpm), ("tpm", tpm), ("max_running", max_running)] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            let v = client.post("/api/tenants", Some(&body)).await?;
            if json {
                output::json(&v);
            } else {
                output::fields(&v);
                eprintln!("the key is shown only this once: keep it now");
            }
            Ok(())
        }
        Tenants::Revoke { id } => {
            let path = format!("/api/tenants/{}", segment(&id));
            let (_, v) = client
                .call(Method::DELETE, &path, None, DEFAULT_TIMEOUT)
                .await?;
            if json {
                output::json(&v);
            } else {
                println!("tenant {id} revoked");
            }
            Ok(())
        }
    }
}
