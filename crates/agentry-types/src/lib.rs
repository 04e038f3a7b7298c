//! Shared vocabulary of the workspace: chat messages, usage, error codes,
//! permissions and built-in roles, statuses and audit actions.
//!
//! Pure data. This crate does no I/O and depends on nothing but serde
//! (and utoipa, to describe its types to the OpenAPI document), so every
//! other crate can use it without pulling in a runtime.

pub mod access;
pub mod audit_action;
pub mod chat;
pub mod error_code;
pub mod status;
pub mod traces;
pub mod wire_enum;

pub use access::{BuiltinRole, Permission, PermissionSet, UnknownName};
pub use audit_action::AuditAction;
pub use chat::{ChatMessage, ContentPart, FinishReason, ImageUrl, MessageContent, Role, Usage};
pub use error_code::ErrorCode;
pub use status::{BatchStatus, DocumentStatus, EventType, InvitationStatus, InvoiceStatus, JobKind, JobStatus, RunStatus, SummaryStatus, ToolCallStatus};
pub use wire_enum::UnknownVariant;
