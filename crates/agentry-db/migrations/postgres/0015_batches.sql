-- Files (`/v1/files`) and batches (`/v1/batches`). A file's bytes are
-- stored in parts of up to 1 MiB (`file_parts`), so an upload streams in
-- and a download streams out without holding the file in memory, and every
-- replica reads the same bytes. A file is `uploading` until its last part
-- is stored; an upload that never finished is removed when it expires.
CREATE TABLE files (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL,
    owner         TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    filename      TEXT NOT NULL,
    status        TEXT NOT NULL,
    bytes         BIGINT NOT NULL DEFAULT 0,
    -- For batch input: the request lines and the endpoint they all call.
    lines         BIGINT NOT NULL DEFAULT 0,
    endpoint      TEXT,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX files_of_tenant ON files (tenant_id, created_at_ms, id);
CREATE INDEX files_expiry ON files (expires_at_ms);
CREATE TABLE file_parts (
    file_id TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (file_id, seq)
);
-- A batch: OpenAI's fields, its owner, and the job that answers its lines.
CREATE TABLE batches (
    id                TEXT PRIMARY KEY NOT NULL,
    tenant_id         TEXT NOT NULL,
    owner             TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    input_file_id     TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status            TEXT NOT NULL,
    output_file_id    TEXT,
    error_file_id     TEXT,
    errors            TEXT,
    metadata          TEXT,
    job_id            TEXT,
    total             BIGINT NOT NULL,
    completed         BIGINT NOT NULL DEFAULT 0,
    failed            BIGINT NOT NULL DEFAULT 0,
    created_at_ms     BIGINT NOT NULL,
    in_progress_at_ms BIGINT,
    finalizing_at_ms  BIGINT,
    completed_at_ms   BIGINT,
    failed_at_ms      BIGINT,
    expired_at_ms     BIGINT,
    cancelling_at_ms  BIGINT,
    cancelled_at_ms   BIGINT,
    expires_at_ms     BIGINT NOT NULL
);
CREATE INDEX batches_of_tenant ON batches (tenant_id, created_at_ms, id);
-- One row per answered line, written in the same transaction as the usage
-- records of the calls that answered it: a line is answered (and billed)
-- once, whatever crashes in between.
CREATE TABLE batch_results (
    batch_id  TEXT NOT NULL,
    line      BIGINT NOT NULL,
    custom_id TEXT NOT NULL,
    ok        BOOLEAN NOT NULL,
    output    TEXT NOT NULL,
    PRIMARY KEY (batch_id, line)
);
