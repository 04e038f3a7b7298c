//! Fetching a collection's URL documents again, each as a new version (a
//! schedule's `refetch_collection` action): the documents the caller may
//! read whose latest version came from a URL and has finished ingesting,
//! each queued like an upload of that URL by the caller (same outbound
//! guard, limits and ingestion). A document whose previous fetch is still
//! queued is left to it, so a backlog cannot grow fire after fire. The
//! report is counts only: it is shown to whoever sees the schedule, who may
//! not read every document the fire's caller could.
//!
//! Must not: fetch anything itself (the ingestion worker does) or touch a
//! document the caller may not read.

use agentry_types::{DocumentStatus, Permission};
use serde::Serialize;

use super::{Content, DocumentView, Knowledge, Upload, require};
use crate::error::Error;
use crate::identity::TenantAccess;

/// Documents looked at per refetch at most (the rest wait for the next one).
const MAX_SCANNED: usize = 10_000;
/// Documents read from the store at a time.
const SCAN_PAGE: i64 = 200;

/// What a refetch queued.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RefetchReport {
    /// URL documents queued to be fetched again.
    pub queued: usize,
    /// URL documents whose previous fetch has not finished (left to it).
    pub pending: usize,
    /// URL documents that could not be queued (the server log says why).
    pub failed: usize,
    /// The collection has more documents than one refetch looks at ([`MAX_SCANNED`]).
    pub truncated: bool,
}

impl Knowledge {
    /// Queue a new version of every URL document of `collection_id` the caller may read.
    pub async fn refetch_urls(&self, access: &TenantAccess, collection_id: &str) -> Result<RefetchReport, Error> {
        require(access, Permission::UploadDocuments)?;
        let collection = self.collection(access, collection_id).await?;
        let principals = self.reader_principals(access).await?;
        let mut report = RefetchReport::default();
        let mut after: Option<(i64, String)> = None;
        let mut scanned = 0;
        loop {
            let rows = self.inner.db.documents_of_collection(access.tenant_id(), &collection.id, after.as_ref().map(|(at, id)| (*at, id.as_str())), SCAN_PAGE).await?;
            let exhausted = rows.len() < SCAN_PAGE as usize;
            after = rows.last().map(|row| (row.created_at_ms, row.id.clone()));
            for document in rows.into_iter().map(DocumentView::of).filter(|d| d.visible_to(&principals)) {
                if scanned >= MAX_SCANNED {
                    report.truncated = true;
                    return Ok(report);
                }
                scanned += 1;
                let versions = self.inner.db.versions_of_document(&document.id).await?;
                let Some(latest) = versions.last() else { continue };
                let Some(url) = latest.source_url.clone() else { continue };
                if !matches!(latest.status, DocumentStatus::Succeeded | DocumentStatus::Failed | DocumentStatus::Excluded) {
                    report.pending += 1;
                    continue;
                }
                let upload = Upload {
                    content: Content::Url(url),
                    title: Some(document.title),
                    metadata: Default::default(),
                    acl: Default::default(),
                    document_id: Some(document.id.clone()),
                    collected: None,
                };
                match self.upload(access, &collection.id, upload).await {
                    Ok(_) => report.queued += 1,
                    Err(error @ (Error::Db(_) | Error::Unavailable(_))) => return Err(error),
                    Err(error) => {
                        tracing::warn!(document = %document.id, %error, "a URL document could not be queued to be fetched again");
                        report.failed += 1;
                    }
                }
            }
            if exhausted {
                return Ok(report);
            }
        }
    }
}
