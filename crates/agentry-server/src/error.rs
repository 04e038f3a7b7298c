//! The one error type of the HTTP layer and its envelope, OpenAI's:
//! `{"error": {"message", "type", "code", "param"}, "request_id"}`.
//!
//! Handlers return `ApiError`; it becomes a response carrying the error in an
//! extension, and the `error_envelope` middleware renders the body with the
//! request id. 5xx bodies never carry internals: the detail goes to the log.

use agentry_core::IdentityError;
use agentry_core::agents::AgentsError;
use agentry_core::coord::RateDecision;
use agentry_core::gateway::GatewayError;
use agentry_core::knowledge::KnowledgeError;
use agentry_core::usage::{Refusal, UsageError, nusd_to_usd};
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
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), param: None, retry_after: None, rate_limit: None }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn bad_request(message: impl Into<String>, param: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message).with_param(param)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::PermissionDenied, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }

    /// A dependency is down; the client may retry after a second.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::ServiceUnavailable, message) }
    }

    /// A server fault: logs `detail`, answers a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::InternalError, "internal server error")
    }

    /// OpenAI's error `type` for this status.
    fn error_type(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 | 400 | 409 | 413 | 415 | 422 => "invalid_request_error",
            429 => "rate_limit_error",
            503 => "service_unavailable_error",
            _ => "server_error",
        }
    }

    /// The JSON body, with the request id when known.
    pub fn body(&self, request_id: Option<&str>) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.error_type(),
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
        use StatusCode as S;
        match error {
            LlmError::ModelNotFound(model) => Self::new(S::NOT_FOUND, ErrorCode::ModelNotFound, format!("The model '{model}' does not exist")).with_param("model"),
            LlmError::Unsupported { message, param } | LlmError::InvalidRequest { message, param } => {
                let code = ErrorCode::UnsupportedParameter;
                Self { status: S::BAD_REQUEST, code, message, param, retry_after: None, rate_limit: None }
            }
            LlmError::Upstream { status: 429, retry_after, upstream, .. } => {
                tracing::warn!(%upstream, "upstream rate limit exhausted retries");
                Self {
                    retry_after: retry_after.map(|d| d.as_secs().max(1)),
                    ..Self::new(S::TOO_MANY_REQUESTS, ErrorCode::RateLimited, "the upstream model is rate limited; retry later")
                }
            }
            LlmError::Upstream { status: 400, message, .. } => Self::new(S::BAD_REQUEST, ErrorCode::InvalidRequest, message),
            error @ (LlmError::Upstream { .. } | LlmError::Connect { .. } | LlmError::Protocol { .. }) => {
                tracing::warn!(%error, "upstream failure");
                Self::new(S::BAD_GATEWAY, ErrorCode::UpstreamError, "the upstream model provider failed")
            }
            LlmError::Timeout { after, .. } => {
                Self::new(S::GATEWAY_TIMEOUT, ErrorCode::UpstreamTimeout, format!("the upstream model did not answer within {:.1}s", after.as_secs_f64()))
            }
            LlmError::CircuitOpen { upstream } => {
                Self { retry_after: Some(5), ..Self::new(S::SERVICE_UNAVAILABLE, ErrorCode::ServiceUnavailable, format!("upstream '{upstream}' is unavailable; retry later")) }
            }
            LlmError::Local(detail) => Self::internal(detail),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        use StatusCode as S;
        match error {
            IdentityError::InvalidCredentials => Self::new(S::UNAUTHORIZED, ErrorCode::InvalidCredentials, error.to_string()),
            IdentityError::Locked { retry_after } => {
                Self { retry_after: Some(retry_after.as_secs().max(1)), ..Self::new(S::TOO_MANY_REQUESTS, ErrorCode::AccountLocked, error.to_string()) }
            }
            IdentityError::TokenExpired => Self::new(S::UNAUTHORIZED, ErrorCode::TokenExpired, error.to_string()),
            IdentityError::TokenInvalid(_) => Self::new(S::UNAUTHORIZED, ErrorCode::InvalidToken, error.to_string()),
            IdentityError::InvalidApiKey => Self::new(S::UNAUTHORIZED, ErrorCode::InvalidApiKey, "Incorrect API key provided."),
            IdentityError::MfaRequired => Self::new(S::FORBIDDEN, ErrorCode::MfaRequired, error.to_string()),
            IdentityError::Forbidden(message) => Self::forbidden(message),
            IdentityError::NotFound(_) => Self::not_found(error.to_string()),
            IdentityError::Conflict(_) => Self::conflict(error.to_string()),
            IdentityError::ConflictDetail(message) => Self::conflict(message),
            IdentityError::RateLimited { message, retry_after } => {
                Self { retry_after: Some(retry_after.as_secs().max(1)), ..Self::new(S::TOO_MANY_REQUESTS, ErrorCode::RateLimited, message) }
            }
            IdentityError::Invalid { message, param } => Self { status: S::BAD_REQUEST, code: ErrorCode::InvalidRequest, message, param, retry_after: None, rate_limit: None },
            IdentityError::Db(e) => Self::internal(e),
            IdentityError::Internal(detail) => Self::internal(detail),
        }
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
                    StatusCode::TOO_MANY_REQUESTS,
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
                    StatusCode::TOO_MANY_REQUESTS,
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

impl From<UsageError> for ApiError {
    fn from(error: UsageError) -> Self {
        match error {
            UsageError::Invalid { message, param } => Self::bad_request(message, param),
            UsageError::NotFound(_) => Self::not_found(error.to_string()),
            UsageError::Conflict(message) => Self::conflict(message),
            UsageError::Forbidden(message) => Self::forbidden(message),
            UsageError::Unavailable(message) => Self::unavailable(message),
            UsageError::Db(e) => Self::internal(e),
        }
    }
}

impl From<KnowledgeError> for ApiError {
    fn from(error: KnowledgeError) -> Self {
        use StatusCode as S;
        match error {
            KnowledgeError::Invalid { message, param } => Self::bad_request(message, param),
            KnowledgeError::NotFound(_) => Self::not_found(error.to_string()),
            KnowledgeError::Conflict(message) => Self::conflict(message),
            KnowledgeError::Forbidden(message) => Self::forbidden(message),
            KnowledgeError::TooLarge(message) => Self::new(S::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge, message),
            KnowledgeError::Unprocessable(message) => Self::new(S::UNPROCESSABLE_ENTITY, ErrorCode::UnprocessableEntity, message),
            KnowledgeError::Unavailable(message) => Self::unavailable(message),
            KnowledgeError::Db(e) => Self::internal(e),
            KnowledgeError::Index(e) => Self::internal(e),
        }
    }
}

impl From<AgentsError> for ApiError {
    fn from(error: AgentsError) -> Self {
        match error {
            AgentsError::Invalid { message, param } => Self::bad_request(message, param),
            AgentsError::NotFound(_) => Self::not_found(error.to_string()),
            AgentsError::Conflict(message) => Self::conflict(message),
            AgentsError::Forbidden(message) => Self::forbidden(message),
            AgentsError::ModelCannotSee(message) => Self { param: Some("input".into()), ..Self::new(StatusCode::BAD_REQUEST, ErrorCode::ModelCannotSee, message) },
            AgentsError::ModelUnavailable(message) => Self::unavailable(message),
            AgentsError::Db(e) => Self::internal(e),
            AgentsError::Corrupt(e) => Self::internal(e),
            AgentsError::ToolUnavailable(message) => Self::new(StatusCode::BAD_GATEWAY, ErrorCode::UpstreamError, message),
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
