-- One durable queue for every kind of background work. Ingestion's queue
-- (`ingest_jobs`) becomes its first two kinds (`index`, `summary`); a job
-- names the object it works on (`subject_id`, `subject_version`), who asked
-- for it (`owner`, and `delegation`: the credential it acts with, checked
-- again when it runs), and carries its own attempts, priority, progress and
-- idempotency key. `claims` counts claims and never goes back: every write
-- of a running job names the claim it belongs to, so a worker that lost its
-- job (lease run out, cancelled and retried) cannot write over a newer one.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    subject_version INTEGER NOT NULL DEFAULT 0,
    owner           TEXT,
    delegation      TEXT,
    payload         TEXT NOT NULL DEFAULT '{}',
    priority        INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    claims          BIGINT NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL DEFAULT 5,
    run_after_ms    BIGINT NOT NULL,
    locked_until_ms BIGINT,
    progress_done   BIGINT NOT NULL DEFAULT 0,
    progress_total  BIGINT,
    error           TEXT,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    finished_at_ms  BIGINT
);
INSERT INTO jobs (id, tenant_id, kind, subject_id, subject_version, owner, status, attempts, claims, run_after_ms, locked_until_ms, error, created_at_ms, updated_at_ms)
    SELECT j.id, j.tenant_id, j.kind, j.document_id, j.version,
           (SELECT CASE WHEN d.created_by IS NULL THEN NULL ELSE 'user:' || d.created_by END FROM documents d WHERE d.id = j.document_id),
           j.status, j.attempts, j.attempts, j.run_after_ms, j.locked_until_ms, j.error, j.created_at_ms, j.updated_at_ms
    FROM ingest_jobs j;
DROP TABLE ingest_jobs;
-- Claims: queued jobs in the order they are taken, and leases by expiry.
CREATE INDEX jobs_queued ON jobs (status, priority DESC, run_after_ms, created_at_ms);
CREATE INDEX jobs_leases ON jobs (status, locked_until_ms);
CREATE INDEX jobs_of_tenant ON jobs (tenant_id, created_at_ms);
CREATE INDEX jobs_of_subject ON jobs (subject_id);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant_id, kind, owner, idempotency_key);
