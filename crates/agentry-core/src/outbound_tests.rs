//! Outbound guard tests. Servers are hand-rolled HTTP/1.1 responders on
//! 127.0.0.1; refused fetches fail before any connection, so nothing here
//! touches the internet.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// What the test server writes for one request, and whether it then keeps
/// the connection open instead of closing it.
struct Reply {
    bytes: Vec<u8>,
    hang: bool,
}

fn reply(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    Reply { bytes, hang: false }
}

/// Serves every request on 127.0.0.1 with `answer(path)`; returns the port.
async fn serve(answer: impl Fn(&str) -> Reply + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let reply = answer(&path);
                let _ = socket.write_all(&reply.bytes).await;
                if reply.hang {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
        }
    });
    port
}

fn outbound(allow: &[&str]) -> Outbound {
    let allow = allow.iter().map(|e| AllowEntry::parse(e).unwrap()).collect();
    Outbound::new(OutboundPolicy { allow, ..OutboundPolicy::default() }).unwrap()
}

fn local() -> Outbound {
    outbound(&["127.0.0.1"])
}

async fn refused_address(url: &str) -> IpAddr {
    match outbound(&[]).fetch(url).await {
        Err(OutboundError::AddressNotAllowed { address, .. }) => address,
        other => panic!("{url}: expected AddressNotAllowed, got {other:?}"),
    }
}

#[tokio::test]
async fn refuses_restricted_literal_addresses() {
    for (url, address) in [
        ("http://127.0.0.1/", "127.0.0.1"),
        ("http://127.1.2.3:8080/x", "127.1.2.3"),
        ("http://[::1]/", "::1"),
        ("http://10.1.2.3/", "10.1.2.3"),
        ("http://192.168.0.1/", "192.168.0.1"),
        ("http://172.16.5.4/", "172.16.5.4"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
        ("http://[::ffff:a9fe:a9fe]/", "::ffff:169.254.169.254"),
        ("http://0.0.0.0/", "0.0.0.0"),
        ("http://[::]/", "::"),
        ("http://100.64.0.1/", "100.64.0.1"),
        ("http://[fd00::1]/", "fd00::1"),
        ("http://[fe80::1]/", "fe80::1"),
        ("https://255.255.255.255/", "255.255.255.255"),
        // Numeric IPv4 spellings are normalised by the URL parser.
        ("http://2130706433/", "127.0.0.1"),
        ("http://0x7f.1/", "127.0.0.1"),
    ] {
        assert_eq!(refused_address(url).await, address.parse::<IpAddr>().unwrap(), "{url}");
    }
}

#[tokio::test]
async fn refuses_names_that_resolve_to_loopback() {
    for url in ["http://localhost/", "http://LocalHost:9/x"] {
        assert!(refused_address(url).await.is_loopback(), "{url}");
    }
}

#[test]
fn classifies_addresses() {
    for (address, restricted) in [
        ("8.8.8.8", false),
        ("1.1.1.1", false),
        ("172.32.0.1", false),
        ("100.128.0.1", false),
        ("2606:4700::1111", false),
        ("::ffff:8.8.8.8", false),
        ("2002:0808:0808::1", false),
        ("172.31.255.255", true),
        ("192.0.2.10", true),
        ("198.18.0.1", true),
        ("203.0.113.7", true),
        ("224.0.0.1", true),
        ("240.1.2.3", true),
        ("64:ff9b::a9fe:a9fe", true),
        ("64:ff9b:1::1", true),
        ("2002:7f00:0001::", true),
        ("2001:db8::1", true),
        ("2001::1", true),
        ("ff02::1", true),
        ("fec0::1", true),
        ("::7f00:1", true),
    ] {
        assert_eq!(is_restricted(address.parse().unwrap()), restricted, "{address}");
    }
}

#[test]
fn allowlist_matches_addresses_blocks_and_host_names() {
    let guard = Guard { allow: ["10.0.0.0/8", "127.0.0.1", "Internal.Example.com."].iter().map(|e| AllowEntry::parse(e).unwrap().0).collect() };
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(guard.permits("x", ip("10.200.1.1")));
    assert!(guard.permits("x", ip("127.0.0.1")));
    assert!(guard.permits("x", ip("::ffff:127.0.0.1")));
    assert!(guard.permits("internal.example.com", ip("192.168.9.9")));
    assert!(guard.permits("INTERNAL.example.com.", ip("192.168.9.9")));
    assert!(!guard.permits("x", ip("127.0.0.2")));
    assert!(!guard.permits("other.example.com", ip("192.168.9.9")));
    assert!(!guard.permits("x", ip("::1")));
}

#[test]
fn parses_allow_entries_with_clear_errors() {
    for (entry, shown) in [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("192.168.1.5", "192.168.1.5"),
        ("[::1]", "::1"),
        ("fd00::/8", "fd00::/8"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("Internal.Example.COM", "internal.example.com"),
    ] {
        assert_eq!(AllowEntry::parse(entry).unwrap().to_string(), shown);
    }
    for entry in ["10.0.0.0/33", "fd00::/129", "10.0.0.0/x", "10.0.0/8", "", "http://x.example", "a b", "x..y", "h:80"] {
        let error = AllowEntry::parse(entry).unwrap_err().to_string();
        assert!(error.contains(&format!("{entry:?}")), "{error}");
    }
}

#[test]
fn policy_deserializes_from_config_and_validates() {
    let policy: OutboundPolicy = serde_json::from_value(serde_json::json!({
        "allow": ["10.0.0.0/8", "192.168.1.5", "internal.example.com"],
        "timeout_secs": 2.5,
        "allowed_schemes": ["https"],
    }))
    .unwrap();
    assert_eq!(policy.allow.len(), 3);
    assert_eq!(policy.timeout, Duration::from_millis(2500));
    assert_eq!(policy.max_bytes, 20 * 1024 * 1024);
    assert_eq!(policy.allowed_schemes, [Scheme::Https]);
    let round_trip = serde_json::to_value(&policy).unwrap();
    assert_eq!(round_trip["allow"][0], "10.0.0.0/8");

    let error = serde_json::from_value::<OutboundPolicy>(serde_json::json!({"allow": ["10.0.0.0/40"]})).unwrap_err().to_string();
    assert!(error.contains("10.0.0.0/40") && error.contains("prefix length"), "{error}");
    assert!(serde_json::from_value::<OutboundPolicy>(serde_json::json!({"timeout_secs": -1})).is_err());
    assert!(serde_json::from_value::<OutboundPolicy>(serde_json::json!({"allowed_schemes": ["ftp"]})).is_err());

    for bad in [
        OutboundPolicy { max_bytes: 0, ..OutboundPolicy::default() },
        OutboundPolicy { timeout: Duration::ZERO, ..OutboundPolicy::default() },
        OutboundPolicy { allowed_schemes: Vec::new(), ..OutboundPolicy::default() },
    ] {
        assert!(matches!(Outbound::new(bad), Err(PolicyError::Invalid(_))));
    }
}

#[tokio::test]
async fn refuses_other_schemes_and_invalid_urls() {
    let out = outbound(&[]);
    for (url, scheme) in [("file:///etc/passwd", "file"), ("ftp://example.com/x", "ftp"), ("gopher://x/", "gopher")] {
        assert!(matches!(out.fetch(url).await, Err(OutboundError::SchemeNotAllowed(s)) if s == scheme), "{url}");
    }
    let https_only = Outbound::new(OutboundPolicy { allowed_schemes: vec![Scheme::Https], ..OutboundPolicy::default() }).unwrap();
    assert!(matches!(https_only.fetch("http://example.com/").await, Err(OutboundError::SchemeNotAllowed(_))));
    for url in ["", "not a url", "/relative/path", "http://", "http://exa mple.com/", "http://[::1/"] {
        assert!(matches!(out.fetch(url).await, Err(OutboundError::InvalidUrl(_))), "{url:?}");
    }
}

#[test]
fn check_judges_what_needs_no_network() {
    let out = outbound(&[]);
    assert!(matches!(out.check("file:///etc/passwd"), Err(OutboundError::SchemeNotAllowed(_))));
    assert!(matches!(out.check("http://"), Err(OutboundError::InvalidUrl(_))));
    assert!(matches!(out.check("http://127.0.0.1:8080/x"), Err(OutboundError::AddressNotAllowed { .. })));
    assert!(matches!(out.check("http://[::ffff:10.0.0.1]/"), Err(OutboundError::AddressNotAllowed { .. })));
    // Names are judged when they are resolved, at fetch time.
    assert_eq!(out.check(" http://localhost/a ").unwrap().as_str(), "http://localhost/a");
    assert!(local().check("http://127.0.0.1:8080/x").is_ok());
}

#[tokio::test]
async fn allowlisted_loopback_fetch_works() {
    let port = serve(|path| reply("200 OK", &[("Content-Type", "text/plain")], format!("hello {path}").as_bytes())).await;
    let fetched = local().fetch(&format!("http://127.0.0.1:{port}/doc.txt")).await.unwrap();
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.content_type.as_deref(), Some("text/plain"));
    assert_eq!(fetched.bytes, b"hello /doc.txt");
    assert_eq!(fetched.final_url, format!("http://127.0.0.1:{port}/doc.txt"));

    // A host-name entry lets that name through whatever it resolves to.
    let by_name = outbound(&["localhost"]).fetch(&format!("http://localhost:{port}/n")).await.unwrap();
    assert_eq!(by_name.bytes, b"hello /n");

    // The name `localhost` is not allowlisted, but the resolver keeps its
    // allowlisted address 127.0.0.1 (and drops ::1).
    let by_address = local().fetch(&format!("http://localhost:{port}/a")).await.unwrap();
    assert_eq!(by_address.bytes, b"hello /a");
}

#[tokio::test]
async fn follows_redirects_and_rechecks_every_hop() {
    let port = serve(|path| match path {
        "/start" => reply("302 Found", &[("Location", "/middle")], b""),
        "/middle" => reply("301 Moved Permanently", &[("Location", "final?x=1")], b""),
        "/final?x=1" => reply("200 OK", &[], b"done"),
        "/loop" => reply("307 Temporary Redirect", &[("Location", "/loop")], b""),
        "/private" => reply("302 Found", &[("Location", "http://10.1.2.3/secret")], b""),
        "/metadata" => reply("302 Found", &[("Location", "http://169.254.169.254/latest/meta-data/")], b""),
        "/v6" => reply("302 Found", &[("Location", "http://[::1]/")], b""),
        "/file" => reply("302 Found", &[("Location", "file:///etc/passwd")], b""),
        _ => reply("404 Not Found", &[], b""),
    })
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let out = local();

    let fetched = out.fetch(&format!("{base}/start")).await.unwrap();
    assert_eq!(fetched.bytes, b"done");
    assert_eq!(fetched.final_url, format!("{base}/final?x=1"));

    for (path, address) in [("/private", "10.1.2.3"), ("/metadata", "169.254.169.254"), ("/v6", "::1")] {
        match out.fetch(&format!("{base}{path}")).await {
            Err(OutboundError::AddressNotAllowed { address: a, .. }) => {
                assert_eq!(a, address.parse::<IpAddr>().unwrap())
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    assert!(matches!(out.fetch(&format!("{base}/file")).await, Err(OutboundError::SchemeNotAllowed(_))));
    assert!(matches!(out.fetch(&format!("{base}/loop")).await, Err(OutboundError::TooManyRedirects(5))));
}

#[tokio::test]
async fn enforces_the_size_limit() {
    let big = vec![b'x'; 4096];
    let port = serve(move |path| match path {
        "/declared" => Reply { bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".to_vec(), hang: true },
        "/chunked" => {
            let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
            for _ in 0..8 {
                bytes.extend_from_slice(format!("{:x}\r\n", big.len()).as_bytes());
                bytes.extend_from_slice(&big);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
            Reply { bytes, hang: false }
        }
        "/until-close" => {
            let mut bytes = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
            bytes.extend_from_slice(&big);
            bytes.extend_from_slice(&big);
            Reply { bytes, hang: false }
        }
        _ => reply("200 OK", &[], &big[..1000]),
    })
    .await;
    let out =
        Outbound::new(OutboundPolicy { allow: vec![AllowEntry::parse("127.0.0.1").unwrap()], max_bytes: 5000, timeout: Duration::from_secs(10), ..OutboundPolicy::default() })
            .unwrap();
    for path in ["/declared", "/chunked", "/until-close"] {
        let result = out.fetch(&format!("http://127.0.0.1:{port}{path}")).await;
        assert!(matches!(result, Err(OutboundError::TooLarge { limit: 5000 })), "{path}: {result:?}");
    }
    assert_eq!(out.fetch(&format!("http://127.0.0.1:{port}/small")).await.unwrap().bytes.len(), 1000);
}

#[tokio::test]
async fn times_out_a_server_that_never_answers() {
    let port = serve(|_| Reply { bytes: Vec::new(), hang: true }).await;
    let out = Outbound::new(OutboundPolicy { allow: vec![AllowEntry::parse("127.0.0.0/8").unwrap()], timeout: Duration::from_millis(300), ..OutboundPolicy::default() }).unwrap();
    let result = out.fetch(&format!("http://127.0.0.1:{port}/")).await;
    assert!(matches!(result, Err(OutboundError::Timeout(d)) if d == Duration::from_millis(300)), "{result:?}");
}

#[tokio::test]
async fn non_success_status_is_an_error() {
    let port = serve(|path| match path {
        "/missing" => reply("404 Not Found", &[], b"nope"),
        "/no-location" => reply("302 Found", &[], b""),
        _ => reply("503 Service Unavailable", &[], b""),
    })
    .await;
    for (path, status) in [("/missing", 404), ("/no-location", 302), ("/down", 503)] {
        let result = local().fetch(&format!("http://127.0.0.1:{port}{path}")).await;
        assert!(matches!(result, Err(OutboundError::Status(s)) if s == status), "{path}: {result:?}");
    }
    let error = OutboundError::Status(404).to_string();
    assert_eq!(error, "the server answered with HTTP status 404");
}
