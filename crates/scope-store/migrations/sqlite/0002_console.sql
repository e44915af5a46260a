-- The web console: users who sign in, browser sessions, invitations, and
-- indexes for the audit log's filters. Additive only (older servers keep
-- working against this schema).

ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN last_sign_in_at INTEGER;

-- Only the SHA-256 digest of the cookie value is stored.
CREATE TABLE sessions (
    session_digest  BLOB PRIMARY KEY NOT NULL,
    org_id          TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

-- Only the SHA-256 digest of the invitation token is stored.
CREATE TABLE invitations (
    token_digest  BLOB PRIMARY KEY NOT NULL,
    org_id        TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    accepted_at   INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX invitations_user ON invitations(user_id);

CREATE INDEX audit_events_actor ON audit_events(org_id, actor, event_id);
CREATE INDEX audit_events_target ON audit_events(org_id, target, event_id);
CREATE INDEX audit_events_action ON audit_events(org_id, action, event_id);

-- Settings > API Keys filters by status and pages newest first: revoked and
-- expired keys are usually few among many active ones, so each filter gets a
-- partial index instead of scanning every key of the organization.
CREATE INDEX api_keys_org_revoked ON api_keys(org_id, key_id) WHERE revoked_at IS NOT NULL;
CREATE INDEX api_keys_org_expiring ON api_keys(org_id, key_id) WHERE revoked_at IS NULL AND expires_at IS NOT NULL;
