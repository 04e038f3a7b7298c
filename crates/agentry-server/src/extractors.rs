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
/// bodies over the limit → 413.
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
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
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
        Ok(Self(value))
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
