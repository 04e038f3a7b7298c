//! Fetching a collection's URL documents again, each as a new version (a
//! schedule's `refetch_collection` action): the documents the caller may
//! read whose latest version came from a URL, each queued like an upload
//! of that URL by the caller (same outbound guard, limits and ingestion).
//!
//! Must not: fetch anything itself (the ingestion worker does) or touch a
//! document the caller may not read.

use serde::Serialize;

use super::{Content, DocumentView, Knowledge, Upload, require};
use crate::error::Error;
use crate::identity::TenantAccess;
use agentry_types::Permission;

/// Documents queued per refetch at most (the rest wait for the next one).
const MAX_REFETCHED: usize = 10_000;
/// Documents read from the store at a time.
const SCAN_PAGE: i64 = 200;

/// What a refetch queued.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RefetchReport {
    /// URL documents queued to be fetched again.
    pub queued: usize,
    /// URL documents that could not be queued, with why.
    pub failed: Vec<RefetchFailure>,
    /// More URL documents than one refetch queues ([`MAX_REFETCHED`]).
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefetchFailure {
    pub document_id: String,
    pub error: String,
}

impl Knowledge {
    /// Queue a new version of every URL document of `collection_id` the caller may read.
    pub async fn refetch_urls(&self, access: &TenantAccess, collection_id: &str) -> Result<RefetchReport, Error> {
        require(access, Permission::UploadDocuments)?;
        let collection = self.collection(access, collection_id).await?;
        let principals = self.reader_principals(access).await?;
        let mut report = RefetchReport::default();
        let mut after: Option<(i64, String)> = None;
        loop {
            let rows = self.inner.db.documents_of_collection(access.tenant_id(), &collection.id, after.as_ref().map(|(at, id)| (*at, id.as_str())), SCAN_PAGE).await?;
            let exhausted = rows.len() < SCAN_PAGE as usize;
            after = rows.last().map(|row| (row.created_at_ms, row.id.clone()));
            for document in rows.into_iter().map(DocumentView::of).filter(|d| d.visible_to(&principals)) {
                let versions = self.inner.db.versions_of_document(&document.id).await?;
                let Some(url) = versions.last().and_then(|v| v.source_url.clone()) else { continue };
                if report.queued >= MAX_REFETCHED {
                    report.truncated = true;
                    return Ok(report);
                }
                let upload = Upload {
                    content: Content::Url(url),
                    title: Some(document.title),
                    metadata: Default::default(),
                    acl: Default::default(),
                    document_id: Some(document.id.clone()),
                };
                match self.upload(access, &collection.id, upload).await {
                    Ok(_) => report.queued += 1,
                    Err(error @ (Error::Db(_) | Error::Unavailable(_))) => return Err(error),
                    Err(error) => report.failed.push(RefetchFailure { document_id: document.id, error: error.to_string() }),
                }
            }
            if exhausted {
                return Ok(report);
            }
        }
    }
}
