-- OpenID Connect sign-in: pending logins (state → nonce and PKCE verifier,
-- consumed once by the callback) and the link between a provider's subject
-- and a user.
CREATE TABLE oidc_logins (
    state         TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE user_identities (
    provider      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);
