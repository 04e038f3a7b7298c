-- One row per model call served by the gateway (after retries/fallbacks).
CREATE TABLE model_calls (
    id            TEXT PRIMARY KEY NOT NULL,
    request_id    TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    model         TEXT NOT NULL,
    provider      TEXT NOT NULL,
    status        TEXT NOT NULL,
    stream        INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd      REAL NOT NULL,
    latency_ms    INTEGER NOT NULL,
    ttft_ms       INTEGER,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX model_calls_created_at ON model_calls (created_at_ms);
