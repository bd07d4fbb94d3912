//! What every command shares: the warehouse, the catalog (opened on first use), storage
//! options, and turning a table argument — path, URL or catalog name — into a location.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tarn_catalog::{CatalogStore, SqlCatalogStore, TableName};
use tarn_table::TableLocation;
use tokio::sync::OnceCell;

use crate::Failure;

/// Shared command context.
pub struct Context {
    pub warehouse: PathBuf,
    catalog_url: String,
    storage_options: Vec<(String, String)>,
    store: OnceCell<Arc<SqlCatalogStore>>,
}

impl Context {
    pub fn new(
        warehouse: PathBuf,
        catalog: Option<String>,
        storage_options: Vec<(String, String)>,
    ) -> Self {
        let catalog_url =
            catalog.unwrap_or_else(|| warehouse.join("catalog.db").to_string_lossy().to_string());
        Self {
            warehouse,
            catalog_url,
            storage_options,
            store: OnceCell::new(),
        }
    }

    /// The catalog, opened (and migrated) on first use.
    pub async fn store(&self) -> Result<Arc<SqlCatalogStore>, Failure> {
        self.store
            .get_or_try_init(|| async {
                tarn_catalog::open_store(&self.catalog_url)
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
            .map_err(Failure::from)
    }

    /// The warehouse directory, created if needed, as an absolute path.
    pub fn warehouse_dir(&self) -> Result<PathBuf, Failure> {
        std::fs::create_dir_all(&self.warehouse)
            .and_then(|_| self.warehouse.canonicalize())
            .map_err(|e| {
                Failure(format!(
                    "cannot use the warehouse `{}`: {e}",
                    self.warehouse.display()
                ))
            })
    }

    /// Storage options from `--storage-option`.
    pub fn storage_options(&self) -> Vec<(String, String)> {
        self.storage_options.clone()
    }

    /// A table argument as a location: `catalog.schema.table` is looked up in the catalog,
    /// anything else is a path or URL.
    pub async fn locate(&self, arg: &str) -> Result<TableLocation, Failure> {
        let location = match catalog_name(arg) {
            Some(name) => {
                let info = self.store().await?.get_table(&name).await?;
                TableLocation::parse(&info.storage_location)?
            }
            None => TableLocation::parse(arg)?,
        };
        Ok(location.with_storage_options(self.storage_options()))
    }
}

/// `catalog.schema.table` when `arg` has that shape and is not an existing path.
pub fn catalog_name(arg: &str) -> Option<TableName> {
    if arg.contains('/') || arg.contains("://") || arg.contains('\\') || Path::new(arg).exists() {
        return None;
    }
    let parts: Vec<&str> = arg.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    arg.parse().ok()
}

/// Needs the store as a trait object.
pub fn as_dyn(store: &Arc<SqlCatalogStore>) -> &dyn CatalogStore {
    store.as_ref()
}
