//! A table's files for readers that fetch them themselves (Delta Sharing): commit-log
//! lookups (version ranges, times) and reading one data file. Paths are relative to
//! the table root; reading one goes through [`Table::open_file`] and never leaves the root:
//! no `..`, no absolute path, and on a local table no symbolic link that leads out of the
//! table's directory (the file is opened first, then where it really is gets checked, so a
//! link swapped in between cannot win).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::Path as StorePath;
use futures::stream::BoxStream;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde_json::Value;

use crate::commit_log;
use crate::error::{Error, ErrorKind, Result};
use crate::location::TableLocation;
use crate::table::Table;

/// Whether `path` is a plain relative path inside a table root: no scheme, no leading `/`,
/// no `.`/`..` or empty segments, and not inside `_delta_log`.
pub fn is_table_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains("://")
        && !path.starts_with('/')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && !path.starts_with("_delta_log/")
}

fn store_path(path: &str) -> StorePath {
    StorePath::parse(path).unwrap_or_else(|_| StorePath::from(path))
}

impl Table {
    /// The last version recorded for application `app_id` by a `txn` action, if any.
    pub async fn app_transaction_version(&self, app_id: &str) -> Result<Option<i64>> {
        self.delta
            .snapshot()
            .map_err(|e| self.delta_error(e))?
            .transaction_version(self.delta.log_store().as_ref(), app_id)
            .await
            .map_err(|e| self.delta_error(e))
    }

    /// The first and last versions whose commit files are still in the log.
    pub async fn version_range(&self) -> Result<(u64, u64)> {
        commit_log::commit_range(self.delta.log_store().as_ref(), self.name()).await
    }

    /// The time version `version` was committed (from the log).
    pub async fn commit_time(&self, version: u64) -> Result<DateTime<Utc>> {
        Ok(
            commit_log::read_commit(self.delta.log_store().as_ref(), self.name(), version)
                .await?
                .timestamp,
        )
    }

    /// The latest version committed at or before `at`, by the adjusted timestamps time
    /// travel uses (`NotFound` before the first commit).
    pub async fn version_at(&self, at: DateTime<Utc>) -> Result<u64> {
        commit_log::version_as_of(self.delta.log_store().as_ref(), self.name(), at).await
    }

    /// The earliest version committed at or after `at`, by the adjusted timestamps time
    /// travel uses (`NotFound` after the last commit).
    pub async fn first_version_since(&self, at: DateTime<Utc>) -> Result<u64> {
        commit_log::version_since(self.delta.log_store().as_ref(), self.name(), at).await
    }

    /// What an application recorded under `key` in the `commitInfo` of the commit that
    /// created `version` (Tarn's import keeps its watermark under `tarnImport`), or `None`
    /// when that commit has no such entry. The value is the application's own JSON.
    pub async fn commit_info_entry(&self, version: u64, key: &str) -> Result<Option<Value>> {
        let log_store = self.delta.log_store();
        let bytes = commit_log::read_commit_bytes(log_store.as_ref(), self.name(), version).await?;
        for line in commit_log::log_lines(&bytes) {
            let mut action = commit_log::parse_action(self.name(), version, line)?;
            if let Some(entry) = action.get_mut("commitInfo").and_then(|c| c.get_mut(key)) {
                return Ok(Some(entry.take()));
            }
        }
        Ok(None)
    }

    /// Whether the commit creating `version` is in the log at `location` (one metadata
    /// request, no log replay): a cheap "has this table changed since version N?".
    pub async fn has_commit(location: &TableLocation, version: u64) -> Result<bool> {
        if let Some(dir) = location.local_path() {
            let file = dir.join("_delta_log").join(format!("{version:020}.json"));
            // One stat of a local file takes microseconds: done here rather than handed to
            // tokio's blocking pool (two thread hand-offs per call, see docs/performance.md).
            return Ok(file.try_exists().unwrap_or(false));
        }
        let delta = Self::unloaded(location)?;
        let store = delta.log_store().object_store(None);
        let path = StorePath::from(format!("_delta_log/{version:020}.json"));
        match ObjectStoreExt::head(store.as_ref(), &path).await {
            Ok(_) => Ok(true),
            Err(deltalake::ObjectStoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(read_error(path.as_ref(), e)),
        }
    }

    /// Opens `path` (relative to the table root at `location`) for reading, without loading
    /// the table: one metadata request for its size. Paths that could leave the root are
    /// refused, and so is a local file that is really elsewhere (reached through a symbolic
    /// link), inside `_delta_log`, or not a regular file: all as `NotFound`, with a message
    /// saying why.
    pub async fn open_file(location: &TableLocation, path: &str) -> Result<TableFile> {
        if !is_table_relative(path) {
            return Err(Error::invalid(format!("`{path}` is not a data file path")));
        }
        if let Some(root) = location.local_path() {
            let relative = path.to_string();
            let (file, size) =
                tokio::task::spawn_blocking(move || open_local_file(&root, &relative))
                    .await
                    .map_err(|e| {
                        Error::new(ErrorKind::Internal, format!("cannot open `{path}`: {e}"))
                    })??;
            return Ok(TableFile {
                source: Source::Local(Arc::new(file)),
                label: path.to_string(),
                size,
            });
        }
        let store = Self::unloaded(location)?.log_store().object_store(None);
        let file = store_path(path);
        let meta = ObjectStoreExt::head(store.as_ref(), &file)
            .await
            .map_err(|e| read_error(path, e))?;
        Ok(TableFile {
            source: Source::Store { store, file },
            label: path.to_string(),
            size: meta.size,
        })
    }
}

/// Opens `relative` under the local table directory `root` and checks that what was opened
/// is a regular file inside `root` (outside `_delta_log`); returns it with its size.
fn open_local_file(root: &Path, relative: &str) -> Result<(std::fs::File, u64)> {
    let no_file = || Error::not_found(format!("no file `{relative}` in the table"));
    let real_root = root.canonicalize().map_err(|_| no_file())?;
    let candidate = root.join(relative);
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // A FIFO planted in the table's directory must not block the open.
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = match options.open(&candidate) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_file()),
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("cannot open `{relative}`: {e}"),
            ))
        }
    };
    let real = real_path(&file, &candidate).map_err(|_| no_file())?;
    if !real.starts_with(&real_root) || real.starts_with(real_root.join("_delta_log")) {
        return Err(Error::not_found(format!(
            "`{relative}` is not a file of the table: it leads outside the table's directory (through a symbolic link), and is not served"
        )));
    }
    let meta = file.metadata().map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("cannot read `{relative}`: {e}"),
        )
    })?;
    if !meta.is_file() {
        return Err(Error::not_found(format!(
            "`{relative}` is not a regular file of the table, and is not served"
        )));
    }
    Ok((file, meta.len()))
}

/// Where the file opened as `file` (from `path`) really is: from the open descriptor where
/// the system tells (Linux), so a link swapped after the open changes nothing.
fn real_path(file: &std::fs::File, path: &Path) -> std::io::Result<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            return Ok(real);
        }
    }
    let _ = file;
    path.canonicalize()
}

/// Reads `len` bytes at `offset` of `file`.
fn read_at(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut buf, offset)?;
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = file.try_clone()?;
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut buf)?;
    }
    Ok(buf)
}

/// Where a [`TableFile`]'s bytes come from.
enum Source {
    /// A table on an object store (or one reached through object_store's local store).
    Store {
        store: deltalake::logstore::ObjectStoreRef,
        file: StorePath,
    },
    /// A local table's file, opened (and checked) once.
    Local(Arc<std::fs::File>),
}

/// A data file of a table, opened by [`Table::open_file`].
pub struct TableFile {
    source: Source,
    label: String,
    /// Its size in bytes.
    pub size: u64,
}

/// How much of a local file one read takes.
const LOCAL_READ_CHUNK: u64 = 1 << 20;

impl TableFile {
    /// Streams bytes `range` of the file.
    pub async fn read(
        &self,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<bytes::Bytes>>> {
        let label = self.label.clone();
        match &self.source {
            Source::Store { store, file } => {
                let options = object_store::GetOptions {
                    range: Some(object_store::GetRange::Bounded(range)),
                    ..Default::default()
                };
                let result = store
                    .get_opts(file, options)
                    .await
                    .map_err(|e| read_error(&self.label, e))?;
                Ok(Box::pin(
                    result.into_stream().map_err(move |e| read_error(&label, e)),
                ))
            }
            Source::Local(file) => {
                let file = file.clone();
                Ok(Box::pin(futures::stream::try_unfold(range, move |range| {
                    let (file, label) = (file.clone(), label.clone());
                    async move {
                        if range.start >= range.end {
                            return Ok(None);
                        }
                        let len = (range.end - range.start).min(LOCAL_READ_CHUNK);
                        let offset = range.start;
                        let bytes = tokio::task::spawn_blocking(move || {
                            read_at(&file, offset, len as usize)
                        })
                        .await
                        .map_err(|e| {
                            Error::new(ErrorKind::Internal, format!("cannot read `{label}`: {e}"))
                        })?
                        .map_err(|e| {
                            Error::new(ErrorKind::Internal, format!("cannot read `{label}`: {e}"))
                        })?;
                        Ok(Some((bytes::Bytes::from(bytes), offset + len..range.end)))
                    }
                })))
            }
        }
    }
}

fn read_error(path: &str, e: deltalake::ObjectStoreError) -> Error {
    match e {
        deltalake::ObjectStoreError::NotFound { .. } => {
            Error::not_found(format!("no file `{path}`"))
        }
        e => Error::new(ErrorKind::Internal, format!("cannot read `{path}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_table_files() {
        for ok in [
            "part-0.parquet",
            "region=EU/part-0.parquet",
            "a%20b/c.parquet",
        ] {
            assert!(is_table_relative(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../other/part-0.parquet",
            "a/../../b",
            "./a",
            "a//b",
            "s3://bucket/x.parquet",
            "file:///etc/passwd",
            "_delta_log/00000000000000000000.json",
            "a\\..\\b",
        ] {
            assert!(!is_table_relative(bad), "{bad}");
        }
    }
}
