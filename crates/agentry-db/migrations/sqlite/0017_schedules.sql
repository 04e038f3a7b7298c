-- Schedules: a cron expression in a time zone and an action (JSON) carried
-- out at each due time, acting for its owner (`owner`, `delegation`: whoever
-- created it or last changed its timing or action). `next_fire_ms` is the
-- next due time (NULL while disabled); a replica fires a due schedule by
-- moving `next_fire_ms` on from the value it read, in the transaction that
-- records the fire and queues its job, so each due time fires once however
-- many replicas share the database.
CREATE TABLE schedules (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    action        TEXT NOT NULL,
    misfire       TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    owner         TEXT NOT NULL,
    delegation    TEXT NOT NULL,
    next_fire_ms  BIGINT,
    last_fired_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX schedules_of_tenant ON schedules (tenant_id, created_at_ms);
CREATE INDEX schedules_due ON schedules (next_fire_ms);
-- One due time of a schedule (or a fire by hand): what happened. A due time
-- is recorded at most once (`due_ms` unique per schedule, fires by hand aside). `run_id` is the
-- agent run it queued; `result` the action's outcome (JSON).
CREATE TABLE schedule_runs (
    id             TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL,
    schedule_id    TEXT NOT NULL,
    due_ms         BIGINT NOT NULL,
    fired_at_ms    BIGINT NOT NULL,
    trigger        TEXT NOT NULL,
    status         TEXT NOT NULL,
    job_id         TEXT,
    run_id         TEXT,
    result         TEXT,
    error          TEXT,
    finished_at_ms BIGINT
);
CREATE UNIQUE INDEX schedule_runs_due ON schedule_runs (schedule_id, due_ms) WHERE trigger <> 'manual';
CREATE INDEX schedule_runs_of_schedule ON schedule_runs (schedule_id, fired_at_ms);
