//! Listing a local table's `_delta_log` from a version onwards without walking all of it.
//!
//! Opening a table lists its log from the last checkpoint on. object_store's local store
//! answers that by walking the whole directory and turning every entry's name into a
//! `Path` (percent-encoding, URL parsing) before it compares the name with the offset: on a
//! 10,000-commit table, 10,101 entries for the two or three after the checkpoint, about a
//! third of the time `tarn describe` took. [`LocalStore`] reads the names only and builds
//! entries for those after the offset. Anything unusual (a sub-directory or symbolic link
//! after the offset, a name that is not plain ASCII) goes to object_store's own listing, so
//! the answer is always the one it would give.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// object_store's local file system rooted at `/`, with a quicker listing from an offset.
#[derive(Debug)]
pub(crate) struct LocalStore {
    inner: Arc<LocalFileSystem>,
}

impl LocalStore {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(LocalFileSystem::new()),
        }
    }
}

impl fmt::Display for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalStore({})", self.inner)
    }
}

/// Bytes a name may hold to be the same in a `Path` as on disk, and to compare the same.
fn plain(name: &str) -> bool {
    name != "."
        && name != ".."
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The entries of `dir` (the store path `prefix`) whose paths sort after `offset`, or
/// `None` when the directory holds something this listing does not handle itself.
fn entries_after(
    dir: &std::path::Path,
    prefix: &str,
    offset: &str,
) -> std::io::Result<Option<Vec<ObjectMeta>>> {
    let entries = match std::fs::read_dir(dir) {
        // As object_store lists a missing directory: nothing in it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
        entries => entries?,
    };
    let mut after = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().filter(|n| plain(n)) else {
            return Ok(None);
        };
        let location = format!("{prefix}/{name}");
        if location.as_str() <= offset {
            continue;
        }
        if !entry.file_type()?.is_file() {
            return Ok(None);
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            // Deleted since the directory was read: object_store skips it too.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let Ok(location) = Path::parse(location) else {
            return Ok(None);
        };
        after.push(object_meta(location, &meta));
    }
    after.sort_unstable_by(|a, b| a.location.cmp(&b.location));
    Ok(Some(after))
}

/// What object_store's local store reports for a file (its `e_tag` is inode, modification
/// time in microseconds and size, in hexadecimal).
fn object_meta(location: Path, meta: &std::fs::Metadata) -> ObjectMeta {
    let modified = meta.modified().ok();
    let micros = modified
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    ObjectMeta {
        location,
        last_modified: modified.map(DateTime::<Utc>::from).unwrap_or_default(),
        size: meta.len(),
        e_tag: Some(format!("{:x}-{micros:x}-{:x}", meta.ino(), meta.len())),
        version: None,
    }
}

fn io_error(source: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalStore",
        source: Box::new(source),
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        // Percent signs would need decoding to find the directory: object_store does that.
        let Some(prefix) = prefix.filter(|p| !p.as_ref().is_empty() && !p.as_ref().contains('%'))
        else {
            return self.inner.list_with_offset(prefix, offset);
        };
        let inner = self.inner.clone();
        let (prefix, offset) = (prefix.clone(), offset.clone());
        futures::stream::once(async move {
            let dir = PathBuf::from(format!("/{prefix}"));
            let (p, o) = (prefix.to_string(), offset.to_string());
            let listed = tokio::task::spawn_blocking(move || entries_after(&dir, &p, &o))
                .await
                .map_err(io_error)
                .and_then(|r| r.map_err(io_error));
            match listed {
                Ok(Some(entries)) => futures::stream::iter(entries.into_iter().map(Ok)).boxed(),
                Ok(None) => inner.list_with_offset(Some(&prefix), &offset),
                Err(e) => futures::stream::once(async { Err(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    async fn both(
        store: &LocalStore,
        prefix: &Path,
        offset: &Path,
    ) -> (Vec<ObjectMeta>, Vec<ObjectMeta>) {
        let mut ours: Vec<ObjectMeta> = store
            .list_with_offset(Some(prefix), offset)
            .try_collect()
            .await
            .unwrap();
        let mut theirs: Vec<ObjectMeta> = store
            .inner
            .list_with_offset(Some(prefix), offset)
            .try_collect()
            .await
            .unwrap();
        ours.sort_by(|a, b| a.location.cmp(&b.location));
        theirs.sort_by(|a, b| a.location.cmp(&b.location));
        (ours, theirs)
    }

    #[tokio::test]
    async fn lists_what_object_store_lists() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("_delta_log");
        std::fs::create_dir(&log).unwrap();
        for v in 0..30u64 {
            std::fs::write(log.join(format!("{v:020}.json")), vec![b'x'; v as usize]).unwrap();
        }
        std::fs::write(log.join(format!("{:020}.checkpoint.parquet", 19)), b"cp").unwrap();
        std::fs::write(log.join("_last_checkpoint"), b"{}").unwrap();
        let store = LocalStore::new();
        let prefix = Path::from_filesystem_path(&log).unwrap();
        let offset = Path::parse(format!("{prefix}/{:020}", 19)).unwrap();
        let (ours, theirs) = both(&store, &prefix, &offset).await;
        let names: Vec<&str> = ours
            .iter()
            .map(|m| m.location.filename().unwrap())
            .collect();
        assert_eq!(
            names.first(),
            Some(&"00000000000000000019.checkpoint.parquet")
        );
        assert_eq!(names.last(), Some(&"_last_checkpoint"));
        assert_eq!(names.len(), 1 + 10 + 1 + 1, "{names:?}");
        assert_eq!(ours, theirs);
        // That was this module's own listing, not a fallback.
        let own = entries_after(&log, prefix.as_ref(), offset.as_ref())
            .unwrap()
            .unwrap();
        assert_eq!(own, ours);

        // A multipart upload's temporary file: object_store never lists these.
        std::fs::write(log.join(format!("{:020}.json#1", 31)), b"partial").unwrap();
        let (ours, theirs) = both(&store, &prefix, &offset).await;
        assert_eq!(ours.len(), 13);
        assert_eq!(ours, theirs);

        // A sub-directory after the offset (e.g. `_sidecars`): object_store lists inside it.
        std::fs::create_dir(log.join("_sidecars")).unwrap();
        std::fs::write(log.join("_sidecars/a.parquet"), b"s").unwrap();
        let (ours, theirs) = both(&store, &prefix, &offset).await;
        assert!(ours
            .iter()
            .any(|m| m.location.as_ref().ends_with("_sidecars/a.parquet")));
        assert_eq!(ours, theirs);

        // A name that needs encoding in a Path.
        std::fs::write(log.join("odd name"), b"o").unwrap();
        let (ours, theirs) = both(&store, &prefix, &offset).await;
        assert_eq!(ours, theirs);

        // A missing directory lists as empty.
        let missing = Path::parse(format!("{prefix}/nothing")).unwrap();
        let (ours, theirs) = both(
            &store,
            &missing,
            &Path::parse(format!("{missing}/0")).unwrap(),
        )
        .await;
        assert!(ours.is_empty() && theirs.is_empty());
    }
}
