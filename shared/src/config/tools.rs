//! The worker's tool settings: which tools are served, the sandbox they work in, and their
//! limits.

use std::time::Duration;

use serde::de;
use serde::{Deserialize, Deserializer};

use super::{ConfigError, invalid, millis, parse};

/// Default `WEB_FETCH_MAX_BYTES`: body bytes `web_fetch` keeps (1 MiB); the rest is cut off.
pub const DEFAULT_WEB_FETCH_MAX_BYTES: usize = 1 << 20;
/// Default `WEB_FETCH_TIMEOUT_MS`: bound of one `web_fetch`, redirects included.
pub const DEFAULT_WEB_FETCH_TIMEOUT_MS: u64 = 10_000;
/// Default `WEB_FETCH_MAX_REDIRECTS`.
pub const DEFAULT_WEB_FETCH_MAX_REDIRECTS: usize = 5;
/// Default `TOOL_MAX_FILE_BYTES`: largest file `read_file` returns whole and `write_file` writes.
pub const DEFAULT_TOOL_MAX_FILE_BYTES: usize = 1 << 20;
/// Default `TOOL_MAX_DIR_ENTRIES`: entries `list_dir` returns.
pub const DEFAULT_TOOL_MAX_DIR_ENTRIES: usize = 1_000;
/// Default `EXEC_TIMEOUT_MS`: an `exec` command is killed after this long.
pub const DEFAULT_EXEC_TIMEOUT_MS: u64 = 10_000;
/// Default `EXEC_MAX_OUTPUT_BYTES`: bytes kept of each of stdout and stderr.
pub const DEFAULT_EXEC_MAX_OUTPUT_BYTES: usize = 64 << 10;
/// Default `EXEC_PATH`: the only environment variable, besides `HOME`, an `exec` command sees.
pub const DEFAULT_EXEC_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The worker's tool settings (part of [`WorkerConfig`](super::WorkerConfig)).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ToolsConfig {
    /// `ENABLE_WEB_SEARCH`: serve the `web_fetch` tool (and consume the `web` queue).
    pub enable_web_search: bool,
    /// `ENABLE_FILE_TOOLS`: serve `read_file`, `write_file`, `list_dir` (queue `files`).
    pub enable_file_tools: bool,
    /// `ENABLE_CODE_EXEC`: serve `exec` (queue `exec`). Off by default: it runs commands.
    pub enable_code_exec: bool,
    /// `WEB_FETCH_ALLOW_PRIVATE`: let `web_fetch` reach loopback, private, link-local and
    /// metadata addresses. Off by default (server-side request forgery).
    pub web_fetch_allow_private: bool,
    /// `WEB_FETCH_ALLOWED_IPS`: comma-separated addresses `web_fetch` may reach although they
    /// are private (an internal service); empty by default.
    #[serde(deserialize_with = "ip_list")]
    pub web_fetch_allowed_ips: Vec<std::net::IpAddr>,
    /// `WEB_FETCH_MAX_BYTES`: body bytes kept; the rest is cut off and `truncated` set.
    pub web_fetch_max_bytes: usize,
    /// `WEB_FETCH_TIMEOUT_MS`: bound of one fetch, redirects included.
    #[serde(rename = "web_fetch_timeout_ms", with = "millis")]
    pub web_fetch_timeout: Duration,
    /// `WEB_FETCH_MAX_REDIRECTS`: redirects followed, each checked like the first URL.
    pub web_fetch_max_redirects: usize,
    /// `TOOL_SANDBOX_DIR`: the only directory file tools and `exec` work in; required when
    /// either is enabled (created if missing).
    pub tool_sandbox_dir: Option<String>,
    /// `TOOL_MAX_FILE_BYTES`: largest content `write_file` writes and `read_file` returns.
    pub tool_max_file_bytes: usize,
    /// `TOOL_MAX_DIR_ENTRIES`: most entries `list_dir` returns.
    pub tool_max_dir_entries: usize,
    /// `EXEC_TIMEOUT_MS`: an `exec` command is killed after this long.
    #[serde(rename = "exec_timeout_ms", with = "millis")]
    pub exec_timeout: Duration,
    /// `EXEC_MAX_OUTPUT_BYTES`: bytes kept of each of stdout and stderr.
    pub exec_max_output_bytes: usize,
    /// `EXEC_PATH`: `PATH` of `exec` commands, which get no other variable of the worker's
    /// environment (no API keys).
    pub exec_path: String,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            enable_web_search: false,
            enable_file_tools: false,
            enable_code_exec: false,
            web_fetch_allow_private: false,
            web_fetch_allowed_ips: Vec::new(),
            web_fetch_max_bytes: DEFAULT_WEB_FETCH_MAX_BYTES,
            web_fetch_timeout: Duration::from_millis(DEFAULT_WEB_FETCH_TIMEOUT_MS),
            web_fetch_max_redirects: DEFAULT_WEB_FETCH_MAX_REDIRECTS,
            tool_sandbox_dir: None,
            tool_max_file_bytes: DEFAULT_TOOL_MAX_FILE_BYTES,
            tool_max_dir_entries: DEFAULT_TOOL_MAX_DIR_ENTRIES,
            exec_timeout: Duration::from_millis(DEFAULT_EXEC_TIMEOUT_MS),
            exec_max_output_bytes: DEFAULT_EXEC_MAX_OUTPUT_BYTES,
            exec_path: DEFAULT_EXEC_PATH.to_owned(),
        }
    }
}

impl ToolsConfig {
    /// Reads the tool variables from `vars`, unchecked:
    /// [`WorkerConfig::from_vars`](super::WorkerConfig::from_vars) checks them last.
    pub(super) fn parse(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        parse(vars)
    }

    /// The tool variables: limits above zero, a sandbox for the tools that need one.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let needs_sandbox = self.enable_file_tools || self.enable_code_exec;
        match self.tool_sandbox_dir.as_deref() {
            Some("") => {
                return Err(invalid(
                    "TOOL_SANDBOX_DIR",
                    "is set but empty; unset it or give it a value",
                ));
            }
            None if needs_sandbox => {
                return Err(invalid(
                    "TOOL_SANDBOX_DIR",
                    "is required when ENABLE_FILE_TOOLS or ENABLE_CODE_EXEC is true",
                ));
            }
            _ => {}
        }
        for (var, zero) in [
            ("WEB_FETCH_MAX_BYTES", self.web_fetch_max_bytes == 0),
            ("WEB_FETCH_TIMEOUT_MS", self.web_fetch_timeout.is_zero()),
            ("TOOL_MAX_FILE_BYTES", self.tool_max_file_bytes == 0),
            ("TOOL_MAX_DIR_ENTRIES", self.tool_max_dir_entries == 0),
            ("EXEC_TIMEOUT_MS", self.exec_timeout.is_zero()),
            ("EXEC_MAX_OUTPUT_BYTES", self.exec_max_output_bytes == 0),
        ] {
            if zero {
                return Err(invalid(var, "must be above 0"));
            }
        }
        Ok(())
    }
}

/// A comma-separated list of IP addresses; empty items are skipped, so an empty value is an
/// empty list.
fn ip_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<std::net::IpAddr>, D::Error> {
    let s = String::deserialize(d)?;
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse().map_err(|_| {
                de::Error::custom(format!("WEB_FETCH_ALLOWED_IPS: {a:?} is not an IP address"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{WorkerConfig, check_unknown, vars};
    use super::*;

    #[test]
    fn defaults_and_durations_are_read_in_their_units() {
        let t = WorkerConfig::from_vars(&[])
            .expect("defaults are valid")
            .tools;
        assert!(!t.enable_web_search && !t.enable_file_tools && !t.enable_code_exec);
        assert!(!t.web_fetch_allow_private && t.web_fetch_allowed_ips.is_empty());
        assert_eq!(t.web_fetch_max_bytes, 1 << 20);
        assert_eq!(t.web_fetch_timeout, Duration::from_secs(10));
        assert_eq!(t.web_fetch_max_redirects, 5);
        assert_eq!(t.tool_sandbox_dir, None);
        assert_eq!(t.tool_max_file_bytes, 1 << 20);
        assert_eq!(t.tool_max_dir_entries, 1_000);
        assert_eq!(t.exec_timeout, Duration::from_secs(10));
        assert_eq!(t.exec_max_output_bytes, 64 << 10);
        assert_eq!(t.exec_path, "/usr/local/bin:/usr/bin:/bin");
        let t = WorkerConfig::from_vars(&vars(&[
            ("WEB_FETCH_TIMEOUT_MS", "1"),
            ("EXEC_TIMEOUT_MS", "2"),
        ]))
        .expect("valid")
        .tools;
        assert_eq!(t.web_fetch_timeout, Duration::from_millis(1));
        assert_eq!(t.exec_timeout, Duration::from_millis(2));
    }

    #[test]
    fn tools_need_a_sandbox_and_parse_their_lists() {
        let e = WorkerConfig::from_vars(&vars(&[("ENABLE_FILE_TOOLS", "true")]))
            .expect_err("no sandbox");
        assert!(e.to_string().contains("TOOL_SANDBOX_DIR"), "{e}");
        let w = WorkerConfig::from_vars(&vars(&[
            ("ENABLE_CODE_EXEC", "true"),
            ("TOOL_SANDBOX_DIR", "/tmp/sb"),
            ("WEB_FETCH_ALLOWED_IPS", "10.0.0.7, ::1"),
        ]))
        .expect("valid")
        .tools;
        assert!(w.enable_code_exec && !w.enable_file_tools && !w.enable_web_search);
        assert_eq!(w.web_fetch_allowed_ips.len(), 2);
        let w = WorkerConfig::from_vars(&vars(&[("WEB_FETCH_ALLOWED_IPS", "")]))
            .expect("empty")
            .tools;
        assert!(w.web_fetch_allowed_ips.is_empty());
        let e = WorkerConfig::from_vars(&vars(&[("WEB_FETCH_ALLOWED_IPS", "example.com")]))
            .expect_err("not an address");
        assert!(e.to_string().contains("WEB_FETCH_ALLOWED_IPS"), "{e}");
        check_unknown(&vars(&[
            ("ENABLE_WEB_SEARCH", "true"),
            ("WEB_FETCH_MAX_BYTES", "10"),
            ("EXEC_TIMEOUT_MS", "10"),
            ("OPENAI_API_KEY", "k"),
        ]))
        .expect("known");
        let e = check_unknown(&vars(&[("ENABLE_WEB_FETCH", "true")])).expect_err("typo");
        assert!(e.to_string().contains("ENABLE_WEB_FETCH"), "{e}");
    }
}
