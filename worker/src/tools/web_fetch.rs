//! `web_fetch`: an HTTP(S) GET whose body comes back as text. Loopback, private, link-local
//! (cloud metadata), and other non-public addresses are refused unless `WEB_FETCH_ALLOW_PRIVATE`
//! is on or the address is in `WEB_FETCH_ALLOWED_IPS`. Literal addresses are checked before each
//! hop; names are checked by the client's own resolver, so the addresses checked are exactly
//! those connected to (no DNS-rebinding gap). Redirects are followed by hand, each hop checked
//! like the first; size, redirect count and total time are bounded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_shared::config::WorkerConfig;
use url::{Host, Url};

use super::{ToolError, args};
use crate::providers::http::describe;

/// Which addresses `web_fetch` may connect to.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Any address at all (`WEB_FETCH_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// Non-public addresses allowed all the same (`WEB_FETCH_ALLOWED_IPS`).
    pub allowed: Vec<IpAddr>,
}

impl AddressPolicy {
    /// Why `ip` is refused, or `None` when it may be reached.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allow_private || self.allowed.contains(&ip) {
            return None;
        }
        non_public(ip)
    }
}

/// The limits of one fetcher.
#[derive(Debug, Clone)]
pub struct FetchLimits {
    /// Body bytes kept.
    pub max_bytes: usize,
    /// Bound of a whole fetch, redirects included.
    pub timeout: Duration,
    /// Redirects followed.
    pub max_redirects: usize,
}

/// The `web_fetch` tool.
#[derive(Debug, Clone)]
pub struct WebFetch {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    limits: FetchLimits,
}

/// A name that resolves to an address the policy refuses.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, a {kind} address")]
struct Refused {
    host: String,
    ip: IpAddr,
    kind: &'static str,
}

/// The system resolver, with every answer checked against the policy.
#[derive(Debug)]
struct CheckedResolver(Arc<AddressPolicy>);

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // One refused address refuses the name: a mixed answer is a rebinding attempt.
            if let Some((ip, kind)) = addrs
                .iter()
                .find_map(|a| policy.refusal(a.ip()).map(|k| (a.ip(), k)))
            {
                return Err(Box::new(Refused { host, ip, kind }) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchArgs {
    url: String,
    /// Lower than the configured limit only.
    #[serde(default)]
    max_bytes: Option<usize>,
}

impl WebFetch {
    /// The fetcher `WEB_FETCH_*` describes.
    pub fn from_config(cfg: &WorkerConfig) -> Result<Self, reqwest::Error> {
        Self::new(
            AddressPolicy {
                allow_private: cfg.tools.web_fetch_allow_private,
                allowed: cfg.tools.web_fetch_allowed_ips.clone(),
            },
            FetchLimits {
                max_bytes: cfg.tools.web_fetch_max_bytes,
                timeout: cfg.tools.web_fetch_timeout,
                max_redirects: cfg.tools.web_fetch_max_redirects,
            },
        )
    }

    /// A fetcher with `policy` and `limits`.
    pub fn new(policy: AddressPolicy, limits: FetchLimits) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            // A proxy would resolve names itself and defeat the address checks.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver(policy.clone())))
            .timeout(limits.timeout)
            .user_agent(concat!("switchyard-web-fetch/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            policy,
            limits,
        })
    }

    /// Runs `{"url", "max_bytes"?}` → `{url, status, content_type, body, bytes, truncated}`.
    /// Any final HTTP status is output; refusals and bad URLs fail permanently, network trouble
    /// is worth a retry.
    pub async fn run(&self, v: &Value) -> Result<Value, ToolError> {
        let a: FetchArgs = args("web_fetch", v)?;
        let limit = a
            .max_bytes
            .map_or(self.limits.max_bytes, |m| m.min(self.limits.max_bytes));
        let url = Url::parse(&a.url).map_err(|e| {
            ToolError::Permanent(format!("web_fetch: invalid url {:?}: {e}", a.url))
        })?;
        let t = self.limits.timeout;
        tokio::time::timeout(t, self.fetch(url, limit))
            .await
            .map_err(|_| {
                ToolError::Retryable(format!("web_fetch: timed out after {} ms", t.as_millis()))
            })?
    }

    async fn fetch(&self, mut url: Url, limit: usize) -> Result<Value, ToolError> {
        let mut redirects = 0;
        loop {
            self.check_url(&url)?;
            let mut resp = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| send_error(&url, &e))?;
            let status = resp.status();
            if status.is_redirection()
                && let Some(location) = resp.headers().get(LOCATION)
            {
                if redirects == self.limits.max_redirects {
                    return Err(ToolError::Permanent(format!(
                        "web_fetch: more than {} redirects",
                        self.limits.max_redirects
                    )));
                }
                redirects += 1;
                let next = location
                    .to_str()
                    .ok()
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| {
                        ToolError::Permanent(format!(
                            "web_fetch: {url} redirects to an invalid URL"
                        ))
                    })?;
                url = next;
                continue;
            }
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut body = Vec::new();
            let mut truncated = false;
            while let Some(chunk) = resp.chunk().await.map_err(|e| {
                ToolError::Retryable(format!("web_fetch: reading {url}: {}", describe(&e)))
            })? {
                let room = limit - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(json!({
                "url": url.as_str(),
                "status": status.as_u16(),
                "content_type": content_type,
                "bytes": body.len(),
                "truncated": truncated,
                "body": String::from_utf8_lossy(&body),
            }));
        }
    }

    /// Scheme, and the host when it is a literal address (names go through the resolver).
    fn check_url(&self, url: &Url) -> Result<(), ToolError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::Permanent(format!(
                "web_fetch: refused {url}: only http and https URLs are fetched"
            )));
        }
        let ip = match url.host() {
            Some(Host::Ipv4(a)) => IpAddr::V4(a),
            Some(Host::Ipv6(a)) => IpAddr::V6(a),
            Some(Host::Domain(_)) => return Ok(()),
            None => {
                return Err(ToolError::Permanent(format!(
                    "web_fetch: {url} has no host"
                )));
            }
        };
        match self.policy.refusal(ip) {
            Some(kind) => Err(ToolError::Permanent(format!(
                "web_fetch: refused {url}: {ip} is a {kind} address (WEB_FETCH_ALLOW_PRIVATE is off)"
            ))),
            None => Ok(()),
        }
    }
}

/// A send error: a refusal by the resolver is permanent, the rest is network trouble.
fn send_error(url: &Url, e: &reqwest::Error) -> ToolError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return ToolError::Permanent(format!(
                "web_fetch: refused {url}: {r} (WEB_FETCH_ALLOW_PRIVATE is off)"
            ));
        }
        source = s.source();
    }
    ToolError::Retryable(format!("web_fetch: {url}: {}", describe(e)))
}

/// The kind of a non-public address, or `None` for a public one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => non_public_v4(a),
        IpAddr::V6(a) => non_public_v6(a),
    }
}

fn non_public_v4(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    Some(if a.is_loopback() {
        "loopback"
    } else if a.is_private() {
        "private"
    } else if a.is_link_local() {
        "link-local (cloud metadata)"
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        "shared (carrier-grade NAT)"
    } else if o[0] == 0 || a.is_broadcast() || a.is_multicast() || o[0] >= 240 {
        "non-unicast or reserved"
    } else if a.is_documentation()
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
    {
        "reserved"
    } else {
        return None;
    })
}

fn non_public_v6(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = a.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that is what gets reached.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return non_public_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return non_public_v4(embedded(s[1], s[2]));
    }
    Some(if a.is_loopback() {
        "loopback"
    } else if (s[0] & 0xfe00) == 0xfc00 {
        "private (unique local)"
    } else if (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xffc0) == 0xfec0 {
        "link-local"
    } else if a.is_unspecified() || a.is_multicast() || s[0..6] == [0; 6] {
        "non-unicast or reserved"
    } else if (s[0] == 0x2001 && (s[1] < 0x200 || s[1] == 0xdb8))
        || (s[0] == 0x100 && s[1..4] == [0; 3])
    {
        "reserved"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_named() {
        for (ip, public) in [
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("2606:4700:4700::1111", true),
            ("127.0.0.1", false),
            ("127.9.9.9", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.100.100.200", false),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
            ("::1", false),
            ("::", false),
            ("fe80::1", false),
            ("fd00:ec2::254", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::a9fe:a9fe", false),
            ("2002:7f00:1::", false),
        ] {
            let ip: IpAddr = ip.parse().expect("test address");
            assert_eq!(non_public(ip).is_none(), public, "{ip}");
        }
    }

    #[test]
    fn policy_exceptions() {
        let ip: IpAddr = "10.0.0.7".parse().expect("test address");
        let strict = AddressPolicy::default();
        assert!(strict.refusal(ip).is_some());
        let listed = AddressPolicy {
            allow_private: false,
            allowed: vec![ip],
        };
        assert!(listed.refusal(ip).is_none());
        assert!(
            listed
                .refusal("10.0.0.8".parse().expect("test address"))
                .is_some()
        );
        let open = AddressPolicy {
            allow_private: true,
            allowed: vec![],
        };
        assert!(open.refusal(ip).is_none());
    }
}
