//! One conformance suite for every `Store` backend.
//!
//! Each case is an `async fn` in the module of its concern, written once
//! against the trait: it takes one `Arc<dyn Store>` (a fresh, empty store), or
//! two of the same backend when it moves data between stores (export and
//! import). [`conformance_tests!`] instantiates every case for every backend,
//! as `sqlite::<concern>::<case>` and `postgres::<concern>::<case>`, so
//! `cargo test -p scope-store --test conformance sqlite::` runs one half.
//!
//! - SQLite: a fresh database file in a temporary directory that lives as long
//!   as the test;
//! - PostgreSQL: a fresh database per test on the cluster shared by this test
//!   process (`scope_testkit::pg`, or the server named by `SCOPE_TEST_PG_URL`).
//!
//! `across_backends` moves a deployment from one backend to the other.
//! Behaviour only one backend has (SQLite files, in-memory URLs, two
//! processes on one file; PostgreSQL's change feed, outages, replicas) is
//! tested in that backend's own test file.

mod support;

mod audiences;
mod audit;
mod events;
mod keys;
mod labels;
mod prompts;
mod quotas;
mod signing_keys;
mod tokens;
mod transfer;
mod users;

use std::future::Future;
use std::sync::Arc;

use scope_store::Store;

use crate::support::TestResult;

/// A store for one test, with whatever must outlive it.
struct TestDb {
    store: Arc<dyn Store>,
    /// The SQLite file's directory, deleted when the test ends.
    _dir: Option<tempfile::TempDir>,
}

/// A fresh SQLite database file in a temporary directory.
async fn sqlite_store() -> Result<TestDb, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("scope.db").display());
    let store = scope_store::sqlite::SqliteStore::open(&url).await?;
    Ok(TestDb { store: Arc::new(store), _dir: Some(dir) })
}

/// A fresh PostgreSQL database on the cluster shared by this test process.
async fn postgres_store() -> Result<TestDb, Box<dyn std::error::Error>> {
    // Starting the cluster (first call) and CREATE DATABASE run processes.
    let url = tokio::task::spawn_blocking(|| scope_testkit::pg::PgCluster::shared().fresh_database()).await?;
    let store = scope_store::postgres::PgStore::open(&url, &scope_store::OpenOptions::default()).await?;
    Ok(TestDb { store: Arc::new(store), _dir: None })
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    async fn open(self) -> Result<TestDb, Box<dyn std::error::Error>> {
        let (db, name) = match self {
            Backend::Sqlite => (sqlite_store().await?, "sqlite"),
            Backend::Postgres => (postgres_store().await?, "postgres"),
        };
        // Never test one backend while believing it is the other.
        assert_eq!(db.store.backend(), name);
        Ok(db)
    }

    /// Runs a case on fresh stores of this backend.
    async fn run<Stores>(self, case: impl Case<Stores>) -> TestResult {
        case.run(self).await
    }
}

/// A conformance case: an `async fn` taking one fresh store, or two.
trait Case<Stores> {
    async fn run(self, backend: Backend) -> TestResult;
}

impl<F, Fut> Case<(Arc<dyn Store>,)> for F
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = TestResult>,
{
    async fn run(self, backend: Backend) -> TestResult {
        let db = backend.open().await?;
        self(db.store.clone()).await
    }
}

impl<F, Fut> Case<(Arc<dyn Store>, Arc<dyn Store>)> for F
where
    F: FnOnce(Arc<dyn Store>, Arc<dyn Store>) -> Fut,
    Fut: Future<Output = TestResult>,
{
    async fn run(self, backend: Backend) -> TestResult {
        let first = backend.open().await?;
        let second = backend.open().await?;
        self(first.store.clone(), second.store.clone()).await
    }
}

/// `conformance_tests! { concern: [case, …], … }` expands, for each backend,
/// to `mod <backend> { mod <concern> { #[tokio::test] async fn case() … } }`,
/// each test running `crate::<concern>::case` on fresh stores of its backend.
/// Multi-threaded runtimes, so that cases which race writers really race.
macro_rules! conformance_tests {
    ($($concern:ident: [$($case:ident),* $(,)?]),* $(,)?) => {
        conformance_tests!(@backend sqlite Sqlite $($concern: [$($case),*]),*);
        conformance_tests!(@backend postgres Postgres $($concern: [$($case),*]),*);
    };
    (@backend $module:ident $backend:ident $($concern:ident: [$($case:ident),*]),*) => {
        mod $module {
            $(
                mod $concern {
                    use crate::$concern as cases;
                    $(
                        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                        async fn $case() -> crate::support::TestResult {
                            crate::Backend::$backend.run(cases::$case).await
                        }
                    )*
                }
            )*
        }
    };
}

conformance_tests! {
    keys: [
        orgs_and_keys,
        rotate_usage_and_gates,
        bulk_import_keys,
        gate_poller_never_misses_a_concurrent_change,
        concurrent_usage_adds_up,
    ],
    prompts: [
        prompts_and_isolation,
        versions_and_drafts,
        promote_archive_and_history,
        concurrent_promotes_leave_one_published,
        concurrent_versions_get_distinct_numbers,
        bulk_import_prompts,
    ],
    users: [
        users_list_newest_first_and_emails_are_unique,
        invitation_is_accepted_once_and_never_after_expiry,
        last_active_admin_cannot_be_demoted_or_removed,
        sessions_follow_the_user_and_end_with_it,
        set_password_ends_every_other_session,
        users_are_scoped_by_org,
        prune_sessions_drops_expired_idle_sessions_and_stale_invitations,
        concurrent_demotions_keep_an_active_admin,
        bootstrap_org_creates_the_first_org_once,
        concurrent_acceptances_accept_once,
    ],
    audiences: [
        audiences_are_replaced_per_org_and_audited,
    ],
    audit: [
        audit_rows_are_written_per_org,
        audit_filters_combine_and_page,
    ],
    labels: [
        labels_move_list_and_remove,
        production_moves_are_promotions,
        labelled_versions_cannot_be_archived,
        labels_are_scoped_by_org,
        concurrent_moves_leave_one_target_and_a_chain,
    ],
    events: [
        every_change_appends_an_event,
        events_are_scoped_by_org,
        retention_prunes_and_raises_the_mark,
        a_reader_past_its_position_never_misses_a_commit,
    ],
    signing_keys: [
        signing_keys_rotate,
        concurrent_rotations_leave_one_active_key,
        a_plaintext_key_is_sealed_once,
    ],
    quotas: [
        counts_are_per_org_and_follow_changes,
    ],
    tokens: [
        revoked_tokens_are_listed_once_in_order_until_pruned,
        token_poller_never_misses_a_concurrent_revocation,
    ],
    transfer: [
        export_import_round_trip,
        import_needs_an_empty_store,
        import_is_all_or_nothing,
        import_keeps_stored_numbers_and_gates,
        export_is_a_consistent_snapshot,
    ],
}

/// Moving a deployment between backends (`scope export` on one, `scope
/// import` on the other): the round trip of `transfer` with one store of
/// each, so the second export, from the other backend, equals the first.
mod across_backends {
    use crate::support::TestResult;
    use crate::Backend;

    async fn round_trip(from: Backend, to: Backend) -> TestResult {
        let (from, to) = (from.open().await?, to.open().await?);
        crate::transfer::export_import_round_trip(from.store.clone(), to.store.clone()).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_to_postgres() -> TestResult {
        round_trip(Backend::Sqlite, Backend::Postgres).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_to_sqlite() -> TestResult {
        round_trip(Backend::Postgres, Backend::Sqlite).await
    }
}
