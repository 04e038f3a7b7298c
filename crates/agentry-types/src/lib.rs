//! Shared vocabulary of the workspace: chat messages, usage and error codes.
//!
//! Pure data. This crate does no I/O and depends on nothing but serde, so
//! every other crate can use it without pulling in a runtime.

pub mod chat;
pub mod error_code;

pub use chat::{ChatMessage, ContentPart, FinishReason, ImageUrl, MessageContent, Role, Usage};
pub use error_code::ErrorCode;
