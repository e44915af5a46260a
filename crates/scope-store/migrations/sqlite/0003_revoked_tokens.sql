-- Access tokens revoked one by one (RFC 7009, POST /oauth/revoke), kept
-- until the token would have expired anyway. Additive only (older servers
-- keep working against this schema; they just do not see these rows).
--
-- change_seq is what the in-memory views of every process poll: AUTOINCREMENT
-- never hands out a number twice, also after pruning, and the single writer
-- commits in number order.
CREATE TABLE revoked_tokens (
    change_seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    jti         TEXT NOT NULL UNIQUE,
    org_id      TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    key_id      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER NOT NULL,
    revoked_by  TEXT NOT NULL
) STRICT;
CREATE INDEX revoked_tokens_expires ON revoked_tokens(expires_at);
