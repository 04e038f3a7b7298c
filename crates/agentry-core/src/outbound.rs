//! Guarded outbound HTTP: fetch a URL that a user chose (URL ingestion,
//! later the agents' `http_fetch` tool, webhooks, collectors) without letting
//! the user reach this machine or its private network — loopback, private,
//! link-local (cloud metadata at 169.254.169.254), CGNAT, multicast,
//! documentation and reserved ranges, and the IPv6 forms that embed such an
//! IPv4 address (`::ffff:127.0.0.1`, NAT64, 6to4) — unless an operator
//! allowlists the address (CIDR) or the URL's host name.
//!
//! How the guard holds:
//! - The address checked is the address used. Host names are resolved by a
//!   [`reqwest::dns::Resolve`] implementation inside the one shared client:
//!   it resolves once, drops every address that is not permitted and hands
//!   the connector only the permitted ones (none left → refused). A second
//!   DNS answer (rebinding) cannot slip in between check and connect, and
//!   pooled connections were all made to checked addresses. Literal IP hosts
//!   never reach a resolver, so [`Outbound::fetch`] checks them itself before
//!   each request.
//! - Proxies from the environment are ignored (a proxy would resolve the
//!   target itself).
//! - Redirects are followed by hand, each hop's URL re-checked (scheme,
//!   literal address, and the resolver for names), at most
//!   `max_redirects` hops.
//! - The body is counted while it streams (a too-large `Content-Length` is
//!   refused before reading); the whole fetch, redirects included, has one
//!   deadline.
//!
//! Written by hand because no maintained crate guards reqwest this way, and
//! the parts are small: enforcement is reqwest's own resolver hook, the
//! address classification is a short table (std's `IpAddr::is_global` is
//! still unstable and knows nothing of an allowlist), and CIDR matching is
//! a few lines rather than a new dependency (`ipnet` is not in the
//! workspace).
//!
//! Must not: know about documents, jobs or tools, or interpret the bytes it
//! fetches (callers do); send credentials or cookies of its own.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Client, Response, Url, redirect};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The URL schemes a fetch may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// What an operator allows past the guard: an address (`192.168.1.5`,
/// `::1`), a CIDR block (`10.0.0.0/8`, `fd00::/8`) or a host name
/// (`internal.example.com`, which allows whatever it resolves to). Parsed
/// when the configuration is read, so a typo fails at startup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AllowEntry(Rule);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Net { addr: IpAddr, prefix: u8 },
    Host(String),
}

impl AllowEntry {
    /// Parses one entry; host names are compared case-insensitively and
    /// without a trailing dot.
    pub fn parse(entry: &str) -> Result<Self, PolicyError> {
        let invalid = |reason| PolicyError::InvalidAllowEntry { entry: entry.to_owned(), reason };
        let text = entry.trim();
        if let Some((addr, prefix)) = text.split_once('/') {
            let addr = parse_ip(addr).ok_or(invalid("the part before '/' is not an IP address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.parse::<u8>().ok().filter(|p| *p <= max).ok_or(invalid("the prefix length after '/' must be a number from 0 to 32 (IPv4) or 128 (IPv6)"))?;
            return Ok(Self(Rule::Net { addr: mask(addr, prefix), prefix }));
        }
        if let Some(addr) = parse_ip(text) {
            let prefix = if addr.is_ipv4() { 32 } else { 128 };
            return Ok(Self(Rule::Net { addr, prefix }));
        }
        let host = normalize_host(text);
        let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(invalid("expected an IP address, a CIDR block such as 10.0.0.0/8, or a host name"));
        }
        Ok(Self(Rule::Host(host)))
    }
}

impl TryFrom<String> for AllowEntry {
    type Error = PolicyError;
    fn try_from(entry: String) -> Result<Self, PolicyError> {
        Self::parse(&entry)
    }
}

impl From<AllowEntry> for String {
    fn from(entry: AllowEntry) -> String {
        entry.to_string()
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Rule::Net { addr, prefix } if u32::from(*prefix) == bits(*addr) => write!(f, "{addr}"),
            Rule::Net { addr, prefix } => write!(f, "{addr}/{prefix}"),
            Rule::Host(host) => f.write_str(host),
        }
    }
}

/// Limits for user-directed fetches; operator configuration (TOML keys
/// `allow`, `max_bytes`, `timeout_secs`, `max_redirects`,
/// `allowed_schemes`). Validated by [`Outbound::new`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundPolicy {
    /// Addresses, CIDR blocks and host names let past the guard.
    pub allow: Vec<AllowEntry>,
    /// Largest body accepted, in bytes.
    pub max_bytes: usize,
    /// Deadline for the whole fetch, redirects and body included.
    #[serde(rename = "timeout_secs", serialize_with = "secs_out", deserialize_with = "secs_in")]
    pub timeout: Duration,
    /// Redirect hops followed before giving up.
    pub max_redirects: usize,
    pub allowed_schemes: Vec<Scheme>,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self { allow: Vec::new(), max_bytes: 20 * 1024 * 1024, timeout: Duration::from_secs(30), max_redirects: 5, allowed_schemes: vec![Scheme::Http, Scheme::Https] }
    }
}

fn secs_out<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn secs_in<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(d)?;
    Duration::try_from_secs_f64(secs).map_err(|_| serde::de::Error::custom("timeout_secs must be a non-negative number"))
}

/// A policy that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid outbound allowlist entry {entry:?}: {reason}")]
    InvalidAllowEntry { entry: String, reason: &'static str },
    #[error("invalid outbound policy: {0}")]
    Invalid(&'static str),
    #[error("cannot build the outbound HTTP client: {0}")]
    Client(String),
}

/// Why a fetch failed; every message can be shown to the user who gave the URL.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboundError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("URL scheme {0:?} is not allowed")]
    SchemeNotAllowed(String),
    #[error("host {host} is at {address}, a private, loopback, link-local or reserved address that is not allowlisted")]
    AddressNotAllowed { host: String, address: IpAddr },
    #[error("cannot resolve host {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("the response is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the fetch did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the server answered with HTTP status {0}")]
    Status(u16),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("network error: {0}")]
    Network(String),
}

/// A successful (2xx) answer to a POST.
#[derive(Debug, Clone)]
pub struct Posted {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

/// A successful (2xx) fetch.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL after redirects.
    pub final_url: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// The guarded fetcher. Build one at startup and clone it freely: clones
/// share one connection pool and one policy, both immutable after
/// [`Outbound::new`].
#[derive(Clone)]
pub struct Outbound {
    client: Client,
    guard: Arc<Guard>,
    policy: Arc<OutboundPolicy>,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Outbound {
    pub fn new(policy: OutboundPolicy) -> Result<Self, PolicyError> {
        if policy.max_bytes == 0 {
            return Err(PolicyError::Invalid("max_bytes must be greater than 0"));
        }
        if policy.timeout.is_zero() {
            return Err(PolicyError::Invalid("timeout_secs must be greater than 0"));
        }
        if policy.allowed_schemes.is_empty() {
            return Err(PolicyError::Invalid("allowed_schemes must name http, https or both"));
        }
        let guard = Arc::new(Guard { allow: policy.allow.iter().map(|e| e.0.clone()).collect() });
        let client = Client::builder()
            .redirect(redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { guard: guard.clone() }))
            .user_agent(concat!("agentry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PolicyError::Client(agentry_llm::providers::without_url(&e)))?;
        Ok(Self { client, guard, policy: Arc::new(policy) })
    }

    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// The checks that need no network: the URL parses, has a host and an
    /// allowed scheme, and a literal IP host is permitted. For refusing a URL
    /// early (at upload); a host name is only judged when [`Outbound::fetch`]
    /// resolves it, so this never replaces the fetch's own checks.
    pub fn check(&self, url: &str) -> Result<Url, OutboundError> {
        let url = Url::parse(url.trim()).map_err(|e| OutboundError::InvalidUrl(e.to_string()))?;
        self.check_url(&url)?;
        // Some URLs the WHATWG parser accepts cannot be sent (the HTTP client needs a valid request target).
        http::Uri::try_from(url.as_str()).map_err(|e| OutboundError::InvalidUrl(format!("cannot be requested: {e}")))?;
        Ok(url)
    }

    /// GETs `url`, following redirects, and returns the body of a 2xx
    /// answer. Cancel-safe: dropping the future drops the connection.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, OutboundError> {
        let deadline = self.policy.timeout;
        tokio::time::timeout(deadline, self.fetch_within_deadline(url)).await.map_err(|_| OutboundError::Timeout(deadline))?
    }

    /// POSTs a JSON body with extra headers (no redirects followed: a
    /// redirected POST is an error) and returns a 2xx answer with its headers.
    /// The same guard, size limit and deadline as [`Outbound::fetch`].
    pub async fn post_json(&self, url: &str, headers: &[(String, String)], body: &serde_json::Value) -> Result<Posted, OutboundError> {
        let posted = self.post(url, headers, serde_json::to_vec(body).unwrap_or_default()).await?;
        if !(200..300).contains(&posted.status) {
            return Err(OutboundError::Status(posted.status));
        }
        Ok(posted)
    }

    /// POSTs exactly `body` as `application/json` with extra headers and
    /// returns the answer whatever its status (redirects are not followed).
    /// The same guard, size limit and deadline as [`Outbound::fetch`].
    pub async fn post(&self, url: &str, headers: &[(String, String)], body: Vec<u8>) -> Result<Posted, OutboundError> {
        let deadline = self.policy.timeout;
        let attempt = async {
            let url = self.check(url)?;
            let mut request = self.client.post(url).header(CONTENT_TYPE, "application/json").body(body);
            let mut trace = agentry_llm::trace_context::outbound();
            for (name, value) in headers {
                // A `traceparent` the caller configured is kept, not doubled.
                trace.remove(name.as_str());
                request = request.header(name.as_str(), value.as_str());
            }
            request = request.headers(trace);
            let response = request.send().await.map_err(from_reqwest)?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = self.read_body(response).await?;
            Ok(Posted { status, headers, bytes })
        };
        tokio::time::timeout(deadline, attempt).await.map_err(|_| OutboundError::Timeout(deadline))?
    }

    async fn fetch_within_deadline(&self, url: &str) -> Result<Fetched, OutboundError> {
        let mut url = Url::parse(url.trim()).map_err(|e| OutboundError::InvalidUrl(e.to_string()))?;
        let mut hops = 0;
        loop {
            self.check_url(&url)?;
            let response = self.client.get(url.clone()).send().await.map_err(from_reqwest)?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(LOCATION)
            {
                if hops == self.policy.max_redirects {
                    return Err(OutboundError::TooManyRedirects(self.policy.max_redirects));
                }
                hops += 1;
                let location = location.to_str().map_err(|_| OutboundError::InvalidUrl("a redirect's Location header is not text".into()))?;
                url = url.join(location).map_err(|e| OutboundError::InvalidUrl(format!("redirect to {location:?}: {e}")))?;
                continue;
            }
            if !status.is_success() {
                return Err(OutboundError::Status(status.as_u16()));
            }
            let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let bytes = self.read_body(response).await?;
            return Ok(Fetched { final_url: url.into(), status: status.as_u16(), content_type, bytes });
        }
    }

    /// Scheme and literal-address checks; names are checked by the resolver.
    fn check_url(&self, url: &Url) -> Result<(), OutboundError> {
        if !self.policy.allowed_schemes.iter().any(|s| s.as_str() == url.scheme()) {
            return Err(OutboundError::SchemeNotAllowed(url.scheme().to_owned()));
        }
        let host = url.host_str().ok_or_else(|| OutboundError::InvalidUrl("the URL has no host".into()))?;
        match parse_ip(host) {
            Some(address) if !self.guard.permits(host, address) => Err(OutboundError::AddressNotAllowed { host: host.to_owned(), address }),
            _ => Ok(()),
        }
    }

    async fn read_body(&self, mut response: Response) -> Result<Vec<u8>, OutboundError> {
        let limit = self.policy.max_bytes;
        let declared = response.content_length().unwrap_or(0);
        if declared > limit as u64 {
            return Err(OutboundError::TooLarge { limit });
        }
        let mut bytes = Vec::with_capacity(declared as usize);
        while let Some(chunk) = response.chunk().await.map_err(from_reqwest)? {
            if bytes.len() + chunk.len() > limit {
                return Err(OutboundError::TooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// The operator's allowlist applied to one address.
#[derive(Debug)]
struct Guard {
    allow: Vec<Rule>,
}

impl Guard {
    /// `host` is the URL's host (a name, or the address itself).
    fn permits(&self, host: &str, address: IpAddr) -> bool {
        if !is_restricted(address) {
            return true;
        }
        let host = normalize_host(host);
        let v4 = embedded_v4(address).map(IpAddr::V4);
        self.allow.iter().any(|rule| match rule {
            Rule::Host(allowed) => *allowed == host,
            Rule::Net { addr, prefix } => in_net(address, *addr, *prefix) || v4.is_some_and(|v4| in_net(v4, *addr, *prefix)),
        })
    }
}

/// Resolves names for the shared client and hands the connector only
/// permitted addresses.
struct GuardedResolver {
    guard: Arc<Guard>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await.map_err(|e| OutboundError::Resolve { host: host.clone(), reason: e.to_string() })?.collect();
            let Some(first) = resolved.first().copied() else {
                let reason = "no addresses".to_owned();
                return Err(OutboundError::Resolve { host, reason }.into());
            };
            let permitted: Vec<SocketAddr> = resolved.into_iter().filter(|a| guard.permits(&host, a.ip())).collect();
            if permitted.is_empty() {
                return Err(OutboundError::AddressNotAllowed { host, address: first.ip() }.into());
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// Our own refusal from inside the resolver, else the error chain as text.
fn from_reqwest(error: reqwest::Error) -> OutboundError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(ours) = e.downcast_ref::<OutboundError>() {
            return ours.clone();
        }
        source = e.source();
    }
    OutboundError::Network(agentry_llm::providers::without_url(&error))
}

/// IPv4 blocks that are not the public internet (RFC 6890 and successors).
const RESTRICTED_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network", incl. unspecified
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // CGNAT
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, cloud metadata
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, incl. broadcast
];

/// IPv6 blocks that are not the public internet. The forms that embed an
/// IPv4 address are judged by that address instead ([`embedded_v4`]).
const RESTRICTED_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96),          // unspecified, loopback, IPv4-compatible
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),  // local-use NAT64
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),      // discard-only
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),     // IETF protocol assignments, Teredo
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),     // documentation
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),      // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),     // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),     // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),      // multicast
];

fn is_restricted(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => RESTRICTED_V4.iter().any(|(net, prefix)| in_net(v4.into(), (*net).into(), *prefix)),
        IpAddr::V6(v6) => match embedded_v4(address) {
            Some(v4) => is_restricted(v4.into()),
            None => RESTRICTED_V6.iter().any(|(net, prefix)| in_net(v6.into(), (*net).into(), *prefix)),
        },
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`), NAT64
/// well-known-prefix (`64:ff9b::/96`) or 6to4 (`2002::/16`) address.
fn embedded_v4(address: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = address else { return None };
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from(bits as u32);
    if v6.to_ipv4_mapped().is_some() || in_net(address, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0).into(), 96) {
        Some(low32)
    } else if v6.segments()[0] == 0x2002 {
        Some(Ipv4Addr::from((bits >> 80) as u32))
    } else {
        None
    }
}

fn bits(address: IpAddr) -> u32 {
    if address.is_ipv4() { 32 } else { 128 }
}

fn in_net(address: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (address, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u32::from(a) ^ u32::from(n)).checked_shr(32 - u32::from(prefix)).unwrap_or(0) == 0,
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a) ^ u128::from(n)).checked_shr(128 - u32::from(prefix)).unwrap_or(0) == 0,
        _ => false,
    }
}

fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(a) => Ipv4Addr::from(u32::from(a) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)).into(),
        IpAddr::V6(a) => Ipv6Addr::from(u128::from(a) & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)).into(),
    }
}

/// An IP literal as the connector reads it: dotted IPv4, or IPv6 with or
/// without brackets.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    text.parse().ok()
}

fn normalize_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
