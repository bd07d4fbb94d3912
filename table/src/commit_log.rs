//! Reading the transaction log directly: the list of commits, each commit's recorded
//! timestamp and operation, and resolving "as of time T" to a version.
//!
//! Timestamps come from the log itself (`commitInfo.inCommitTimestamp`, else
//! `commitInfo.timestamp`), never from file modification times, so a table copied with
//! `cp -r` or uploaded to object storage answers time-travel queries exactly as the original.
//!
//! Writers' clocks differ, so without in-commit timestamps a commit's recorded time can be
//! earlier than its predecessor's. Time travel therefore goes by the Delta protocol's
//! *adjusted* timestamps ([`adjusted_timeline`]), which never go backwards: a commit's
//! in-commit timestamp where it has one, else the later of its recorded time and its
//! predecessor's adjusted time plus one millisecond (as Spark's Delta does).

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

/// A commit's in-commit timestamp and its recorded time, in milliseconds.
struct Stamp {
    in_commit: Option<i64>,
    recorded: i64,
}

/// A commit's timestamps (`commitInfo`; the file's time when it has none).
async fn read_stamp(log_store: &dyn LogStore, table: &str, version: u64) -> Result<Stamp> {
    let bytes = read_commit_bytes(log_store, table, version).await?;
    let mut info = None;
    for line in log_lines(&bytes) {
        if let Some(Value::Object(ci)) = parse_action(table, version, line)?.get("commitInfo") {
            info = Some(ci.clone());
            break;
        }
    }
    let in_commit = info
        .as_ref()
        .and_then(|i| i.get("inCommitTimestamp"))
        .and_then(Value::as_i64);
    let recorded = match info
        .as_ref()
        .and_then(|i| i.get("timestamp"))
        .and_then(Value::as_i64)
    {
        Some(ms) => ms,
        None => file_time(log_store, table, version).await?,
    };
    Ok(Stamp {
        in_commit,
        recorded,
    })
}

/// The modification time of a commit's file, in milliseconds.
async fn file_time(log_store: &dyn LogStore, table: &str, version: u64) -> Result<i64> {
    let path = deltalake::Path::from(format!("{}/{version:020}.json", log_store.log_path()));
    let store = log_store.object_store(None);
    let meta = object_store::ObjectStoreExt::head(store.as_ref(), &path)
        .await
        .map_err(|e| {
            Error::new(
                crate::ErrorKind::Internal,
                format!("`{table}`: cannot read version {version}: {e}"),
            )
        })?;
    Ok(meta.last_modified.timestamp_millis())
}

/// The time a commit stands at in time travel, given its predecessor's: its in-commit
/// timestamp, else its recorded time moved past its predecessor's (the protocol's
/// monotonic adjustment).
fn adjust(stamp: &Stamp, previous: Option<i64>) -> i64 {
    match (stamp.in_commit, previous) {
        (Some(ict), _) => ict,
        (None, Some(p)) => stamp.recorded.max(p.saturating_add(1)),
        (None, None) => stamp.recorded,
    }
}

/// The commits from the first one in the log onward, in version order, each with its
/// adjusted timestamp (which never goes backwards), up to and including the first for which
/// `enough` holds (or the last commit).
///
/// Adjusted times depend on every earlier commit, so this reads each commit up to the
/// answer (16 at a time); it is what `--as-of` costs.
pub(crate) async fn adjusted_timeline(
    log_store: &dyn LogStore,
    table: &str,
    mut enough: impl FnMut(DateTime<Utc>) -> bool,
) -> Result<Vec<(u64, DateTime<Utc>)>> {
    let (first, last) = commit_range(log_store, table).await?;
    let mut stamps = futures::stream::iter(first..=last)
        .map(|v| async move { read_stamp(log_store, table, v).await.map(|s| (v, s)) })
        .buffered(16);
    let mut out = Vec::new();
    let mut previous = None;
    while let Some((version, stamp)) = stamps.try_next().await? {
        let millis = adjust(&stamp, previous);
        previous = Some(millis);
        let at = to_time(table, version, millis)?;
        out.push((version, at));
        if enough(at) {
            break;
        }
    }
    Ok(out)
}

fn to_time(table: &str, version: u64, millis: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(millis).single().ok_or_else(|| {
        Error::new(
            crate::ErrorKind::Internal,
            format!("`{table}`: version {version} has an invalid timestamp"),
        )
    })
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
        None => file_time(log_store, table, version).await?,
    };
    let timestamp = to_time(table, version, millis)?;
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

/// The latest version whose adjusted timestamp ([`adjusted_timeline`]) is at or before
/// `at`. A time before the first available commit is an error naming the range.
pub(crate) async fn version_as_of(
    log_store: &dyn LogStore,
    table: &str,
    at: DateTime<Utc>,
) -> Result<u64> {
    let timeline = adjusted_timeline(log_store, table, |t| t > at).await?;
    if let Some((version, _)) = timeline.iter().rev().find(|(_, t)| *t <= at) {
        return Ok(*version);
    }
    let whole = adjusted_timeline(log_store, table, |_| false).await?;
    let ((first, first_ts), (last, last_ts)) = match (whole.first(), whole.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => return Err(Error::not_found(format!("table `{table}` has no commits"))),
    };
    Err(Error::not_found(format!(
        "table `{table}` did not exist yet at {}: its history runs from {} (version {first}) to {} (version {last})",
        format_timestamp(&at),
        format_timestamp(&first_ts),
        format_timestamp(&last_ts)
    )))
}

/// The earliest version whose adjusted timestamp ([`adjusted_timeline`]) is at or after
/// `at`; an error naming the last commit when there is none.
pub(crate) async fn version_since(
    log_store: &dyn LogStore,
    table: &str,
    at: DateTime<Utc>,
) -> Result<u64> {
    let timeline = adjusted_timeline(log_store, table, |t| t >= at).await?;
    match timeline.last() {
        Some((version, t)) if *t >= at => Ok(*version),
        Some((version, t)) => Err(Error::not_found(format!(
            "table `{table}` has no commit at or after {}: its last commit (version {version}) was at {}",
            format_timestamp(&at),
            format_timestamp(t)
        ))),
        None => Err(Error::not_found(format!("table `{table}` has no commits"))),
    }
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
    fn adjusted_timestamps_never_go_backwards() {
        let stamp = |recorded, in_commit| Stamp {
            recorded,
            in_commit,
        };
        let mut previous = None;
        let mut adjusted = Vec::new();
        for s in [
            stamp(1000, None),
            stamp(5000, None),
            stamp(2000, None),
            stamp(2001, None),
            stamp(9000, None),
            stamp(100, Some(9500)),
        ] {
            let a = adjust(&s, previous);
            previous = Some(a);
            adjusted.push(a);
        }
        assert_eq!(adjusted, [1000, 5000, 5001, 5002, 9000, 9500]);
    }

    #[test]
    fn unparseable_times_name_the_accepted_forms() {
        let err = parse_timestamp("31/01/2026").unwrap_err();
        assert!(err.message().contains("RFC 3339"), "{err}");
    }
}
