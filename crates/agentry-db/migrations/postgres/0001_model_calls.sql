-- One row per model call served by the gateway (after retries/fallbacks).
CREATE TABLE model_calls (
    id            TEXT PRIMARY KEY,
    request_id    TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    model         TEXT NOT NULL,
    provider      TEXT NOT NULL,
    status        TEXT NOT NULL,
    stream        BOOLEAN NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    latency_ms    BIGINT NOT NULL,
    ttft_ms       BIGINT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX model_calls_created_at ON model_calls (created_at_ms);
