-- Lineage and quality of document versions. Each version records how it
-- was collected: `origin` (`upload`, `url`, `connector`); for a connector,
-- which one (`connector`, JSON), the schedule and the fire that ran it
-- (`schedule_id`, `collected_by`) and the page it was found on
-- (`discovered_from`); when its bytes were fetched (`fetched_at_ms`); and
-- the version that was current when it was added (`parent_version`). A
-- version that fails one of its collection's quality checks is `excluded`
-- (kept, never searchable) and names the check in `quality_check`, the
-- reason in `error`. `collections.quality` holds the checks (JSON).
ALTER TABLE document_versions ADD COLUMN origin TEXT NOT NULL DEFAULT 'upload';
ALTER TABLE document_versions ADD COLUMN connector TEXT;
ALTER TABLE document_versions ADD COLUMN schedule_id TEXT;
ALTER TABLE document_versions ADD COLUMN collected_by TEXT;
ALTER TABLE document_versions ADD COLUMN discovered_from TEXT;
ALTER TABLE document_versions ADD COLUMN fetched_at_ms BIGINT;
ALTER TABLE document_versions ADD COLUMN parent_version INTEGER;
ALTER TABLE document_versions ADD COLUMN quality_check TEXT;
UPDATE document_versions SET origin = 'url' WHERE source_url IS NOT NULL;
CREATE INDEX document_versions_collected_by ON document_versions (collected_by) WHERE collected_by IS NOT NULL;
CREATE INDEX document_versions_by_hash ON document_versions (content_hash);
ALTER TABLE collections ADD COLUMN quality TEXT NOT NULL DEFAULT '{}';
CREATE INDEX documents_by_source ON documents (tenant_id, collection_id, source);
