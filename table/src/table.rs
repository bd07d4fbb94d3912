//! [`Table`]: one Delta table loaded at one version — the handle every operation starts from.

use std::sync::Arc;

use deltalake::{DeltaTable, DeltaTableBuilder};

use crate::commit_log::{self, Commit};
use crate::error::{Error, ErrorKind, Result};
use crate::local_log::LocalStore;
use crate::location::TableLocation;
use crate::time_travel::TimeTravel;

/// A Delta table loaded at one version.
#[derive(Debug, Clone)]
pub struct Table {
    pub(crate) location: TableLocation,
    pub(crate) delta: DeltaTable,
}

impl Table {
    /// Opens the table at `at`. Errors name the valid range when the version or time is
    /// outside the table's history.
    pub async fn open(location: &TableLocation, at: &TimeTravel) -> Result<Self> {
        let name = location.display_name();
        let mut delta = Self::existing(location)?;
        match at {
            TimeTravel::Latest => delta.load().await,
            TimeTravel::Version(v) => match delta.load_version(*v).await {
                Ok(()) => Ok(()),
                Err(err) => {
                    return Err(version_error(delta.log_store().as_ref(), name, *v, err).await);
                }
            },
            TimeTravel::AsOf(t) => {
                let v = commit_log::version_as_of(delta.log_store().as_ref(), name, *t).await?;
                delta.load_version(v).await
            }
        }
        .map_err(|e| Error::from_delta(name, e))?;
        Ok(Self {
            location: location.clone(),
            delta,
        })
    }

    /// A `DeltaTable` handle for `location`, not loaded; a local directory without a
    /// `_delta_log` is refused here, before anything is read.
    pub(crate) fn existing(location: &TableLocation) -> Result<DeltaTable> {
        if location
            .local_path()
            .is_some_and(|p| !p.join("_delta_log").is_dir())
        {
            return Err(Error::not_found(format!(
                "no Delta table at `{}`",
                location.display_name()
            )));
        }
        Self::unloaded(location)
    }

    /// Opens the latest version, or `None` when there is no table at `location` yet.
    pub async fn open_if_exists(location: &TableLocation) -> Result<Option<Self>> {
        match Self::open(location, &TimeTravel::Latest).await {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A `DeltaTable` handle for `location`, not loaded.
    ///
    /// A local table gets object_store's local store with a quicker listing of the log
    /// (see [`LocalStore`]).
    pub(crate) fn unloaded(location: &TableLocation) -> Result<DeltaTable> {
        let mut builder = DeltaTableBuilder::from_url(location.url().clone())
            .map_err(|e| Error::from_delta(location.display_name(), e))?
            .with_storage_options(location.storage_options().clone());
        if location.url().scheme() == "file" {
            builder =
                builder.with_storage_backend(Arc::new(LocalStore::new()), location.url().clone());
        }
        builder
            .build()
            .map_err(|e| Error::from_delta(location.display_name(), e))
    }

    /// An object store rooted at `location` (which need not hold a table), reached with
    /// its storage options as a table there would be: for files kept beside tables.
    pub fn store_at(location: &TableLocation) -> Result<Arc<dyn object_store::ObjectStore>> {
        Ok(Self::unloaded(location)?.log_store().object_store(None))
    }

    /// Runs `make` (which creates a table) with the local directory in place, removing the
    /// directory again if `make` fails and the directory did not exist before.
    pub(crate) async fn with_local_dir<T, F>(location: &TableLocation, make: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let Some(dir) = location.local_path() else {
            return make.await;
        };
        let created = !dir.exists();
        if created {
            std::fs::create_dir_all(&dir).map_err(|e| {
                Error::invalid(format!(
                    "cannot create the table directory `{}`: {e}",
                    dir.display()
                ))
            })?;
        }
        let result = make.await;
        if result.is_err() && created {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    /// The loaded version.
    pub fn version(&self) -> u64 {
        self.delta.version().unwrap_or(0)
    }

    /// Where the table lives.
    pub fn location(&self) -> &TableLocation {
        &self.location
    }

    /// The underlying `deltalake` table.
    pub fn delta(&self) -> &DeltaTable {
        &self.delta
    }

    /// The table's commits, newest first (at most `limit`), with times from the log.
    pub async fn history(&self, limit: Option<usize>) -> Result<Vec<Commit>> {
        commit_log::history(self.delta.log_store().as_ref(), self.name(), limit).await
    }

    /// The commits of the table at `location`, newest first (at most `limit`), read from
    /// the log without loading the table (no checkpoint, no file list).
    pub async fn history_of(location: &TableLocation, limit: Option<usize>) -> Result<Vec<Commit>> {
        let delta = Self::existing(location)?;
        commit_log::history(delta.log_store().as_ref(), location.display_name(), limit).await
    }

    /// The name used in messages.
    pub(crate) fn name(&self) -> &str {
        self.location.display_name()
    }

    /// Maps a `deltalake` error for this table.
    pub(crate) fn delta_error(&self, err: deltalake::DeltaTableError) -> Error {
        Error::from_delta(self.name(), err)
    }

    /// The current Delta schema.
    pub fn schema(&self) -> Result<deltalake::kernel::StructType> {
        Ok(self
            .delta
            .snapshot()
            .map_err(|e| self.delta_error(e))?
            .schema()
            .as_ref()
            .clone())
    }

    /// The partition columns, in order.
    pub fn partition_columns(&self) -> Result<Vec<String>> {
        Ok(self
            .delta
            .snapshot()
            .map_err(|e| self.delta_error(e))?
            .metadata()
            .partition_columns()
            .to_vec())
    }

    /// The current schema as Arrow.
    pub(crate) fn arrow_schema(&self) -> Result<deltalake::arrow::datatypes::SchemaRef> {
        Ok(self
            .delta
            .snapshot()
            .map_err(|e| self.delta_error(e))?
            .snapshot()
            .arrow_schema())
    }
}

/// The error for a version that could not be loaded: when it is outside the log, one that
/// names the versions there are (only a failed load lists the log to say so).
pub(crate) async fn version_error(
    log_store: &dyn deltalake::logstore::LogStore,
    name: &str,
    v: u64,
    err: deltalake::DeltaTableError,
) -> Error {
    let (first, last) = match commit_log::commit_range(log_store, name).await {
        Ok(range) => range,
        Err(e) => return e,
    };
    if v > last {
        Error::not_found(format!(
            "table `{name}` has no version {v} (latest is {last})"
        ))
    } else if v < first {
        Error::not_found(format!(
            "version {v} of table `{name}` is no longer in the log (available: {first} to {last})"
        ))
    } else {
        Error::from_delta(name, err)
    }
}
