//! The event log: what each change appends (in its own transaction),
//! ordering, tenancy, retention; under concurrent writers, a reader past
//! its last position never misses a commit.

use std::collections::BTreeSet;
use std::sync::Arc;

use scope_domain::OrgId;
use scope_store::*;

use crate::labels::move_req;
use crate::support::*;

fn types(rows: &[EventRow]) -> Vec<&str> {
    rows.iter().map(|e| e.event_type.as_str()).collect()
}

pub async fn every_change_appends_an_event(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, key) = make_org(s, "events@example.com").await?;
    let start = s.event_bounds().await?.head;
    let (pid, v1) = make_prompt(s, org, "greeting", &[], "one").await?;
    let v2 = new_version(s, org, pid, Some("two"), None).await?;
    s.update_draft(
        org,
        pid,
        v2.version_id,
        &DraftPatch { content: Some("2".into()), ..DraftPatch::default() },
        1,
        &event(org, "v", "x"),
    )
    .await?;
    s.promote(org, pid, v1, &promote_req(true, 4000), &event(org, "p", "x")).await?;
    s.move_label(org, pid, &move_req("staging", Some(v2.version_id), 4100), &event(org, "l", "x")).await?;
    s.promote(org, pid, v2.version_id, &promote_req(true, 4200), &event(org, "p", "x")).await?;
    let v3 = new_version(s, org, pid, Some("three"), None).await?;
    s.set_archived(org, pid, v3.version_id, true, 4300, &event(org, "a", "x")).await?;
    s.set_archived(org, pid, v3.version_id, false, 4400, &event(org, "u", "x")).await?;
    s.update_prompt(org, pid, &PromptPatch { description: Some("d".into()), tags: None }, 4500, &event(org, "u", "x"))
        .await?;
    s.revoke_api_key(org, key.key_id, "usr_a", 4600, &event(org, "r", "x")).await?;
    // Revoking again changes nothing, and appends nothing.
    s.revoke_api_key(org, key.key_id, "usr_a", 4700, &event(org, "r", "x")).await?;
    s.delete_prompt(org, pid, &event(org, "prompt.deleted", "x")).await?;

    let rows = s.list_events(org, start, 100).await?;
    assert_eq!(
        types(&rows),
        vec![
            "prompt.version_created",
            "prompt.version_created",
            "prompt.version_updated",
            "prompt.label_moved",
            "prompt.label_moved",
            "prompt.label_moved",
            "prompt.version_archived",
            "prompt.version_created",
            "prompt.version_archived",
            "prompt.version_updated",
            "prompt.updated",
            "api_key.revoked",
            "prompt.deleted",
        ]
    );
    assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq), "positions increase");
    assert!(rows.iter().all(|e| e.org_id == org && e.seq > start));
    let d = |i: usize, k: &str| rows[i].data[k].clone();
    assert_eq!(d(0, "name"), "greeting");
    assert_eq!(d(0, "prompt_id"), pid.to_string().as_str());
    assert_eq!(d(0, "version_id"), v1.to_string().as_str());
    // v1 promoted: production from nothing to v1.
    assert_eq!(
        (d(3, "label"), d(3, "version_id"), d(3, "previous_version_id")),
        ("production".into(), v1.to_string().into(), serde_json::Value::Null)
    );
    assert_eq!(rows[3].at, 4000);
    // staging to v2.
    assert_eq!(
        (d(4, "label"), d(4, "version"), d(4, "previous_version")),
        ("staging".into(), 2.into(), serde_json::Value::Null)
    );
    // v2 promoted: v1 archived with it.
    assert_eq!((d(5, "version"), d(5, "previous_version")), (2.into(), 1.into()));
    assert_eq!(d(6, "version_id"), v1.to_string().as_str());
    assert_eq!(d(11, "key_id"), key.key_id.to_string().as_str());
    assert_eq!(d(12, "name"), "greeting");

    // Reading past a position, in pages.
    let page1 = s.list_events(org, start, 5).await?;
    let page2 = s.list_events(org, page1[4].seq, 100).await?;
    assert_eq!(page1.len() + page2.len(), rows.len());
    assert_eq!(page2[0].seq, rows[5].seq);
    assert_eq!(s.event_bounds().await?.head, rows[12].seq);
    assert_eq!(s.event_feed(start, 100).await?, rows);
    Ok(())
}

pub async fn events_are_scoped_by_org(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _) = make_org(s, "ea@example.com").await?;
    let (org_b, _) = make_org(s, "eb@example.com").await?;
    let start = s.event_bounds().await?.head;
    make_prompt(s, org, "a1", &[], "x").await?;
    make_prompt(s, org_b, "b1", &[], "x").await?;
    make_prompt(s, org, "a2", &[], "x").await?;
    let name_of =
        |rows: &[EventRow]| rows.iter().map(|e| e.data["name"].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>();
    assert_eq!(name_of(&s.list_events(org, start, 100).await?), vec!["a1", "a2"]);
    assert_eq!(name_of(&s.list_events(org_b, start, 100).await?), vec!["b1"]);
    assert!(s.list_events(OrgId::generate(), 0, 100).await?.is_empty());
    // The process-wide feed has every organization's, in order.
    let feed = s.event_feed(start, 100).await?;
    assert_eq!(name_of(&feed), vec!["a1", "b1", "a2"]);
    assert_eq!(feed.iter().map(|e| e.org_id).collect::<Vec<_>>(), vec![org, org_b, org]);
    Ok(())
}

pub async fn retention_prunes_and_raises_the_mark(store: Arc<dyn Store>) -> TestResult {
    let s = &*store;
    let (org, _) = make_org(s, "retention@example.com").await?;
    let (pid, _) = make_prompt(s, org, "p", &[], "x").await?; // at 2000
    for i in 0..3 {
        // at 3000
        new_version(s, org, pid, Some(&format!("v{i}")), None).await?;
    }
    let all = s.list_events(org, 0, 100).await?;
    assert_eq!(all.len(), 4);
    assert_eq!(s.event_bounds().await?, EventBounds { pruned_through: 0, head: all[3].seq });
    assert_eq!(s.prune_events(2500).await?, 1);
    assert_eq!(s.prune_events(2500).await?, 0);
    let bounds = s.event_bounds().await?;
    assert_eq!(bounds, EventBounds { pruned_through: all[0].seq, head: all[3].seq });
    assert_eq!(s.list_events(org, 0, 100).await?, all[1..].to_vec());
    // Everything pruned: the head stays, and positions are never reused.
    assert_eq!(s.prune_events(i64::MAX).await?, 3);
    assert_eq!(s.event_bounds().await?, EventBounds { pruned_through: all[3].seq, head: all[3].seq });
    new_version(s, org, pid, Some("after"), None).await?;
    let next = s.list_events(org, 0, 100).await?;
    assert_eq!(next.len(), 1);
    assert!(next[0].seq > all[3].seq, "positions are never reused");
    Ok(())
}

pub async fn a_reader_past_its_position_never_misses_a_commit(store: Arc<dyn Store>) -> TestResult {
    // Each process's fan-out reads `event_feed(last seen)`. Writers racing
    // each other (on different prompts and organizations, so nothing else
    // serializes them) must not commit a position below one a reader has
    // already seen, or that reader would never deliver the event.
    let (org, _) = make_org(&*store, "event-race@example.com").await?;
    let (org_b, _) = make_org(&*store, "event-race-b@example.com").await?;
    let mut prompts = Vec::new();
    for i in 0..40 {
        let o = if i % 2 == 0 { org } else { org_b };
        prompts.push((o, make_prompt(&*store, o, &format!("p{i}"), &[], "x").await?.0));
    }
    let start = store.event_bounds().await?.head;
    warm_up(&store).await?;
    let writers = {
        let (store, prompts) = (store.clone(), prompts.clone());
        tokio::spawn(async move {
            all_at_once(prompts.len(), |i| {
                let (store, (o, pid)) = (store.clone(), prompts[i]);
                async move { new_version(&*store, o, pid, Some("next"), None).await.map(|v| v.version_id) }
            })
            .await
        })
    };
    let mut cursor = start;
    let mut seen = BTreeSet::new();
    loop {
        // Decided before the read: a read that starts after every writer
        // committed must see everything.
        let done = writers.is_finished();
        for e in store.event_feed(cursor, 7).await? {
            assert!(e.seq > cursor, "positions above the cursor");
            cursor = e.seq;
            seen.insert(e.data["version_id"].as_str().unwrap_or("").to_owned());
        }
        if done {
            break;
        }
    }
    let mut written = BTreeSet::new();
    for w in writers.await?? {
        written.insert(w?.to_string());
    }
    // The last reads may still be draining pages.
    loop {
        let rows = store.event_feed(cursor, 7).await?;
        if rows.is_empty() {
            break;
        }
        for e in rows {
            cursor = e.seq;
            seen.insert(e.data["version_id"].as_str().unwrap_or("").to_owned());
        }
    }
    assert_eq!(seen, written, "the reader missed an event");
    Ok(())
}
