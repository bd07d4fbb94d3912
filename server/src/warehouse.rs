//! Named tables: the steps that touch both the catalog and the table itself, in one place
//! for the CLI and the server. Each one either completes or leaves both unchanged.

use tarn_catalog::{
    CatalogStore, ErrorKind as CatalogErrorKind, NewTable, TableInfo, TableName, TableType,
};
use tarn_table::{CreateOptions, Table, TableLocation, TimeTravel};

use crate::error::ApiError;
use crate::locations::AllowedLocations;

/// Where a new managed table goes: `<warehouse>/<catalog>/<schema>/<table>_<id prefix>`, so a
/// table re-created under the same name never meets the old one's files.
pub fn managed_location(
    warehouse: &std::path::Path,
    name: &TableName,
    id: &str,
) -> std::path::PathBuf {
    warehouse
        .join(&name.catalog)
        .join(&name.schema)
        .join(format!("{}_{}", name.table, &id[..8]))
}

/// Creates a managed table (its Delta table under the warehouse, then its registration).
/// If registration fails the new directory is removed again.
pub async fn create_managed_table(
    store: &dyn CatalogStore,
    warehouse: &std::path::Path,
    name: &TableName,
    options: CreateOptions,
    storage_options: Vec<(String, String)>,
) -> Result<(TableInfo, Table), ApiError> {
    store.get_schema(&name.schema_name()).await?;
    match store.get_table(name).await {
        Ok(_) => {
            return Err(tarn_catalog::Error::new(
                CatalogErrorKind::AlreadyExists,
                format!("table `{name}` already exists"),
            )
            .into())
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
    let table = Table::create(&location, options).await?;
    let registered = store
        .create_table(NewTable {
            id: Some(id),
            catalog_name: name.catalog.clone(),
            schema_name: name.schema.clone(),
            name: name.table.clone(),
            table_type: TableType::Managed,
            storage_location: location.url().to_string(),
            comment,
            properties,
            owner: None,
        })
        .await;
    match registered {
        Ok(info) => Ok((info, table)),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e.into())
        }
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
) -> Result<TableInfo, ApiError> {
    if !allowed.allows(location.url()) {
        return Err(ApiError::forbidden(format!(
            "`{}` is outside the allowed locations ({})",
            location.display_name(),
            allowed.describe()
        )));
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
            return Err(ApiError::invalid(format!(
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

/// Unregisters a table; with `purge`, also deletes a managed table's (local) data, never
/// an external table's.
pub async fn drop_table(
    store: &dyn CatalogStore,
    name: &TableName,
    purge: bool,
) -> Result<TableInfo, ApiError> {
    let info = store.get_table(name).await?;
    if !purge {
        return Ok(store.delete_table(name).await?);
    }
    if info.table_type == TableType::External {
        return Err(ApiError::invalid(format!(
            "`{name}` is EXTERNAL: Tarn never deletes its data (drop it without --purge)"
        )));
    }
    let Some(path) = url::Url::parse(&info.storage_location)
        .ok()
        .and_then(|u| u.to_file_path().ok())
    else {
        return Err(ApiError::invalid(format!(
            "`{name}` is not on local disk: --purge only deletes local data"
        )));
    };
    // Move the data aside (one rename), unregister, then delete: a failure at any step leaves
    // the table whole and registered, or gone together with its name.
    let trash = path.with_file_name(format!(".dropping-{}", uuid::Uuid::new_v4()));
    if path.exists() {
        std::fs::rename(&path, &trash).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                format!("cannot delete `{}`: {e}", path.display()),
            )
        })?;
    }
    match store.delete_table(name).await {
        Ok(info) => {
            let _ = std::fs::remove_dir_all(&trash);
            Ok(info)
        }
        Err(e) => {
            let _ = std::fs::rename(&trash, &path);
            Err(e.into())
        }
    }
}
