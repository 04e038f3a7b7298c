-- Keyed audit chains. New events carry `key_id` (which master-key
-- generation's HMAC key signed `hash`; NULL on events written before this
-- migration, whose `hash` is plain SHA-256 and still verifies) and
-- `fields_hash` (SHA-256 of the personal fields: actor_id, resource, ip,
-- user_agent, request_id, metadata). The chain HMAC covers `fields_hash`,
-- not the fields themselves, so a later erasure can clear the personal
-- fields, set `erased_at_ms` and keep the chain verifiable.
ALTER TABLE audit_events ADD COLUMN key_id TEXT;
ALTER TABLE audit_events ADD COLUMN fields_hash TEXT;
ALTER TABLE audit_events ADD COLUMN erased_at_ms INTEGER;
-- Start-up looks for chains that still end in legacy rows (to seal them):
-- only legacy rows are indexed, so on a new installation that costs nothing.
CREATE INDEX audit_events_legacy ON audit_events (chain, seq) WHERE key_id IS NULL;
