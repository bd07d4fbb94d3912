//! Which version of a table to read: the latest, a version number, or "as of" a time.

use chrono::{DateTime, Utc};

use crate::commit_log::parse_timestamp;
use crate::error::Result;

/// A point in a table's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeTravel {
    /// The newest version.
    #[default]
    Latest,
    /// This exact version.
    Version(u64),
    /// The latest version committed at or before this time (from the log's commit times).
    AsOf(DateTime<Utc>),
}

impl TimeTravel {
    /// From the CLI's `--version N` / `--as-of T` (at most one of them).
    pub fn from_options(version: Option<u64>, as_of: Option<&str>) -> Result<Self> {
        Ok(match (version, as_of) {
            (Some(v), _) => TimeTravel::Version(v),
            (None, Some(t)) => TimeTravel::AsOf(parse_timestamp(t)?),
            (None, None) => TimeTravel::Latest,
        })
    }
}
