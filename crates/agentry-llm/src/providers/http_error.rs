//! Turning HTTP failures into [`LlmError`]: status + message from the body,
//! `Retry-After` (seconds or HTTP date, and `retry-after-ms`); and reqwest
//! errors as text without their URL.

use std::time::Duration;

use super::upstream::Response;
use crate::LlmError;

/// A reqwest error's cause chain as text, without reqwest's own message,
/// which names the URL (it may carry secrets in query strings).
pub fn without_url(error: &reqwest::Error) -> String {
    if let Some(source) = std::error::Error::source(error) {
        return causes(source);
    }
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_redirect() {
        "redirect failed"
    } else if error.is_body() || error.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    what.to_owned()
}

/// An error and its causes as one line, joined by ": ".
pub(crate) fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Read an error response's status, message and retry hint.
pub(crate) async fn status_error(upstream: &str, response: Response) -> LlmError {
    let status = response.status.as_u16();
    let retry_after = retry_after(&response.headers);
    if response.status.is_redirection() {
        let location = response.headers.get(http::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("nowhere");
        let message = format!("redirected ({status}) to {location}; redirects are not followed: set base_url to the final address");
        return LlmError::Upstream { upstream: upstream.to_owned(), status, message, retry_after };
    }
    let body = response.bytes().await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.pointer("/error/message").or_else(|| v.pointer("/message")).and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect());
    LlmError::Upstream { upstream: upstream.to_owned(), status, message, retry_after }
}

fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers.get("retry-after-ms").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok()) {
        return (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0));
    }
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderMap, HeaderValue};

    #[test]
    fn parses_seconds_and_ms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
    }

    #[test]
    fn parses_http_date_in_the_past_as_zero() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }
}
