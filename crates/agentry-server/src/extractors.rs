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
/// bodies over the limit → 413; a body is an object. A float without a fractional part (`1.0`)
/// is read as a whole number where one is expected, as JSON Schema counts it.
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
        let value = match parse::<T>(&bytes) {
            // JSON Schema counts `1.0` as an integer: read integral floats as whole numbers and try again.
            Err(error) if error.message.contains("invalid type: floating point") => {
                let mut tree: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| error)?;
                whole_numbers(&mut tree);
                parse::<T>(&serde_json::to_vec(&tree).unwrap_or_default())?
            }
            other => other?,
        };
        Ok(Self(value))
    }
}

/// `bytes` as a `T`, or the error naming the field at fault. Every body is
/// an object: serde would also read a struct from an array of its fields.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.trim_ascii_start().starts_with(b"[") {
        return Err(ApiError::bad_request("the request body must be a JSON object", "body"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof | serde_json::error::Category::Io => {
                ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid JSON: {inner}"))
            }
            serde_json::error::Category::Data => {
                let param = if path == "." { "body".to_owned() } else { path };
                ApiError::bad_request(format!("invalid value for '{param}': {inner}"), &param)
            }
        }
    })?;
    deserializer.end().map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("trailing characters after the JSON body: {e}")))?;
    Ok(value)
}

/// Floats without a fractional part (`207.0`) become integers, everywhere in `value`.
fn whole_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(number) => {
            if let Some(float) = number.as_f64().filter(|f| number.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15) {
                *number = serde_json::Number::from(float as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// The query of a paged list: `limit` and `after` (see `agentry_core::page`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<i64>,
    after: Option<String>,
}

impl PageQuery {
    pub fn page(&self) -> Result<agentry_core::page::PageRequest, ApiError> {
        Ok(agentry_core::page::PageRequest::parse(self.limit, self.after.as_deref())?)
    }
}
