//! `Store::export` / `Store::import` for PostgreSQL: everything but browser
//! sessions, as a [`Snapshot`].
//!
//! Export reads every table in one REPEATABLE READ, READ ONLY transaction, so
//! the snapshot is consistent while other replicas keep writing; tables come
//! in the SQLite backend's order (see `sqlite/transfer.rs`). Import loads
//! into an empty database in one transaction with multi-row INSERTs (each
//! within PostgreSQL's limit of 65 535 bound parameters): all or nothing.
//!
//! Revoked tokens get fresh `change_seq` numbers from the identity, drawn
//! under the token lock as `tokens::revoke_token` draws them; events keep
//! their positions, appended under the event lock (the last lock taken), and
//! the sequence continues above them and the pruned-through mark. The
//! import announces what it loaded on the change feed (`prompts:<org>`,
//! `signing_keys`, `gates`, `tokens`, `events`), delivered at commit.

use std::collections::BTreeSet;

use scope_domain::OrgId;
use sqlx::postgres::PgConnection;
use sqlx::{Postgres, QueryBuilder};

use super::{batch_rows, changes, keys, prompts, users, DbResult, PgStore, EVENT_LOCK, TOKEN_LOCK};
use crate::common::*;
use crate::model::*;
use crate::{StoreError, StoreResult};

/// An invitation as stored (without its user).
#[derive(sqlx::FromRow)]
struct RawInvitationRow {
    token_digest: Vec<u8>,
    org_id: String,
    user_id: String,
    created_by: String,
    created_at: i64,
    expires_at: i64,
    accepted_at: Option<i64>,
}

pub(super) async fn export(store: &PgStore) -> StoreResult<Snapshot> {
    let mut tx = store.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await.db()?;
    let conn: &mut PgConnection = &mut tx;

    let orgs = sqlx::query_as::<_, RawOrg>("SELECT org_id, name, created_at FROM orgs ORDER BY created_at, org_id")
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(RawOrg::into_row)
        .collect::<StoreResult<Vec<_>>>()?;

    let sql = format!("SELECT {USER_FIELDS} FROM users u ORDER BY u.user_id");
    let users = sqlx::query_as::<_, RawUser>(&sql)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(RawUser::into_row)
        .collect::<StoreResult<Vec<_>>>()?;

    let invitations = sqlx::query_as::<_, RawInvitationRow>(
        "SELECT token_digest, org_id, user_id, created_by, created_at, expires_at, accepted_at \
         FROM invitations ORDER BY created_at, token_digest",
    )
    .fetch_all(&mut *conn)
    .await
    .db()?
    .into_iter()
    .map(|r| {
        Ok(InvitationRow {
            token_digest: digest(&r.token_digest, "invitation digest")?,
            org_id: parse_id(&r.org_id, "org id")?,
            user_id: parse_id(&r.user_id, "user id")?,
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            accepted_at: r.accepted_at,
        })
    })
    .collect::<StoreResult<Vec<_>>>()?;

    let sql = format!("{KEY_COLUMNS} ORDER BY key_id");
    let api_keys = sqlx::query_as::<_, RawKey>(&sql)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(RawKey::into_row)
        .collect::<StoreResult<Vec<_>>>()?;

    let key_usage =
        sqlx::query_as::<_, (String, String, i64)>("SELECT key_id, day, count FROM api_key_usage ORDER BY key_id, day")
            .fetch_all(&mut *conn)
            .await
            .db()?
            .into_iter()
            .map(|(key_id, day, count)| {
                Ok(UsageRow { key_id: parse_id(&key_id, "key id")?, day, count: u64::try_from(count).unwrap_or(0) })
            })
            .collect::<StoreResult<Vec<_>>>()?;

    let prompts = sqlx::query_as::<_, RawStoredPrompt>(
        "SELECT prompt_id, org_id, name, description, tags, next_version, created_at, updated_at, created_by \
         FROM prompts ORDER BY prompt_id",
    )
    .fetch_all(&mut *conn)
    .await
    .db()?
    .into_iter()
    .map(RawStoredPrompt::into_row)
    .collect::<StoreResult<Vec<_>>>()?;

    let sql = format!("{VERSION_SELECT} ORDER BY v.prompt_id, v.version");
    let versions = sqlx::query_as::<_, RawVersion>(&sql)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(RawVersion::into_row)
        .collect::<StoreResult<Vec<_>>>()?;

    let promotions = sqlx::query_as::<_, RawStoredPromotion>(
        "SELECT org_id, promotion_id, prompt_id, version_id, version, previous_version_id, \
         previous_version, promoted_by, promoted_at, notes FROM promotions ORDER BY promotion_id",
    )
    .fetch_all(&mut *conn)
    .await
    .db()?
    .into_iter()
    .map(RawStoredPromotion::into_row)
    .collect::<StoreResult<Vec<_>>>()?;

    let sql = format!("{AUDIT_COLUMNS} ORDER BY event_id");
    let audit = sqlx::query_as::<_, RawAudit>(&sql)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(RawAudit::into_row)
        .collect::<StoreResult<Vec<_>>>()?;

    let sql = format!("{SIGNING_COLUMNS} ORDER BY created_at, kid");
    let signing_keys = sqlx::query_as::<_, RawSigningKey>(&sql)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(RawSigningKey::into_row)
        .collect();

    let revoked_tokens = sqlx::query_as::<_, RawRevokedToken>(&export_revoked_tokens_sql())
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(RawRevokedToken::into_exported)
        .collect::<StoreResult<Vec<_>>>()?;

    let labels = sqlx::query_as::<_, RawStoredLabel>(EXPORT_LABELS)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(RawStoredLabel::into_row)
        .collect::<StoreResult<Vec<_>>>()?;

    let label_moves = sqlx::query_as::<_, RawStoredLabelMove>(EXPORT_LABEL_MOVES)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(RawStoredLabelMove::into_row)
        .collect::<StoreResult<Vec<_>>>()?;

    let protected_labels = sqlx::query_as::<_, (String, String)>(EXPORT_PROTECTED_LABELS)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(|(org_id, label)| Ok(ProtectedLabelRow { org_id: parse_id(&org_id, "org id")?, label }))
        .collect::<StoreResult<Vec<_>>>()?;

    let org_audiences = sqlx::query_as::<_, (String, String, i64, String)>(EXPORT_ORG_AUDIENCES)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(|(org_id, audience, created_at, created_by)| {
            Ok(OrgAudienceRow { org_id: parse_id(&org_id, "org id")?, audience, created_at, created_by })
        })
        .collect::<StoreResult<Vec<_>>>()?;

    let events = sqlx::query_as::<_, RawEvent>(EXPORT_EVENTS)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(RawEvent::into_row)
        .collect::<StoreResult<Vec<_>>>()?;
    let events_pruned_through: i64 =
        sqlx::query_scalar(EXPORT_EVENTS_PRUNED_THROUGH).fetch_one(&mut *conn).await.db()?;

    tx.commit().await.db()?;
    Ok(Snapshot {
        orgs,
        users,
        invitations,
        api_keys,
        key_usage,
        revoked_tokens,
        prompts,
        versions,
        promotions,
        labels,
        label_moves,
        protected_labels,
        org_audiences,
        audit,
        signing_keys,
        events,
        events_pruned_through,
    })
}

pub(super) async fn import(store: &PgStore, snapshot: &Snapshot) -> StoreResult<()> {
    // A snapshot whose rows do not hang together is refused with a message
    // naming the row, before anything is written.
    check_snapshot(snapshot)?;
    let mut tx = store.begin().await?;
    // Two imports at once: the second waits here, then finds the data of the
    // first.
    sqlx::query("LOCK TABLE orgs IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await.db()?;
    let initialized: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orgs)").fetch_one(&mut *tx).await.db()?;
    if initialized {
        return Err(StoreError::Conflict("the database already holds data: import needs an empty one".into()));
    }

    let conn: &mut PgConnection = &mut tx;
    users::insert_orgs(conn, &snapshot.orgs).await?;
    users::insert_users(conn, &snapshot.users).await?;
    users::insert_invitations(conn, &snapshot.invitations).await?;
    keys::insert_keys(conn, &snapshot.api_keys).await?;
    insert_usage(conn, &snapshot.key_usage).await?;

    let prompt_rows: Vec<(&PromptRow, i64)> = snapshot.prompts.iter().map(|p| (&p.prompt, p.next_version)).collect();
    prompts::insert_prompts(conn, &prompt_rows).await?;
    // Stored as given, variables included.
    let mut version_rows = Vec::with_capacity(snapshot.versions.len());
    for v in &snapshot.versions {
        version_rows.push((v, json_text(&v.variables)?));
    }
    prompts::insert_versions(conn, &version_rows).await?;
    insert_promotions(conn, &snapshot.promotions).await?;
    insert_labels(conn, &snapshot.labels).await?;
    insert_label_moves(conn, &snapshot.label_moves).await?;
    insert_protected_labels(conn, &snapshot.protected_labels).await?;
    insert_org_audiences(conn, &snapshot.org_audiences).await?;
    insert_revoked_tokens(conn, &snapshot.revoked_tokens).await?;
    insert_audit_rows(conn, &snapshot.audit).await?;
    insert_signing_keys(conn, &snapshot.signing_keys).await?;

    // Replicas watching this database reload what they cache.
    let orgs: BTreeSet<OrgId> = snapshot.prompts.iter().map(|p| p.prompt.org_id).collect();
    for org in orgs {
        changes::prompts_changed(conn, org).await?;
    }
    if !snapshot.signing_keys.is_empty() {
        changes::signing_keys_changed(conn).await?;
    }
    if snapshot.api_keys.iter().any(|k| k.revoked_at.is_some() || k.expires_at.is_some()) {
        changes::gates_changed(conn).await?;
    }
    if !snapshot.revoked_tokens.is_empty() {
        changes::tokens_changed(conn).await?;
    }
    // Last: it takes the event lock, which is held until the commit.
    insert_events(conn, &snapshot.events, snapshot.events_pruned_through).await?;
    tx.commit().await.db()
}

async fn insert_usage(conn: &mut PgConnection, usage: &[UsageRow]) -> StoreResult<()> {
    for chunk in usage.chunks(batch_rows(3)) {
        let mut qb = QueryBuilder::<Postgres>::new("INSERT INTO api_key_usage (key_id, day, count) ");
        qb.push_values(chunk, |mut b, u| {
            b.push_bind(u.key_id.to_string())
                .push_bind(u.day.as_str())
                .push_bind(i64::try_from(u.count).unwrap_or(i64::MAX));
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_promotions(conn: &mut PgConnection, promotions: &[StoredPromotion]) -> StoreResult<()> {
    for chunk in promotions.chunks(batch_rows(10)) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO promotions (promotion_id, prompt_id, org_id, version_id, version, previous_version_id, \
             previous_version, promoted_by, promoted_at, notes) ",
        );
        qb.push_values(chunk, |mut b, s| {
            let p = &s.promotion;
            b.push_bind(p.promotion_id.as_str())
                .push_bind(p.prompt_id.to_string())
                .push_bind(s.org_id.to_string())
                .push_bind(p.version_id.to_string())
                .push_bind(p.version)
                .push_bind(p.previous_version_id.map(|id| id.to_string()))
                .push_bind(p.previous_version)
                .push_bind(p.promoted_by.as_str())
                .push_bind(p.promoted_at)
                .push_bind(p.notes.as_deref());
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_audit_rows(conn: &mut PgConnection, audit: &[AuditRow]) -> StoreResult<()> {
    for chunk in audit.chunks(batch_rows(7)) {
        let mut rows = Vec::with_capacity(chunk.len());
        for a in chunk {
            rows.push((a, json_text(&a.details)?));
        }
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO audit_events (event_id, org_id, actor, action, target, at, details) ",
        );
        qb.push_values(rows, |mut b, (a, details)| {
            b.push_bind(a.event_id.as_str())
                .push_bind(a.org_id.to_string())
                .push_bind(a.actor.as_str())
                .push_bind(a.action.as_str())
                .push_bind(a.target.as_str())
                .push_bind(a.at)
                .push_bind(details);
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_signing_keys(conn: &mut PgConnection, rows: &[SigningKeyRow]) -> StoreResult<()> {
    for chunk in rows.chunks(batch_rows(6)) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO signing_keys (kid, public_key, private_key, encrypted, created_at, retired_at) ",
        );
        qb.push_values(chunk, |mut b, k| {
            b.push_bind(k.kid.as_str())
                .push_bind(&k.public_key[..])
                .push_bind(&k.private_key[..])
                .push_bind(k.encrypted)
                .push_bind(k.created_at)
                .push_bind(k.retired_at);
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_labels(conn: &mut PgConnection, rows: &[StoredLabel]) -> StoreResult<()> {
    for chunk in rows.chunks(batch_rows(6)) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO prompt_labels (prompt_id, label, org_id, version_id, moved_at, moved_by) ",
        );
        qb.push_values(chunk, |mut b, l| {
            b.push_bind(l.prompt_id.to_string())
                .push_bind(l.label.as_str())
                .push_bind(l.org_id.to_string())
                .push_bind(l.version_id.to_string())
                .push_bind(l.moved_at)
                .push_bind(l.moved_by.as_str());
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_label_moves(conn: &mut PgConnection, rows: &[StoredLabelMove]) -> StoreResult<()> {
    for chunk in rows.chunks(batch_rows(13)) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO label_moves (move_id, prompt_id, org_id, seq, label, kind, from_version_id, from_version, \
             to_version_id, to_version, moved_by, moved_at, notes) ",
        );
        qb.push_values(chunk, |mut b, s| {
            let m = &s.label_move;
            b.push_bind(m.move_id.as_str())
                .push_bind(m.prompt_id.to_string())
                .push_bind(s.org_id.to_string())
                .push_bind(m.seq)
                .push_bind(m.label.as_str())
                .push_bind(m.kind.as_str())
                .push_bind(m.from_version_id.map(|id| id.to_string()))
                .push_bind(m.from_version)
                .push_bind(m.to_version_id.map(|id| id.to_string()))
                .push_bind(m.to_version)
                .push_bind(m.moved_by.as_str())
                .push_bind(m.moved_at)
                .push_bind(m.notes.as_deref());
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_protected_labels(conn: &mut PgConnection, rows: &[ProtectedLabelRow]) -> StoreResult<()> {
    for chunk in rows.chunks(batch_rows(2)) {
        let mut qb = QueryBuilder::<Postgres>::new("INSERT INTO protected_labels (org_id, label) ");
        qb.push_values(chunk, |mut b, p| {
            b.push_bind(p.org_id.to_string()).push_bind(p.label.as_str());
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_org_audiences(conn: &mut PgConnection, rows: &[OrgAudienceRow]) -> StoreResult<()> {
    for chunk in rows.chunks(batch_rows(4)) {
        let mut qb =
            QueryBuilder::<Postgres>::new("INSERT INTO org_audiences (org_id, audience, created_at, created_by) ");
        qb.push_values(chunk, |mut b, a| {
            b.push_bind(a.org_id.to_string())
                .push_bind(a.audience.as_str())
                .push_bind(a.created_at)
                .push_bind(a.created_by.as_str());
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

/// Revocations with fresh `change_seq` numbers from the identity (above
/// every number it handed out before, pruned ones included), drawn while
/// holding the token lock like `tokens::revoke_token`, so they are handed out
/// and committed in one order with any other revocation.
async fn insert_revoked_tokens(conn: &mut PgConnection, rows: &[RevokedTokenRow]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(TOKEN_LOCK).execute(&mut *conn).await.db()?;
    for chunk in rows.chunks(batch_rows(6)) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO revoked_tokens (jti, org_id, key_id, expires_at, revoked_at, revoked_by) ",
        );
        qb.push_values(chunk, |mut b, t| {
            b.push_bind(t.jti.as_str())
                .push_bind(t.org_id.to_string())
                .push_bind(t.key_id.to_string())
                .push_bind(t.expires_at)
                .push_bind(t.revoked_at)
                .push_bind(t.revoked_by.as_str());
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

/// The event log as it was: events at their positions and the pruned-through
/// mark, under the event lock (so it is the last lock this transaction
/// takes), then the sequence raised past both, so that events written after
/// the import continue above every imported position (a stream resuming
/// from one of them misses nothing and gets nothing twice). Announced as
/// `events`.
async fn insert_events(conn: &mut PgConnection, rows: &[EventRow], pruned_through: i64) -> StoreResult<()> {
    let top = rows.iter().map(|e| e.seq).max().unwrap_or(0).max(pruned_through);
    if top == 0 {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(EVENT_LOCK).execute(&mut *conn).await.db()?;
    for chunk in rows.chunks(batch_rows(5)) {
        let mut values = Vec::with_capacity(chunk.len());
        for e in chunk {
            values.push((e, json_text(&e.data)?));
        }
        let mut qb = QueryBuilder::<Postgres>::new("INSERT INTO events (seq, org_id, event_type, at, data) ");
        qb.push_values(values, |mut b, (e, data)| {
            b.push_bind(e.seq)
                .push_bind(e.org_id.to_string())
                .push_bind(e.event_type.as_str())
                .push_bind(e.at)
                .push_bind(data);
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    sqlx::query("UPDATE event_log SET pruned_through = GREATEST(pruned_through, $1) WHERE id = 1")
        .bind(pruned_through)
        .execute(&mut *conn)
        .await
        .db()?;
    // Never lowered: `setval` is not rolled back with the transaction, and a
    // number skipped after a failed import is harmless where a number
    // handed out twice is not.
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('events', 'seq'), \
         GREATEST($1, COALESCE(pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass), 0)))",
    )
    .bind(top)
    .execute(&mut *conn)
    .await
    .db()?;
    if !rows.is_empty() {
        changes::events_changed(conn).await?;
    }
    Ok(())
}
