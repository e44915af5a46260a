//! `Store::export` / `Store::import` for SQLite.

use super::SqliteStore;
use crate::model::*;
use crate::{StoreError, StoreResult};

pub(super) async fn export(_store: &SqliteStore) -> StoreResult<Snapshot> {
    Err(StoreError::Internal("export: not written yet".into()))
}

pub(super) async fn import(_store: &SqliteStore, _snapshot: &Snapshot) -> StoreResult<()> {
    Err(StoreError::Internal("import: not written yet".into()))
}
