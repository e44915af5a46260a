-- Audiences (RFC 8707 `resource` / `audience` at /oauth/token) an
-- organization allows in its tokens' `aud`, on top of the deployment-wide
-- list. The SQLite migration 0005 with the same table and column names.
-- Additive only (older servers neither see nor write these rows).
CREATE TABLE org_audiences (
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    audience    TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,   -- usr_…, key_… or system
    PRIMARY KEY (org_id, audience)
);
