//! What the API shows of a native batch and its items, built from storage
//! rows here and nowhere else.
//!
//! Must not: decide visibility (the service does).

use agentry_db::bulk::{BulkItemState, BulkRecord, BulkStateCount};
use serde::Serialize;

use super::Kind;

/// Where a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkStatus {
    /// Its items are being turned into runs or uploads.
    Submitting,
    /// Every item is submitted; some have not ended.
    InProgress,
    /// Every item has ended (succeeded, failed, cancelled or rejected).
    Completed,
    /// Cancelled: no more items are submitted; its queued runs were cancelled.
    Cancelled,
}

/// A batch's items by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BulkProgress {
    pub total: i64,
    /// Not submitted yet.
    pub pending: i64,
    /// Refused when submitted (`error` on the item says why).
    pub rejected: i64,
    pub queued: i64,
    pub running: i64,
    pub succeeded: i64,
    /// Failed, or dead after its attempts.
    pub failed: i64,
    pub cancelled: i64,
    /// Ended one way or another: succeeded, failed, cancelled or rejected.
    pub done: i64,
}

impl BulkProgress {
    pub(super) fn of(counts: &[BulkStateCount]) -> Self {
        let mut progress = Self::default();
        for BulkStateCount { state, items } in counts {
            let slot = match state.as_str() {
                "pending" => &mut progress.pending,
                "rejected" => &mut progress.rejected,
                "queued" => &mut progress.queued,
                "running" => &mut progress.running,
                "failed" | "dead" => &mut progress.failed,
                "cancelled" => &mut progress.cancelled,
                // An unchanged upload had nothing to do; a job no longer stored ended long ago.
                _ => &mut progress.succeeded,
            };
            *slot += items;
            progress.total += items;
        }
        progress.done = progress.rejected + progress.succeeded + progress.failed + progress.cancelled;
        progress
    }
}

/// A native batch.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BulkView {
    pub id: String,
    /// `agent_runs` or `documents`.
    #[serde(rename = "type")]
    pub kind: String,
    pub collection_id: Option<String>,
    pub status: BulkStatus,
    pub progress: BulkProgress,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// The job submitting its items (`GET /api/v1/jobs/{id}`).
    pub submit_job_id: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl BulkView {
    pub(super) fn of(row: BulkRecord, progress: BulkProgress) -> Self {
        let status = match row.status.as_str() {
            "cancelled" => BulkStatus::Cancelled,
            _ if progress.pending > 0 => BulkStatus::Submitting,
            _ if progress.done < progress.total => BulkStatus::InProgress,
            _ => BulkStatus::Completed,
        };
        Self {
            metadata: serde_json::from_str(&row.metadata).unwrap_or_default(),
            id: row.id,
            kind: row.kind,
            collection_id: row.collection_id,
            status,
            progress,
            submit_job_id: row.job_id,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        }
    }
}

/// One item of a batch.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BulkItemView {
    /// Its place in the batch, from 0.
    pub position: i64,
    pub custom_id: Option<String>,
    /// The background run it became (`agent_runs`).
    pub run_id: Option<String>,
    /// The document it became (`documents`).
    pub document_id: Option<String>,
    /// The job doing its work (the run, or the document's ingestion).
    pub job_id: Option<String>,
    /// `pending`, `rejected`, `unchanged` (an upload of bytes its document already had), or its
    /// job's status (`queued`, `running`, `succeeded`, `failed`, `dead`, `cancelled`).
    pub status: String,
    /// Why it was rejected, or its job's last error.
    pub error: Option<String>,
}

impl BulkItemView {
    pub(super) fn of(kind: Kind, row: BulkItemState) -> Self {
        let status = match (&row.error, &row.subject_id, &row.job_id, row.job_status) {
            (Some(_), _, _, _) => "rejected".to_owned(),
            (None, None, _, _) => "pending".to_owned(),
            // An upload of the bytes its document already had: nothing to do.
            (None, Some(_), None, _) => "unchanged".to_owned(),
            (None, Some(_), Some(_), status) => status.unwrap_or_else(|| "succeeded".to_owned()),
        };
        let (run_id, document_id) = match kind {
            Kind::AgentRuns => (row.subject_id, None),
            Kind::Documents => (None, row.subject_id),
        };
        Self { position: row.position, custom_id: row.custom_id, run_id, document_id, job_id: row.job_id, status, error: row.error.or(row.job_error) }
    }
}
