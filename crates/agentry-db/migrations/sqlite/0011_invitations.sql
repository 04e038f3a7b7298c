-- Accounts join tenants by invitation, and e-mail addresses are verified.
-- Accounts that exist before this migration count as verified (nothing
-- records how their address was learnt); new ones start unverified unless
-- a link delivered to the address (or a platform administrator) verified them.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 1;

-- A pending offer of membership to an address. The token is shown once
-- (in the e-mail, or to the inviting admin when no SMTP is configured);
-- only its SHA-256 is kept.
CREATE TABLE invitations (
    id               TEXT PRIMARY KEY NOT NULL,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    role             TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    invited_by       TEXT NOT NULL,
    delivered        TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    expires_at_ms    INTEGER NOT NULL,
    accepted_at_ms   INTEGER,
    accepted_user_id TEXT,
    revoked_at_ms    INTEGER
);
CREATE INDEX invitations_tenant ON invitations (tenant_id, created_at_ms);
CREATE INDEX invitations_email ON invitations (email);

-- E-mail verification links (self-registration, later re-sends).
CREATE TABLE email_verifications (
    token_hash    TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email         TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms    INTEGER
);

-- Mail waiting to be sent by the outbox sender (at-least-once, retried).
CREATE TABLE outbox_emails (
    id            TEXT PRIMARY KEY NOT NULL,
    recipient     TEXT NOT NULL,
    subject       TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_try_ms   INTEGER NOT NULL,
    sent_at_ms    INTEGER,
    last_error    TEXT
);
CREATE INDEX outbox_emails_due ON outbox_emails (sent_at_ms, next_try_ms);
