-- When the owner of an API key was told it expires soon (`api_key.expiring`);
-- a replica claims a key by setting it, so each key is announced once.
ALTER TABLE api_keys ADD COLUMN expiry_notified_at_ms BIGINT;
