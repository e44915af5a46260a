//! A throwaway PostgreSQL cluster for tests, driven with the standard library
//! alone (`std::process::Command`, no async) so it can be called from any
//! test, async or not.
//!
//! A cluster lives in a fresh temporary directory (data directory, Unix
//! socket, server log), listens on 127.0.0.1 only on a free port, trusts every
//! local connection as user `postgres`, and trades durability for speed
//! (`fsync=off`). Each test takes its own database from
//! [`PgCluster::fresh_database`], so tests share one server but no data.
//!
//! `initdb` and `pg_ctl` refuse to run as root: when the tests run as root
//! the directory is handed to the `postgres` system user and both run through
//! `runuser -u postgres --`.
//!
//! Environment:
//! - `SCOPE_TEST_PG_URL` (e.g. `postgres://postgres@127.0.0.1:5433`): use
//!   that server for [`PgCluster::shared`] instead of starting one;
//! - `SCOPE_TEST_PG_BIN`: the directory holding `initdb`, `pg_ctl` and
//!   `psql`; otherwise the highest `/usr/lib/postgresql/*/bin`, then `PATH`.

#![allow(clippy::panic, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// How to install the server when it is missing.
const INSTALL_HINT: &str = "PostgreSQL is needed for these tests: install it (Debian/Ubuntu: \
     `apt-get install -y postgresql`), or set SCOPE_TEST_PG_BIN to the directory holding initdb, pg_ctl and psql, \
     or SCOPE_TEST_PG_URL to a running server (postgres://postgres@HOST:PORT)";

/// Settings of every started cluster. `max_connections` is high because
/// tests open many pools at once; the rest buys speed at the cost of the
/// durability a throwaway cluster does not need.
const SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "'127.0.0.1'"),
    ("max_connections", "300"),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("shared_buffers", "32MB"),
    ("logging_collector", "off"),
    ("log_min_messages", "warning"),
    ("log_min_error_statement", "panic"),
];

/// A PostgreSQL server for tests: one started here (stopped and deleted on
/// drop), or an external one named by `SCOPE_TEST_PG_URL`.
#[derive(Debug)]
pub struct PgCluster {
    /// Directory of `initdb`, `pg_ctl`, `psql`.
    bin: PathBuf,
    /// `postgres://user@host:port`, without a database.
    base_url: String,
    /// Set when this process started the server (and so owns it).
    local: Option<LocalCluster>,
}

/// The parts of a cluster this process started.
#[derive(Debug)]
struct LocalCluster {
    /// The temporary directory: `data/`, the socket, `postgres.log`.
    root: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// Whether `initdb`/`pg_ctl` run as `postgres` through `runuser`.
    as_postgres: bool,
}

impl PgCluster {
    /// Starts a private cluster (`initdb` + `pg_ctl start -w`). Stopped
    /// (`pg_ctl stop -m immediate`) and its directory removed on drop; a
    /// watchdog does the same if the test process dies first.
    ///
    /// Panics, saying how to install PostgreSQL, when it is not installed,
    /// and with the server log when it does not start.
    pub fn start() -> PgCluster {
        let bin = bin_dir();
        let as_postgres = current_uid() == 0;
        let root = unique_temp_dir();
        let data = root.join("data");
        let log = root.join("postgres.log");
        if as_postgres {
            run_checked(Command::new("chown").arg("postgres:").arg(&root), "chown the cluster directory to postgres");
        }
        let local = LocalCluster { root, data, log, as_postgres };
        // From here on the directory is removed on drop, also if a step fails.
        let port = free_port();
        let cluster = PgCluster { bin, base_url: format!("postgres://postgres@127.0.0.1:{port}"), local: Some(local) };
        let local = cluster.local();

        let mut initdb = cluster.server_command("initdb");
        initdb.args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync", "-D"]).arg(&local.data);
        run_checked(&mut initdb, "initdb");

        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(local.data.join("postgresql.conf"))
            .expect("open postgresql.conf of the test cluster");
        let mut extra = String::from("\n# scope-testkit\n");
        extra.push_str(&format!("port = {port}\n"));
        extra.push_str(&format!("unix_socket_directories = '{}'\n", local.root.display()));
        for (name, value) in SETTINGS {
            extra.push_str(&format!("{name} = {value}\n"));
        }
        conf.write_all(extra.as_bytes()).expect("write postgresql.conf of the test cluster");
        drop(conf);

        spawn_watchdog(&cluster);
        cluster.start_again();
        cluster
    }

    /// The cluster shared by every test of this process: the server named by
    /// `SCOPE_TEST_PG_URL` when set, otherwise one started on first use.
    ///
    /// Statics are never dropped, so a started shared cluster is stopped and
    /// deleted by a small detached watchdog process once the test process has
    /// exited (however it exits).
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(|| match std::env::var("SCOPE_TEST_PG_URL") {
            Ok(url) if !url.trim().is_empty() => PgCluster::external(url.trim()),
            _ => PgCluster::start(),
        })
    }

    /// The server at `url`, used as it is (never stopped or deleted here).
    fn external(url: &str) -> PgCluster {
        PgCluster { bin: psql_dir(), base_url: base_url(url), local: None }
    }

    /// Base URL `postgres://postgres@127.0.0.1:PORT` (no database).
    pub fn url(&self) -> String {
        self.base_url.clone()
    }

    /// Creates a fresh, uniquely named database
    /// (`scope_t_<pid>_<counter>_<nanos>`) and returns its URL
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub fn fresh_database(&self) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let name = format!("scope_t_{}_{n}_{nanos}", std::process::id());
        self.psql(&format!("{}/postgres", self.base_url), &format!("CREATE DATABASE {name}"));
        format!("{}/{name}", self.base_url)
    }

    /// Runs SQL (one or more statements) through `psql` against a database
    /// URL and returns its standard output: unaligned, tuples only, so
    /// `SELECT 1` gives `"1\n"`. Panics with psql's error when a statement
    /// fails.
    pub fn psql(&self, database_url: &str, sql: &str) -> String {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database_url, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10");
        let out = run(&mut cmd, "psql");
        if !out.status.success() {
            panic!("psql failed ({}) on `{sql}`: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server (`pg_ctl stop -m fast`), keeping its data, for
    /// failure tests on a private cluster. Panics on an external server.
    pub fn stop(&self) {
        let local = self.local();
        let mut cmd = self.server_command("pg_ctl");
        cmd.args(["stop", "-w", "-m", "fast", "-D"]).arg(&local.data);
        run_checked(&mut cmd, "pg_ctl stop");
    }

    /// Starts the server again on the same port and data (`pg_ctl start
    /// -w`), after [`stop`](Self::stop). Panics with the server log when it
    /// does not come up, and on an external server.
    pub fn start_again(&self) {
        let local = self.local();
        let mut cmd = self.server_command("pg_ctl");
        cmd.args(["start", "-w", "-t", "60", "-D"]).arg(&local.data).arg("-l").arg(&local.log);
        // Its own process group: a Ctrl-C aimed at the test run leaves the
        // server to the watchdog instead of killing it half-way.
        cmd.process_group(0);
        let out = run(&mut cmd, "pg_ctl start");
        if !out.status.success() {
            let log = fs::read_to_string(&local.log).unwrap_or_default();
            panic!(
                "pg_ctl start failed ({}): {}\n--- server log ---\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }

    fn local(&self) -> &LocalCluster {
        self.local.as_ref().expect("only a cluster started by PgCluster::start can be stopped and started")
    }

    /// `initdb`/`pg_ctl` of this cluster, run as `postgres` when we are root.
    fn server_command(&self, program: &str) -> Command {
        let local = self.local();
        let path = self.bin.join(program);
        let mut cmd = if local.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // A directory the postgres user may enter (not, say, /root/…).
        cmd.current_dir(&local.root).stdin(Stdio::null());
        cmd
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let Some(local) = &self.local else { return };
        let mut cmd = self.server_command("pg_ctl");
        cmd.args(["stop", "-w", "-m", "immediate", "-D"]).arg(&local.data).stdout(Stdio::null()).stderr(Stdio::null());
        // Already stopped (by `stop`) is fine.
        let _ = cmd.status();
        let _ = fs::remove_dir_all(&local.root);
    }
}

// ---- helpers --------------------------------------------------------------------------

/// A detached shell loop that waits for this process to exit, then stops the
/// cluster and removes its directory. In its own process group, with no
/// inherited pipes, so it neither dies with a Ctrl-C of the test run nor keeps
/// cargo waiting on the test's output.
fn spawn_watchdog(cluster: &PgCluster) {
    let local = cluster.local();
    let pg_ctl = cluster.bin.join("pg_ctl");
    let stop = if local.as_postgres {
        format!("runuser -u postgres -- '{}'", pg_ctl.display())
    } else {
        format!("'{}'", pg_ctl.display())
    };
    // The outer shell starts the loop in the background and exits at once
    // (waited for here, so no zombie): the loop then belongs to init.
    let script = format!(
        "(while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {stop} stop -w -m immediate -D '{data}' >/dev/null 2>&1; rm -rf '{root}') &",
        pid = std::process::id(),
        data = local.data.display(),
        root = local.root.display(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(&local.root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .status()
        .expect("start the test cluster's watchdog (sh)");
}

/// The directory of the server binaries: `SCOPE_TEST_PG_BIN`, else the
/// highest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SCOPE_TEST_PG_BIN") {
        let dir = PathBuf::from(dir);
        if !dir.join("initdb").is_file() {
            panic!("SCOPE_TEST_PG_BIN={} holds no initdb. {INSTALL_HINT}", dir.display());
        }
        return dir;
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!("no PostgreSQL server binaries (initdb) under /usr/lib/postgresql. {INSTALL_HINT}"),
    }
}

/// Where `psql` is for an external server: the server binaries if any, else
/// the directory on `PATH` that holds it.
fn psql_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SCOPE_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("psql").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("psql").is_file()))
        .unwrap_or_else(|| panic!("psql not found. {INSTALL_HINT}"))
}

/// `postgres://user@host:port` from a URL that may name a database and carry
/// query parameters (both dropped).
fn base_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

fn current_uid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or_else(|_| {
        let out = run(Command::new("id").arg("-u"), "id -u");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("parse the output of `id -u`")
    })
}

/// A new, empty directory under the system temporary directory.
fn unique_temp_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("scope-pg-{}-{n}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A port nobody listens on right now (bound on port 0, then released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("local address of the probe listener").port()
}

fn run(cmd: &mut Command, what: &str) -> Output {
    cmd.output().unwrap_or_else(|e| {
        let program = cmd.get_program().to_string_lossy().into_owned();
        if e.kind() == std::io::ErrorKind::NotFound {
            panic!("{what}: {program} not found. {INSTALL_HINT}");
        }
        panic!("{what}: cannot run {program}: {e}")
    })
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = run(cmd, what);
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_drops_database_and_parameters() {
        assert_eq!(base_url("postgres://postgres@127.0.0.1:5433"), "postgres://postgres@127.0.0.1:5433");
        assert_eq!(base_url("postgres://u:p@h:1/db?sslmode=disable"), "postgres://u:p@h:1");
        assert_eq!(base_url("postgresql://h/db"), "postgresql://h");
    }

    #[test]
    fn private_cluster_serves_fresh_databases_and_is_removed_on_drop() {
        let cluster = PgCluster::start();
        let root = cluster.local().root.clone();
        let a = cluster.fresh_database();
        let b = cluster.fresh_database();
        assert_ne!(a, b);
        assert!(a.starts_with(&cluster.url()));
        assert_eq!(cluster.psql(&a, "SELECT 1"), "1\n");
        cluster.psql(&a, "CREATE TABLE t (x INT); INSERT INTO t VALUES (42)");
        assert_eq!(cluster.psql(&a, "SELECT x FROM t"), "42\n");
        // Databases are separate.
        assert_eq!(cluster.psql(&b, "SELECT count(*) FROM pg_tables WHERE tablename = 't'"), "0\n");
        assert_eq!(cluster.psql(&b, "SHOW max_connections"), "300\n");

        cluster.stop();
        cluster.start_again();
        assert_eq!(cluster.psql(&a, "SELECT x FROM t"), "42\n");

        drop(cluster);
        assert!(!root.exists());
    }

    #[test]
    fn shared_cluster_is_started_once() {
        let a = PgCluster::shared();
        let b = PgCluster::shared();
        assert!(std::ptr::eq(a, b));
        let db = a.fresh_database();
        assert_eq!(a.psql(&db, "SELECT 1"), "1\n");
    }
}
