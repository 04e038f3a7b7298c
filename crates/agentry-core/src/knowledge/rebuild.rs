//! Rebuilding a search index from the stored chunks. The database is the
//! record: it keeps every chunk of every document's current version with its
//! embedding, so an index can always be made again without running a model.
//! When an index opens empty while the database holds such chunks (a data
//! dir restored from a backup, a lost index folder, `agentry reindex`), they
//! are all indexed again, with their document's ACL, metadata and title.
//!
//! Must not: embed, or touch chunks of versions that are not current (their
//! ingestion jobs index them when they run).

use std::collections::HashMap;

use agentry_db::Db;
use agentry_db::knowledge::DocumentRow;
use agentry_search::index::Index;

use super::ingest::indexed_chunks;
use crate::Error;

/// Chunks read and indexed at a time.
const PAGE: i64 = 512;

/// Index every current chunk whose embedding has `dimensions` values, if
/// `index` is empty and the database has chunks; how many were indexed.
pub(super) async fn if_empty(db: &Db, index: &Index, dimensions: usize, max_title_chars: usize) -> Result<usize, Error> {
    if index.count().await? > 0 || !db.has_current_chunks().await? {
        return Ok(0);
    }
    let started = std::time::Instant::now();
    let mut documents: HashMap<String, Option<DocumentRow>> = HashMap::new();
    let (mut after, mut indexed) = (0, 0);
    loop {
        let page = db.current_chunks_page(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let mut batch = Vec::with_capacity(page.len());
        for row in page.into_iter().filter(|row| row.chunk.embedding.len() == dimensions * 4) {
            if !documents.contains_key(&row.document_id) {
                let document = db.document(&row.tenant_id, &row.document_id).await?;
                documents.insert(row.document_id.clone(), document);
            }
            if let Some(Some(document)) = documents.get(&row.document_id) {
                batch.extend(indexed_chunks(&document.tenant_id, document, max_title_chars, std::iter::once((row.id, &row.chunk))));
            }
        }
        indexed += batch.len();
        index.add(batch).await?;
        // Documents are read in chunk-id order; those of earlier pages are rarely met again.
        if documents.len() > 4096 {
            documents.clear();
        }
    }
    tracing::info!(chunks = indexed, seconds = started.elapsed().as_secs_f64(), "rebuilt the search index from the stored chunks");
    Ok(indexed)
}
