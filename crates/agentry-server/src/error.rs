//! The one error type of the HTTP layer and its envelope, OpenAI's:
//! `{"error": {"message", "type", "code", "param"}, "request_id"}`.
//!
//! Handlers return `ApiError`; it becomes a response carrying the error in an
//! extension, and the `error_envelope` middleware renders the body with the
//! request id. Status and `type` come from the code's row in the one table
//! (`agentry_types::ErrorCode`); domain errors arrive as `agentry_core::Error`
//! and keep their code. 5xx bodies never carry internals: the detail goes to
//! the log.

use agentry_core::Error;
use agentry_core::coord::RateDecision;
use agentry_core::gateway::GatewayError;
use agentry_core::usage::{Refusal, nusd_to_usd};
use agentry_llm::LlmError;
use agentry_types::ErrorCode;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub param: Option<String>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// Rate-limit state for `RateLimit-*` headers.
    pub rate_limit: Option<Box<RateDecision>>,
}

impl ApiError {
    /// An error answering with `code` (and its status).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self { status, code, message: message.into(), param: None, retry_after: None, rate_limit: None }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn bad_request(message: impl Into<String>, param: &str) -> Self {
        Self::new(ErrorCode::InvalidRequest, message).with_param(param)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// A dependency is down; the client may retry after a second.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { retry_after: Some(1), ..Self::new(ErrorCode::ServiceUnavailable, message) }
    }

    /// A server fault: logs `detail`, answers a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::InternalError, "internal server error")
    }

    /// The JSON body, with the request id when known.
    pub fn body(&self, request_id: Option<&str>) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.code.error_type(),
                "code": self.code.as_str(),
                "param": self.param,
            },
            "request_id": request_id,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body(None))).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(decision) = &self.rate_limit {
            rate_limit_headers(response.headers_mut(), decision);
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl From<LlmError> for ApiError {
    fn from(error: LlmError) -> Self {
        match error {
            LlmError::ModelNotFound(model) => Self::new(ErrorCode::ModelNotFound, format!("The model '{model}' does not exist")).with_param("model"),
            LlmError::Unsupported { message, param } | LlmError::InvalidRequest { message, param } => Self { param, ..Self::new(ErrorCode::UnsupportedParameter, message) },
            LlmError::Upstream { status: 429, retry_after, upstream, .. } => {
                tracing::warn!(%upstream, "upstream rate limit exhausted retries");
                Self { retry_after: retry_after.map(|d| d.as_secs().max(1)), ..Self::new(ErrorCode::RateLimited, "the upstream model is rate limited; retry later") }
            }
            LlmError::Upstream { status: 400, message, .. } => Self::new(ErrorCode::InvalidRequest, message),
            error @ (LlmError::Upstream { .. } | LlmError::Connect { .. } | LlmError::Protocol { .. }) => {
                tracing::warn!(%error, "upstream failure");
                Self::new(ErrorCode::UpstreamError, "the upstream model provider failed")
            }
            LlmError::Timeout { after, .. } => Self::new(ErrorCode::UpstreamTimeout, format!("the upstream model did not answer within {:.1}s", after.as_secs_f64())),
            LlmError::CircuitOpen { upstream } => {
                Self { retry_after: Some(5), ..Self::new(ErrorCode::ServiceUnavailable, format!("upstream '{upstream}' is unavailable; retry later")) }
            }
            LlmError::Local(detail) => Self::internal(detail),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let code = error.code();
        if code == ErrorCode::InternalError {
            return Self::internal(error);
        }
        Self { param: error.param().map(str::to_owned), retry_after: error.retry_after().map(|d| d.as_secs().max(1)), ..Self::new(code, error.public_message()) }
    }
}

/// IETF `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds).
pub fn rate_limit_headers(headers: &mut HeaderMap, decision: &RateDecision) {
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(decision.reset.as_secs_f64().ceil() as u64));
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::RateLimited(r) => Self {
                retry_after: Some(r.decision.retry_after.as_secs_f64().ceil().max(1.0) as u64),
                rate_limit: Some(Box::new(r.decision)),
                ..Self::new(
                    ErrorCode::RateLimited,
                    format!(
                        "Rate limit reached for the {} '{}' tier: {} limit {} exceeded; retry in {:.1}s.",
                        r.scope.as_str(),
                        r.tier,
                        r.dimension,
                        r.decision.limit,
                        r.decision.retry_after.as_secs_f64()
                    ),
                )
            },
            Refusal::Budget(b) => Self {
                retry_after: Some(b.resets_in.as_secs().max(1)),
                ..Self::new(
                    ErrorCode::InsufficientQuota,
                    format!(
                        "You exceeded your budget: the {} is ${:.6}, ${:.6} is spent or reserved; it resets in {}s or when the budget is raised.",
                        b.budget,
                        nusd_to_usd(b.limit_nusd),
                        nusd_to_usd(b.spent_nusd),
                        b.resets_in.as_secs()
                    ),
                )
            },
        }
    }
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        match error {
            GatewayError::Llm(e) => e.into(),
            GatewayError::Refused(r) => r.into(),
            GatewayError::Usage(e) => e.into(),
        }
    }
}
