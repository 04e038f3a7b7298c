//! Stable, snake_case error codes shared by every API surface, and the one
//! table that says how each answers: its wire string, its HTTP status and
//! OpenAI's error `type`. Every wire dialect renders this table in its own
//! shape (OpenAI's envelope on `/v1` and `/api/v1`); nothing else decides a
//! status for an error.
//!
//! Must not: know how an envelope looks, or which domain produced the code.

use serde::Serialize;

/// Declares [`ErrorCode`] and its table in one place, so that a code cannot
/// exist without its status and type.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $wire:literal, $status:literal, $kind:literal;)*) => {
        /// A machine-readable error code; serialised as its wire string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(Self::$variant,)*];

            /// The code as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire,)* }
            }

            /// The HTTP status it answers with.
            pub fn status(self) -> u16 {
                match self { $(Self::$variant => $status,)* }
            }

            /// OpenAI's error `type` for it.
            pub fn error_type(self) -> &'static str {
                match self { $(Self::$variant => $kind,)* }
            }
        }
    };
}

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::wire_enum::string_enum(&ErrorCode::ALL.iter().map(|code| code.as_str()).collect::<Vec<_>>())
    }
}

impl utoipa::ToSchema for ErrorCode {}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

error_codes! {
    InvalidRequest => "invalid_request", 400, "invalid_request_error";
    InvalidJson => "invalid_json", 400, "invalid_request_error";
    UnsupportedParameter => "unsupported_parameter", 400, "invalid_request_error";
    /// The input has images and the model cannot see.
    ModelCannotSee => "model_cannot_see", 400, "invalid_request_error";
    InvalidApiKey => "invalid_api_key", 401, "authentication_error";
    MissingApiKey => "missing_api_key", 401, "authentication_error";
    InvalidCredentials => "invalid_credentials", 401, "authentication_error";
    InvalidToken => "invalid_token", 401, "authentication_error";
    TokenExpired => "token_expired", 401, "authentication_error";
    PermissionDenied => "permission_denied", 403, "permission_error";
    MfaRequired => "mfa_required", 403, "permission_error";
    NotFound => "not_found", 404, "invalid_request_error";
    /// The route exists, but not for this method.
    MethodNotAllowed => "method_not_allowed", 405, "invalid_request_error";
    ModelNotFound => "model_not_found", 404, "invalid_request_error";
    Conflict => "conflict", 409, "invalid_request_error";
    PayloadTooLarge => "payload_too_large", 413, "invalid_request_error";
    /// The body is not in a format the route reads (its `Content-Type`).
    UnsupportedMediaType => "unsupported_media_type", 415, "invalid_request_error";
    UnprocessableEntity => "unprocessable_entity", 422, "invalid_request_error";
    RateLimited => "rate_limit_exceeded", 429, "rate_limit_error";
    InsufficientQuota => "insufficient_quota", 429, "rate_limit_error";
    AccountLocked => "account_locked", 429, "rate_limit_error";
    InternalError => "internal_error", 500, "server_error";
    UpstreamError => "upstream_error", 502, "server_error";
    ServiceUnavailable => "service_unavailable", 503, "service_unavailable_error";
    UpstreamTimeout => "upstream_timeout", 504, "server_error";
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn wire_strings_are_unique_and_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert!((400..600).contains(&code.status()), "{code:?}");
            assert_eq!(serde_json::to_value(code).ok(), Some(serde_json::Value::String(code.as_str().to_owned())));
        }
    }
}
