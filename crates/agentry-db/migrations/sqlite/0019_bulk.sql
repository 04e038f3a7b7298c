-- Native batches (`/api/v1/batches`): many agent runs, or many document
-- uploads, submitted as one. A batch's items are stored with it, with
-- their input, in the transaction that queues the `bulk_submit` job that
-- turns each into its run or upload; an item then records what it became
-- (`subject_id`: the run or document, `job_id`: the job doing its work),
-- or why it was refused (`error`), and drops its input. Progress is read
-- from the items' jobs.
CREATE TABLE bulk_batches (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL,
    owner           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    collection_id   TEXT,
    status          TEXT NOT NULL,
    total           BIGINT NOT NULL,
    job_id          TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);
CREATE INDEX bulk_batches_of_tenant ON bulk_batches (tenant_id, created_at_ms);
CREATE TABLE bulk_items (
    batch_id   TEXT NOT NULL REFERENCES bulk_batches (id) ON DELETE CASCADE,
    position   BIGINT NOT NULL,
    custom_id  TEXT,
    input      TEXT,
    subject_id TEXT,
    job_id     TEXT,
    error      TEXT,
    PRIMARY KEY (batch_id, position)
);
