-- Automatic document summaries: each version keeps the summary a
-- configured model wrote of it (NULL until then, or when none is
-- configured), and the ingestion queue carries two kinds of job: `index`
-- (parse, chunk, embed, index a version) and `summary` (summarise a version
-- that has been indexed; queued when its index job finishes).
ALTER TABLE document_versions ADD COLUMN summary TEXT;
ALTER TABLE document_versions ADD COLUMN summary_status TEXT;
ALTER TABLE document_versions ADD COLUMN summary_error TEXT;
ALTER TABLE ingest_jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'index';
