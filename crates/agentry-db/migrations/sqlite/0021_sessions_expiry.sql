-- The active_sessions gauge counts live sessions on every scrape (at most
-- every 15 s per replica): an index on the live ones keeps that cheap.
CREATE INDEX sessions_live_by_expiry ON sessions (expires_at_ms) WHERE revoked_at_ms IS NULL;
