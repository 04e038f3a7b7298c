//! Stable, snake_case error codes shared by every API surface. The server maps
//! each to an HTTP status and an OpenAI error `type`; this module only names them.

use serde::Serialize;

/// A machine-readable error code. Adding a variant forces every `match` in the
/// server to decide its status, so no code ends up with an accidental 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidJson,
    UnsupportedParameter,
    InvalidApiKey,
    MissingApiKey,
    InvalidCredentials,
    InvalidToken,
    TokenExpired,
    AccountLocked,
    MfaRequired,
    Conflict,
    PermissionDenied,
    NotFound,
    ModelNotFound,
    /// The input has images and the model cannot see.
    ModelCannotSee,
    PayloadTooLarge,
    UnprocessableEntity,
    RateLimited,
    InsufficientQuota,
    UpstreamError,
    UpstreamTimeout,
    ServiceUnavailable,
    InternalError,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidJson => "invalid_json",
            Self::UnsupportedParameter => "unsupported_parameter",
            Self::InvalidApiKey => "invalid_api_key",
            Self::MissingApiKey => "missing_api_key",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::AccountLocked => "account_locked",
            Self::MfaRequired => "mfa_required",
            Self::Conflict => "conflict",
            Self::PermissionDenied => "permission_denied",
            Self::NotFound => "not_found",
            Self::ModelNotFound => "model_not_found",
            Self::ModelCannotSee => "model_cannot_see",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnprocessableEntity => "unprocessable_entity",
            Self::RateLimited => "rate_limit_exceeded",
            Self::InsufficientQuota => "insufficient_quota",
            Self::UpstreamError => "upstream_error",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::ServiceUnavailable => "service_unavailable",
            Self::InternalError => "internal_error",
        }
    }
}
