//! What every command shares: the warehouse, the catalog (local, opened on first use, or a
//! server's with --server), storage options, and turning a table argument — path, URL or
//! catalog name — into a location.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tarn_catalog::{CatalogStore, TableName};
use tarn_server::RemoteCatalogStore;
use tarn_table::TableLocation;
use tokio::sync::OnceCell;

use crate::Failure;

/// Shared command context.
pub struct Context {
    pub warehouse: PathBuf,
    catalog_url: String,
    storage_options: Vec<(String, String)>,
    remote: Option<Arc<RemoteCatalogStore>>,
    server: Option<String>,
    store: OnceCell<Arc<dyn CatalogStore>>,
    /// Whether the catalog is the default SQLite file in the warehouse.
    catalog_in_warehouse: bool,
}

impl Context {
    pub fn new(
        warehouse: PathBuf,
        catalog: Option<String>,
        storage_options: Vec<(String, String)>,
        server: Option<String>,
        token: Option<String>,
    ) -> Self {
        let catalog_in_warehouse = catalog.is_none();
        let catalog_url =
            catalog.unwrap_or_else(|| warehouse.join("catalog.db").to_string_lossy().to_string());
        let remote = server
            .as_ref()
            .map(|url| Arc::new(RemoteCatalogStore::new(url, token)));
        Self {
            warehouse,
            catalog_url,
            storage_options,
            remote,
            server,
            store: OnceCell::new(),
            catalog_in_warehouse,
        }
    }

    /// The catalog: the server's with --server, else the local database, opened (and
    /// migrated) on first use.
    pub async fn store(&self) -> Result<Arc<dyn CatalogStore>, Failure> {
        if let Some(remote) = &self.remote {
            return Ok(remote.clone());
        }
        if self.catalog_in_warehouse {
            self.local_warehouse()?;
        }
        self.store
            .get_or_try_init(|| async {
                tarn_catalog::open_store(&self.catalog_url)
                    .await
                    .map(|s| Arc::new(s) as Arc<dyn CatalogStore>)
            })
            .await
            .cloned()
            .map_err(Failure::from)
    }

    /// The --server URL, if given.
    pub fn server_url(&self) -> Option<String> {
        self.server.clone()
    }

    /// The remote catalog, with --server.
    pub fn remote(&self) -> Option<&RemoteCatalogStore> {
        self.remote.as_deref()
    }

    /// The warehouse, refused if it is a URL: MANAGED tables and the default catalog are
    /// on local disk (a URL would otherwise become a local directory named `s3:`).
    fn local_warehouse(&self) -> Result<&Path, Failure> {
        let text = self.warehouse.to_string_lossy();
        if text.contains("://") {
            return Err(Failure(format!(
                "--warehouse `{text}` is a URL, but the warehouse must be a local directory (MANAGED tables and the default catalog are kept on local disk); register a table that is on object storage with `tarn register NAME URL`"
            )));
        }
        Ok(&self.warehouse)
    }

    /// The warehouse directory, created if needed, as an absolute path.
    pub fn warehouse_dir(&self) -> Result<PathBuf, Failure> {
        self.local_warehouse()?;
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

    /// A path or URL (a catalog entry's `storage_location`, say) as a location, with the
    /// `--storage-option`s.
    pub fn location(&self, url: &str) -> Result<TableLocation, Failure> {
        Ok(TableLocation::parse(url)?.with_storage_options(self.storage_options()))
    }

    /// A table argument as a location: `catalog.schema.table` is looked up in the catalog,
    /// anything else is a path or URL.
    pub async fn locate(&self, arg: &str) -> Result<TableLocation, Failure> {
        match catalog_name(arg) {
            Some(name) => {
                let info = self.store().await?.get_table(&name).await?;
                self.location(&info.storage_location)
            }
            None => self.location(arg),
        }
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
