//! Files and batches as OpenAI shows them: `file` and `batch` objects
//! (times in seconds since the epoch) and its `list` pages.
//!
//! Must not: read storage.

use agentry_db::batches::{BatchRecord, FileRecord};
use agentry_types::BatchStatus;
use serde::Serialize;

/// A `file` object.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FileObject {
    pub id: String,
    /// Always `file`.
    pub object: &'static str,
    pub bytes: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub filename: String,
    /// `batch` (uploaded input) or `batch_output` (a batch's output or error file).
    pub purpose: String,
    /// Always `processed` (a file is listed once all of it is stored).
    pub status: &'static str,
    /// Always null.
    #[schema(value_type = Option<String>)]
    pub status_details: Option<()>,
}

impl From<&FileRecord> for FileObject {
    fn from(f: &FileRecord) -> Self {
        Self {
            id: f.id.clone(),
            object: "file",
            bytes: f.bytes,
            created_at: f.created_at_ms / 1000,
            expires_at: f.expires_at_ms / 1000,
            filename: f.filename.clone(),
            purpose: f.purpose.clone(),
            status: "processed",
            status_details: None,
        }
    }
}

/// A `batch` object.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchObject {
    pub id: String,
    /// Always `batch`.
    pub object: &'static str,
    pub endpoint: String,
    pub errors: Option<BatchErrors>,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: BatchStatus,
    /// The answered lines (`null` until the batch ends, or when none was answered).
    pub output_file_id: Option<String>,
    /// The failed lines, and lines never run when the batch was cancelled or expired.
    pub error_file_id: Option<String>,
    pub created_at: i64,
    pub in_progress_at: Option<i64>,
    pub expires_at: i64,
    pub finalizing_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub expired_at: Option<i64>,
    pub cancelling_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub request_counts: RequestCounts,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// How many lines a batch has, and how many were answered or failed.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct RequestCounts {
    pub total: i64,
    pub completed: i64,
    pub failed: i64,
}

/// Why a batch failed, as a `list`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BatchErrors {
    /// Always `list`.
    pub object: String,
    pub data: Vec<BatchErrorItem>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BatchErrorItem {
    pub code: String,
    pub message: String,
}

impl BatchErrors {
    pub fn one(code: &str, message: &str) -> Self {
        Self { object: "list".into(), data: vec![BatchErrorItem { code: code.into(), message: message.into() }] }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn secs(ms: Option<i64>) -> Option<i64> {
    ms.map(|ms| ms / 1000)
}

impl From<&BatchRecord> for BatchObject {
    fn from(b: &BatchRecord) -> Self {
        Self {
            id: b.id.clone(),
            object: "batch",
            endpoint: b.endpoint.clone(),
            errors: b.errors.as_deref().and_then(|e| serde_json::from_str(e).ok()),
            input_file_id: b.input_file_id.clone(),
            completion_window: b.completion_window.clone(),
            status: b.status,
            output_file_id: b.output_file_id.clone(),
            error_file_id: b.error_file_id.clone(),
            created_at: b.created_at_ms / 1000,
            in_progress_at: secs(b.in_progress_at_ms),
            expires_at: b.expires_at_ms / 1000,
            finalizing_at: secs(b.finalizing_at_ms),
            completed_at: secs(b.completed_at_ms),
            failed_at: secs(b.failed_at_ms),
            expired_at: secs(b.expired_at_ms),
            cancelling_at: secs(b.cancelling_at_ms),
            cancelled_at: secs(b.cancelled_at_ms),
            request_counts: RequestCounts { total: b.total, completed: b.completed, failed: b.failed },
            metadata: b.metadata.as_deref().and_then(|m| serde_json::from_str(m).ok()),
        }
    }
}

/// A page of a `list`, in OpenAI's form.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ListPage<T> {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    /// Whether more follow `last_id` (pass it as `after`).
    pub has_more: bool,
}

impl<T> ListPage<T> {
    /// A page of up to `limit` from `rows` (fetched one more than `limit` to know whether more follow).
    pub fn new(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> String) -> Self {
        let has_more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        Self { object: "list", first_id: rows.first().map(&id), last_id: rows.last().map(&id), data: rows, has_more }
    }
}
