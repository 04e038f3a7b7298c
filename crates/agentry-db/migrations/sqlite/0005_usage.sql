-- Usage metering, prices, budgets, rate-limit tiers, invoices.
-- Money is stored in integer nano-USD (1e-9 USD) so sums are exact.
ALTER TABLE model_calls ADD COLUMN tenant_id TEXT;
ALTER TABLE model_calls ADD COLUMN user_id TEXT;
ALTER TABLE model_calls ADD COLUMN api_key_id TEXT;
ALTER TABLE model_calls ADD COLUMN agent TEXT;
ALTER TABLE model_calls ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_calls ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_calls ADD COLUMN cost_nusd INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_calls ADD COLUMN saved_nusd INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_calls DROP COLUMN cost_usd;
CREATE INDEX model_calls_tenant_time ON model_calls (tenant_id, created_at_ms);
CREATE INDEX model_calls_tenant_user_time ON model_calls (tenant_id, user_id, created_at_ms);
CREATE INDEX model_calls_tenant_key_time ON model_calls (tenant_id, api_key_id, created_at_ms);

-- Daily rollups, written with the raw records in one transaction; analytics,
-- budgets and invoices read these. '' stands for "none" in key columns.
CREATE TABLE usage_daily (
    tenant_id     TEXT NOT NULL,
    day           TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    api_key_id    TEXT NOT NULL,
    agent         TEXT NOT NULL,
    model         TEXT NOT NULL,
    provider      TEXT NOT NULL,
    requests      INTEGER NOT NULL,
    errors        INTEGER NOT NULL,
    cache_hits    INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost_nusd     INTEGER NOT NULL,
    saved_nusd    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day, user_id, api_key_id, agent, model, provider)
);

-- Price history: the row with the latest effective_from_ms <= now is in force.
CREATE TABLE model_prices (
    tenant_id         TEXT NOT NULL,
    model             TEXT NOT NULL,
    input_per_1k      REAL NOT NULL,
    output_per_1k     REAL NOT NULL,
    effective_from_ms INTEGER NOT NULL,
    set_by            TEXT NOT NULL,
    PRIMARY KEY (tenant_id, model, effective_from_ms)
);

CREATE TABLE budgets (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    scope           TEXT NOT NULL,
    scope_id        TEXT NOT NULL,
    period          TEXT NOT NULL,
    limit_nusd      INTEGER NOT NULL,
    soft_limit_nusd INTEGER,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    UNIQUE (tenant_id, scope, scope_id, period)
);

CREATE TABLE rate_tiers (
    name            TEXT PRIMARY KEY NOT NULL,
    requests_per_minute INTEGER,
    tokens_per_minute   INTEGER,
    concurrent          INTEGER,
    requests_per_day    INTEGER,
    updated_at_ms   INTEGER NOT NULL
);

CREATE TABLE rate_assignments (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    scope     TEXT NOT NULL,
    scope_id  TEXT NOT NULL,
    tier      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, scope, scope_id)
);

CREATE TABLE tenant_usage_settings (
    tenant_id         TEXT PRIMARY KEY NOT NULL REFERENCES tenants (id),
    optimizer_enabled INTEGER NOT NULL,
    response_cache_enabled INTEGER NOT NULL
);

CREATE TABLE invoices (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    period        TEXT NOT NULL,
    status        TEXT NOT NULL,
    total_nusd    INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    paid_at_ms    INTEGER,
    payment_ref   TEXT,
    UNIQUE (tenant_id, period)
);

CREATE TABLE invoice_lines (
    invoice_id    TEXT NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    line_no       INTEGER NOT NULL,
    model         TEXT NOT NULL,
    agent         TEXT NOT NULL,
    requests      INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    amount_nusd   INTEGER NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);
