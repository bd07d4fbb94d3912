//! How Tarn's commits are made, and when the log is cleaned up.
//!
//! deltalake lists the whole `_delta_log` after every commit to look for expired commit
//! files. On a table with thousands of commits that listing (a file status per entry on
//! local disk, a paged LIST on an object store) cost more than the commit itself. Delta's
//! reference implementation cleans the log up when it writes a checkpoint, since only a
//! checkpoint makes older commit files deletable; Tarn does the same for every commit it
//! makes.

use chrono::Utc;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::table::config::TablePropertiesExt;
use deltalake::DeltaTable;

use crate::table::Table;

/// Commit settings for a data commit: up to 100 retries against concurrent writers,
/// automatic checkpoints, and no log clean-up in the commit itself (see
/// [`clean_up_log_after`]).
pub(crate) fn commit_properties() -> CommitProperties {
    CommitProperties::default()
        .with_max_retries(100)
        .with_cleanup_expired_logs(Some(false))
}

/// Commit settings for the other commits (alter, restore, optimize): deltalake's own retry
/// limit, and no log clean-up in the commit itself (see [`clean_up_log_after`]).
pub(crate) fn maintenance_commit_properties() -> CommitProperties {
    CommitProperties::default().with_cleanup_expired_logs(Some(false))
}

/// Runs after a commit made with [`commit_properties`] or
/// [`maintenance_commit_properties`] that moved the table from `previous` to `table`'s
/// version. When that commit wrote a checkpoint (deltalake writes
/// one at versions where `version + 1` is a multiple of `delta.checkpointInterval`) and
/// `delta.enableExpiredLogCleanup` is not `false`, deletes the commit and checkpoint files
/// older than `delta.logRetentionDuration` that the newest checkpoint covers.
///
/// Best effort: the commit has already happened, so a failed clean-up is not reported as
/// a failed command; the next checkpoint's clean-up deletes what this one left.
pub(crate) async fn clean_up_log_after(table: &DeltaTable, previous: Option<u64>) {
    let (Some(version), Ok(state)) = (table.version(), table.snapshot()) else {
        return;
    };
    if previous == Some(version) {
        return;
    }
    let config = state.table_config();
    if !(version + 1).is_multiple_of(config.checkpoint_interval().get())
        || !config.enable_expired_log_cleanup()
    {
        return;
    }
    let cutoff = Utc::now().timestamp_millis() - config.log_retention_duration().as_millis() as i64;
    let _ = deltalake::checkpoints::cleanup_expired_logs_for(
        version,
        table.log_store().as_ref(),
        cutoff,
        None,
    )
    .await;
}

impl Table {
    /// The table after a commit made from this one (`delta`, as the operation returned it),
    /// with the log cleaned up if that commit wrote a checkpoint ([`clean_up_log_after`]).
    pub(crate) async fn committed(&self, delta: DeltaTable) -> Table {
        clean_up_log_after(&delta, Some(self.version())).await;
        Table {
            location: self.location.clone(),
            delta,
        }
    }
}
