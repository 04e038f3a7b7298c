-- Per-tenant retention: how many days threads, runs, superseded document
-- versions, usage records and audit events are kept (NULL: for ever). A
-- job per tenant enforces it (`retention`).
CREATE TABLE tenant_retention (
    tenant_id              TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    threads_days           INTEGER,
    runs_days              INTEGER,
    document_versions_days INTEGER,
    usage_days             INTEGER,
    audit_days             INTEGER,
    updated_at_ms          INTEGER NOT NULL
);
-- Backups taken with `agentry backup` (for the compliance report).
CREATE TABLE backups (
    id                  TEXT PRIMARY KEY,
    at_ms               INTEGER NOT NULL,
    bytes               INTEGER NOT NULL,
    includes_master_key INTEGER NOT NULL
);
CREATE INDEX threads_by_age ON threads (tenant_id, updated_at_ms);
CREATE INDEX runs_by_age ON runs (tenant_id, created_at_ms);
