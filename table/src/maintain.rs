//! Table maintenance: restore an old version, compact/Z-order files, vacuum unreferenced
//! files, write checkpoints.

use std::num::NonZeroU64;

use deltalake::operations::optimize::OptimizeType;
use serde::Serialize;

use crate::commit_log;
use crate::error::{Error, Result};
use crate::table::Table;
use crate::time_travel::TimeTravel;

/// What `restore` did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The table as given.
    pub table: String,
    /// The version whose content is current again.
    pub restored_version: u64,
    /// The new version (a commit; history is kept).
    pub version: u64,
    /// Files brought back.
    pub files_restored: u64,
    /// Files removed from the current version.
    pub files_removed: u64,
}

/// What `optimize` did.
#[derive(Debug, Clone, Serialize)]
pub struct OptimizeReport {
    /// The table as given.
    pub table: String,
    /// The version after optimizing (unchanged if nothing needed compaction).
    pub version: u64,
    /// Files written.
    pub files_added: u64,
    /// Files replaced.
    pub files_removed: u64,
}

/// What `vacuum` did (or would do, in a dry run).
#[derive(Debug, Clone, Serialize)]
pub struct VacuumReport {
    /// The table as given.
    pub table: String,
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// The data files deleted (or that would be).
    pub files: Vec<String>,
}

impl Table {
    /// Makes the content of an earlier version current again, as a new commit.
    pub async fn restore(&self, to: &TimeTravel) -> Result<(Table, RestoreReport)> {
        let target = match to {
            TimeTravel::Latest => return Err(Error::invalid("restore needs --version or --as-of")),
            TimeTravel::Version(v) => Table::open(&self.location, &TimeTravel::Version(*v))
                .await?
                .version(),
            TimeTravel::AsOf(t) => {
                commit_log::version_as_of(self.delta.log_store().as_ref(), self.name(), *t).await?
            }
        };
        if target == self.version() {
            return Err(Error::invalid(format!(
                "version {target} is already the current version of `{}`",
                self.name()
            )));
        }
        let (delta, metrics) = self
            .delta
            .clone()
            .restore()
            .with_version_to_restore(target as _)
            .with_commit_properties(crate::commit::maintenance_commit_properties())
            .await
            .map_err(|e| self.delta_error(e))?;
        let table = self.committed(delta).await;
        let report = RestoreReport {
            table: self.name().to_string(),
            restored_version: target,
            version: table.version(),
            files_restored: metrics.num_restored_file as u64,
            files_removed: metrics.num_removed_file as u64,
        };
        Ok((table, report))
    }

    /// Compacts small files (Z-ordering by `zorder` when given).
    pub async fn optimize(
        &self,
        zorder: &[String],
        target_size: Option<u64>,
    ) -> Result<(Table, OptimizeReport)> {
        let schema = self.arrow_schema()?;
        for c in zorder {
            if schema.field_with_name(c).is_err() {
                return Err(Error::invalid(format!(
                    "cannot Z-order by `{c}`: not a column of `{}`",
                    self.name()
                )));
            }
        }
        let mut builder = self
            .delta
            .clone()
            .optimize()
            .with_commit_properties(crate::commit::maintenance_commit_properties())
            .with_session_state(crate::write::rewrite_session()?);
        if !zorder.is_empty() {
            builder = builder.with_type(OptimizeType::ZOrder(zorder.to_vec()));
        }
        if let Some(size) = target_size {
            let size = NonZeroU64::new(size)
                .ok_or_else(|| Error::invalid("--target-size must be positive"))?;
            builder = builder.with_target_size(size);
        }
        let (delta, metrics) = builder.await.map_err(|e| self.delta_error(e))?;
        let table = self.committed(delta).await;
        let report = OptimizeReport {
            table: self.name().to_string(),
            version: table.version(),
            files_added: metrics.num_files_added,
            files_removed: metrics.num_files_removed,
        };
        Ok((table, report))
    }

    /// Deletes data files that no version within the retention window references.
    pub async fn vacuum(
        &self,
        retain_hours: Option<u64>,
        dry_run: bool,
        force: bool,
    ) -> Result<VacuumReport> {
        let mut builder = self
            .delta
            .clone()
            .vacuum()
            .with_dry_run(dry_run)
            .with_enforce_retention_duration(!force);
        if let Some(h) = retain_hours {
            builder = builder.with_retention_period(chrono::Duration::hours(h as i64));
        }
        let (_, metrics) = builder.await.map_err(|e| {
            let err = self.delta_error(e);
            if err.message().contains("retention") {
                Error::invalid(format!(
                    "{}; pass --force to vacuum with a shorter retention (time travel to older versions will stop working)",
                    err.message()
                ))
            } else {
                err
            }
        })?;
        Ok(VacuumReport {
            table: self.name().to_string(),
            dry_run,
            files: metrics.files_deleted,
        })
    }

    /// Writes a checkpoint for the loaded version.
    pub async fn checkpoint(&self) -> Result<()> {
        deltalake::checkpoints::create_checkpoint(&self.delta, None)
            .await
            .map_err(|e| self.delta_error(e))
    }
}
