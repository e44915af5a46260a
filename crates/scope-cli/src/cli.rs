//! Command-line interface (SPEC §8). Flags have environment fallbacks;
//! invalid values fail at start-up naming the variable.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand};
use scope_domain::{OrgId, Role};
use scope_server::service::api_keys::{self, NewKey};
use scope_server::service::{bootstrap, page, App, Principal};
use scope_server::views::ApiKeyView;
use scope_server::{AppError, ServerConfig};
use scope_store::KeyStatus;
use secrecy::{ExposeSecret, SecretString};

use crate::logging::LogFormat;

#[derive(Parser)]
#[command(name = "scope", version, about = "Scope: versioned LLM prompts served to your applications")]
struct Cli {
    /// Database URL: `sqlite://PATH` (created if missing) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`. Default: an SQLite
    /// file under SCOPE_DATA_DIR.
    #[arg(long, global = true, env = "SCOPE_DATABASE_URL")]
    database: Option<String>,

    /// Most database connections of this process (PostgreSQL).
    #[arg(long, global = true, env = "SCOPE_DB_POOL_SIZE", default_value = "16", value_parser = parse_pool_size)]
    db_pool_size: u32,

    /// Milliseconds a request waits for a database connection before 503.
    #[arg(long, global = true, env = "SCOPE_DB_CONNECT_TIMEOUT_MS", default_value = "3000", value_parser = parse_db_millis)]
    db_connect_timeout_ms: u64,

    /// Milliseconds a database statement may run before it is cancelled (503).
    #[arg(long, global = true, env = "SCOPE_DB_STATEMENT_TIMEOUT_MS", default_value = "5000", value_parser = parse_db_millis)]
    db_statement_timeout_ms: u64,

    /// Directory of the default SQLite database.
    #[arg(long, global = true, env = "SCOPE_DATA_DIR", default_value = "./scope-data")]
    data_dir: PathBuf,

    /// Log format.
    #[arg(long, global = true, env = "SCOPE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Deprecated: a key on the command line is visible to every user of
    /// the machine (`ps`). Use SCOPE_MASTER_KEY_FILE or SCOPE_MASTER_KEY.
    #[arg(long, global = true, hide = true)]
    master_key: Option<String>,

    /// File holding the master key that encrypts signing keys at rest (at
    /// least 32 random characters; one trailing newline is ignored; keep the
    /// file readable by its owner only). SCOPE_MASTER_KEY may hold the key
    /// itself instead.
    #[arg(long, global = true, env = "SCOPE_MASTER_KEY_FILE", value_name = "PATH")]
    master_key_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}


#[derive(Subcommand)]
enum Command {
    /// Run the server (bootstraps an empty database).
    Serve(ServeArgs),
    /// Create the first organization and its admin (fails if initialized).
    Init {
        #[arg(long)]
        org_name: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        json: bool,
    },
    /// Organizations (tenants).
    #[command(subcommand)]
    Org(OrgCommand),
    /// API keys of an organization.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// JWT signing keys.
    #[command(subcommand, name = "signing-keys")]
    SigningKeys(SigningKeysCommand),
    /// Write the whole deployment (organizations, users, keys as digests,
    /// prompts, versions, histories, audit events, signing keys as stored) as
    /// versioned JSON lines (docs/EXPORT.md), e.g. to move from SQLite to
    /// PostgreSQL. The file is as sensitive as the database.
    Export {
        /// Write here (created with mode 0600) instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Load an export into an empty database, all or nothing. Keys, tokens
    /// and signing keys issued before the move keep working.
    Import {
        /// Read from here instead of stdin.
        #[arg(long, short)]
        input: Option<PathBuf>,
    },
    /// Fetch prompts as an application does (uses the SDK and the SCOPE_*
    /// variables: SCOPE_API_URL, SCOPE_ORG_ID, SCOPE_API_KEY, SCOPE_API_SECRET).
    #[command(subcommand)]
    Prompt(PromptCommand),
}

#[derive(Args)]
struct Selector {
    /// `production` (default), `latest`, or any other label (`staging`, …).
    #[arg(long, conflicts_with = "version")]
    label: Option<String>,
    /// A version id (`v_…`).
    #[arg(long)]
    version: Option<String>,
}

#[derive(Subcommand)]
enum PromptCommand {
    /// Print a prompt version: its content, or the whole version with --json.
    Get {
        name: String,
        #[command(flatten)]
        selector: Selector,
        #[arg(long)]
        json: bool,
    },
    /// Render a prompt with variables and print the text alone.
    Render {
        name: String,
        #[command(flatten)]
        selector: Selector,
        /// A variable, `name=value`; repeat for each.
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Also reject variables the template does not use.
        #[arg(long)]
        strict: bool,
    },
    /// List a prompt's labels (or, with --history, every move: the release log).
    Labels {
        name: String,
        #[arg(long)]
        history: bool,
        #[arg(long)]
        json: bool,
    },
    /// Point a label at a version (`production`: promote it).
    Label {
        name: String,
        label: String,
        /// The version: its id (`v_…`) or its number.
        #[arg(long)]
        version: String,
        #[arg(long)]
        notes: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Move a label back to the version it pointed at before its last move.
    Rollback {
        name: String,
        label: String,
        #[arg(long)]
        notes: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show what changed between two versions (ids, numbers or labels).
    Diff {
        name: String,
        from: String,
        to: String,
        /// `auto` (colour on a terminal, unless NO_COLOR is set), `always`, `never`.
        #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
        color: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "SCOPE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "SCOPE_TOKEN_TTL", default_value = "3600", value_parser = parse_ttl)]
    token_ttl: u64,
    /// Public base URL (JWT `iss`). Default: http://LISTEN.
    #[arg(long, env = "SCOPE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "SCOPE_MAX_BODY_BYTES", default_value = "1048576", value_parser = parse_body_limit)]
    max_body_bytes: usize,
    /// Failed token exchanges per client address per minute before 429.
    #[arg(long, env = "SCOPE_AUTH_FAILURE_LIMIT", default_value = "20", value_parser = parse_failure_limit)]
    auth_failure_limit: u32,
    /// Console sessions end after this many seconds without a request.
    #[arg(long, env = "SCOPE_SESSION_IDLE_SECS", default_value = "3600", value_parser = parse_session_secs)]
    session_idle_secs: u64,
    /// Console sessions end this many seconds after sign-in.
    #[arg(long, env = "SCOPE_SESSION_MAX_AGE_SECS", default_value = "43200", value_parser = parse_session_secs)]
    session_max_age_secs: u64,
    /// Failed sign-ins per account, and per client address, per minute before 429.
    #[arg(long, env = "SCOPE_SIGN_IN_FAILURE_LIMIT", default_value = "10", value_parser = parse_sign_in_limit)]
    sign_in_failure_limit: u32,
    /// Largest prompt content (a version's template text) in bytes; larger
    /// gets 413. At most the request body limit is useful.
    #[arg(long, env = "SCOPE_MAX_PROMPT_BYTES", default_value = "262144", value_parser = parse_prompt_bytes)]
    max_prompt_bytes: usize,
    /// Most prompts per organization (more get 409).
    #[arg(long, env = "SCOPE_MAX_PROMPTS_PER_ORG", default_value = "10000", value_parser = parse_quota)]
    max_prompts_per_org: u64,
    /// Most versions per prompt (more get 409).
    #[arg(long, env = "SCOPE_MAX_VERSIONS_PER_PROMPT", default_value = "5000", value_parser = parse_quota)]
    max_versions_per_prompt: u64,
    /// Most active API keys per organization (more get 409).
    #[arg(long, env = "SCOPE_MAX_KEYS_PER_ORG", default_value = "1000", value_parser = parse_quota)]
    max_keys_per_org: u64,
    /// Hours the event log keeps events for `GET /api/v1/events` resumes.
    #[arg(long, env = "SCOPE_EVENT_RETENTION_HOURS", default_value = "168", value_parser = parse_event_retention)]
    event_retention_hours: u64,
    /// Seconds between heartbeats of an idle event stream.
    #[arg(long, env = "SCOPE_EVENT_HEARTBEAT_SECS", default_value = "15", value_parser = parse_event_heartbeat)]
    event_heartbeat_secs: u64,
    /// Most event streams open at once per process (more get 429).
    #[arg(long, env = "SCOPE_MAX_EVENT_STREAMS", default_value = "10000", value_parser = parse_max_streams)]
    max_event_streams: usize,
    /// Audiences a client may ask tokens for (OAuth `resource`/`audience`,
    /// set as the JWT `aud`) besides this server's public URL:
    /// comma-separated, e.g. the URLs of services behind a gateway.
    #[arg(long, env = "SCOPE_TOKEN_AUDIENCES", value_delimiter = ',', value_parser = parse_audience)]
    token_audiences: Vec<String>,
    /// Proxies whose X-Forwarded-For names the client: comma-separated CIDR
    /// blocks or addresses (e.g. 10.0.0.0/8,2001:db8::/32). Default: none,
    /// the client is the TCP peer.
    #[arg(long, env = "SCOPE_TRUSTED_PROXIES", value_parser = parse_trusted_proxies)]
    trusted_proxies: Option<scope_server::net::TrustedProxies>,
    /// Failed token exchanges per client address and API key id per minute
    /// before 429 (credentials that verify are never refused).
    #[arg(long, env = "SCOPE_AUTH_KEY_FAILURE_LIMIT", default_value = "10", value_parser = parse_key_failure_limit)]
    auth_key_failure_limit: u32,
    /// Seconds a client has to send a request's headers once their first
    /// byte has come (HTTP/1), and a new connection to send anything.
    #[arg(long, env = "SCOPE_HEADER_READ_TIMEOUT_SECS", default_value = "10", value_parser = parse_timeout_secs)]
    header_read_timeout_secs: u64,
    /// Seconds a connection may stay without any traffic before it is closed.
    #[arg(long, env = "SCOPE_IDLE_TIMEOUT_SECS", default_value = "75", value_parser = parse_timeout_secs)]
    idle_timeout_secs: u64,
    /// Seconds a request may take before it is answered 503 (event streams
    /// excepted).
    #[arg(long, env = "SCOPE_REQUEST_TIMEOUT_SECS", default_value = "30", value_parser = parse_timeout_secs)]
    request_timeout_secs: u64,
    /// Seconds a client has to send a request body (408 past it).
    #[arg(long, env = "SCOPE_BODY_READ_TIMEOUT_SECS", default_value = "30", value_parser = parse_timeout_secs)]
    body_read_timeout_secs: u64,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "SCOPE_MAX_CONNECTIONS", default_value = "10000", value_parser = parse_max_connections)]
    max_connections: usize,
    /// Requests handled at once (event streams excepted); more get 503.
    #[arg(long, env = "SCOPE_MAX_CONCURRENT_REQUESTS", default_value = "4096", value_parser = parse_max_connections)]
    max_concurrent_requests: usize,
    /// Most bytes of prompt answers kept in memory (the cache of
    /// /production, /latest and label fetches).
    #[arg(long, env = "SCOPE_PROMPT_CACHE_MAX_BYTES", default_value = "67108864", value_parser = parse_cache_bytes)]
    prompt_cache_max_bytes: usize,
    /// Prompt answers larger than this many bytes are never cached.
    #[arg(long, env = "SCOPE_PROMPT_CACHE_MAX_ENTRY_BYTES", default_value = "1048576", value_parser = parse_cache_bytes)]
    prompt_cache_max_entry_bytes: usize,
    /// Hours until the admin API key printed on the first start expires
    /// (0: it never expires).
    #[arg(long, env = "SCOPE_BOOTSTRAP_KEY_TTL_HOURS", default_value = "24", value_parser = parse_bootstrap_ttl)]
    bootstrap_key_ttl_hours: u64,
}

fn parse_cache_bytes(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1024..=1 << 40).contains(&n) => Ok(n),
        _ => Err("SCOPE_PROMPT_CACHE_MAX_BYTES and SCOPE_PROMPT_CACHE_MAX_ENTRY_BYTES must be a whole number of \
                  bytes, at least 1024"
            .into()),
    }
}

fn parse_bootstrap_ttl(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n <= 8760 => Ok(n),
        _ => Err("SCOPE_BOOTSTRAP_KEY_TTL_HOURS must be a whole number of hours from 0 (never expires) to 8760".into()),
    }
}

/// A comma-separated list of CIDR blocks; empty is none.
fn parse_trusted_proxies(s: &str) -> Result<scope_server::net::TrustedProxies, String> {
    let blocks = s.split(',').filter(|b| !b.trim().is_empty()).map(str::parse).collect::<Result<Vec<_>, String>>();
    blocks.map(scope_server::net::TrustedProxies::new).map_err(|e| format!("SCOPE_TRUSTED_PROXIES: {e}"))
}

fn parse_key_failure_limit(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("SCOPE_AUTH_KEY_FAILURE_LIMIT must be a whole number, at least 1".into()),
    }
}

fn parse_timeout_secs(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=3600).contains(&n) => Ok(n),
        _ => Err("a timeout is a whole number of seconds between 1 and 3600".into()),
    }
}

fn parse_max_connections(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err("a connection or request cap is a whole number between 1 and 1000000".into()),
    }
}

fn parse_prompt_bytes(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1024..=64 * 1024 * 1024).contains(&n) => Ok(n),
        _ => Err("SCOPE_MAX_PROMPT_BYTES must be a whole number of bytes between 1024 and 67108864".into()),
    }
}

fn parse_quota(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=100_000_000).contains(&n) => Ok(n),
        _ => Err("SCOPE_MAX_PROMPTS_PER_ORG, SCOPE_MAX_VERSIONS_PER_PROMPT and SCOPE_MAX_KEYS_PER_ORG must be \
                  whole numbers between 1 and 100000000"
            .into()),
    }
}

fn parse_event_retention(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=87_600).contains(&n) => Ok(n),
        _ => Err("SCOPE_EVENT_RETENTION_HOURS must be a whole number of hours between 1 and 87600".into()),
    }
}

fn parse_event_heartbeat(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=300).contains(&n) => Ok(n),
        _ => Err("SCOPE_EVENT_HEARTBEAT_SECS must be a whole number of seconds between 1 and 300".into()),
    }
}

fn parse_max_streams(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err("SCOPE_MAX_EVENT_STREAMS must be a whole number between 1 and 1000000".into()),
    }
}

fn parse_audience(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.len() > 512 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an audience is 1-512 characters without spaces (e.g. https://billing.example.com)".into());
    }
    Ok(s.to_owned())
}

fn parse_pool_size(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 1000 (SCOPE_DB_POOL_SIZE)".into()),
    }
}

fn parse_db_millis(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (100..=600_000).contains(&n) => Ok(n),
        _ => Err("must be milliseconds from 100 to 600000".into()),
    }
}

fn parse_sign_in_limit(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("SCOPE_SIGN_IN_FAILURE_LIMIT must be a whole number, at least 1".into()),
    }
}

fn parse_session_secs(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (60..=30 * 86_400).contains(&n) => Ok(n),
        _ => Err("SCOPE_SESSION_IDLE_SECS and SCOPE_SESSION_MAX_AGE_SECS must be whole seconds between 60 and 2592000"
            .into()),
    }
}

fn parse_ttl(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=86_400).contains(&n) => Ok(n),
        _ => Err("SCOPE_TOKEN_TTL must be a whole number of seconds between 1 and 86400".into()),
    }
}

fn parse_body_limit(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1024 => Ok(n),
        _ => Err("SCOPE_MAX_BODY_BYTES must be a whole number of bytes, at least 1024".into()),
    }
}

fn parse_failure_limit(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("SCOPE_AUTH_FAILURE_LIMIT must be a whole number, at least 1".into()),
    }
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create another organization with its admin.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key (the secret is printed once).
    Create {
        #[arg(long, env = "SCOPE_ORG_ID")]
        org: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "viewer")]
        role: String,
        #[arg(long)]
        environment: Option<String>,
        /// RFC 3339 time.
        #[arg(long)]
        expires_at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List API keys, newest first (never secrets).
    List {
        #[arg(long, env = "SCOPE_ORG_ID")]
        org: String,
        /// active, revoked or expired.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key (idempotent).
    Revoke {
        #[arg(long, env = "SCOPE_ORG_ID")]
        org: String,
        key_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SigningKeysCommand {
    /// Create a new signing key; the previous one keeps verifying until its
    /// tokens expire.
    Rotate,
}

fn database_url(cli: &Cli) -> String {
    match &cli.database {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", cli.data_dir.join("scope.db").display()),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn app_err(e: AppError) -> anyhow::Error {
    anyhow!(
        "{}",
        match e {
            AppError::Domain(d) => d.message,
            other => other.to_string(),
        }
    )
}

/// The master key from wherever it was given: SCOPE_MASTER_KEY, the file
/// named by --master-key-file / SCOPE_MASTER_KEY_FILE, or the deprecated
/// --master-key flag; at most one of them. A weak key fails the start.
fn master_key(cli: &Cli) -> anyhow::Result<Option<SecretString>> {
    let from_env = match std::env::var("SCOPE_MASTER_KEY") {
        Ok(k) => Some(k),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => return Err(anyhow!("SCOPE_MASTER_KEY is not valid UTF-8")),
    };
    let given = [cli.master_key.is_some(), from_env.is_some(), cli.master_key_file.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(anyhow!(
            "the master key is given more than once: set only one of SCOPE_MASTER_KEY, SCOPE_MASTER_KEY_FILE \
             (--master-key-file) and --master-key"
        ));
    }
    let (key, source) = if let Some(k) = &cli.master_key {
        let warning = "--master-key is deprecated: the key is visible to every user of this machine in the \
                       process list; use SCOPE_MASTER_KEY_FILE (or SCOPE_MASTER_KEY) instead";
        tracing::warn!("{warning}");
        eprintln!("WARNING: {warning}");
        (k.clone(), "--master-key")
    } else if let Some(k) = from_env {
        (k, "SCOPE_MASTER_KEY")
    } else if let Some(path) = &cli.master_key_file {
        (read_master_key_file(path)?, "SCOPE_MASTER_KEY_FILE")
    } else {
        return Ok(None);
    };
    scope_server::runtime::signing::validate_master_key(&key).map_err(|e| anyhow!("{source}: {e}"))?;
    Ok(Some(SecretString::from(key)))
}

/// Reads a master-key file: its text less one trailing newline. Warns when
/// others than its owner may read it.
fn read_master_key_file(path: &std::path::Path) -> anyhow::Result<String> {
    let shown = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("SCOPE_MASTER_KEY_FILE: cannot read {shown}"))?;
    let mut text =
        String::from_utf8(bytes).map_err(|_| anyhow!("SCOPE_MASTER_KEY_FILE: {shown} is not UTF-8 text"))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        if mode & 0o077 != 0 {
            let warning = format!(
                "the master key file {shown} is readable by others than its owner (mode {mode:o}); \
                 make it 0600 (chmod 600) or 0400"
            );
            tracing::warn!("{warning}");
            eprintln!("WARNING: {warning}");
        }
    }
    Ok(text)
}

fn config(cli: &Cli) -> anyhow::Result<ServerConfig> {
    let mut c = ServerConfig::new(database_url(cli));
    c.master_key = master_key(cli)?;
    c.store = scope_store::OpenOptions {
        max_connections: cli.db_pool_size,
        connect_timeout: Duration::from_millis(cli.db_connect_timeout_ms),
        statement_timeout: Duration::from_millis(cli.db_statement_timeout_ms),
    };
    Ok(c)
}

/// Opens the configured database (applying migrations).
async fn open_store(c: &ServerConfig) -> anyhow::Result<std::sync::Arc<dyn scope_store::Store>> {
    scope_store::open_with(&c.database_url, &c.store).await.map_err(|e| anyhow!("{e}"))
}

async fn open_app(cli: &Cli) -> anyhow::Result<App> {
    let c = config(cli)?;
    let store = open_store(&c).await?;
    App::start(store, c).await.map_err(app_err)
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve(args) => {
            let mut c = config(&cli)?;
            c.listen = args.listen.clone();
            c.token_ttl = Duration::from_secs(args.token_ttl);
            c.public_url = args.public_url.clone();
            c.max_body_bytes = args.max_body_bytes;
            c.auth_failure_limit = args.auth_failure_limit;
            c.session_idle_timeout = Duration::from_secs(args.session_idle_secs);
            c.session_max_age = Duration::from_secs(args.session_max_age_secs);
            c.sign_in_failure_limit = args.sign_in_failure_limit;
            c.max_prompt_bytes = args.max_prompt_bytes;
            c.max_prompts_per_org = args.max_prompts_per_org;
            c.max_versions_per_prompt = args.max_versions_per_prompt;
            c.max_keys_per_org = args.max_keys_per_org;
            c.event_retention = Duration::from_secs(args.event_retention_hours * 3600);
            c.event_heartbeat = Duration::from_secs(args.event_heartbeat_secs);
            c.max_event_streams = args.max_event_streams;
            c.token_audiences = args.token_audiences.clone();
            c.trusted_proxies = args.trusted_proxies.clone().unwrap_or_default();
            c.auth_key_failure_limit = args.auth_key_failure_limit;
            c.header_read_timeout = Duration::from_secs(args.header_read_timeout_secs);
            c.idle_timeout = Duration::from_secs(args.idle_timeout_secs);
            c.request_timeout = Duration::from_secs(args.request_timeout_secs);
            c.body_read_timeout = Duration::from_secs(args.body_read_timeout_secs);
            c.max_connections = args.max_connections;
            c.max_concurrent_requests = args.max_concurrent_requests;
            c.prompt_cache_max_bytes = args.prompt_cache_max_bytes;
            c.prompt_cache_max_entry_bytes = args.prompt_cache_max_entry_bytes;
            c.bootstrap_key_ttl =
                (args.bootstrap_key_ttl_hours > 0).then(|| Duration::from_secs(args.bootstrap_key_ttl_hours * 3600));
            scope_server::serve(c, shutdown_signal()).await.map_err(app_err)
        }
        Command::Init { org_name, admin_email, json } => {
            let c = config(&cli)?;
            let store = open_store(&c).await?;
            let org = bootstrap::init(store.as_ref(), org_name, admin_email).await.map_err(app_err)?;
            print_org(&org, *json)
        }
        Command::Org(OrgCommand::Create { name, admin_email, json }) => {
            let c = config(&cli)?;
            let store = open_store(&c).await?;
            let org = bootstrap::create_org(store.as_ref(), name, admin_email).await.map_err(app_err)?;
            print_org(&org, *json)
        }
        Command::Keys(cmd) => keys(&cli, cmd).await,
        Command::Export { output } => {
            let store = open_store(&config(&cli)?).await?;
            crate::transfer::export(store.as_ref(), output.as_deref()).await
        }
        Command::Import { input } => {
            let store = open_store(&config(&cli)?).await?;
            crate::transfer::import(store.as_ref(), input.as_deref()).await
        }
        Command::Prompt(cmd) => prompt(cmd).await,
        Command::SigningKeys(SigningKeysCommand::Rotate) => {
            let c = config(&cli)?;
            let store = open_store(&c).await?;
            let kid =
                scope_server::runtime::signing::rotate(store.as_ref(), c.master_key.as_ref()).await.map_err(app_err)?;
            println!("new signing key: {kid}");
            println!("previous keys keep verifying tokens until those tokens expire");
            Ok(())
        }
    }
}

fn print_org(org: &bootstrap::NewOrg, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(&org.to_json())
    } else {
        print!("{}", org.to_text());
        Ok(())
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn keys(cli: &Cli, cmd: &KeysCommand) -> anyhow::Result<()> {
    let app = open_app(cli).await?;
    let org_of = |s: &str| s.parse::<OrgId>().map_err(|e| anyhow!("--org / SCOPE_ORG_ID: {}", e.message));
    match cmd {
        KeysCommand::Create { org, name, role, environment, expires_at, json } => {
            let p = Principal::system(org_of(org)?);
            app.store.get_org(p.org).await.map_err(|_| anyhow!("organization {org} not found"))?;
            let role: Role = role.parse().map_err(|e: scope_domain::DomainError| anyhow!("--role: {}", e.message))?;
            let expires_at = expires_at
                .as_deref()
                .map(|s| chrono::DateTime::parse_from_rfc3339(s).map(|d| d.timestamp_millis()))
                .transpose()
                .context("--expires-at must be an RFC 3339 time")?;
            let req = NewKey { name: name.clone(), environment: environment.clone(), role: Some(role), expires_at };
            let created = api_keys::create(&app, &p, req).await.map_err(app_err)?;
            let mut view = ApiKeyView::new(&created.key, now_ms());
            view.secret = Some(created.secret.expose_secret().to_owned());
            if *json {
                print_json(&view)
            } else {
                println!(
                    "key_id: {}\nsecret: {}\nrole: {}\nenvironment: {}",
                    view.key_id,
                    created.secret.expose_secret(),
                    view.role,
                    view.environment
                );
                println!("The secret is shown only once.");
                Ok(())
            }
        }
        KeysCommand::List { org, status, json } => {
            let p = Principal::system(org_of(org)?);
            let status = status
                .as_deref()
                .map(|s| KeyStatus::parse(s).ok_or_else(|| anyhow!("--status must be active, revoked or expired")))
                .transpose()?;
            let mut all = Vec::new();
            let mut cursor = None;
            loop {
                let pg = api_keys::list(&app, &p, status, page(Some(200), cursor).map_err(app_err)?)
                    .await
                    .map_err(app_err)?;
                all.extend(pg.data);
                match pg.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let now = now_ms();
            let views: Vec<ApiKeyView> = all.iter().map(|k| ApiKeyView::new(k, now)).collect();
            if *json {
                print_json(&views)
            } else {
                println!(
                    "{:<30}  {:<8}  {:<7}  {:<12}  {:<24}  NAME",
                    "KEY_ID", "STATUS", "ROLE", "ENVIRONMENT", "LAST_USED"
                );
                for v in &views {
                    println!(
                        "{:<30}  {:<8}  {:<7}  {:<12}  {:<24}  {}",
                        v.key_id,
                        v.status,
                        v.role,
                        v.environment,
                        v.last_used_at.as_deref().unwrap_or("never"),
                        v.name
                    );
                }
                Ok(())
            }
        }
        KeysCommand::Revoke { org, key_id, json } => {
            let p = Principal::system(org_of(org)?);
            let k = api_keys::revoke(&app, &p, key_id).await.map_err(app_err)?;
            let view = ApiKeyView::new(&k, now_ms());
            if *json {
                print_json(&view)
            } else {
                println!("revoked {} ({})", view.key_id, view.name);
                Ok(())
            }
        }
    }
}

fn label_of(sel: &Selector) -> anyhow::Result<Option<&str>> {
    match sel.label.as_deref() {
        None => Ok(None),
        Some(l) if scope_domain::labels::is_label(l) => Ok(Some(l)),
        Some(other) => Err(anyhow!("--label: '{other}' is not a label (a-z, 0-9, '_' and '-')")),
    }
}

async fn fetch_version(
    client: &scope_client::Client,
    name: &str,
    sel: &Selector,
) -> anyhow::Result<std::sync::Arc<scope_client::PromptVersion>> {
    let mut req = client.get_prompt_version(name);
    match label_of(sel)? {
        // The SDK fetches these two; any other label is read over the API.
        Some(l @ ("production" | "latest")) => req = req.label(l),
        Some(l) => return Ok(std::sync::Arc::new(crate::releases::labelled(name, l).await?)),
        None => {}
    }
    if let Some(v) = sel.version.as_deref() {
        req = req.version_id(v);
    }
    Ok(req.send().await?)
}

async fn prompt(cmd: &PromptCommand) -> anyhow::Result<()> {
    use crate::releases;
    match cmd {
        PromptCommand::Labels { name, history, json } => return releases::labels(name, *history, *json).await,
        PromptCommand::Label { name, label, version, notes, json } => {
            return releases::move_label(name, label, version, notes.as_deref(), *json).await
        }
        PromptCommand::Rollback { name, label, notes, json } => {
            return releases::rollback(name, label, notes.as_deref(), *json).await
        }
        PromptCommand::Diff { name, from, to, color, json } => {
            return releases::diff(name, from, to, *json, releases::use_colour(color)).await
        }
        PromptCommand::Get { .. } | PromptCommand::Render { .. } => {}
    }
    let client = scope_client::Client::from_env()?;
    match cmd {
        PromptCommand::Get { name, selector, json } => {
            let v = fetch_version(&client, name, selector).await?;
            if *json {
                print_json(&*v)
            } else {
                println!("{}", v.content);
                Ok(())
            }
        }
        PromptCommand::Render { name, selector, vars, strict } => {
            let mut map = std::collections::HashMap::new();
            for kv in vars {
                let (k, v) = kv.split_once('=').ok_or_else(|| anyhow!("--var expects NAME=VALUE, got '{kv}'"))?;
                map.insert(k.to_owned(), v.to_owned());
            }
            let v = fetch_version(&client, name, selector).await?;
            let text = if *strict { v.render_strict(&map)? } else { v.render(&map)? };
            println!("{text}");
            Ok(())
        }
        // Answered above, over the API.
        PromptCommand::Labels { .. }
        | PromptCommand::Label { .. }
        | PromptCommand::Rollback { .. }
        | PromptCommand::Diff { .. } => Ok(()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
