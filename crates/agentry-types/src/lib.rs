//! Shared vocabulary of the workspace: chat messages, usage, error codes,
//! permissions and built-in roles.
//!
//! Pure data. This crate does no I/O and depends on nothing but serde, so
//! every other crate can use it without pulling in a runtime.

pub mod access;
pub mod chat;
pub mod error_code;

pub use access::{BuiltinRole, Permission, PermissionSet, UnknownName};
pub use chat::{ChatMessage, ContentPart, FinishReason, ImageUrl, MessageContent, Role, Usage};
pub use error_code::ErrorCode;
