//! Request extractors that fail with the API's error envelope instead of
//! axum's plain-text rejections.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use agentry_types::ErrorCode;

/// A JSON body. Accepted with or without a JSON content type (curl's `-d`
/// sends form encoding). Syntax errors → 400 `invalid_json`; wrong types or
/// missing fields → 400 `invalid_request` naming the field in `param`;
/// bodies over the limit → 413; a body is an object. A float without a
/// fractional part (`1.0`) is read as a whole number where one is expected,
/// as JSON Schema counts it.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
            } else {
                ApiError::bad_request(format!("could not read the request body: {rejection}"), "body")
            }
        })?;
        Ok(Self(parse_reading_whole_floats(&bytes)?))
    }
}

/// Bodies up to this size may have whole floats rewritten (they are small
/// in practice; a bound keeps a retry's cost to a few small parses).
const MAX_REWRITTEN_BODY: usize = 64 * 1024;
/// At most this many floats rewritten in one body.
const MAX_REWRITES: usize = 16;

/// [`parse`], reading a float without a fractional part (`207.0`) as the
/// whole number where one is expected, as JSON Schema counts it: when the
/// parser refuses a float for an integer, that one token is rewritten in a
/// copy of the body and the body parsed again. Nothing else in the body
/// changes (free-form JSON keeps its `1.0`).
fn parse_reading_whole_floats<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut body = std::borrow::Cow::Borrowed(bytes);
    for _ in 0..MAX_REWRITES {
        match parse::<T>(&body) {
            Err(Refusal { error, whole_float_ends_at: Some(end) }) if bytes.len() <= MAX_REWRITTEN_BODY => {
                body = std::borrow::Cow::Owned(as_whole_number(&body, end).ok_or(error)?);
            }
            other => return other.map_err(|refusal| refusal.error),
        }
    }
    parse::<T>(&body).map_err(|refusal| refusal.error)
}

/// Why a body was refused, and where a refused whole float ends (a byte offset).
struct Refusal {
    error: ApiError,
    whole_float_ends_at: Option<usize>,
}

/// `bytes` as a `T`, or the error naming the field at fault. The body is
/// an object: serde would also read a struct from an array of its fields.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Refusal> {
    let refuse = |error| Refusal { error, whole_float_ends_at: None };
    if bytes.trim_ascii_start().starts_with(b"[") {
        return Err(refuse(ApiError::bad_request("the request body must be a JSON object", "body")));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof | serde_json::error::Category::Io => {
                refuse(ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid JSON: {inner}")))
            }
            serde_json::error::Category::Data => {
                let param = if path == "." { "body".to_owned() } else { path };
                let whole_float_ends_at = refused_float(&inner).filter(|f| f.fract() == 0.0).map(|_| offset(bytes, inner.line(), inner.column()));
                Refusal { error: ApiError::bad_request(format!("invalid value for '{param}': {inner}"), &param), whole_float_ends_at }
            }
        }
    })?;
    deserializer.end().map_err(|e| refuse(ApiError::new(ErrorCode::InvalidJson, format!("trailing characters after the JSON body: {e}"))))?;
    Ok(value)
}

/// The float serde refused for another type, from its message
/// (``invalid type: floating point `207.0`, expected u64``).
fn refused_float(error: &serde_json::Error) -> Option<f64> {
    let message = error.to_string();
    let rest = message.strip_prefix("invalid type: floating point `")?;
    rest[..rest.find('`')?].parse().ok()
}

/// The byte offset of a 1-based line and a column counted in bytes, as serde_json reports positions.
fn offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start = bytes.split_inclusive(|b| *b == b'\n').take(line.saturating_sub(1)).map(<[u8]>::len).sum::<usize>();
    (line_start + column).min(bytes.len())
}

/// `bytes` with the number token that ends at `end` written as a whole
/// number, when it is a float without a fractional part that an `i64` holds exactly.
fn as_whole_number(bytes: &[u8], end: usize) -> Option<Vec<u8>> {
    let start = bytes[..end].iter().rposition(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')).map_or(0, |i| i + 1);
    let token = std::str::from_utf8(&bytes[start..end]).ok()?;
    let value: f64 = token.parse().ok()?;
    if token.is_empty() || value.fract() != 0.0 || value.abs() > 9_007_199_254_740_992.0 {
        return None;
    }
    let mut rewritten = Vec::with_capacity(bytes.len());
    rewritten.extend_from_slice(&bytes[..start]);
    rewritten.extend_from_slice((value as i64).to_string().as_bytes());
    rewritten.extend_from_slice(&bytes[end..]);
    Some(rewritten)
}

/// The query of a paged list: `limit` and `after` (see `agentry_core::page`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<i64>,
    after: Option<String>,
}

impl PageQuery {
    /// The page of a list whose query has other parameters besides these.
    pub fn new(limit: Option<i64>, after: Option<String>) -> Self {
        Self { limit, after }
    }

    pub fn page(&self) -> Result<agentry_core::page::PageRequest, ApiError> {
        Ok(agentry_core::page::PageRequest::parse(self.limit, self.after.as_deref())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Tier {
        concurrent: Option<u64>,
        limit: Option<i32>,
        #[serde(default)]
        metadata: serde_json::Value,
    }

    #[test]
    fn whole_floats_are_read_as_integers_and_nothing_else_changes() {
        let body = b"{\n  \"metadata\": {\"price\": 1.0},\n  \"concurrent\": 207.0,\n  \"limit\": -2e1\n}";
        let tier: Tier = parse_reading_whole_floats(body).map_err(|e| e.message).unwrap();
        assert_eq!((tier.concurrent, tier.limit), (Some(207), Some(-20)));
        assert_eq!(tier.metadata.to_string(), r#"{"price":1.0}"#, "free-form JSON keeps its floats");
    }

    #[test]
    fn fractions_and_other_refusals_keep_their_error() {
        for (body, param) in
            [(&br#"{"concurrent": 2.5}"#[..], "concurrent"), (br#"{"concurrent": 1e300}"#, "concurrent"), (br#"{"limit": "invalid type: floating point `1.0`"}"#, "limit")]
        {
            let error = parse_reading_whole_floats::<Tier>(body).unwrap_err();
            assert_eq!(error.param.as_deref(), Some(param), "{}", error.message);
        }
        let error = parse_reading_whole_floats::<Tier>(b"[1, 2, null]").unwrap_err();
        assert_eq!(error.param.as_deref(), Some("body"), "{}", error.message);
    }

    #[test]
    fn large_bodies_are_not_rewritten() {
        let padding = "x".repeat(MAX_REWRITTEN_BODY);
        let body = format!(r#"{{"concurrent": 3.0, "metadata": "{padding}"}}"#);
        let error = parse_reading_whole_floats::<Tier>(body.as_bytes()).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("concurrent"), "{}", error.message);
    }
}
