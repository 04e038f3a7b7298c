-- Documents uploaded by URL: a version records the URL its bytes come from,
-- and its bytes, format and content hash stay NULL until the ingestion
-- worker has fetched them (never on the request path). Uploaded bytes are
-- stored as before. SQLite cannot drop NOT NULL in place, so the table is
-- rebuilt (nothing references it).
CREATE TABLE document_versions_new (
    document_id   TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    content_hash  TEXT,
    format        TEXT,
    size_bytes    INTEGER NOT NULL,
    content       BLOB,
    source_url    TEXT,
    status        TEXT NOT NULL,
    error         TEXT,
    chunk_count   INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (document_id, version),
    CHECK ((content IS NULL) = (format IS NULL) AND (content IS NULL) = (content_hash IS NULL)),
    CHECK (content IS NOT NULL OR source_url IS NOT NULL)
);
INSERT INTO document_versions_new (document_id, version, content_hash, format, size_bytes, content, status, error, chunk_count, created_at_ms)
    SELECT document_id, version, content_hash, format, size_bytes, content, status, error, chunk_count, created_at_ms FROM document_versions;
DROP TABLE document_versions;
ALTER TABLE document_versions_new RENAME TO document_versions;
