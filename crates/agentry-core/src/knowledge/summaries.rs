//! Automatic document summaries: the worker side of a `summary` job,
//! queued when a version's index job finishes and a summary model is
//! configured (`knowledge.summary_model`).
//!
//! The model reads the version's chunks in order (up to
//! [`MAX_INPUT_CHARS`]); its summary is stored on the version (shown with
//! the document) and indexed as one more chunk of that version, headed
//! "Summary", with the document's ACL, so it is searchable by exactly the
//! readers of the document and leaves the index with its version. A re-run
//! replaces what an earlier attempt stored. A failed summary never fails
//! its document: the version keeps `summary_status = failed` and the reason.
//!
//! Must not: change a document's status or current version.

use agentry_db::knowledge::{JobRow, NewChunk, SUMMARY_ORDINAL};
use agentry_llm::ChatRequest;
use agentry_search::chunk::Chunk;
use agentry_types::{ChatMessage, Role};

use super::ingest::{Failure, embedding_input, indexed_chunks, to_bytes};
use super::{Knowledge, hex_sha256};
use crate::identity::now_ms;

/// Document text the summary model reads (~2k tokens: the default local
/// model's window holds it with room for the summary).
const MAX_INPUT_CHARS: usize = 8000;
/// The heading the summary chunk carries in search results.
const SUMMARY_HEADING: &str = "Summary";

const INSTRUCTIONS: &str = "Summarize the document the user sends in at most five sentences. \
    State its subject and main points; use only facts from the document. Reply with the summary only.";

/// The text the model reads: the title, then chunks in order until the budget is spent.
fn summary_input(title: &str, chunk_texts: impl Iterator<Item = String>) -> String {
    let mut input = format!("Title: {title}\n\n");
    for text in chunk_texts {
        let room = MAX_INPUT_CHARS.saturating_sub(input.len());
        if room == 0 {
            break;
        }
        let end = text.char_indices().map(|(i, c)| i + c.len_utf8()).take_while(|&end| end <= room).last().unwrap_or(0);
        input.push_str(&text[..end]);
        input.push('\n');
    }
    input
}

impl Knowledge {
    /// One attempt at a summary job; the number of chunks indexed (1, or 0
    /// when the document or version is gone).
    pub(super) async fn summarize(&self, job: &JobRow) -> Result<usize, Failure> {
        let db = &self.inner.db;
        let Some(model) = self.inner.settings.summary_model.clone() else {
            return Err(Failure::Permanent("no summary model is configured (knowledge.summary_model)".into()));
        };
        let Some(document) = db.document(&job.tenant_id, &job.document_id).await? else { return Ok(0) };
        let chunks = db.version_chunks(&job.document_id, job.version).await?;
        if chunks.is_empty() {
            return Ok(0);
        }
        let input = summary_input(&self.chunk_title(&document.title), chunks.iter().filter(|c| c.ordinal != SUMMARY_ORDINAL).map(|c| c.text.clone()));
        let request = ChatRequest {
            messages: vec![ChatMessage::text(Role::System, INSTRUCTIONS), ChatMessage::text(Role::User, input)],
            temperature: Some(0.0),
            max_tokens: Some(self.inner.settings.summary_max_tokens),
            ..Default::default()
        };
        let ctx = Self::call_context(&job.tenant_id, document.created_by.as_deref());
        let served = self.inner.gateway.chat(&ctx, &model, request).await.map_err(|e| Failure::Retry(format!("summary model '{model}': {e}")))?;
        let summary = served.routed.value.content.unwrap_or_default().trim().to_owned();
        if summary.is_empty() {
            return Err(Failure::Retry(format!("summary model '{model}' returned no text")));
        }

        let as_chunk =
            Chunk { ordinal: 0, text: summary.clone(), heading_path: vec![SUMMARY_HEADING.to_owned()], page: None, token_count: 0, content_hash: hex_sha256(summary.as_bytes()) };
        let vector = self
            .embed(&job.tenant_id, document.created_by.as_deref(), vec![embedding_input(&self.chunk_title(&document.title), &as_chunk)])
            .await?
            .pop()
            .ok_or_else(|| Failure::Retry("the embedding model returned no vector".into()))?;
        let row = NewChunk {
            ordinal: SUMMARY_ORDINAL,
            content_hash: as_chunk.content_hash,
            text: summary.clone(),
            heading_path: serde_json::to_string(&as_chunk.heading_path).unwrap_or_else(|_| "[]".into()),
            page: None,
            token_count: summary.split_whitespace().count() as i32,
            embedding: to_bytes(&vector),
        };
        let (stale, id) = db.replace_summary_chunk(job, &row).await?;
        self.unindex(&job.tenant_id, stale).await?;
        // Only the current version is indexed: an older one's chunks have left the index.
        let indexed = if document.current_version == Some(job.version) {
            self.index(&job.tenant_id).await?.add(indexed_chunks(&job.tenant_id, &document, self.inner.settings.parse_limits.max_title_chars, std::iter::once((id, &row)))).await?;
            self.inner.cache.invalidate(&job.tenant_id, &document.collection_id).await;
            1
        } else {
            0
        };
        db.finish_summary(job, &summary, now_ms()).await?;
        Ok(indexed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_keeps_order_and_stops_at_the_budget_on_a_character_boundary() {
        let input = summary_input("T", ["first".to_owned(), "second".to_owned()].into_iter());
        assert_eq!(input, "Title: T\n\nfirst\nsecond\n");
        let long = summary_input("T", std::iter::repeat_n("é".repeat(3000), 3));
        assert!(long.len() <= MAX_INPUT_CHARS + 2, "{}", long.len());
        assert!(long.ends_with('\n'));
    }
}
