//! The one error of the domain services (identity, usage, knowledge,
//! agents): what went wrong, in words safe to show to the caller, and the
//! [`ErrorCode`] it answers with. How a code is rendered (HTTP status,
//! OpenAI's error `type`) is the table in `agentry_types::ErrorCode`;
//! every wire dialect renders that table in its own shape.
//!
//! Must not: know HTTP or any wire format, or carry internals in a message
//! that reaches callers (faults keep their detail for the log).

use std::time::Duration;

use agentry_db::DbError;
use agentry_search::index::IndexError;
use agentry_types::ErrorCode;

/// Why a domain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is wrong: `param` names the field when one is at fault.
    #[error("{message}")]
    Invalid { message: String, param: Option<String> },
    /// Absent, or present where the caller cannot see it (both answer 404).
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// A conflict whose message says what to do instead.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooLarge(String),
    /// Well-formed but cannot be processed (a document no parser reads).
    #[error("{0}")]
    Unprocessable(String),
    /// Too many of something (sign-in failures excepted) for now.
    #[error("{message}")]
    RateLimited { message: String, retry_after: Duration },
    /// Wrong email or password (never says which).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Too many failed sign-ins: retry after the given time.
    #[error("too many failed attempts; retry later")]
    Locked { retry_after: Duration },
    #[error("access token expired")]
    TokenExpired,
    #[error("invalid token: {0}")]
    TokenInvalid(String),
    #[error("invalid API key")]
    InvalidApiKey,
    /// The tenant requires a second factor this session did not pass.
    #[error("this tenant requires multi-factor authentication: enrol a second factor and sign in again")]
    MfaRequired,
    /// The input has images and the model cannot see.
    #[error("{0}")]
    ModelCannotSee(String),
    /// A dependency (a model, the coordination store) is not available now.
    #[error("{0}")]
    Unavailable(String),
    /// An external tool server (MCP) could not be reached or answered wrongly.
    #[error("{0}")]
    ToolUnavailable(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("search index: {0}")]
    Index(#[from] IndexError),
    /// A fault of ours; the detail is for the log only.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// A request error naming the field at fault.
    pub fn invalid(message: impl Into<String>, param: &str) -> Self {
        Self::Invalid { message: message.into(), param: Some(param.to_owned()) }
    }

    /// The code this error answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { .. } => ErrorCode::InvalidRequest,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::AlreadyExists(_) | Self::Conflict(_) => ErrorCode::Conflict,
            Self::Forbidden(_) => ErrorCode::PermissionDenied,
            Self::TooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::Unprocessable(_) => ErrorCode::UnprocessableEntity,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::Locked { .. } => ErrorCode::AccountLocked,
            Self::TokenExpired => ErrorCode::TokenExpired,
            Self::TokenInvalid(_) => ErrorCode::InvalidToken,
            Self::InvalidApiKey => ErrorCode::InvalidApiKey,
            Self::MfaRequired => ErrorCode::MfaRequired,
            Self::ModelCannotSee(_) => ErrorCode::ModelCannotSee,
            Self::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Self::Db(e) if e.is_unreachable() => ErrorCode::ServiceUnavailable,
            Self::ToolUnavailable(_) => ErrorCode::UpstreamError,
            Self::Db(_) | Self::Index(_) | Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// The field at fault, if one is.
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::Invalid { param, .. } => param.as_deref(),
            Self::ModelCannotSee(_) => Some("input"),
            _ => None,
        }
    }

    /// When the caller may try again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Locked { retry_after } => Some(*retry_after),
            Self::Unavailable(_) => Some(Duration::from_secs(1)),
            Self::Db(e) if e.is_unreachable() => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// The message a caller sees: the error's own words, except for faults.
    pub fn public_message(&self) -> String {
        match self {
            Self::InvalidApiKey => "Incorrect API key provided.".to_owned(),
            Self::Db(e) if e.is_unreachable() => "the database is not answering; try again shortly".to_owned(),
            Self::Db(_) | Self::Index(_) | Self::Internal(_) => "internal server error".to_owned(),
            other => other.to_string(),
        }
    }
}
