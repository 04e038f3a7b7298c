-- Multi-factor authentication: a TOTP secret per user (pending until
-- confirmed), the last accepted time step (a code works once), single-use
-- recovery codes stored hashed, and whether a session passed MFA.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
ALTER TABLE sessions ADD COLUMN mfa INTEGER NOT NULL DEFAULT 0;

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at_ms INTEGER,
    PRIMARY KEY (user_id, code_hash)
);
