//! Who the client is when the server sits behind proxies: the client
//! address (audit, per-address limits) and the scheme and host it reached
//! (the A2A agent card's URLs).
//!
//! Forwarded headers are believed only from a peer inside the configured
//! top-level `trusted_proxies` list (CIDRs); from anyone else they are
//! ignored, because any client can send them. `X-Forwarded-For` is read from
//! the right: each trusted hop is skipped and the first untrusted address is
//! the client.
//!
//! Must not: authenticate or authorize anything.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The `trusted_proxies` setting.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer's, or the nearest untrusted hop of
    /// `X-Forwarded-For` when the peer is a trusted proxy.
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.ip().to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        // Leniently: a client's junk bytes must not hide the hop the proxy appended.
        let lines: Vec<String> = headers.get_all("x-forwarded-for").iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
        let hops: Vec<&str> = lines.iter().flat_map(|v| v.split(',')).map(str::trim).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        Some(client)
    }

    /// `scheme://host` as the client reached the server: forwarded
    /// `X-Forwarded-Proto`/`-Host` only from a trusted proxy, else the
    /// request's own `Host`.
    pub fn origin(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> String {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty() && valid_host(v)).map(str::to_owned);
        let forwarded = peer.is_some_and(|p| self.trusts(p.ip().to_canonical()));
        let scheme = forwarded.then(|| header("x-forwarded-proto")).flatten().filter(|s| s == "http" || s == "https").unwrap_or_else(|| "http".into());
        let host = forwarded.then(|| header("x-forwarded-host")).flatten().or_else(|| header("host")).unwrap_or_else(|| "127.0.0.1:8080".into());
        format!("{scheme}://{host}")
    }
}

/// A host[:port] without anything that could change a URL's meaning.
fn valid_host(value: &str) -> bool {
    value.len() <= 255 && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_peers() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let forwarded =
            headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.7"), ("x-forwarded-host", "agents.example.com"), ("x-forwarded-proto", "https"), ("host", "internal:8080")]);
        assert_eq!(proxies.client_ip(peer("10.0.0.2"), &forwarded), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(proxies.origin(peer("10.0.0.2"), &forwarded), "https://agents.example.com");
        // A direct client sending the same headers is itself.
        assert_eq!(proxies.client_ip(peer("198.51.100.4"), &forwarded), Some("198.51.100.4".parse().unwrap()));
        assert_eq!(proxies.origin(peer("198.51.100.4"), &forwarded), "http://internal:8080");
        // Nothing trusted by default.
        assert_eq!(TrustedProxies::default().client_ip(peer("10.0.0.2"), &forwarded), Some("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn a_spoofed_left_part_of_the_chain_is_not_believed() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        // The client wrote "1.1.1.1" itself; the proxy appended the real address.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9")]);
        assert_eq!(proxies.client_ip(peer("10.0.0.2"), &chain), Some("203.0.113.9".parse().unwrap()));
        // An IPv4-mapped peer is the IPv4 proxy; junk bytes do not hide the appended hop.
        let mapped = Some(SocketAddr::new("::ffff:10.0.0.2".parse().unwrap(), 40000));
        assert_eq!(proxies.client_ip(mapped, &chain), Some("203.0.113.9".parse().unwrap()));
        let mut junk = HeaderMap::new();
        junk.append("x-forwarded-for", axum::http::HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.9").unwrap());
        assert_eq!(proxies.client_ip(peer("10.0.0.2"), &junk), Some("203.0.113.9".parse().unwrap()));
        let garbage = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(proxies.client_ip(peer("10.0.0.2"), &garbage), Some("10.0.0.2".parse().unwrap()));
        let evil_host = headers(&[("x-forwarded-host", "evil.example/path?"), ("host", "ok.example")]);
        assert_eq!(proxies.origin(peer("10.0.0.2"), &evil_host), "http://ok.example");
    }
}
