//! `Store::export` / `Store::import` for SQLite: a whole deployment, except
//! browser sessions, as a [`Snapshot`].
//!
//! Export reads every table inside one read transaction, so the snapshot is
//! consistent even while the server keeps writing (WAL: the first read fixes
//! what the transaction sees). Tables come in a stable order, the same as the
//! PostgreSQL backend's, so that exports of one deployment from either
//! backend are the same file: users, keys, prompts, promotions and audit
//! events by id (ULIDs: creation order); organizations, invitations and
//! signing keys by creation time, then id (or token digest); usage by key,
//! then day; versions by prompt, then number; labels by prompt, then name;
//! label moves by prompt, then position; protected labels by organization,
//! then name; revoked tokens in the order they were revoked; events by
//! position.
//!
//! Import writes into a database with no organization yet, in one write
//! transaction (all or nothing), parents before children, in multi-row
//! batches. Rows are stored as given; keys born revoked or with an expiry get
//! gate sequence numbers the way `keys::insert_keys` hands them out, and
//! revoked tokens fresh `change_seq` numbers, so the revocation views of
//! running servers pick them up. Events keep their positions; later ones
//! continue above them and above the pruned-through mark. Signing keys already in
//! the database (a server started on it before the import made one) stay:
//! the newest unretired key signs, and the imported ones keep verifying the
//! tokens they signed.

use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use super::{keys, prompts, DbResult, SqliteStore, IMPORT_BATCH_ROWS};
use crate::common::*;
use crate::model::*;
use crate::{StoreError, StoreResult};

pub(super) async fn export(store: &SqliteStore) -> StoreResult<Snapshot> {
    let mut tx = store.read.begin().await.db()?;
    let orgs = sqlx::query_as::<_, RawOrg>("SELECT org_id, name, created_at FROM orgs ORDER BY created_at, org_id")
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(RawOrg::into_row)
        .collect::<StoreResult<_>>()?;
    let users = sqlx::query_as::<_, RawUser>(&format!("SELECT {USER_FIELDS} FROM users u ORDER BY u.user_id"))
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(RawUser::into_row)
        .collect::<StoreResult<_>>()?;
    let invitations_sql = format!(
        "SELECT i.token_digest, i.created_by AS i_created_by, i.created_at AS i_created_at, \
         i.expires_at AS i_expires_at, i.accepted_at AS i_accepted_at, {USER_FIELDS} \
         FROM invitations i JOIN users u ON u.user_id = i.user_id AND u.org_id = i.org_id \
         ORDER BY i.created_at, i.token_digest"
    );
    let invitations = sqlx::query_as::<_, RawInvitation>(&invitations_sql)
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(|raw| raw.into_rows().map(|(invitation, _)| invitation))
        .collect::<StoreResult<_>>()?;
    let api_keys = sqlx::query_as::<_, RawKey>(&format!("{KEY_COLUMNS} ORDER BY key_id"))
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(RawKey::into_row)
        .collect::<StoreResult<_>>()?;
    let key_usage = sqlx::query_as::<_, RawUsage>("SELECT key_id, day, count FROM api_key_usage ORDER BY key_id, day")
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(RawUsage::into_row)
        .collect::<StoreResult<_>>()?;
    let prompts = sqlx::query_as::<_, RawStoredPrompt>(
        "SELECT prompt_id, org_id, name, description, tags, next_version, created_at, updated_at, created_by \
         FROM prompts ORDER BY prompt_id",
    )
    .fetch_all(&mut *tx)
    .await
    .db()?
    .into_iter()
    .map(RawStoredPrompt::into_row)
    .collect::<StoreResult<_>>()?;
    let versions = sqlx::query_as::<_, RawVersion>(&format!("{VERSION_SELECT} ORDER BY v.prompt_id, v.version"))
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(RawVersion::into_row)
        .collect::<StoreResult<_>>()?;
    let promotions = sqlx::query_as::<_, RawStoredPromotion>(
        "SELECT org_id, promotion_id, prompt_id, version_id, version, previous_version_id, previous_version, \
         promoted_by, promoted_at, notes FROM promotions ORDER BY promotion_id",
    )
    .fetch_all(&mut *tx)
    .await
    .db()?
    .into_iter()
    .map(RawStoredPromotion::into_row)
    .collect::<StoreResult<_>>()?;
    let audit = sqlx::query_as::<_, RawAudit>(&format!("{AUDIT_COLUMNS} ORDER BY event_id"))
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(RawAudit::into_row)
        .collect::<StoreResult<_>>()?;
    let signing_keys = sqlx::query_as::<_, RawSigningKey>(&format!("{SIGNING_COLUMNS} ORDER BY created_at, kid"))
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(RawSigningKey::into_row)
        .collect();
    let revoked_tokens = sqlx::query_as::<_, RawRevokedToken>(&export_revoked_tokens_sql())
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(RawRevokedToken::into_exported)
        .collect::<StoreResult<_>>()?;
    let labels = sqlx::query_as::<_, RawStoredLabel>(EXPORT_LABELS)
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(RawStoredLabel::into_row)
        .collect::<StoreResult<_>>()?;
    let label_moves = sqlx::query_as::<_, RawStoredLabelMove>(EXPORT_LABEL_MOVES)
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(RawStoredLabelMove::into_row)
        .collect::<StoreResult<_>>()?;
    let protected_labels = sqlx::query_as::<_, (String, String)>(EXPORT_PROTECTED_LABELS)
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(|(org_id, label)| Ok(ProtectedLabelRow { org_id: parse_id(&org_id, "org id")?, label }))
        .collect::<StoreResult<_>>()?;
    let org_audiences = sqlx::query_as::<_, (String, String, i64, String)>(EXPORT_ORG_AUDIENCES)
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(|(org_id, audience, created_at, created_by)| {
            Ok(OrgAudienceRow { org_id: parse_id(&org_id, "org id")?, audience, created_at, created_by })
        })
        .collect::<StoreResult<_>>()?;
    let events = sqlx::query_as::<_, RawEvent>(EXPORT_EVENTS)
        .fetch_all(&mut *tx)
        .await
        .db()?
        .into_iter()
        .map(RawEvent::into_row)
        .collect::<StoreResult<_>>()?;
    let events_pruned_through: i64 = sqlx::query_scalar(EXPORT_EVENTS_PRUNED_THROUGH).fetch_one(&mut *tx).await.db()?;
    // Nothing was written; ending the read transaction releases the snapshot.
    tx.rollback().await.db()?;
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

pub(super) async fn import(store: &SqliteStore, snapshot: &Snapshot) -> StoreResult<()> {
    check_snapshot(snapshot)?;
    let s = snapshot;
    let mut tx = store.begin().await?;
    // Inside the write transaction: no organization can appear between the
    // check and the inserts.
    let initialized: i64 = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orgs)").fetch_one(&mut *tx).await.db()?;
    if initialized != 0 {
        return Err(StoreError::Conflict(
            "the database already holds an organization: import needs an empty one".into(),
        ));
    }
    insert_orgs(&mut tx, &s.orgs).await?;
    insert_users(&mut tx, &s.users).await?;
    insert_invitations(&mut tx, &s.invitations).await?;
    keys::insert_keys(&mut tx, &s.api_keys).await?;
    insert_usage(&mut tx, &s.key_usage).await?;
    let prompt_rows: Vec<_> = s.prompts.iter().map(|p| (&p.prompt, p.next_version)).collect();
    prompts::insert_prompts(&mut tx, &prompt_rows).await?;
    let version_rows = s.versions.iter().map(|v| Ok((v, json_text(&v.variables)?))).collect::<StoreResult<Vec<_>>>()?;
    prompts::insert_versions(&mut tx, &version_rows).await?;
    insert_promotions(&mut tx, &s.promotions).await?;
    insert_labels(&mut tx, &s.labels).await?;
    insert_label_moves(&mut tx, &s.label_moves).await?;
    insert_protected_labels(&mut tx, &s.protected_labels).await?;
    insert_org_audiences(&mut tx, &s.org_audiences).await?;
    insert_revoked_tokens(&mut tx, &s.revoked_tokens).await?;
    insert_audit_rows(&mut tx, &s.audit).await?;
    insert_signing_keys(&mut tx, &s.signing_keys).await?;
    insert_events(&mut tx, &s.events, s.events_pruned_through).await?;
    tx.commit().await.db()
}

// ---- multi-row inserts of the tables only an import fills in bulk -------------------------

async fn insert_orgs(conn: &mut SqliteConnection, rows: &[OrgRow]) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO orgs (org_id, name, created_at) ");
        qb.push_values(chunk, |mut b, o| {
            b.push_bind(o.org_id.to_string()).push_bind(o.name.as_str()).push_bind(o.created_at);
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_users(conn: &mut SqliteConnection, rows: &[UserRow]) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO users (user_id, org_id, email, password_hash, role, created_at, must_change_password, \
             last_sign_in_at) ",
        );
        qb.push_values(chunk, |mut b, u| {
            b.push_bind(u.user_id.to_string())
                .push_bind(u.org_id.to_string())
                .push_bind(u.email.as_str())
                .push_bind(u.password_hash.as_str())
                .push_bind(u.role.as_str())
                .push_bind(u.created_at)
                .push_bind(i64::from(u.must_change_password))
                .push_bind(u.last_sign_in_at);
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_invitations(conn: &mut SqliteConnection, rows: &[InvitationRow]) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO invitations (token_digest, org_id, user_id, created_by, created_at, expires_at, \
             accepted_at) ",
        );
        qb.push_values(chunk, |mut b, i| {
            b.push_bind(&i.token_digest[..])
                .push_bind(i.org_id.to_string())
                .push_bind(i.user_id.to_string())
                .push_bind(i.created_by.as_str())
                .push_bind(i.created_at)
                .push_bind(i.expires_at)
                .push_bind(i.accepted_at);
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_usage(conn: &mut SqliteConnection, rows: &[UsageRow]) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO api_key_usage (key_id, day, count) ");
        qb.push_values(chunk, |mut b, u| {
            // In range: `check_snapshot` refused larger counts.
            b.push_bind(u.key_id.to_string()).push_bind(u.day.as_str()).push_bind(i64::try_from(u.count).unwrap_or(0));
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_promotions(conn: &mut SqliteConnection, rows: &[StoredPromotion]) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let mut qb = QueryBuilder::<Sqlite>::new(
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

async fn insert_audit_rows(conn: &mut SqliteConnection, rows: &[AuditRow]) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let details = chunk.iter().map(|a| json_text(&a.details)).collect::<StoreResult<Vec<_>>>()?;
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_events (event_id, org_id, actor, action, target, at, details) ",
        );
        qb.push_values(chunk.iter().zip(details), |mut b, (a, details)| {
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

async fn insert_signing_keys(conn: &mut SqliteConnection, rows: &[SigningKeyRow]) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO signing_keys (kid, public_key, private_key, encrypted, created_at, retired_at) ",
        );
        qb.push_values(chunk, |mut b, k| {
            b.push_bind(k.kid.as_str())
                .push_bind(&k.public_key[..])
                .push_bind(&k.private_key[..])
                .push_bind(i64::from(k.encrypted))
                .push_bind(k.created_at)
                .push_bind(k.retired_at);
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_labels(conn: &mut SqliteConnection, rows: &[StoredLabel]) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let mut qb = QueryBuilder::<Sqlite>::new(
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

async fn insert_label_moves(conn: &mut SqliteConnection, rows: &[StoredLabelMove]) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let mut qb = QueryBuilder::<Sqlite>::new(
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

async fn insert_protected_labels(conn: &mut SqliteConnection, rows: &[ProtectedLabelRow]) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO protected_labels (org_id, label) ");
        qb.push_values(chunk, |mut b, p| {
            b.push_bind(p.org_id.to_string()).push_bind(p.label.as_str());
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    Ok(())
}

async fn insert_org_audiences(conn: &mut SqliteConnection, rows: &[OrgAudienceRow]) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let mut qb =
            QueryBuilder::<Sqlite>::new("INSERT INTO org_audiences (org_id, audience, created_at, created_by) ");
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

/// Revocations get fresh `change_seq` numbers, in the order given: the
/// AUTOINCREMENT key hands out numbers above every one it handed out before
/// (pruned ones included), inside this write transaction, as
/// `tokens::revoke_token` draws them.
async fn insert_revoked_tokens(conn: &mut SqliteConnection, rows: &[RevokedTokenRow]) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let mut qb = QueryBuilder::<Sqlite>::new(
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

/// The event log as it was: events at their positions, the pruned-through
/// mark, and the AUTOINCREMENT counter raised past both, so that events
/// written after the import continue above every imported position (a
/// stream resuming from one of them misses nothing and gets nothing twice).
async fn insert_events(conn: &mut SqliteConnection, rows: &[EventRow], pruned_through: i64) -> StoreResult<()> {
    for chunk in rows.chunks(IMPORT_BATCH_ROWS) {
        let data = chunk.iter().map(|e| json_text(&e.data)).collect::<StoreResult<Vec<_>>>()?;
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO events (seq, org_id, event_type, at, data) ");
        qb.push_values(chunk.iter().zip(data), |mut b, (e, data)| {
            b.push_bind(e.seq)
                .push_bind(e.org_id.to_string())
                .push_bind(e.event_type.as_str())
                .push_bind(e.at)
                .push_bind(data);
        });
        qb.build().execute(&mut *conn).await.db()?;
    }
    sqlx::query("UPDATE event_log SET pruned_through = MAX(pruned_through, ?1) WHERE id = 1")
        .bind(pruned_through)
        .execute(&mut *conn)
        .await
        .db()?;
    // Explicit keys already raised the counter to the highest imported
    // position; a log pruned past its last event needs the mark as well.
    let top = rows.iter().map(|e| e.seq).max().unwrap_or(0).max(pruned_through);
    if top > 0 {
        sqlx::query(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'events', 0 \
             WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events')",
        )
        .execute(&mut *conn)
        .await
        .db()?;
        sqlx::query("UPDATE sqlite_sequence SET seq = MAX(seq, ?1) WHERE name = 'events'")
            .bind(top)
            .execute(&mut *conn)
            .await
            .db()?;
    }
    Ok(())
}
