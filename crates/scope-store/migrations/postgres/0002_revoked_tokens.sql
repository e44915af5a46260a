-- Access tokens revoked one by one (RFC 7009, POST /oauth/revoke), kept
-- until the token would have expired anyway. Additive only (older servers
-- keep working against this schema; they just do not see these rows).
--
-- change_seq is what the in-memory views of every replica poll: an identity
-- never hands out a number twice (also after pruning), and writers take the
-- transaction-scoped advisory lock TOKEN_LOCK before inserting, so numbers
-- are drawn and committed in one order.
CREATE TABLE revoked_tokens (
    change_seq  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    jti         TEXT NOT NULL UNIQUE,
    org_id      TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    key_id      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL,
    revoked_by  TEXT NOT NULL
);
CREATE INDEX revoked_tokens_expires ON revoked_tokens(expires_at);
