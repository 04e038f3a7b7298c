-- Knowledge: collections, documents with every uploaded version (the raw
-- bytes, so a version can be re-processed or restored without the client),
-- chunks with their embeddings (reused by content hash when a document
-- changes), and the durable ingestion queue.
CREATE TABLE collections (
    id                   TEXT PRIMARY KEY NOT NULL,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    name                 TEXT NOT NULL,
    description          TEXT NOT NULL,
    chunk_max_tokens     INTEGER NOT NULL,
    chunk_overlap_tokens INTEGER NOT NULL,
    created_at_ms        BIGINT NOT NULL,
    updated_at_ms        BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

-- status and error describe latest_version; search sees current_version.
CREATE TABLE documents (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    collection_id   TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    title           TEXT NOT NULL,
    source          TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    acl             TEXT NOT NULL,
    current_version INTEGER,
    latest_version  INTEGER NOT NULL,
    status          TEXT NOT NULL,
    error           TEXT,
    created_by      TEXT,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);
CREATE INDEX documents_by_collection ON documents (tenant_id, collection_id, created_at_ms);

CREATE TABLE document_versions (
    document_id   TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    content_hash  TEXT NOT NULL,
    format        TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    content       BYTEA NOT NULL,
    status        TEXT NOT NULL,
    error         TEXT,
    chunk_count   INTEGER NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (document_id, version)
);

CREATE TABLE chunks (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    document_id  TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    ordinal      INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    text         TEXT NOT NULL,
    heading_path TEXT NOT NULL,
    page         INTEGER,
    token_count  INTEGER NOT NULL,
    embedding    BYTEA NOT NULL,
    UNIQUE (document_id, version, ordinal)
);
CREATE INDEX chunks_by_hash ON chunks (document_id, content_hash);

CREATE TABLE ingest_jobs (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL,
    document_id     TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    version         INTEGER NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    run_after_ms    BIGINT NOT NULL,
    locked_until_ms BIGINT,
    error           TEXT,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);
CREATE INDEX ingest_jobs_ready ON ingest_jobs (status, run_after_ms);
