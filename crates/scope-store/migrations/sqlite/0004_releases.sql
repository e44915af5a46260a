-- Releases (SPEC §9): labels of versions, their history, protected labels,
-- and the durable event log behind GET /api/v1/events. Additive only
-- (older servers keep working against this schema; they neither see nor
-- write these rows).

-- Labels other than `production` (the published version, as before) and
-- `latest` (computed). A label points at a draft or published version.
CREATE TABLE prompt_labels (
    prompt_id   TEXT NOT NULL REFERENCES prompts(prompt_id) ON DELETE CASCADE,
    label       TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    version_id  TEXT NOT NULL REFERENCES prompt_versions(version_id) ON DELETE CASCADE,
    moved_at    INTEGER NOT NULL,
    moved_by    TEXT NOT NULL,
    PRIMARY KEY (prompt_id, label)
) STRICT, WITHOUT ROWID;
-- "Which labels point at this version": archive checks and the `labels` of
-- every version read.
CREATE INDEX prompt_labels_version ON prompt_labels(version_id);

-- Every move of every label, `production` included: the release log.
-- `seq` numbers a prompt's moves in commit order (assigned under the
-- prompt's write lock), so "the last move" is exact whatever the clocks.
CREATE TABLE label_moves (
    move_id          TEXT PRIMARY KEY NOT NULL,   -- lbm_ ULID
    prompt_id        TEXT NOT NULL REFERENCES prompts(prompt_id) ON DELETE CASCADE,
    org_id           TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    label            TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('move', 'rollback', 'remove')),
    from_version_id  TEXT,
    from_version     INTEGER,
    to_version_id    TEXT,
    to_version       INTEGER,
    moved_by         TEXT NOT NULL,
    moved_at         INTEGER NOT NULL,
    notes            TEXT
) STRICT;
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
    org_id  TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
    label   TEXT NOT NULL,
    PRIMARY KEY (org_id, label)
) STRICT, WITHOUT ROWID;

-- The event log: one row per change, written in the change's transaction.
-- AUTOINCREMENT never hands out a number twice (also after pruning), and
-- the single writer commits in number order, so a reader that has seen n
-- never misses a later commit below n.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    at          INTEGER NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}'   -- JSON object
) STRICT;
CREATE INDEX events_org ON events(org_id, seq);
CREATE INDEX events_at ON events(at);

-- Up to where the log was pruned (one row): readers resuming from below
-- may have missed events.
CREATE TABLE event_log (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through  INTEGER NOT NULL
) STRICT;
INSERT INTO event_log (id, pruned_through) VALUES (1, 0);
