-- A pending sign-in started by a signed-in user to link an identity
-- provider to their account (NULL: an ordinary sign-in).
ALTER TABLE oidc_logins ADD COLUMN link_user_id TEXT;
