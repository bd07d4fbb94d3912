//! Reading the transaction log directly: the list of commits, each commit's recorded
//! timestamp and operation, and resolving "as of time T" to a version.
//!
//! Timestamps come from the log itself (`commitInfo.inCommitTimestamp`, else
//! `commitInfo.timestamp`), never from file modification times, so a table copied with
//! `cp -r` or uploaded to object storage answers time-travel queries exactly as the original.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use deltalake::logstore::LogStore;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One commit as recorded in the log.
#[derive(Debug, Clone, Serialize)]
pub struct Commit {
    /// The table version this commit created.
    pub version: u64,
    /// When it was committed (from the log).
    pub timestamp: DateTime<Utc>,
    /// The operation, e.g. `WRITE`, `MERGE`, `DELETE`, `OPTIMIZE`.
    pub operation: String,
    /// The operation's parameters (mode, predicate...).
    pub parameters: Map<String, Value>,
    /// The operation's metrics (rows written, files added...), when recorded.
    pub metrics: Map<String, Value>,
    /// The engine that wrote the commit, when recorded.
    pub engine: Option<String>,
}

/// Parses a user-given time: RFC 3339 (`2026-01-31T12:00:00Z`, `...+02:00`) or
/// `YYYY-MM-DD[ HH:MM:SS[.fff]]` / `YYYY-MM-DDTHH:MM:SS` taken as UTC.
///
/// ```
/// let t = tarn_table::parse_timestamp("2026-01-31 12:00:00").unwrap();
/// assert_eq!(t.to_rfc3339(), "2026-01-31T12:00:00+00:00");
/// assert!(tarn_table::parse_timestamp("yesterday").is_err());
/// ```
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(Utc.from_utc_datetime(&naive));
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight")));
    }
    Err(Error::invalid(format!(
        "cannot parse time `{t}`: use RFC 3339 (2026-01-31T12:00:00Z) or YYYY-MM-DD[ HH:MM:SS] in UTC"
    )))
}

/// Formats a time the way Tarn prints it (RFC 3339, milliseconds, `Z`).
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The range of commit files present in `_delta_log` (old ones may have been cleaned up).
pub(crate) async fn commit_range(log_store: &dyn LogStore, table: &str) -> Result<(u64, u64)> {
    let list_error = |e: &dyn std::fmt::Display| {
        Error::new(
            crate::ErrorKind::Internal,
            format!("cannot list the log of `{table}`: {e}"),
        )
    };
    let prefix = log_store.log_path().clone();
    let local_log = match log_store.root_url() {
        url if url.scheme() == "file" => url.to_file_path().ok().map(|p| p.join(prefix.as_ref())),
        _ => None,
    };
    let versions: Vec<u64> = match local_log {
        // Names only: object_store's local listing reads every file's status, 10,000 of
        // them on a 10,000-commit log, for sizes and times this does not need.
        Some(dir) => tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u64>> {
            let mut versions = Vec::new();
            let entries = match std::fs::read_dir(dir) {
                // As object_store lists a missing directory: nothing in it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(versions),
                entries => entries?,
            };
            for entry in entries {
                if let Some(v) = entry?.file_name().to_str().and_then(commit_version) {
                    versions.push(v);
                }
            }
            Ok(versions)
        })
        .await
        .map_err(|e| list_error(&e))?
        .map_err(|e| list_error(&e).with_source(e))?,
        None => {
            let store = log_store.object_store(None);
            let metas: Vec<_> = store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| list_error(&e).with_source(e))?;
            metas
                .iter()
                // Only top-level files: a commit's name is directly under `_delta_log/`.
                .filter(|m| m.location.prefix_match(&prefix).map(|p| p.count()) == Some(1))
                .filter_map(|m| m.location.filename().and_then(commit_version))
                .collect()
        }
    };
    let range = versions.iter().min().zip(versions.iter().max());
    range.map(|(&lo, &hi)| (lo, hi)).ok_or_else(|| {
        Error::not_found(format!(
            "no Delta table at `{table}` (no commits in _delta_log)"
        ))
    })
}

/// The version of a commit file's name (`NNNNNNNNNNNNNNNNNNNN.json`), or `None` for any
/// other file of the log.
fn commit_version(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".json")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The raw bytes of the commit that created `version`.
pub(crate) async fn read_commit_bytes(
    log_store: &dyn LogStore,
    table: &str,
    version: u64,
) -> Result<bytes::Bytes> {
    log_store
        .read_commit_entry(version)
        .await
        .map_err(|e| Error::from_delta(table, e))?
        .ok_or_else(|| {
            Error::not_found(format!(
                "table `{table}` has no commit file for version {version}"
            ))
        })
}

pub(crate) fn parse_action(table: &str, version: u64, line: &[u8]) -> Result<Value> {
    serde_json::from_slice(line).map_err(|e| {
        Error::new(
            crate::ErrorKind::Internal,
            format!("`{table}`: version {version} has an unreadable log entry: {e}"),
        )
    })
}

pub(crate) fn log_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
}

/// Reads the commit that created `version` (only as far as its `commitInfo`).
pub(crate) async fn read_commit(
    log_store: &dyn LogStore,
    table: &str,
    version: u64,
) -> Result<Commit> {
    let bytes = read_commit_bytes(log_store, table, version).await?;
    let mut info: Option<Map<String, Value>> = None;
    for line in log_lines(&bytes) {
        if let Some(Value::Object(ci)) = parse_action(table, version, line)?.get("commitInfo") {
            info = Some(ci.clone());
            break;
        }
    }
    commit_from_info(log_store, table, version, info).await
}

/// Reads the commit that created `version`: what it records, and all its actions (one JSON
/// object per log line), from one read of the file.
pub(crate) async fn read_commit_with_actions(
    log_store: &dyn LogStore,
    table: &str,
    version: u64,
) -> Result<(Commit, Vec<Value>)> {
    let bytes = read_commit_bytes(log_store, table, version).await?;
    let actions = log_lines(&bytes)
        .map(|line| parse_action(table, version, line))
        .collect::<Result<Vec<_>>>()?;
    let info = actions.iter().find_map(|a| match a.get("commitInfo") {
        Some(Value::Object(ci)) => Some(ci.clone()),
        _ => None,
    });
    let commit = commit_from_info(log_store, table, version, info).await?;
    Ok((commit, actions))
}

/// A commit as recorded by its `commitInfo` (the file's time when it has none).
async fn commit_from_info(
    log_store: &dyn LogStore,
    table: &str,
    version: u64,
    info: Option<Map<String, Value>>,
) -> Result<Commit> {
    let info = info.unwrap_or_default();
    let millis = info
        .get("inCommitTimestamp")
        .and_then(Value::as_i64)
        .or_else(|| info.get("timestamp").and_then(Value::as_i64));
    let millis = match millis {
        Some(ms) => ms,
        // A writer that records no commitInfo: the only clue left is the file's time.
        None => {
            let path =
                deltalake::Path::from(format!("{}/{version:020}.json", log_store.log_path()));
            let store = log_store.object_store(None);
            let meta = object_store::ObjectStoreExt::head(store.as_ref(), &path)
                .await
                .map_err(|e| {
                    Error::new(
                        crate::ErrorKind::Internal,
                        format!("`{table}`: cannot read version {version}: {e}"),
                    )
                })?;
            meta.last_modified.timestamp_millis()
        }
    };
    let timestamp = Utc.timestamp_millis_opt(millis).single().ok_or_else(|| {
        Error::new(
            crate::ErrorKind::Internal,
            format!("`{table}`: version {version} has an invalid timestamp"),
        )
    })?;
    let object = |key: &str| -> Map<String, Value> {
        match info.get(key) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    };
    Ok(Commit {
        version,
        timestamp,
        operation: info
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN")
            .to_string(),
        parameters: object("operationParameters"),
        metrics: object("operationMetrics"),
        engine: info
            .get("engineInfo")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// The commits of a table, newest first, at most `limit`.
pub(crate) async fn history(
    log_store: &dyn LogStore,
    table: &str,
    limit: Option<usize>,
) -> Result<Vec<Commit>> {
    let (first, last) = commit_range(log_store, table).await?;
    let count = (last - first + 1) as usize;
    let take = limit.unwrap_or(count).min(count);
    futures::stream::iter((0..take as u64).map(|i| last - i))
        .map(|v| read_commit(log_store, table, v))
        .buffered(16)
        .try_collect()
        .await
}

/// The latest version committed at or before `at`.
///
/// Binary search over the commits' recorded timestamps (which Delta writers keep
/// non-decreasing). A time before the first available commit is an error naming the range.
pub(crate) async fn version_as_of(
    log_store: &dyn LogStore,
    table: &str,
    at: DateTime<Utc>,
) -> Result<u64> {
    let (first, last) = commit_range(log_store, table).await?;
    let first_ts = read_commit(log_store, table, first).await?.timestamp;
    if at < first_ts {
        let last_ts = read_commit(log_store, table, last).await?.timestamp;
        return Err(Error::not_found(format!(
            "table `{table}` did not exist yet at {}: its history runs from {} (version {first}) to {} (version {last})",
            format_timestamp(&at),
            format_timestamp(&first_ts),
            format_timestamp(&last_ts)
        )));
    }
    // Invariant: ts(lo) <= at; answer in [lo, hi].
    let (mut lo, mut hi) = (first, last);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if read_commit(log_store, table, mid).await?.timestamp <= at {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc3339_and_plain_utc_times() {
        let expect = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
        for t in [
            "2026-01-31T12:00:00Z",
            "2026-01-31T14:00:00+02:00",
            "2026-01-31 12:00:00",
            "2026-01-31T12:00:00",
            "2026-01-31 12:00",
        ] {
            assert_eq!(parse_timestamp(t).unwrap(), expect, "{t}");
        }
        assert_eq!(
            parse_timestamp("2026-01-31").unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 31, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn unparseable_times_name_the_accepted_forms() {
        let err = parse_timestamp("31/01/2026").unwrap_err();
        assert!(err.message().contains("RFC 3339"), "{err}");
    }
}
