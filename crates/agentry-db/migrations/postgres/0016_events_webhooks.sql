-- The tenant event log and webhooks. `events` is the shared, append-only log
-- the event stream (`/api/v1/events`) reads and resumes from (`seq`, in
-- commit order) and webhooks fan out from; rows older than
-- `events.retention_hours` are pruned. An event names who may read it: its
-- `owner` (`user:<id>` or `master`, when it is about an owned object) and
-- `readers`, the permissions any one of which lets a member see it (members
-- with manage_tenant see every event of their tenant).
CREATE TABLE events (
    seq           BIGSERIAL PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    tenant_id     TEXT NOT NULL,
    type          TEXT NOT NULL,
    owner         TEXT,
    readers       TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX events_of_tenant ON events (tenant_id, seq);
CREATE INDEX events_by_age ON events (created_at_ms);
-- A webhook endpoint: where events of the listed types are POSTed, signed
-- per the Standard Webhooks specification with `secrets` (sealed; the
-- current key and, during a rotation's overlap, the previous one). It acts
-- for its creator (`owner`, `delegation`): it receives the events its
-- creator may read, checked again at each delivery.
CREATE TABLE webhooks (
    id               TEXT PRIMARY KEY NOT NULL,
    tenant_id        TEXT NOT NULL,
    url              TEXT NOT NULL,
    events           TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    secrets          TEXT NOT NULL,
    owner            TEXT NOT NULL,
    delegation       TEXT NOT NULL,
    status           TEXT NOT NULL,
    disabled_reason  TEXT,
    failing_since_ms BIGINT,
    created_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL
);
CREATE INDEX webhooks_of_tenant ON webhooks (tenant_id, created_at_ms);
-- One event sent to one endpoint: the message (`id` is its `webhook-id`,
-- the same on every attempt; `body` the exact signed bytes) and how its
-- last attempt went, and who may read the event (checked against the
-- endpoint's creator at each attempt). Each attempt is a job (kind
-- `webhook_delivery`).
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL,
    webhook_id      TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    event_owner     TEXT,
    event_readers   TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    response_status INTEGER,
    latency_ms      BIGINT,
    error           TEXT,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    delivered_at_ms BIGINT
);
CREATE INDEX webhook_deliveries_of_webhook ON webhook_deliveries (webhook_id, created_at_ms);
