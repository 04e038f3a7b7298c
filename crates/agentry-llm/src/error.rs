//! The one error type of the model layer, and which errors are worth a retry.

use std::time::Duration;

/// What went wrong talking to a model.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The upstream answered with an error status.
    #[error("upstream {upstream} returned {status}: {message}")]
    Upstream { upstream: String, status: u16, message: String, retry_after: Option<Duration> },
    /// The upstream could not be reached (connect, DNS, reset before a response).
    #[error("could not reach upstream {upstream}: {message}")]
    Connect { upstream: String, message: String },
    /// The call took longer than the configured timeout.
    #[error("upstream {upstream} timed out after {after:?}")]
    Timeout { upstream: String, after: Duration },
    /// The upstream's circuit breaker is open: the call was not attempted.
    #[error("upstream {upstream} is unavailable (circuit open)")]
    CircuitOpen { upstream: String },
    /// The request asks for something this model cannot do (tools on a local model, images on a text model…).
    #[error("{message}")]
    Unsupported { message: String, param: Option<String> },
    /// The request is malformed for this model (empty messages, prompt longer than the context window…).
    #[error("{message}")]
    InvalidRequest { message: String, param: Option<String> },
    /// No model of that name is configured.
    #[error("model '{0}' does not exist")]
    ModelNotFound(String),
    /// The upstream sent something that does not parse.
    #[error("upstream {upstream} sent an invalid response: {message}")]
    Protocol { upstream: String, message: String },
    /// A local model failed (file missing, tensor error).
    #[error("local model error: {0}")]
    Local(String),
}

impl LlmError {
    /// Errors a retry can fix: connection failures, timeouts, 408, 409, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Upstream { status, .. } => matches!(*status, 408 | 409 | 429) || *status >= 500,
            Self::Connect { .. } | Self::Timeout { .. } => true,
            Self::CircuitOpen { .. } | Self::Unsupported { .. } | Self::InvalidRequest { .. } | Self::ModelNotFound(_) | Self::Protocol { .. } | Self::Local(_) => false,
        }
    }

    /// Errors that mean "this upstream is unhealthy" and should count against its breaker.
    pub fn counts_against_breaker(&self) -> bool {
        match self {
            Self::Upstream { status, .. } => *status >= 500 || *status == 429,
            Self::Connect { .. } | Self::Timeout { .. } | Self::Protocol { .. } => true,
            Self::CircuitOpen { .. } | Self::Unsupported { .. } | Self::InvalidRequest { .. } | Self::ModelNotFound(_) | Self::Local(_) => false,
        }
    }

    /// Errors after which the next model in a fallback chain should be tried.
    pub fn allows_fallback(&self) -> bool {
        self.is_retryable() || matches!(self, Self::CircuitOpen { .. } | Self::Protocol { .. } | Self::Local(_))
    }

    /// The server-requested wait before retrying, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Upstream { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
