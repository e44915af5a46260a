//! The PostgreSQL backend (being written).

use crate::{OpenOptions, StoreError, StoreResult};

/// PostgreSQL storage.
#[derive(Debug, Clone)]
pub struct PgStore;

impl PgStore {
    pub async fn open(_url: &str, _options: &OpenOptions) -> StoreResult<crate::sqlite::SqliteStore> {
        Err(StoreError::Internal("the PostgreSQL backend is not written yet".into()))
    }
}
