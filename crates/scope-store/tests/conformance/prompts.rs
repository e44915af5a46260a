//! Prompts, versions and promotions: names and organization isolation,
//! listing and search, numbering and drafts, promotion rules and history, bulk
//! import; under concurrency, one published version and distinct numbers.

use std::sync::Arc;

use scope_domain::{ErrorCode, VersionId, VersionStatus};
use scope_store::*;

use crate::support::*;

pub async fn prompts_and_isolation(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _) = make_org(s, "p@example.com").await?;
    let (org_b, _) = make_org(s, "pb@example.com").await?;

    let (greet, v1) =
        make_prompt(s, org, "greeting", &["prod", "email"], "Hello {{name}} from {{ place }} {{place}}").await?;
    let (_, _) = make_prompt(s, org, "farewell_100%", &["email"], "Bye").await?;
    let (other, _) = make_prompt(s, org, "summary", &[], "Summarize").await?;

    let dup = make_prompt(s, org, "greeting", &[], "x").await;
    assert!(matches!(dup, Err(StoreError::Conflict(ref m)) if m == "a prompt with this name already exists"));
    // Same name in another org is fine.
    let (greet_b, _) = make_prompt(s, org_b, "greeting", &[], "B").await?;

    let by_name = s.get_prompt(org, "greeting").await?;
    let by_id = s.get_prompt(org, &greet.to_string()).await?;
    assert_eq!(by_name, by_id);
    assert_eq!(by_name.prompt.tags, vec!["prod".to_string(), "email".to_string()]);
    assert_eq!(by_name.latest_version, Some(1));
    assert_eq!(by_name.production_version, None);
    let v = s.get_version(org, greet, v1).await?;
    assert_eq!(v.variables, vec!["name".to_string(), "place".to_string()]);
    assert_eq!(v.status, VersionStatus::Draft);
    assert_eq!(v.name, "greeting");
    assert_eq!(v.tags, vec!["prod".to_string(), "email".to_string()]);

    // Org B cannot see org A's prompt by name or id; it sees its own.
    assert_eq!(s.get_prompt(org_b, "greeting").await?.prompt.prompt_id, greet_b);
    assert!(matches!(s.get_prompt(org_b, &greet.to_string()).await, Err(StoreError::NotFound)));
    assert!(matches!(s.get_version(org_b, greet, v1).await, Err(StoreError::NotFound)));
    assert!(s.production_version(org_b, greet).await?.is_none());
    assert!(s.latest_version(org_b, greet).await?.is_none());
    assert!(s
        .list_versions(org_b, greet, &VersionListQuery { page: page(50, None), include_archived: true })
        .await?
        .is_empty());
    assert!(matches!(new_version(s, org_b, greet, Some("x"), None).await, Err(StoreError::NotFound)));
    assert!(matches!(
        s.delete_prompt(org_b, greet, &event(org_b, "prompt.deleted", "x")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.update_prompt(
            org_b,
            greet,
            &PromptPatch { description: Some("h".into()), tags: None },
            1,
            &event(org_b, "p", "x")
        )
        .await,
        Err(StoreError::NotFound)
    ));

    // Listing: newest first, paging, tag and text filters.
    let list = |tag: Option<&str>, q: Option<&str>, limit: u32, cursor: Option<String>| PromptListQuery {
        page: page(limit, cursor),
        tag: tag.map(str::to_owned),
        q: q.map(str::to_owned),
    };
    let names = |rows: Vec<PromptSummary>| rows.into_iter().map(|p| p.prompt.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_prompts(org, &list(None, None, 50, None)).await?),
        vec!["summary", "farewell_100%", "greeting"]
    );
    let first = s.list_prompts(org, &list(None, None, 2, None)).await?;
    let next = s.list_prompts(org, &list(None, None, 2, first.last().map(|p| p.prompt.prompt_id.to_string()))).await?;
    assert_eq!(names(next), vec!["greeting"]);
    assert_eq!(
        names(s.list_prompts(org, &list(Some("email"), None, 50, None)).await?),
        vec!["farewell_100%", "greeting"]
    );
    assert_eq!(names(s.list_prompts(org, &list(Some("prod"), None, 50, None)).await?), vec!["greeting"]);
    assert_eq!(names(s.list_prompts(org, &list(None, Some("GREET"), 50, None)).await?), vec!["greeting"]);
    assert_eq!(names(s.list_prompts(org, &list(None, Some("100%"), 50, None)).await?), vec!["farewell_100%"]);
    assert!(s.list_prompts(org, &list(None, Some("%"), 50, None)).await?.len() == 1);
    assert!(s.list_prompts(org, &list(None, Some("_"), 50, None)).await?.len() == 1);
    assert_eq!(names(s.list_prompts(org, &list(None, Some("the summ"), 50, None)).await?), vec!["summary"]);
    let bad = s.list_prompts(org, &list(None, None, 50, Some("garbage".into()))).await;
    assert!(matches!(bad, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));

    // Update description/tags.
    s.update_prompt(
        org,
        other,
        &PromptPatch { description: None, tags: Some(vec!["new".into()]) },
        9000,
        &event(org, "prompt.updated", "x"),
    )
    .await?;
    let p = s.get_prompt(org, "summary").await?;
    assert_eq!(p.prompt.tags, vec!["new".to_string()]);
    assert_eq!(p.prompt.description, "the summary prompt");
    assert_eq!(p.prompt.updated_at, 9000);

    // Delete cascades to versions and history.
    s.promote(
        org,
        other,
        s.latest_version(org, other).await?.map(|v| v.version_id).ok_or("no v")?,
        &promote_req(true, 1),
        &event(org, "p", "x"),
    )
    .await?;
    s.delete_prompt(org, other, &event(org, "prompt.deleted", &other.to_string())).await?;
    assert!(matches!(s.get_prompt(org, "summary").await, Err(StoreError::NotFound)));
    assert!(s.latest_version(org, other).await?.is_none());
    assert!(s.list_promotions(org, other, &page(50, None)).await?.is_empty());
    // The name is free again.
    make_prompt(s, org, "summary", &[], "again").await?;
    Ok(())
}

pub async fn versions_and_drafts(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _) = make_org(s, "v@example.com").await?;
    let (other_org, _) = make_org(s, "vb@example.com").await?;
    let (pid, v1) = make_prompt(s, org, "p", &["t"], "one {{a}}").await?;
    let (other_pid, other_v1) = make_prompt(s, org, "q", &[], "q").await?;
    let _ = other_org;

    // Numbering: 2, 3, 4…
    let v2 = new_version(s, org, pid, Some("two {{b}}"), None).await?;
    assert_eq!((v2.version, v2.status, v2.variables.clone()), (2, VersionStatus::Draft, vec!["b".to_string()]));
    assert_eq!(v2.prompt_type, "text");
    assert_eq!(v2.metadata, serde_json::json!({}));
    assert_eq!(v2.tags, vec!["t".to_string()]);
    // Copy from v1: content copied.
    let v3 = new_version(s, org, pid, None, Some(v1)).await?;
    assert_eq!((v3.version, v3.content.as_str()), (3, "one {{a}}"));
    assert_eq!(v3.variables, vec!["a".to_string()]);
    // Copy from a version of another prompt: not found, and the number is not consumed.
    assert!(matches!(new_version(s, org, pid, None, Some(other_v1)).await, Err(StoreError::NotFound)));
    let v4 = new_version(s, org, pid, None, None).await?;
    assert_eq!((v4.version, v4.content.as_str()), (4, ""));
    assert_eq!(s.get_prompt(org, "p").await?.latest_version, Some(4));
    assert_eq!(s.get_prompt(org, "p").await?.prompt.updated_at, 3000);
    assert_eq!(s.latest_version(org, pid).await?.map(|v| v.version), Some(4));
    assert_eq!(s.latest_version(org, other_pid).await?.map(|v| v.version), Some(1));

    // Editing a draft recomputes variables.
    let patch = DraftPatch {
        content: Some("Hi {{who}} and {{ x }} {{who}} and {{what}}".into()),
        prompt_type: Some("chat".into()),
        metadata: Some(serde_json::json!({"model": "x"})),
    };
    let e = s.update_draft(org, pid, v2.version_id, &patch, 4000, &event(org, "version.updated", "x")).await?;
    assert_eq!(e.variables, vec!["who".to_string(), "what".to_string()]);
    assert_eq!((e.prompt_type.as_str(), e.updated_at), ("chat", 4000));
    assert_eq!(e.metadata, serde_json::json!({"model": "x"}));
    // Partial patch keeps other fields.
    let e2 = s
        .update_draft(
            org,
            pid,
            v2.version_id,
            &DraftPatch { metadata: Some(serde_json::json!({})), ..Default::default() },
            4100,
            &event(org, "version.updated", "x"),
        )
        .await?;
    assert_eq!(e2.content, e.content);
    assert_eq!(e2.prompt_type, "chat");
    // Bad prompt type: bad request from the CHECK constraint.
    let bad = s
        .update_draft(
            org,
            pid,
            v2.version_id,
            &DraftPatch { prompt_type: Some("image".into()), ..Default::default() },
            1,
            &event(org, "x", "x"),
        )
        .await;
    assert!(matches!(bad, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));

    // Published and archived versions cannot be edited.
    s.promote(org, pid, v2.version_id, &promote_req(true, 5000), &event(org, "version.promoted", "x")).await?;
    let r = s.update_draft(org, pid, v2.version_id, &patch, 1, &event(org, "x", "x")).await;
    assert!(matches!(r, Err(ref e) if is_domain(e, ErrorCode::Conflict)));
    s.set_archived(org, pid, v3.version_id, true, 1, &event(org, "version.archived", "x")).await?;
    let r = s.update_draft(org, pid, v3.version_id, &patch, 1, &event(org, "x", "x")).await;
    assert!(matches!(r, Err(ref e) if is_domain(e, ErrorCode::Conflict)));
    let r = s.update_draft(org, pid, VersionId::generate(), &patch, 1, &event(org, "x", "x")).await;
    assert!(matches!(r, Err(StoreError::NotFound)));

    // Listing: newest first, archived hidden unless asked, cursor is the number.
    let vq = |include_archived: bool, limit: u32, cursor: Option<String>| VersionListQuery {
        page: page(limit, cursor),
        include_archived,
    };
    let nums = |rows: Vec<VersionRow>| rows.into_iter().map(|v| v.version).collect::<Vec<_>>();
    assert_eq!(nums(s.list_versions(org, pid, &vq(true, 50, None)).await?), vec![4, 3, 2, 1]);
    assert_eq!(nums(s.list_versions(org, pid, &vq(false, 50, None)).await?), vec![4, 2, 1]);
    assert_eq!(nums(s.list_versions(org, pid, &vq(true, 2, Some("3".into()))).await?), vec![2, 1]);
    let bad = s.list_versions(org, pid, &vq(true, 2, Some("v_x".into()))).await;
    assert!(matches!(bad, Err(ref e) if is_domain(e, ErrorCode::BadRequest)));
    Ok(())
}

pub async fn promote_archive_and_history(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _) = make_org(s, "pr@example.com").await?;
    let (org_b, _) = make_org(s, "prb@example.com").await?;
    let (pid, v1) = make_prompt(s, org, "p", &[], "one").await?;
    let v2 = new_version(s, org, pid, Some("two"), None).await?.version_id;
    let v3 = new_version(s, org, pid, Some("three"), None).await?.version_id;

    assert!(s.production_version(org, pid).await?.is_none());
    let p1 = s.promote(org, pid, v1, &promote_req(true, 100), &event(org, "version.promoted", "1")).await?;
    assert_eq!(
        (p1.status, p1.promoted_at, p1.promoted_by.as_deref()),
        (VersionStatus::Published, Some(100), Some("usr_admin"))
    );

    // Promoting again: unchanged, no history row.
    let again = s.promote(org, pid, v1, &promote_req(true, 200), &event(org, "version.promoted", "1b")).await?;
    assert_eq!(again, p1);
    assert_eq!(s.list_promotions(org, pid, &page(50, None)).await?.len(), 1);

    // archive_previous = false: v1 back to draft.
    s.promote(org, pid, v2, &promote_req(false, 300), &event(org, "version.promoted", "2")).await?;
    assert_eq!(s.get_version(org, pid, v1).await?.status, VersionStatus::Draft);
    // archive_previous = true: v2 archived.
    s.promote(org, pid, v3, &promote_req(true, 400), &event(org, "version.promoted", "3")).await?;
    assert_eq!(s.get_version(org, pid, v2).await?.status, VersionStatus::Archived);
    let prod = s.production_version(org, pid).await?.ok_or("no production version")?;
    assert_eq!(prod.version_id, v3);
    let summary = s.get_prompt(org, "p").await?;
    assert_eq!((summary.production_version, summary.production_version_id), (Some(3), Some(v3)));
    assert_eq!(summary.prompt.updated_at, 400);

    // Roll back to the archived v2 directly.
    s.promote(org, pid, v2, &promote_req(true, 500), &event(org, "version.promoted", "4")).await?;
    assert_eq!(s.get_version(org, pid, v3).await?.status, VersionStatus::Archived);

    // History newest first, with previous versions; paging by promotion id.
    let hist = s.list_promotions(org, pid, &page(50, None)).await?;
    let summary: Vec<(i64, Option<i64>)> = hist.iter().map(|h| (h.version, h.previous_version)).collect();
    assert_eq!(summary, vec![(2, Some(3)), (3, Some(2)), (2, Some(1)), (1, None)]);
    assert_eq!(hist[0].previous_version_id, Some(v3));
    assert_eq!(hist[0].notes.as_deref(), Some("ship it"));
    assert_eq!(hist[0].promoted_by, "usr_admin");
    let tail = s.list_promotions(org, pid, &page(50, Some(hist[1].promotion_id.clone()))).await?;
    assert_eq!(tail, hist[2..].to_vec());
    assert!(s.list_promotions(org_b, pid, &page(50, None)).await?.is_empty());
    assert!(matches!(
        s.list_promotions(org, pid, &page(50, Some("x' OR '1".into()))).await,
        Err(ref e) if is_domain(e, ErrorCode::BadRequest)
    ));

    // Org B cannot promote A's versions; unknown version is not found.
    assert!(matches!(
        s.promote(org_b, pid, v1, &promote_req(true, 1), &event(org_b, "x", "x")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.promote(org, pid, VersionId::generate(), &promote_req(true, 1), &event(org, "x", "x")).await,
        Err(StoreError::NotFound)
    ));

    // Archive rules: published → conflict both ways; draft ↔ archived.
    let r = s.set_archived(org, pid, v2, true, 1, &event(org, "x", "x")).await;
    assert!(matches!(r, Err(ref e) if is_domain(e, ErrorCode::Conflict)));
    let r = s.set_archived(org, pid, v2, false, 1, &event(org, "x", "x")).await;
    assert!(matches!(r, Err(ref e) if is_domain(e, ErrorCode::Conflict)));
    let a = s.set_archived(org, pid, v1, true, 600, &event(org, "version.archived", "x")).await?;
    assert_eq!((a.status, a.updated_at), (VersionStatus::Archived, 600));
    let u = s.set_archived(org, pid, v3, false, 700, &event(org, "version.unarchived", "x")).await?;
    assert_eq!(u.status, VersionStatus::Draft);
    assert!(matches!(
        s.set_archived(org_b, pid, v3, true, 1, &event(org_b, "x", "x")).await,
        Err(StoreError::NotFound)
    ));
    Ok(())
}

pub async fn concurrent_promotes_leave_one_published(store: Arc<dyn Store>) -> TestResult {
    let s = store;
    let (org, _) = make_org(&*s, "c@example.com").await?;
    let (pid, v1) = make_prompt(&*s, org, "hot", &[], "v1").await?;
    let mut versions = vec![v1];
    for i in 0..49 {
        versions.push(new_version(&*s, org, pid, Some(&format!("v{}", i + 2)), None).await?.version_id);
    }
    warm_up(&s).await?;
    let promoted = all_at_once(versions.len(), |i| {
        let (s, v) = (s.clone(), versions[i]);
        async move {
            let req = promote_req(i % 2 == 0, 1000 + i as i64);
            s.promote(org, pid, v, &req, &event(org, "version.promoted", &v.to_string())).await
        }
    })
    .await?;
    for row in promoted {
        assert_eq!(row?.status, VersionStatus::Published);
    }
    let all = s.list_versions(org, pid, &VersionListQuery { page: page(200, None), include_archived: true }).await?;
    assert_eq!(all.len(), 50);
    assert_eq!(all.iter().filter(|v| v.status == VersionStatus::Published).count(), 1);
    let hist = s.list_promotions(org, pid, &page(200, None)).await?;
    assert_eq!(hist.len(), 50);
    assert_eq!(hist.iter().filter(|h| h.previous_version.is_none()).count(), 1);
    Ok(())
}

pub async fn bulk_import_prompts(store: Arc<dyn Store>) -> TestResult {
    let store = &*store;
    let (org, _) = make_org(store, "bulk@example.com").await?;
    let (other, _) = make_org(store, "bulk-other@example.com").await?;

    // Prompts with a published version each.
    let mut prompts = Vec::new();
    for i in 0..600 {
        let pid = prompt_id();
        let prompt = PromptRow {
            prompt_id: pid,
            org_id: org,
            name: format!("bulk-{i}"),
            description: String::new(),
            tags: vec!["bulk".into()],
            created_at: 2000,
            updated_at: 2000,
            created_by: "system".into(),
        };
        let version = |n: i64, status: VersionStatus| VersionRow {
            version_id: version_id(),
            prompt_id: pid,
            org_id: org,
            name: prompt.name.clone(),
            version: n,
            content: format!("Hello {{{{name}}}}, v{n} of {i}"),
            variables: vec![],
            status,
            prompt_type: "text".into(),
            metadata: serde_json::json!({"i": i}),
            tags: vec![],
            created_at: 2000,
            updated_at: 2000,
            created_by: "system".into(),
            promoted_at: (status == VersionStatus::Published).then_some(2500),
            promoted_by: (status == VersionStatus::Published).then(|| "system".to_owned()),
            labels: Vec::new(),
        };
        let versions = vec![version(1, VersionStatus::Archived), version(2, VersionStatus::Published)];
        prompts.push((prompt, versions));
    }
    store.import_prompts(&prompts).await?;
    let (p, vs) = &prompts[599];
    let summary = store.get_prompt(org, &p.name).await?;
    assert_eq!(summary.production_version, Some(2));
    assert_eq!(summary.latest_version, Some(2));
    let prod = store.production_version(org, p.prompt_id).await?.ok_or("no production version")?;
    assert_eq!(prod.version_id, vs[1].version_id);
    assert_eq!(prod.variables, vec!["name".to_owned()]);
    assert_eq!(prod.tags, vec!["bulk".to_owned()]);
    assert!(matches!(store.get_prompt(other, &p.name).await, Err(StoreError::NotFound)));
    // Numbers continue after the imported ones.
    let v3 = new_version(store, org, p.prompt_id, Some("next"), None).await?;
    assert_eq!(v3.version, 3);

    // Two published versions of one prompt are refused.
    let (mut p2, mut vs2) = prompts[0].clone();
    p2.prompt_id = prompt_id();
    p2.name = "two-published".into();
    for v in &mut vs2 {
        v.prompt_id = p2.prompt_id;
        v.version_id = version_id();
        v.status = VersionStatus::Published;
    }
    assert!(matches!(store.import_prompts(&[(p2, vs2)]).await, Err(StoreError::Domain(_))));
    Ok(())
}

pub async fn concurrent_versions_get_distinct_numbers(store: Arc<dyn Store>) -> TestResult {
    let (org, _) = make_org(&*store, "numbers-race@example.com").await?;
    let (pid, v1) = make_prompt(&*store, org, "busy", &[], "v1").await?;
    warm_up(&store).await?;
    let made = all_at_once(30, |i| {
        let store = store.clone();
        // Half copy v1, half bring their own content.
        let content = (i % 2 == 0).then(|| format!("draft {i}"));
        let copy_from = (i % 2 == 1).then_some(v1);
        async move { new_version(&*store, org, pid, content.as_deref(), copy_from).await.map(|v| v.version) }
    })
    .await?;
    let mut numbers = made.into_iter().collect::<Result<Vec<_>, _>>()?;
    numbers.sort_unstable();
    assert_eq!(numbers, (2..=31).collect::<Vec<i64>>());
    assert_eq!(store.get_prompt(org, "busy").await?.latest_version, Some(31));
    assert_eq!(new_version(&*store, org, pid, Some("after"), None).await?.version, 32);
    Ok(())
}
