//! `scope export` and `scope import`: files and progress around
//! `scope_server::service::transfer`, which owns the format.

use std::fs::OpenOptions;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use scope_server::service::transfer;
use scope_store::Store;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Exports to `output` (new file, mode 0600: it holds digests and possibly
/// plaintext signing keys) or stdout. A summary goes to stderr.
pub async fn export(store: &dyn Store, output: Option<&Path>) -> anyhow::Result<()> {
    let counts = match output {
        Some(path) => {
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = BufWriter::new(file);
            let counts = transfer::export(store, &mut out, now_ms()).await?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            counts
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let counts = transfer::export(store, &mut out, now_ms()).await?;
            out.flush()?;
            counts
        }
    };
    eprintln!("exported {} records from {}: {}", counts.total(), store.backend(), serde_json::to_string(&counts)?);
    Ok(())
}

/// Imports from `input` or stdin into the (empty) database.
pub async fn import(store: &dyn Store, input: Option<&Path>) -> anyhow::Result<()> {
    let counts = match input {
        Some(path) => {
            let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            transfer::import(store, BufReader::new(file)).await?
        }
        None => transfer::import(store, std::io::stdin().lock()).await?,
    };
    eprintln!("imported {} records into {}: {}", counts.total(), store.backend(), serde_json::to_string(&counts)?);
    Ok(())
}
