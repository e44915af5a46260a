//! Users, invitations and sessions: listing, unique e-mails, one-time
//! invitations, the last active admin, sessions following their user, password
//! changes, pruning, organization scoping; under concurrency, an active admin
//! is always left and an invitation is accepted once.

use std::sync::Arc;

use scope_domain::{ErrorCode, KeyId, OrgId, Role};
use scope_store::*;

use crate::support::*;

pub async fn users_list_newest_first_and_emails_are_unique(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _, admin) = make_org_with_admin(s, "admin@example.com").await?;
    let (org_b, _) = make_org(s, "admin-b@example.com").await?;

    // The first admin is stored with the new columns.
    let stored = s.get_user(org, admin.user_id).await?;
    assert_eq!(stored, admin);
    assert!(stored.must_change_password);
    assert_eq!(stored.status(), "active");

    let editor = user_row(org, "editor@example.com", Role::Editor, "$argon2id$e");
    let viewer = user_row(org, "viewer@example.com", Role::Viewer, "$argon2id$v");
    let invited = user_row(org, "invited@example.com", Role::Editor, "");
    add_user(s, &editor, None).await?;
    add_user(s, &viewer, None).await?;
    add_user(s, &invited, Some(&invitation(&invited, 1, 90_000))).await?;
    assert_eq!(s.get_user(org, invited.user_id).await?.status(), "invited");

    // Newest first, two at a time, following the cursor.
    let mut seen = vec![];
    let mut cursor = None;
    loop {
        let rows = s.list_users(org, &page(2, cursor.clone())).await?;
        if rows.is_empty() {
            break;
        }
        cursor = rows.last().map(|u| u.user_id.to_string());
        seen.extend(rows.into_iter().map(|u| u.user_id));
    }
    assert_eq!(seen, vec![invited.user_id, viewer.user_id, editor.user_id, admin.user_id]);
    assert_eq!(s.list_users(org, &page(50, Some(viewer.user_id.to_string()))).await?, vec![editor.clone(), admin]);
    let bad = s.list_users(org, &page(50, Some(KeyId::generate().to_string()))).await;
    assert!(matches!(bad, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));
    assert_eq!(s.list_users(org_b, &page(50, None)).await?.len(), 1);

    // Sign-in lookup across the deployment, by lower-cased e-mail.
    assert_eq!(s.find_user_by_email("editor@example.com").await?, Some(editor.clone()));
    assert_eq!(s.find_user_by_email("Editor@Example.com").await?, Some(editor.clone()));
    assert_eq!(s.find_user_by_email("admin-b@example.com").await?.map(|u| u.org_id), Some(org_b));
    assert_eq!(s.find_user_by_email("nobody@example.com").await?, None);

    // The same e-mail again, in this org or another: a conflict, and nothing
    // of the failed insert (user, invitation, audit row) is left.
    let audit_before = audit_actions(s, org_b).await?.len();
    let dup = user_row(org_b, "editor@example.com", Role::Viewer, "");
    let r = add_user(s, &dup, Some(&invitation(&dup, 2, 90_000))).await;
    assert!(matches!(r, Err(StoreError::Conflict(ref m)) if m == "a user with this email already exists"));
    assert!(matches!(s.get_user(org_b, dup.user_id).await, Err(StoreError::NotFound)));
    assert!(s.get_invitation(&[2; 32]).await?.is_none());
    assert_eq!(audit_actions(s, org_b).await?.len(), audit_before);
    Ok(())
}

pub async fn invitation_is_accepted_once_and_never_after_expiry(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _) = make_org(s, "inv-admin@example.com").await?;
    let invited = user_row(org, "new@example.com", Role::Editor, "");
    let inv = invitation(&invited, 3, 10_000);
    add_user(s, &invited, Some(&inv)).await?;

    let (found, user) = s.get_invitation(&[3; 32]).await?.ok_or("invitation missing")?;
    assert_eq!(found, inv);
    assert_eq!(user, invited);
    assert!(s.get_invitation(&[4; 32]).await?.is_none());
    // Nobody can sign in as an invited user.
    assert_eq!(s.find_user_by_email("new@example.com").await?.map(|u| u.password_hash), Some(String::new()));

    // At its expiry instant it is already expired.
    let ev = event(org, "user.accepted", &invited.user_id.to_string());
    let r = s.accept_invitation(&[3; 32], "$argon2id$new", 10_000, &ev).await;
    assert!(matches!(r, Err(StoreError::NotFound)));

    let accepted = s.accept_invitation(&[3; 32], "$argon2id$new", 9_000, &ev).await?;
    assert_eq!(accepted.password_hash, "$argon2id$new");
    assert!(!accepted.must_change_password);
    assert_eq!(accepted.status(), "active");
    assert_eq!(s.get_user(org, invited.user_id).await?, accepted);
    let (after, _) = s.get_invitation(&[3; 32]).await?.ok_or("invitation missing")?;
    assert_eq!(after.accepted_at, Some(9_000));

    // Once only: a second acceptance changes nothing and writes no audit row.
    let audit_before = audit_actions(s, org).await?;
    assert_eq!(audit_before.iter().filter(|a| *a == "user.accepted").count(), 1);
    let again = s.accept_invitation(&[3; 32], "$argon2id$evil", 9_500, &event(org, "user.accepted", "x")).await;
    assert!(matches!(again, Err(StoreError::NotFound)));
    assert_eq!(s.get_user(org, invited.user_id).await?.password_hash, "$argon2id$new");
    assert_eq!(audit_actions(s, org).await?, audit_before);

    // Unknown token.
    let unknown = s.accept_invitation(&[9; 32], "$argon2id$x", 1, &event(org, "user.accepted", "x")).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)));

    // An expired one stays unusable, and its user stays invited.
    let late = user_row(org, "late@example.com", Role::Viewer, "");
    add_user(s, &late, Some(&invitation(&late, 5, 2_000))).await?;
    let r = s.accept_invitation(&[5; 32], "$argon2id$late", 3_000, &event(org, "user.accepted", "x")).await;
    assert!(matches!(r, Err(StoreError::NotFound)));
    assert_eq!(s.get_user(org, late.user_id).await?.status(), "invited");
    Ok(())
}

pub async fn last_active_admin_cannot_be_demoted_or_removed(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _, first) = make_org_with_admin(s, "first@example.com").await?;
    let ev = |action: &str| event(org, action, "x");

    let demote = s.update_user_role(org, first.user_id, Role::Editor, &ev("user.role_changed")).await;
    assert!(matches!(demote, Err(StoreError::Domain(ref d))
        if d.code == ErrorCode::Conflict && d.message == "the last admin of an organization cannot be demoted"));
    let remove = s.delete_user(org, first.user_id, &ev("user.removed")).await;
    assert!(matches!(remove, Err(StoreError::Domain(ref d))
        if d.code == ErrorCode::Conflict && d.message == "the last admin of an organization cannot be removed"));
    assert_eq!(s.get_user(org, first.user_id).await?.role, Role::Admin);
    assert!(!audit_actions(s, org).await?.iter().any(|a| a.starts_with("user.")));

    // An invited admin (no password yet) does not count.
    let invited = user_row(org, "invited-admin@example.com", Role::Admin, "");
    add_user(s, &invited, Some(&invitation(&invited, 6, 90_000))).await?;
    let demote = s.update_user_role(org, first.user_id, Role::Viewer, &ev("user.role_changed")).await;
    assert!(matches!(demote, Err(ref e) if is_domain(e, ErrorCode::Conflict)));
    assert!(matches!(s.delete_user(org, first.user_id, &ev("user.removed")).await, Err(ref e)
        if is_domain(e, ErrorCode::Conflict)));
    // The invited admin itself can be demoted or removed freely.
    let r = s.update_user_role(org, invited.user_id, Role::Editor, &ev("user.role_changed")).await?;
    assert_eq!(r.role, Role::Editor);
    s.update_user_role(org, invited.user_id, Role::Admin, &ev("user.role_changed")).await?;

    // Once it has accepted, it is a second active admin: the first may go.
    s.accept_invitation(&[6; 32], "$argon2id$second", 1_000, &ev("user.accepted")).await?;
    let demoted = s.update_user_role(org, first.user_id, Role::Editor, &ev("user.role_changed")).await?;
    assert_eq!(demoted.role, Role::Editor);
    assert_eq!(s.get_user(org, first.user_id).await?, demoted);
    // Now the second is the last one.
    let r = s.update_user_role(org, invited.user_id, Role::Viewer, &ev("user.role_changed")).await;
    assert!(matches!(r, Err(ref e) if is_domain(e, ErrorCode::Conflict)));
    // Promote the first back, then the second can be removed.
    s.update_user_role(org, first.user_id, Role::Admin, &ev("user.role_changed")).await?;
    s.delete_user(org, invited.user_id, &ev("user.removed")).await?;
    assert!(matches!(s.get_user(org, invited.user_id).await, Err(StoreError::NotFound)));
    assert!(s.get_invitation(&[6; 32]).await?.is_none());
    assert!(matches!(s.delete_user(org, invited.user_id, &ev("user.removed")).await, Err(StoreError::NotFound)));

    // Unchanged role: the row comes back, nothing is audited.
    let before = audit_actions(s, org).await?;
    assert_eq!(before.iter().filter(|a| *a == "user.role_changed").count(), 4);
    let same = s.update_user_role(org, first.user_id, Role::Admin, &ev("user.role_changed")).await?;
    assert_eq!(same.role, Role::Admin);
    assert_eq!(audit_actions(s, org).await?, before);

    // Non-admins are demoted and removed without the check.
    let editor = user_row(org, "ed@example.com", Role::Editor, "$argon2id$e");
    add_user(s, &editor, None).await?;
    assert_eq!(
        s.update_user_role(org, editor.user_id, Role::Viewer, &ev("user.role_changed")).await?.role,
        Role::Viewer
    );
    s.delete_user(org, editor.user_id, &ev("user.removed")).await?;
    Ok(())
}

pub async fn sessions_follow_the_user_and_end_with_it(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _, admin) = make_org_with_admin(s, "sess-admin@example.com").await?;
    let user = user_row(org, "sess@example.com", Role::Editor, "$argon2id$u");
    add_user(s, &user, None).await?;

    let session = session_row(&user, 10, 7_000, 100_000);
    sign_in(s, &session).await?;
    assert_eq!(s.get_user(org, user.user_id).await?.last_sign_in_at, Some(7_000));
    let (found, found_user) = s.get_session(&[10; 32]).await?.ok_or("session missing")?;
    assert_eq!(found, session);
    assert_eq!(found_user.role, Role::Editor);
    assert!(s.get_session(&[11; 32]).await?.is_none());
    // A session for a user of another org (or no user) is refused.
    let stray = SessionRow { org_id: OrgId::generate(), ..session_row(&user, 12, 1, 2) };
    assert!(matches!(sign_in(s, &stray).await, Err(StoreError::NotFound)));
    assert!(s.get_session(&[12; 32]).await?.is_none());

    // A role change made after sign-in shows on the next lookup.
    s.update_user_role(org, user.user_id, Role::Viewer, &event(org, "user.role_changed", "x")).await?;
    let (_, now_user) = s.get_session(&[10; 32]).await?.ok_or("session missing")?;
    assert_eq!(now_user.role, Role::Viewer);

    // Touch moves last_seen_at forward only.
    s.touch_session(&[10; 32], 8_000).await?;
    s.touch_session(&[10; 32], 7_500).await?;
    s.touch_session(&[11; 32], 8_000).await?;
    let (touched, _) = s.get_session(&[10; 32]).await?.ok_or("session missing")?;
    assert_eq!(touched.last_seen_at, 8_000);

    // Sign-out: idempotent, audited once.
    s.delete_session(&[10; 32], Some(&event(org, "user.signed_out", "x"))).await?;
    assert!(s.get_session(&[10; 32]).await?.is_none());
    s.delete_session(&[10; 32], Some(&event(org, "user.signed_out", "x"))).await?;
    s.delete_session(&[10; 32], None).await?;
    let actions = audit_actions(s, org).await?;
    assert_eq!(actions.iter().filter(|a| *a == "user.signed_out").count(), 1);
    assert_eq!(actions.iter().filter(|a| *a == "user.signed_in").count(), 1);

    // Removing a user ends their sessions.
    sign_in(s, &session_row(&user, 13, 9_000, 100_000)).await?;
    sign_in(s, &session_row(&user, 14, 9_100, 100_000)).await?;
    sign_in(s, &session_row(&admin, 15, 9_200, 100_000)).await?;
    s.delete_user(org, user.user_id, &event(org, "user.removed", "x")).await?;
    assert!(s.get_session(&[13; 32]).await?.is_none());
    assert!(s.get_session(&[14; 32]).await?.is_none());
    assert!(s.get_session(&[15; 32]).await?.is_some());
    Ok(())
}

pub async fn set_password_ends_every_other_session(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _, admin) = make_org_with_admin(s, "pw-admin@example.com").await?;
    let user = user_row(org, "pw@example.com", Role::Editor, "$argon2id$old");
    add_user(s, &user, None).await?;
    for d in [20, 21, 22] {
        sign_in(s, &session_row(&user, d, 1_000, 100_000)).await?;
    }
    sign_in(s, &session_row(&admin, 23, 1_000, 100_000)).await?;

    // Changed from session 21: it stays, the user's others end.
    s.set_user_password(org, user.user_id, "$argon2id$new", false, Some(&[21; 32]), &event(org, "user.password", "x"))
        .await?;
    assert!(s.get_session(&[20; 32]).await?.is_none());
    assert!(s.get_session(&[22; 32]).await?.is_none());
    let (_, u) = s.get_session(&[21; 32]).await?.ok_or("kept session missing")?;
    assert_eq!((u.password_hash.as_str(), u.must_change_password), ("$argon2id$new", false));
    // Another user's session is untouched.
    assert!(s.get_session(&[23; 32]).await?.is_some());

    // Reset by an admin, with a one-time password: every session ends.
    s.set_user_password(org, user.user_id, "$argon2id$reset", true, None, &event(org, "user.password", "x")).await?;
    assert!(s.get_session(&[21; 32]).await?.is_none());
    let reset = s.get_user(org, user.user_id).await?;
    assert_eq!((reset.password_hash.as_str(), reset.must_change_password), ("$argon2id$reset", true));
    assert!(s.get_session(&[23; 32]).await?.is_some());
    assert_eq!(audit_actions(s, org).await?.iter().filter(|a| *a == "user.password").count(), 2);

    let unknown = s.set_user_password(org, user_id(), "$argon2id$x", false, None, &event(org, "x", "x")).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)));
    Ok(())
}

pub async fn users_are_scoped_by_org(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org_a, _) = make_org(s, "scope-a@example.com").await?;
    let (org_b, _) = make_org(s, "scope-b@example.com").await?;
    let user = user_row(org_a, "member-a@example.com", Role::Admin, "$argon2id$a");
    add_user(s, &user, None).await?;
    sign_in(s, &session_row(&user, 30, 1_000, 100_000)).await?;
    let ev = event(org_b, "user.x", &user.user_id.to_string());

    assert!(matches!(s.get_user(org_b, user.user_id).await, Err(StoreError::NotFound)));
    assert!(matches!(s.update_user_role(org_b, user.user_id, Role::Viewer, &ev).await, Err(StoreError::NotFound)));
    assert!(matches!(s.delete_user(org_b, user.user_id, &ev).await, Err(StoreError::NotFound)));
    let r = s.set_user_password(org_b, user.user_id, "$argon2id$b", false, None, &ev).await;
    assert!(matches!(r, Err(StoreError::NotFound)));
    assert!(!s.list_users(org_b, &page(50, None)).await?.iter().any(|u| u.user_id == user.user_id));

    // Nothing changed in org A, and org B's log holds none of the attempts.
    let now = s.get_user(org_a, user.user_id).await?;
    assert_eq!((now.role, now.password_hash.as_str()), (Role::Admin, "$argon2id$a"));
    assert!(s.get_session(&[30; 32]).await?.is_some());
    assert!(!audit_actions(s, org_b).await?.iter().any(|a| a == "user.x"));

    // An invitation must be for the user it is inserted with.
    let other = user_row(org_b, "member-b@example.com", Role::Viewer, "");
    let wrong = invitation(&user, 31, 90_000);
    assert!(matches!(add_user(s, &other, Some(&wrong)).await, Err(StoreError::Internal(_))));
    assert!(s.find_user_by_email("member-b@example.com").await?.is_none());
    Ok(())
}

pub async fn prune_sessions_drops_expired_idle_sessions_and_stale_invitations(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _, admin) = make_org_with_admin(s, "prune@example.com").await?;
    let now = 50_000;
    let idle_before = 40_000;

    let expired = session_row(&admin, 40, 45_000, now - 1);
    let idle = session_row(&admin, 41, idle_before - 1, 100_000);
    let live = session_row(&admin, 42, idle_before, now);
    for sess in [&expired, &idle, &live] {
        sign_in(s, sess).await?;
    }
    // Seen recently, so no longer idle.
    let revived = session_row(&admin, 43, 1_000, 100_000);
    sign_in(s, &revived).await?;
    s.touch_session(&[43; 32], 45_000).await?;

    let stale = user_row(org, "stale@example.com", Role::Viewer, "");
    let pending = user_row(org, "pending@example.com", Role::Viewer, "");
    let accepted = user_row(org, "accepted@example.com", Role::Viewer, "");
    add_user(s, &stale, Some(&invitation(&stale, 50, now - 1))).await?;
    add_user(s, &pending, Some(&invitation(&pending, 51, now))).await?;
    add_user(s, &accepted, Some(&invitation(&accepted, 52, 30_000))).await?;
    s.accept_invitation(&[52; 32], "$argon2id$acc", 20_000, &event(org, "user.accepted", "x")).await?;

    assert_eq!(s.prune_sessions(now, idle_before).await?, 3);
    assert!(s.get_session(&[40; 32]).await?.is_none());
    assert!(s.get_session(&[41; 32]).await?.is_none());
    assert!(s.get_session(&[42; 32]).await?.is_some());
    assert!(s.get_session(&[43; 32]).await?.is_some());
    assert!(s.get_invitation(&[50; 32]).await?.is_none());
    assert!(s.get_invitation(&[51; 32]).await?.is_some());
    // Accepted invitations are kept, expired or not.
    assert!(s.get_invitation(&[52; 32]).await?.is_some());
    // The user of a pruned invitation stays, as invited.
    assert_eq!(s.get_user(org, stale.user_id).await?.status(), "invited");
    assert_eq!(s.prune_sessions(now, idle_before).await?, 0);
    Ok(())
}

pub async fn concurrent_demotions_keep_an_active_admin(store: Arc<dyn Store>) -> TestResult {
    // Two admins, each removed or demoted by a different request at the same
    // time: one change wins, the other is refused, one active admin is left.
    warm_up(&store).await?;
    for round in 0..6 {
        let (org, _, first) = make_org_with_admin(&*store, &format!("race{round}-a@example.com")).await?;
        let second = user_row(org, &format!("race{round}-b@example.com"), Role::Admin, "$argon2id$b");
        add_user(&*store, &second, None).await?;
        let users = [first.user_id, second.user_id];
        let changed = all_at_once(2, |i| {
            let (store, user) = (store.clone(), users[i]);
            let remove = (round + i) % 2 == 0;
            async move {
                let ev = event(org, "user.changed", &user.to_string());
                if remove {
                    store.delete_user(org, user, &ev).await
                } else {
                    store.update_user_role(org, user, Role::Viewer, &ev).await.map(|_| ())
                }
            }
        })
        .await?;
        let mut refused = 0;
        for result in changed {
            match result {
                Ok(()) => {}
                Err(ref e) if is_domain(e, ErrorCode::Conflict) => refused += 1,
                Err(e) => return Err(e.into()),
            }
        }
        assert_eq!(refused, 1, "round {round}: exactly one of the two changes is refused");
        let admins = store
            .list_users(org, &page(50, None))
            .await?
            .into_iter()
            .filter(|u| u.role == Role::Admin && u.status() == "active")
            .count();
        assert_eq!(admins, 1, "round {round}");
    }
    Ok(())
}

pub async fn concurrent_acceptances_accept_once(store: Arc<dyn Store>) -> TestResult {
    let (org, _) = make_org(&*store, "accept-race@example.com").await?;
    let invited = user_row(org, "accept-race-new@example.com", Role::Editor, "");
    add_user(&*store, &invited, Some(&invitation(&invited, 90, 100_000))).await?;
    warm_up(&store).await?;
    let tries = all_at_once(12, |i| {
        let store = store.clone();
        async move {
            let hash = format!("$argon2id$try{i}");
            let r = store.accept_invitation(&[90; 32], &hash, 1_000, &event(org, "user.accepted", "x")).await;
            r.map(|_| hash)
        }
    })
    .await?;
    let mut winners = Vec::new();
    for result in tries {
        match result {
            Ok(hash) => winners.push(hash),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(store.get_user(org, invited.user_id).await?.password_hash, winners[0]);
    let accepted = audit_actions(&*store, org).await?.into_iter().filter(|a| a == "user.accepted").count();
    assert_eq!(accepted, 1);
    Ok(())
}

/// `bootstrap_org` on an empty store, eight at once: exactly one creates its
/// organization (with its admin and key), the others write nothing; once
/// an organization exists it always answers `false`.
pub async fn bootstrap_org_creates_the_first_org_once(store: Arc<dyn Store>) -> TestResult {
    assert!(!store.is_initialized().await?);
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        racers.spawn(async move {
            let org = OrgId::generate();
            let key = key_row(org, "admin", Some(1_000_000));
            let user = UserRow {
                user_id: user_id(),
                org_id: org,
                email: format!("first-{i}@example.com"),
                password_hash: "$argon2id$stub".into(),
                role: Role::Admin,
                created_at: 1000,
                must_change_password: false,
                last_sign_in_at: None,
            };
            let row = OrgRow { org_id: org, name: format!("first {i}"), created_at: 1000 };
            let made = store.bootstrap_org(&row, &user, &key, &[event(org, "org.created", &org.to_string())]).await;
            (org, key.key_id, made)
        });
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    while let Some(done) = racers.join_next().await {
        let (org, key, made) = done?;
        if made? {
            winners.push((org, key));
        } else {
            losers.push((org, key));
        }
    }
    assert_eq!(winners.len(), 1, "bootstrapped {} times", winners.len());
    let (org, key) = winners[0];
    assert_eq!(store.get_api_key(org, key).await?.expires_at, Some(1_000_000));
    assert_eq!(store.list_users(org, &page(10, None)).await?.len(), 1);
    for (org, key) in losers {
        assert!(matches!(store.get_org(org).await, Err(StoreError::NotFound)));
        assert!(matches!(store.get_api_key(org, key).await, Err(StoreError::NotFound)));
    }
    let (other, _) = make_org(&*store, "later@example.com").await?;
    assert_ne!(other, org);
    let late = OrgId::generate();
    let user = UserRow {
        user_id: user_id(),
        org_id: late,
        email: "late@example.com".into(),
        password_hash: "$argon2id$stub".into(),
        role: Role::Admin,
        created_at: 1000,
        must_change_password: false,
        last_sign_in_at: None,
    };
    let row = OrgRow { org_id: late, name: "late".into(), created_at: 1000 };
    assert!(!store.bootstrap_org(&row, &user, &key_row(late, "admin", None), &[]).await?);
    assert!(matches!(store.get_org(late).await, Err(StoreError::NotFound)));
    Ok(())
}
