//! Named tables: the steps that touch both the catalog and the table itself, in one place
//! for the CLI and every protocol of the server.
//!
//! Each step is ordered so that a crash at any point (a `kill -9`, a lost connection, an
//! answer that never came back) leaves something the next attempt, or the next clean-up,
//! finishes:
//!
//! - **create** (MANAGED): reserve the name (a row nobody reads yet, held by this process),
//!   create the Delta table, then put the row in use. A crash before the last step leaves a
//!   reservation with no live holder; [`finish_pending`] deletes what it made and frees the
//!   name. A commit whose answer was lost is checked: if the row is in use, the create
//!   succeeded.
//! - **drop --purge**: mark the row as being dropped (reads no longer see it), delete the
//!   files, then remove the row. A crash in between leaves the mark; [`finish_pending`]
//!   (run by the next drop or create, and when `tarn serve` starts) completes it.
//!
//! Files are only ever deleted at a table's managed location under the warehouse, as
//! [`managed_location`] makes it, with symlinks resolved: never elsewhere.

use std::path::{Path, PathBuf};

use tarn_catalog::{
    CatalogStore, ErrorKind as CatalogErrorKind, NewTable, TableInfo, TableName, TableType,
};
use tarn_table::{CreateOptions, Table, TableLocation, TimeTravel};

use crate::error::{Error, ErrorKind, Result};
use crate::faults::{fault, fault_asked, FAULT_ENV};
use crate::locations::AllowedLocations;

/// Where a new managed table goes: `<warehouse>/<catalog>/<schema>/<table>_<id prefix>`, so a
/// table re-created under the same name never meets the old one's files.
pub fn managed_location(warehouse: &Path, name: &TableName, id: &str) -> PathBuf {
    warehouse
        .join(&name.catalog)
        .join(&name.schema)
        .join(format!("{}_{}", name.table, id.get(..8).unwrap_or(id)))
}

/// Creates a managed table: reserves the name, creates the Delta table under the warehouse,
/// then puts the name in use. If a step fails, what the earlier ones made is removed (now,
/// or by the next [`finish_pending`] if the catalog cannot be reached). Files that cannot
/// be made are an [`ErrorKind::Internal`] error naming the warehouse, with the storage's
/// own cause (e.g. "Not a directory (os error 20)") in its chain.
pub async fn create_managed_table(
    store: &dyn CatalogStore,
    warehouse: &Path,
    name: &TableName,
    options: CreateOptions,
    storage_options: Vec<(String, String)>,
) -> Result<(TableInfo, Table)> {
    // A name left reserved or half-dropped by a crash is freed first.
    finish_pending(store, warehouse).await?;
    store.get_schema(&name.schema_name()).await?;
    match store.get_table(name).await {
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("table `{name}` already exists"),
            ))
        }
        Err(e) if e.kind() == CatalogErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let id = uuid::Uuid::new_v4().to_string();
    let dir = managed_location(warehouse, name, &id);
    let location =
        TableLocation::parse(&dir.to_string_lossy())?.with_storage_options(storage_options);
    let comment = options.comment.clone();
    let properties = options.properties.clone().into_iter().collect();
    let reservation = store
        .reserve_table(NewTable {
            id: Some(id.clone()),
            catalog_name: name.catalog.clone(),
            schema_name: name.schema.clone(),
            name: name.table.clone(),
            table_type: TableType::Managed,
            storage_location: location.url().to_string(),
            comment,
            properties,
            owner: None,
        })
        .await?;
    fault("create:reserved");
    // The directory is made here, not by `Table::create`: under the warehouse it is the
    // server's or the CLI's own storage failing, never the caller's input.
    let made = match std::fs::create_dir_all(&dir) {
        Ok(()) => Table::create(&location, options)
            .await
            .map_err(|e| match e.kind() {
                tarn_table::ErrorKind::Internal => files_not_made(name, &dir, warehouse, e),
                // The caller's own mistake (a partition column not in the schema, say).
                _ => e.into(),
            }),
        Err(e) => Err(files_not_made(name, &dir, warehouse, e)),
    };
    let table = match made {
        Ok(table) => table,
        Err(e) => {
            remove_table_files(&dir).ok();
            let _ = reservation.abandon().await;
            return Err(e);
        }
    };
    fault("create:files");
    let committed = match reservation.commit().await {
        Ok(_) if fault_asked("create:commit-ack-lost") => Err(tarn_catalog::Error::new(
            CatalogErrorKind::Unavailable,
            format!("{FAULT_ENV}: the answer to committing `{name}` was lost (test only)"),
        )),
        other => other,
    };
    match committed {
        Ok(info) => {
            fault("create:committed");
            Ok((info, table))
        }
        // The commit may have happened with its answer lost: the row decides.
        Err(e) => match store.get_table_by_id(&id).await {
            Ok(info) => Ok((info, table)),
            Err(check) if check.kind() == CatalogErrorKind::NotFound => {
                // Not in use: the reservation was rolled back or taken back. Its files go
                // now, and the row with the next clean-up (this one, if it can).
                remove_table_files(&dir).ok();
                let _ = finish_pending(store, warehouse).await;
                Err(e.into())
            }
            // Unknown: leave both; if the row is not in use, the next clean-up removes them.
            Err(_) => Err(e.into()),
        },
    }
}

/// The error of a managed table whose files could not be made at `dir` under `warehouse`:
/// storage failing (a read-only or full disk, a file where a directory goes), which is
/// [`ErrorKind::Internal`] whoever asked. The message names the place and what it must be;
/// the storage's own `cause` stays in the chain ([`Error::detail`]).
fn files_not_made(
    name: &TableName,
    dir: &Path,
    warehouse: &Path,
    cause: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::internal(format!(
        "cannot create `{}` for `{name}` (the warehouse `{}` must be a directory Tarn can write)",
        dir.display(),
        warehouse.display()
    ))
    .with_source(cause)
}

/// A MANAGED table whose files a longer step (the first run of an import) writes before its
/// name is registered: its id and managed location are picked first, nothing is written
/// here, and the name is put in use only after the first commit ([`NewManagedTable::register`]).
/// A run that fails or commits nothing removes what it wrote ([`NewManagedTable::abandon`]).
#[derive(Debug, Clone)]
pub struct NewManagedTable {
    name: TableName,
    id: String,
    dir: PathBuf,
    location: TableLocation,
}

impl NewManagedTable {
    /// Plans a new MANAGED table at `name` under `warehouse`. Its schema must exist.
    pub async fn plan(
        store: &dyn CatalogStore,
        warehouse: &Path,
        name: &TableName,
    ) -> Result<Self> {
        store.get_schema(&name.schema_name()).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let dir = managed_location(warehouse, name, &id);
        let location = TableLocation::parse(&dir.to_string_lossy())?;
        Ok(Self {
            name: name.clone(),
            id,
            dir,
            location,
        })
    }

    /// Where the table's files go.
    pub fn location(&self) -> &TableLocation {
        &self.location
    }

    /// Puts the name in use for the table now at [`NewManagedTable::location`]. If it
    /// cannot be (the name was taken meanwhile, say), the files are removed.
    pub async fn register(self, store: &dyn CatalogStore) -> Result<TableInfo> {
        let registered = store
            .create_table(NewTable {
                id: Some(self.id.clone()),
                catalog_name: self.name.catalog.clone(),
                schema_name: self.name.schema.clone(),
                name: self.name.table.clone(),
                table_type: TableType::Managed,
                storage_location: self.location.url().to_string(),
                comment: None,
                properties: Default::default(),
                owner: None,
            })
            .await;
        match registered {
            Ok(info) => Ok(info),
            Err(e) => {
                self.abandon();
                Err(e.into())
            }
        }
    }

    /// Removes whatever was written at the location; the name was never in use.
    pub fn abandon(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Registers an existing Delta table at `location` as EXTERNAL, if it lies under an allowed
/// root and really holds a Delta table.
pub async fn register_external_table(
    store: &dyn CatalogStore,
    allowed: &AllowedLocations,
    name: &TableName,
    location: &TableLocation,
    comment: Option<String>,
    properties: std::collections::BTreeMap<String, String>,
) -> Result<TableInfo> {
    if !allowed.allows(location.url()) {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "`{}` is outside the allowed locations ({})",
                location.display_name(),
                allowed.describe()
            ),
        ));
    }
    // Register where the table really is: a symlink re-pointed later cannot move it.
    let resolved;
    let location = match location.local_path().and_then(|p| p.canonicalize().ok()) {
        Some(real) => {
            resolved = TableLocation::parse(&real.to_string_lossy())?
                .with_storage_options(location.storage_options().clone());
            &resolved
        }
        None => location,
    };
    store.get_schema(&name.schema_name()).await?;
    match Table::open(location, &TimeTravel::Latest).await {
        Ok(_) => {}
        Err(e) if e.kind() == tarn_table::ErrorKind::NotFound => {
            return Err(Error::invalid(format!(
                "no Delta table at `{}`",
                location.display_name()
            )))
        }
        Err(e) => return Err(e.into()),
    }
    Ok(store
        .create_table(NewTable {
            id: None,
            catalog_name: name.catalog.clone(),
            schema_name: name.schema.clone(),
            name: name.table.clone(),
            table_type: TableType::External,
            storage_location: location.url().to_string(),
            comment,
            properties,
            owner: None,
        })
        .await?)
}

/// Unregisters a table; with `purge`, also deletes a MANAGED table's files, which must be
/// at its managed location under `warehouse` (never an EXTERNAL table's, never anything
/// elsewhere). A purge interrupted earlier (for this table or another) is finished first.
pub async fn drop_table(
    store: &dyn CatalogStore,
    warehouse: &Path,
    name: &TableName,
    purge: bool,
) -> Result<TableInfo> {
    if !purge {
        return Ok(store.delete_table(name).await?);
    }
    let finished = finish_pending(store, warehouse).await?;
    let info = match store.get_table(name).await {
        Ok(info) => info,
        // A retry of a purge a crash interrupted: finished just now.
        Err(e) if e.kind() == CatalogErrorKind::NotFound => {
            return match finished
                .into_iter()
                .find(|t| t.full_name() == name.to_string())
            {
                Some(done) => Ok(done),
                None => Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    let path = purgeable_path(warehouse, &info)?;
    let info = store.begin_drop(name, &info.id).await?;
    fault("drop:marked");
    let unfinished = |what: String| {
        Error::internal(format!(
            "`{name}` is dropped, but {what}; the next `drop --purge` or create, or the next start of `tarn serve`, finishes it"
        ))
    };
    delete_files_in_steps(&path).map_err(|e| {
        unfinished(format!(
            "its files at `{}` could not all be deleted ({e})",
            path.display()
        ))
        .with_source(e)
    })?;
    fault("drop:files-deleted");
    store
        .finish_drop(&info.id)
        .await
        .map_err(|e| unfinished(format!("its name could not be removed ({e})")).with_source(e))?;
    Ok(info)
}

/// Finishes what crashes left: every drop that began and did not finish (its files are
/// deleted, then its row removed), and every reservation whose holder is gone (the same).
/// Returns the tables finished. An error only if the catalog cannot be asked; a table that
/// cannot be finished is logged and left for the next time.
pub async fn finish_pending(store: &dyn CatalogStore, warehouse: &Path) -> Result<Vec<TableInfo>> {
    let pending = store.pending_drops().await?;
    let mut finished = Vec::new();
    for info in pending {
        let name = info.full_name();
        let path = match purgeable_path(warehouse, &info) {
            Ok(path) => path,
            Err(e) => {
                tracing::warn!("leaving the unfinished drop of `{name}`: {}", e.detail());
                continue;
            }
        };
        if let Err(e) = remove_table_files(&path) {
            tracing::warn!(
                "unfinished drop of `{name}`: cannot delete `{}`: {e}",
                path.display()
            );
            continue;
        }
        match store.finish_drop(&info.id).await {
            Ok(()) => {
                tracing::info!("finished the interrupted drop of `{name}`");
                finished.push(info);
            }
            Err(e) => tracing::warn!("unfinished drop of `{name}`: {e}"),
        }
    }
    Ok(finished)
}

/// The directory `drop --purge` may delete for `info`: a MANAGED table on local disk whose
/// location, with symlinks resolved, is exactly its managed location under `warehouse`.
/// Anything else is refused, before anything changes.
fn purgeable_path(warehouse: &Path, info: &TableInfo) -> Result<PathBuf> {
    let name = info.full_name();
    if info.table_type == TableType::External {
        return Err(Error::invalid(format!(
            "`{name}` is EXTERNAL: Tarn never deletes its data (drop it without --purge)"
        )));
    }
    let Some(path) = url::Url::parse(&info.storage_location)
        .ok()
        .and_then(|u| u.to_file_path().ok())
    else {
        return Err(Error::invalid(format!(
            "`{name}` is not on local disk: --purge only deletes local data"
        )));
    };
    let refuse = |why: String| {
        Error::invalid(format!(
            "refusing to delete `{}` for `{name}`: {why}; drop it without --purge and delete the files yourself",
            path.display()
        ))
    };
    let warehouse = warehouse.canonicalize().map_err(|e| {
        refuse(format!(
            "the warehouse `{}` cannot be resolved ({e})",
            warehouse.display()
        ))
    })?;
    let table = TableName::new(&info.catalog_name, &info.schema_name, &info.name)
        .map_err(|e| refuse(e.message().to_string()))?;
    if info.id.len() < 8 {
        return Err(refuse(format!("the table id `{}` is not Tarn's", info.id)));
    }
    let expected = managed_location(&warehouse, &table, &info.id);
    // Resolved if it exists (symlinks anywhere on the way are followed); if it does not,
    // there is nothing to delete, but it must still name the managed location.
    let real = match std::fs::symlink_metadata(&path) {
        Ok(_) => path.canonicalize().map_err(|e| refuse(e.to_string()))?,
        Err(_) => path.clone(),
    };
    if real != expected {
        return Err(refuse(format!(
            "it is not this table's managed location under the warehouse `{}` (that would be `{}`)",
            warehouse.display(),
            expected.display()
        )));
    }
    Ok(real)
}

/// Deletes a table directory: its `_delta_log` first (the table is then gone for any
/// reader), then the rest. A directory already gone is not an error.
fn delete_files_in_steps(path: &Path) -> std::io::Result<()> {
    remove_table_files(&path.join("_delta_log"))?;
    fault("drop:half-deleted");
    remove_table_files(path)
}

/// `remove_dir_all` that takes a missing directory as done (another clean-up may be
/// deleting it at the same moment). Symlinks inside are removed, never followed.
fn remove_table_files(path: &Path) -> std::io::Result<()> {
    for _ in 0..3 {
        match std::fs::remove_dir_all(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if std::fs::symlink_metadata(path).is_err() {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
    std::fs::remove_dir_all(path)
}
