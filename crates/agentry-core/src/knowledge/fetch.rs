//! Documents uploaded by URL. At upload, only what needs no network is
//! judged ([`check_upload_url`]: it parses, is http or https, carries no
//! credentials, and a literal IP address is one the policy permits). The
//! ingestion worker then fetches it through the shared [`Outbound`] client —
//! the authoritative check: names are resolved and judged there (DNS
//! rebinding cannot slip past), redirects are re-checked, and the body is
//! capped at `knowledge.max_document_bytes` — decides the format from the
//! bytes, the URL's file name and the answer's content type, and stores
//! bytes, format and hash in the version before ingesting it like an upload.
//!
//! The document is at fault (permanent failure, with the reason as its
//! error): a refused address or scheme, too large, too many redirects, a 4xx
//! answer other than 408/429, an empty or unsupported body. Anything else
//! (network, DNS, timeouts, 5xx, 408, 429) is retried with the ingestion
//! backoff.
//!
//! Uploading a URL again (as a new version of its document) fetches it
//! again. Bytes equal to an earlier version's are not short-cut: they become
//! a version like any other, whose chunks all reuse their stored embeddings
//! (no model calls), so its history shows when the page was last fetched.
//!
//! Must not: fetch on the request path, or reach the network except through
//! [`Outbound`].

use std::net::IpAddr;

use agentry_db::knowledge::{JobRow, VersionContent};
use agentry_search::parse;
use reqwest::Url;

use super::ingest::Failure;
use super::{Error, Knowledge, hex_sha256};
use crate::outbound::{Outbound, OutboundError};

/// Longest URL accepted at upload.
const MAX_URL_CHARS: usize = 2048;

/// The upload-time judgement of a URL; errors name the `url` field.
pub(super) fn check_upload_url(outbound: &Outbound, raw: &str) -> Result<Url, Error> {
    if raw.len() > MAX_URL_CHARS {
        return Err(Error::invalid(format!("the URL is longer than {MAX_URL_CHARS} characters"), "url"));
    }
    let url = outbound.check(raw).map_err(|e| Error::invalid(describe(&e), "url"))?;
    // The URL becomes the document's source, which every reader sees.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid("the URL must not contain a user name or password", "url"));
    }
    Ok(url)
}

/// A fetch error as the user who gave the URL reads it.
pub(super) fn describe(error: &OutboundError) -> String {
    const ALLOWLIST: &str = "an operator can allowlist it in knowledge.url_fetch.allow";
    match error {
        OutboundError::InvalidUrl(reason) => format!("the URL is not valid: {reason}"),
        OutboundError::SchemeNotAllowed(scheme) => format!("the URL's scheme {scheme:?} is not allowed; use http or https"),
        OutboundError::AddressNotAllowed { host, address } if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() => {
            format!("the URL's address {address} is not allowed (private, loopback, link-local or reserved); {ALLOWLIST}")
        }
        OutboundError::AddressNotAllowed { host, address } => {
            format!("the URL's host {host} is at {address}, which is not allowed (private, loopback, link-local or reserved); {ALLOWLIST}")
        }
        OutboundError::TooLarge { limit } => format!("the document at the URL is larger than the limit of {limit} bytes (knowledge.max_document_bytes)"),
        OutboundError::Status(status) => format!("the server answered the URL with HTTP status {status}"),
        OutboundError::TooManyRedirects(hops) => format!("the URL redirected more than {hops} times"),
        OutboundError::Timeout(limit) => format!("fetching the URL did not finish within {} s", limit.as_secs_f64()),
        OutboundError::Resolve { .. } | OutboundError::Network(_) => format!("fetching the URL failed: {error}"),
    }
}

/// Whether trying again later may succeed.
pub(super) fn transient(error: &OutboundError) -> bool {
    match error {
        OutboundError::Timeout(_) | OutboundError::Network(_) | OutboundError::Resolve { .. } => true,
        OutboundError::Status(status) => *status >= 500 || *status == 408 || *status == 429,
        OutboundError::InvalidUrl(_)
        | OutboundError::SchemeNotAllowed(_)
        | OutboundError::AddressNotAllowed { .. }
        | OutboundError::TooLarge { .. }
        | OutboundError::TooManyRedirects(_) => false,
    }
}

/// The last path segment of a URL (`guide.md`), which may name a format.
pub(super) fn file_name(url: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    url.path_segments()?.next_back().filter(|name| !name.is_empty()).map(str::to_owned)
}

impl Knowledge {
    /// Fetch the bytes of a URL version, decide their format and store both
    /// in the version; returns the format's name and the bytes.
    pub(super) async fn fetch_version(&self, job: &JobRow, url: &str) -> Result<(String, Vec<u8>), Failure> {
        let fetched = match self.inner.outbound.fetch(url).await {
            Ok(fetched) => fetched,
            Err(error) => {
                let retry = transient(&error);
                let outcome = if retry { "retry" } else { "failed" };
                metrics::counter!("knowledge_url_fetches_total", "outcome" => outcome).increment(1);
                tracing::info!(document = %job.document_id, version = job.version, %error, outcome, "fetching a document's URL failed");
                let reason = describe(&error);
                return Err(if retry { Failure::Retry(reason) } else { Failure::Permanent(reason) });
            }
        };
        metrics::counter!("knowledge_url_fetches_total", "outcome" => "fetched").increment(1);
        if fetched.bytes.is_empty() {
            return Err(Failure::Permanent("the URL answered with an empty document".into()));
        }
        // The client's own cap may be larger if it is shared with other callers.
        let limit = self.inner.settings.max_document_bytes;
        if fetched.bytes.len() > limit {
            return Err(Failure::Permanent(describe(&OutboundError::TooLarge { limit })));
        }
        let name = file_name(&fetched.final_url);
        let format = parse::sniff(&fetched.bytes, name.as_deref(), fetched.content_type.as_deref()).map_err(|e| Failure::Permanent(e.to_string()))?;
        let hash = hex_sha256(&fetched.bytes);
        let db = &self.inner.db;
        if !db.store_fetched_content(&job.document_id, job.version, format.as_str(), &hash, &fetched.bytes, crate::identity::now_ms()).await? {
            // A worker that held this job before stored its fetch first: ingest that.
            return match db.version_content(&job.document_id, job.version).await? {
                Some(VersionContent::Stored { format, bytes }) => Ok((format, bytes)),
                _ => Err(Failure::Retry("the fetched document could not be stored".into())),
            };
        }
        tracing::info!(document = %job.document_id, version = job.version, bytes = fetched.bytes.len(), format = format.as_str(), "fetched a document's URL");
        Ok((format.as_str().to_owned(), fetched.bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::outbound::OutboundPolicy;

    #[test]
    fn upload_check_refuses_with_the_url_param() {
        let outbound = Outbound::new(OutboundPolicy::default()).unwrap();
        for (url, says) in [
            ("file:///etc/passwd", "scheme \"file\" is not allowed"),
            ("not a url", "not valid"),
            ("http://127.0.0.1:9/x", "address 127.0.0.1 is not allowed"),
            ("http://[::1]/x", "address ::1 is not allowed"),
            ("https://user:secret@example.com/", "user name or password"),
        ] {
            match check_upload_url(&outbound, url) {
                Err(Error::Invalid { message, param }) => assert!(param.as_deref() == Some("url") && message.contains(says), "{url}: {message}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        assert_eq!(check_upload_url(&outbound, "https://example.com/a.md").unwrap().as_str(), "https://example.com/a.md");
    }

    #[test]
    fn transient_errors_are_retried_and_the_rest_fail() {
        for error in [OutboundError::Status(503), OutboundError::Status(429), OutboundError::Timeout(Duration::from_secs(1)), OutboundError::Network("reset".into())] {
            assert!(transient(&error), "{error}");
        }
        for error in [OutboundError::Status(404), OutboundError::TooLarge { limit: 1 }, OutboundError::TooManyRedirects(5)] {
            assert!(!transient(&error), "{error}");
        }
        assert!(describe(&OutboundError::Status(404)).contains("404"));
    }

    #[test]
    fn file_names_come_from_the_last_path_segment() {
        assert_eq!(file_name("https://example.com/docs/guide.md?x=1").as_deref(), Some("guide.md"));
        assert_eq!(file_name("https://example.com/docs/"), None);
        assert_eq!(file_name("https://example.com"), None);
    }
}
