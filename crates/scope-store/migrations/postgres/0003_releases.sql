-- Releases (SPEC §9): labels of versions, their history, protected labels,
-- and the durable event log behind GET /api/v1/events. The SQLite
-- migration 0004 with the same table, column and index names. Additive only
-- (older servers keep working against this schema; they neither see nor
-- write these rows).

-- Labels other than `production` (the published version, as before) and
-- `latest` (computed). A label points at a draft or published version.
CREATE TABLE prompt_labels (
    prompt_id   TEXT COLLATE "C" NOT NULL REFERENCES prompts(prompt_id) ON DELETE CASCADE,
    label       TEXT COLLATE "C" NOT NULL,
    org_id      TEXT COLLATE "C" NOT NULL,
    version_id  TEXT COLLATE "C" NOT NULL REFERENCES prompt_versions(version_id) ON DELETE CASCADE,
    moved_at    BIGINT NOT NULL,
    moved_by    TEXT NOT NULL,
    PRIMARY KEY (prompt_id, label)
);
-- "Which labels point at this version": archive checks and the `labels` of
-- every version read.
CREATE INDEX prompt_labels_version ON prompt_labels(version_id);

-- Every move of every label, `production` included: the release log.
-- `seq` numbers a prompt's moves in commit order (assigned while holding
-- the prompt row's lock), so "the last move" is exact whatever the clocks
-- of the replicas.
CREATE TABLE label_moves (
    move_id          TEXT COLLATE "C" PRIMARY KEY,   -- lbm_ ULID
    prompt_id        TEXT COLLATE "C" NOT NULL REFERENCES prompts(prompt_id) ON DELETE CASCADE,
    org_id           TEXT COLLATE "C" NOT NULL,
    seq              BIGINT NOT NULL,
    label            TEXT COLLATE "C" NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('move', 'rollback', 'remove')),
    from_version_id  TEXT COLLATE "C",
    from_version     BIGINT,
    to_version_id    TEXT COLLATE "C",
    to_version       BIGINT,
    moved_by         TEXT NOT NULL,
    moved_at         BIGINT NOT NULL,
    notes            TEXT
);
CREATE UNIQUE INDEX label_moves_seq ON label_moves(prompt_id, seq);
CREATE INDEX label_moves_label ON label_moves(prompt_id, label, seq);

-- The production history so far is the promotion history.
INSERT INTO label_moves (move_id, prompt_id, org_id, seq, label, kind, from_version_id, from_version,
                         to_version_id, to_version, moved_by, moved_at, notes)
SELECT 'lbm_' || substr(promotion_id, 5), prompt_id, org_id,
       ROW_NUMBER() OVER (PARTITION BY prompt_id ORDER BY promotion_id),
       'production', 'move', previous_version_id, previous_version, version_id, version,
       promoted_by, promoted_at, notes
FROM promotions;

-- Labels only admins may move, per organization (none by default).
CREATE TABLE protected_labels (
    org_id  TEXT COLLATE "C" NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    label   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (org_id, label)
);

-- The event log: one row per change, written in the change's transaction.
-- Writers draw `seq` while holding a transaction-scoped advisory lock taken
-- last, just before they commit, so numbers are handed out in commit order
-- and a reader that has seen n never misses a later commit below n; a
-- sequence never hands out a number twice (also after pruning).
CREATE TABLE events (
    seq         BIGSERIAL PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL,
    event_type  TEXT COLLATE "C" NOT NULL,
    at          BIGINT NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}'   -- JSON object
);
CREATE INDEX events_org ON events(org_id, seq);
CREATE INDEX events_at ON events(at);

-- Up to where the log was pruned (one row): readers resuming from below
-- may have missed events.
CREATE TABLE event_log (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through  BIGINT NOT NULL
);
INSERT INTO event_log (id, pruned_through) VALUES (1, 0);
