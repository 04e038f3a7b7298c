//! What retention and erasure do to the knowledge base: documents and
//! versions leave the database and the search index together, and answers
//! that could have used them are retired from the answer cache.
//!
//! Must not: decide whether a person's data may be erased or how long a
//! tenant keeps versions (the privacy service does).

use super::{Error, Knowledge};

impl Knowledge {
    /// Delete every document `user_id` created in `tenant_id` (all its
    /// versions and chunks); how many.
    pub async fn erase_documents_of(&self, tenant_id: &str, user_id: &str) -> Result<usize, Error> {
        let ids = self.inner.db.documents_created_by(tenant_id, user_id).await?;
        for id in &ids {
            let collection = self.inner.db.document(tenant_id, id).await?.map(|d| d.collection_id);
            if let Some(chunk_ids) = self.inner.db.delete_document(tenant_id, id).await? {
                self.unindex(tenant_id, chunk_ids).await?;
            }
            if let Some(collection) = collection {
                self.inner.cache.invalidate(tenant_id, &collection).await;
            }
        }
        Ok(ids.len())
    }

    /// Delete a tenant's document versions that are neither current nor
    /// latest nor being ingested, created before `before_ms`; how many.
    pub async fn prune_versions_before(&self, tenant_id: &str, before_ms: i64) -> Result<usize, Error> {
        let versions = self.inner.db.superseded_versions_before(tenant_id, before_ms).await?;
        let mut deleted = 0;
        for (document_id, version) in versions {
            if let Some(chunk_ids) = self.inner.db.delete_version(&document_id, version).await? {
                self.unindex(tenant_id, chunk_ids).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
