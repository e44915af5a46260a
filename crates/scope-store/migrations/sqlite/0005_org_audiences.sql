-- Audiences (RFC 8707 `resource` / `audience` at /oauth/token) an
-- organization allows in its tokens' `aud`, on top of the deployment-wide
-- list. The PostgreSQL migration 0004 with the same table and column names.
-- Additive only (older servers neither see nor write these rows).
CREATE TABLE org_audiences (
    org_id      TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    audience    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,   -- usr_…, key_… or system
    PRIMARY KEY (org_id, audience)
) STRICT, WITHOUT ROWID;
