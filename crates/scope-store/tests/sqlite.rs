//! What only the SQLite backend has: database files (created with their
//! directories, reopened, shared by two stores standing for two processes),
//! in-memory URLs. Everything the `Store` trait promises is in the
//! conformance suite (`tests/conformance/`), run against SQLite there too.

#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

use std::sync::Arc;

use scope_domain::VersionStatus;
use scope_store::sqlite::SqliteStore;
use scope_store::*;

use support::*;

#[tokio::test]
async fn open_creates_missing_directories() -> TestResult {
    let dir = tempfile::tempdir()?;
    // A nested directory that does not exist yet.
    let path = dir.path().join("nested").join("deeper").join("scope.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display())).await?;
    assert!(path.exists());
    assert!(!store.is_initialized().await?);
    Ok(())
}

#[tokio::test]
async fn in_memory_database_keeps_its_data_while_open() -> TestResult {
    let store = SqliteStore::open("sqlite::memory:").await?;
    let (org, key) = make_org(&store, "memory@example.com").await?;
    let (pid, v1) = make_prompt(&store, org, "kept", &[], "x").await?;
    store.promote(org, pid, v1, &promote_req(true, 1), &event(org, "version.promoted", "x")).await?;
    // Reads (the read pool) see what writes (the write pool) made: one
    // connection serves both, so the database is not lost between them.
    assert_eq!(store.get_api_key(org, key.key_id).await?, key);
    assert_eq!(store.production_version(org, pid).await?.map(|v| v.version_id), Some(v1));
    let snapshot = store.export().await?;
    assert_eq!(snapshot.orgs.len(), 1);
    // Another in-memory store is another, empty database.
    let other = SqliteStore::open("sqlite::memory:").await?;
    assert!(!other.is_initialized().await?);
    other.import(&snapshot).await?;
    assert_eq!(other.export().await?, snapshot);
    Ok(())
}

#[tokio::test]
async fn reopen_keeps_data_and_parallel_stores_share_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let a = SqliteStore::open(&url).await?;
    let (org, _) = make_org(&a, "re@example.com").await?;
    // A second store on the same file (another process, in effect).
    let b = SqliteStore::open(&url).await?;
    make_prompt(&b, org, "shared", &[], "x").await?;
    assert_eq!(a.get_prompt(org, "shared").await?.prompt.name, "shared");
    drop(a);
    drop(b);
    let c = scope_store::open(&url).await?;
    assert!(c.is_initialized().await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_serialize_promotes() -> TestResult {
    // Two stores stand for two processes (server and CLI): their write pools
    // contend for the file lock, and BEGIN IMMEDIATE + the busy timeout make
    // them wait for each other instead of failing.
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let a = Arc::new(SqliteStore::open(&url).await?);
    let b = Arc::new(SqliteStore::open(&url).await?);
    let (org, _) = make_org(&*a, "two@example.com").await?;
    let (pid, v1) = make_prompt(&*a, org, "hot", &[], "v1").await?;
    let mut versions = vec![v1];
    for _ in 0..19 {
        versions.push(new_version(&*b, org, pid, Some("v"), None).await?.version_id);
    }
    let mut tasks = Vec::new();
    for (i, v) in versions.iter().copied().enumerate() {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.promote(org, pid, v, &promote_req(true, i as i64), &event(org, "version.promoted", "x")).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let all = a.list_versions(org, pid, &VersionListQuery { page: page(200, None), include_archived: true }).await?;
    assert_eq!(all.len(), 20);
    assert_eq!(all.iter().filter(|v| v.status == VersionStatus::Published).count(), 1);
    assert_eq!(b.list_promotions(org, pid, &page(200, None)).await?.len(), 20);
    Ok(())
}
