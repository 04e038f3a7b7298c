-- Agents, threads and runs. A custom agent's every change is a new version
-- (the latest is in force; runs record the version they used). Threads
-- belong to the principal that created them; their messages are numbered
-- per thread, and older turns are folded into a running summary
-- (summarized_through = the last message seq it covers). A run keeps its
-- routing decision, usage and quality score; each tool call it made is a row.
CREATE TABLE agents (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    name           TEXT NOT NULL,
    latest_version INTEGER NOT NULL,
    created_by     TEXT,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE agent_versions (
    tenant_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    definition    TEXT NOT NULL,
    created_by    TEXT,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name, version),
    FOREIGN KEY (tenant_id, name) REFERENCES agents (tenant_id, name) ON DELETE CASCADE
);

CREATE TABLE threads (
    id                 TEXT PRIMARY KEY NOT NULL,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    owner              TEXT NOT NULL,
    title              TEXT NOT NULL,
    metadata           TEXT NOT NULL,
    pinned             TEXT NOT NULL,
    summary            TEXT NOT NULL,
    summarized_through INTEGER NOT NULL,
    message_count      INTEGER NOT NULL,
    created_at_ms      INTEGER NOT NULL,
    updated_at_ms      INTEGER NOT NULL
);
CREATE INDEX threads_by_owner ON threads (tenant_id, owner, updated_at_ms);

CREATE TABLE thread_messages (
    thread_id     TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    role          TEXT NOT NULL,
    content       TEXT NOT NULL,
    run_id        TEXT,
    tokens        INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (thread_id, seq)
);

CREATE TABLE runs (
    id                TEXT PRIMARY KEY NOT NULL,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    owner             TEXT NOT NULL,
    thread_id         TEXT,
    agent             TEXT NOT NULL,
    agent_version     INTEGER,
    agent_type        TEXT NOT NULL,
    status            TEXT NOT NULL,
    routed_by         TEXT NOT NULL,
    route_confidence  REAL NOT NULL,
    input             TEXT NOT NULL,
    output            TEXT,
    error             TEXT,
    model             TEXT,
    model_calls       INTEGER NOT NULL,
    tool_calls        INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    quality_score     REAL,
    citations         TEXT NOT NULL,
    created_at_ms     INTEGER NOT NULL,
    started_at_ms     INTEGER,
    finished_at_ms    INTEGER
);
CREATE INDEX runs_by_owner ON runs (tenant_id, owner, created_at_ms);
CREATE INDEX runs_by_thread ON runs (thread_id, created_at_ms);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE run_tool_calls (
    run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    tool          TEXT NOT NULL,
    arguments     TEXT NOT NULL,
    status        TEXT NOT NULL,
    result        TEXT,
    duration_ms   INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- External MCP servers a tenant registered; agents name their tools as
-- mcp:<server>[/<tool>]. headers holds credentials: never returned by the API.
CREATE TABLE mcp_servers (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    name          TEXT NOT NULL,
    url           TEXT NOT NULL,
    headers       TEXT NOT NULL,
    created_by    TEXT,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
