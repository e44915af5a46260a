-- Scope schema, PostgreSQL: the SQLite schema (its migrations 0001 and 0002)
-- in one file, with the same table, column and index names. Timestamps are
-- Unix milliseconds (BIGINT), ids prefixed text (org_…, key_…, pmt_…, v_…,
-- usr_…), digests and keys BYTEA, JSON kept as text, flags BOOLEAN.
--
-- Ids, audit actions and usage days are compared byte-wise (COLLATE "C"),
-- whatever the database's default collation: newest-first lists and cursors
-- rely on ULIDs sorting in creation order, and the audit action prefix filter
-- on the range [user., user/) — a linguistic collation could order either
-- differently.

CREATE TABLE orgs (
    org_id      TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    user_id               TEXT COLLATE "C" PRIMARY KEY,
    org_id                TEXT COLLATE "C" NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    email                 TEXT NOT NULL,
    password_hash         TEXT NOT NULL,
    role                  TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    created_at            BIGINT NOT NULL,
    must_change_password  BOOLEAN NOT NULL DEFAULT FALSE,
    last_sign_in_at       BIGINT
);
-- E-mail is the sign-in name: unique across the deployment.
CREATE UNIQUE INDEX users_email ON users(email);
CREATE INDEX users_org ON users(org_id, user_id);

CREATE TABLE api_keys (
    key_id         TEXT COLLATE "C" PRIMARY KEY,
    org_id         TEXT COLLATE "C" NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    environment    TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    secret_digest  BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    expires_at     BIGINT,
    last_used_at   BIGINT,
    revoked_at     BIGINT,
    revoked_by     TEXT,
    rotated_from   TEXT COLLATE "C",
    -- Raised on every change of revoked_at/expires_at, so that each server's
    -- in-memory revocation view can poll for changes made elsewhere (CLI,
    -- other replicas). Writers assign it under a transaction-scoped advisory
    -- lock, so that numbers are handed out in commit order.
    change_seq     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_org ON api_keys(org_id, key_id);
CREATE INDEX api_keys_change_seq ON api_keys(change_seq);
-- Settings > API Keys filters by status and pages newest first: revoked and
-- expired keys are usually few among many active ones, so each filter gets a
-- partial index instead of scanning every key of the organization.
CREATE INDEX api_keys_org_revoked ON api_keys(org_id, key_id) WHERE revoked_at IS NOT NULL;
CREATE INDEX api_keys_org_expiring ON api_keys(org_id, key_id) WHERE revoked_at IS NULL AND expires_at IS NOT NULL;

CREATE TABLE api_key_usage (
    key_id  TEXT COLLATE "C" NOT NULL REFERENCES api_keys(key_id) ON DELETE CASCADE,
    day     TEXT COLLATE "C" NOT NULL,      -- UTC YYYY-MM-DD
    count   BIGINT NOT NULL,
    PRIMARY KEY (key_id, day)
);

CREATE TABLE prompts (
    prompt_id     TEXT COLLATE "C" PRIMARY KEY,
    org_id        TEXT COLLATE "C" NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    tags          TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    next_version  BIGINT NOT NULL DEFAULT 1,    -- numbers are never reused
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL
);
CREATE UNIQUE INDEX prompts_org_name ON prompts(org_id, name);

CREATE TABLE prompt_versions (
    version_id    TEXT COLLATE "C" PRIMARY KEY,
    prompt_id     TEXT COLLATE "C" NOT NULL REFERENCES prompts(prompt_id) ON DELETE CASCADE,
    org_id        TEXT COLLATE "C" NOT NULL,
    version       BIGINT NOT NULL,
    content       TEXT NOT NULL,
    variables     TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    status        TEXT NOT NULL CHECK (status IN ('draft', 'published', 'archived')),
    prompt_type   TEXT NOT NULL CHECK (prompt_type IN ('text', 'chat')),
    metadata      TEXT NOT NULL DEFAULT '{}',   -- JSON object
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    promoted_at   BIGINT,
    promoted_by   TEXT
);
CREATE UNIQUE INDEX prompt_versions_number ON prompt_versions(prompt_id, version);
-- The database itself guarantees at most one published version per prompt.
CREATE UNIQUE INDEX prompt_versions_one_published ON prompt_versions(prompt_id) WHERE status = 'published';

CREATE TABLE promotions (
    promotion_id         TEXT COLLATE "C" PRIMARY KEY,
    prompt_id            TEXT COLLATE "C" NOT NULL REFERENCES prompts(prompt_id) ON DELETE CASCADE,
    org_id               TEXT COLLATE "C" NOT NULL,
    version_id           TEXT COLLATE "C" NOT NULL,
    version              BIGINT NOT NULL,
    previous_version_id  TEXT COLLATE "C",
    previous_version     BIGINT,
    promoted_by          TEXT NOT NULL,
    promoted_at          BIGINT NOT NULL,
    notes                TEXT
);
CREATE INDEX promotions_prompt ON promotions(prompt_id, promotion_id);

CREATE TABLE signing_keys (
    kid          TEXT COLLATE "C" PRIMARY KEY,
    public_key   BYTEA NOT NULL,
    private_key  BYTEA NOT NULL,
    encrypted    BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT
);

CREATE TABLE audit_events (
    event_id  TEXT COLLATE "C" PRIMARY KEY,   -- ULID: time-ordered
    org_id    TEXT COLLATE "C" NOT NULL,
    actor     TEXT COLLATE "C" NOT NULL,
    action    TEXT COLLATE "C" NOT NULL,
    target    TEXT COLLATE "C" NOT NULL,
    at        BIGINT NOT NULL,
    details   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_org ON audit_events(org_id, event_id);
CREATE INDEX audit_events_actor ON audit_events(org_id, actor, event_id);
CREATE INDEX audit_events_target ON audit_events(org_id, target, event_id);
CREATE INDEX audit_events_action ON audit_events(org_id, action, event_id);

-- Only the SHA-256 digest of the cookie value is stored.
CREATE TABLE sessions (
    session_digest  BYTEA PRIMARY KEY,
    org_id          TEXT COLLATE "C" NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    user_id         TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

-- Only the SHA-256 digest of the invitation token is stored.
CREATE TABLE invitations (
    token_digest  BYTEA PRIMARY KEY,
    org_id        TEXT COLLATE "C" NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    user_id       TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    accepted_at   BIGINT
);
CREATE INDEX invitations_user ON invitations(user_id);
