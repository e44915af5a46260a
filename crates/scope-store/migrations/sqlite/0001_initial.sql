-- Scope schema, SQLite. Timestamps are Unix milliseconds (INTEGER).
-- Ids are prefixed text (org_…, key_…, pmt_…, v_…, usr_…).

CREATE TABLE orgs (
    org_id      TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    user_id        TEXT PRIMARY KEY NOT NULL,
    org_id         TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    email          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    created_at     INTEGER NOT NULL
) STRICT;
-- E-mail is the sign-in name: unique across the deployment.
CREATE UNIQUE INDEX users_email ON users(email);
CREATE INDEX users_org ON users(org_id, user_id);

CREATE TABLE api_keys (
    key_id         TEXT PRIMARY KEY NOT NULL,
    org_id         TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    environment    TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    secret_digest  BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    created_by     TEXT NOT NULL,
    expires_at     INTEGER,
    last_used_at   INTEGER,
    revoked_at     INTEGER,
    revoked_by     TEXT,
    rotated_from   TEXT,
    -- Raised on every change of revoked_at/expires_at, so that each server's
    -- in-memory revocation view can poll for changes made elsewhere (CLI,
    -- other replicas).
    change_seq     INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX api_keys_org ON api_keys(org_id, key_id);
CREATE INDEX api_keys_change_seq ON api_keys(change_seq);

CREATE TABLE api_key_usage (
    key_id  TEXT NOT NULL REFERENCES api_keys(key_id) ON DELETE CASCADE,
    day     TEXT NOT NULL,      -- UTC YYYY-MM-DD
    count   INTEGER NOT NULL,
    PRIMARY KEY (key_id, day)
) STRICT, WITHOUT ROWID;

CREATE TABLE prompts (
    prompt_id     TEXT PRIMARY KEY NOT NULL,
    org_id        TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    tags          TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    next_version  INTEGER NOT NULL DEFAULT 1,   -- numbers are never reused
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX prompts_org_name ON prompts(org_id, name);

CREATE TABLE prompt_versions (
    version_id    TEXT PRIMARY KEY NOT NULL,
    prompt_id     TEXT NOT NULL REFERENCES prompts(prompt_id) ON DELETE CASCADE,
    org_id        TEXT NOT NULL,
    version       INTEGER NOT NULL,
    content       TEXT NOT NULL,
    variables     TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    status        TEXT NOT NULL CHECK (status IN ('draft', 'published', 'archived')),
    prompt_type   TEXT NOT NULL CHECK (prompt_type IN ('text', 'chat')),
    metadata      TEXT NOT NULL DEFAULT '{}',   -- JSON object
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    promoted_at   INTEGER,
    promoted_by   TEXT
) STRICT;
CREATE UNIQUE INDEX prompt_versions_number ON prompt_versions(prompt_id, version);
-- The database itself guarantees at most one published version per prompt.
CREATE UNIQUE INDEX prompt_versions_one_published ON prompt_versions(prompt_id) WHERE status = 'published';

CREATE TABLE promotions (
    promotion_id         TEXT PRIMARY KEY NOT NULL,
    prompt_id            TEXT NOT NULL REFERENCES prompts(prompt_id) ON DELETE CASCADE,
    org_id               TEXT NOT NULL,
    version_id           TEXT NOT NULL,
    version              INTEGER NOT NULL,
    previous_version_id  TEXT,
    previous_version     INTEGER,
    promoted_by          TEXT NOT NULL,
    promoted_at          INTEGER NOT NULL,
    notes                TEXT
) STRICT;
CREATE INDEX promotions_prompt ON promotions(prompt_id, promotion_id);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,
    public_key   BLOB NOT NULL,
    private_key  BLOB NOT NULL,
    encrypted    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    retired_at   INTEGER
) STRICT;

CREATE TABLE audit_events (
    event_id  TEXT PRIMARY KEY NOT NULL,   -- ULID: time-ordered
    org_id    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    at        INTEGER NOT NULL,
    details   TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX audit_events_org ON audit_events(org_id, event_id);
