-- Documents uploaded by URL: a version records the URL its bytes come from,
-- and its bytes, format and content hash stay NULL until the ingestion
-- worker has fetched them (never on the request path). Uploaded bytes are
-- stored as before.
ALTER TABLE document_versions
    ADD COLUMN source_url TEXT,
    ALTER COLUMN content DROP NOT NULL,
    ALTER COLUMN format DROP NOT NULL,
    ALTER COLUMN content_hash DROP NOT NULL,
    ADD CONSTRAINT document_versions_fetched_together
        CHECK ((content IS NULL) = (format IS NULL) AND (content IS NULL) = (content_hash IS NULL)),
    ADD CONSTRAINT document_versions_content_or_url CHECK (content IS NOT NULL OR source_url IS NOT NULL);
