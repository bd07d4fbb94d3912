//! [`Table`]: one Delta table loaded at one version — the handle every operation starts from.

use deltalake::{DeltaTable, DeltaTableBuilder};

use crate::commit_log::{self, Commit};
use crate::error::{Error, ErrorKind, Result};
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
        if location
            .local_path()
            .is_some_and(|p| !p.join("_delta_log").is_dir())
        {
            return Err(Error::not_found(format!("no Delta table at `{name}`")));
        }
        let mut delta = Self::unloaded(location)?;
        match at {
            TimeTravel::Latest => delta.load().await,
            TimeTravel::Version(v) => match delta.load_version(*v).await {
                Ok(()) => Ok(()),
                // Only a failed load lists the log, to say which versions there are.
                Err(err) => {
                    let (first, last) =
                        commit_log::commit_range(delta.log_store().as_ref(), name).await?;
                    if *v > last {
                        return Err(Error::not_found(format!(
                            "table `{name}` has no version {v} (latest is {last})"
                        )));
                    }
                    if *v < first {
                        return Err(Error::not_found(format!(
                            "version {v} of table `{name}` is no longer in the log (available: {first} to {last})"
                        )));
                    }
                    Err(err)
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

    /// Opens the latest version, or `None` when there is no table at `location` yet.
    pub async fn open_if_exists(location: &TableLocation) -> Result<Option<Self>> {
        match Self::open(location, &TimeTravel::Latest).await {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A `DeltaTable` handle for `location`, not loaded.
    pub(crate) fn unloaded(location: &TableLocation) -> Result<DeltaTable> {
        DeltaTableBuilder::from_url(location.url().clone())
            .map_err(|e| Error::from_delta(location.display_name(), e))?
            .with_storage_options(location.storage_options().clone())
            .build()
            .map_err(|e| Error::from_delta(location.display_name(), e))
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
