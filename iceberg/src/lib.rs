//! tarn-iceberg: a Delta table as an Iceberg v2 table, for the Iceberg REST catalog of
//! `tarn serve`. For each Delta version it derives one Iceberg snapshot (snapshot id =
//! sequence number = Delta version + 1): a schema with stable field ids ([`schema`]),
//! identity partition specs, manifests with partition values and bounds from the Delta
//! statistics ([`values`], [`avro`]), manifest lists and the table metadata JSON
//! ([`derive`]). The files go to the table's own store under
//! `_tarn_iceberg/<delta-table-id>-<location hash>-b<first version>/` ([`Projection`]),
//! a folder Delta's vacuum leaves alone (hidden: it starts with `_`), or, when the server
//! is given a metadata root (`tarn serve --iceberg-metadata`, for tables it may not write),
//! under `<root>/<delta-table-id>-<longer location hash>-b<first version>/`.
//!
//! Every file is a pure function of the Delta log, so two servers write the same bytes
//! under the same names; a version's record (`versions/<v>.json`, created only if absent)
//! is written last and marks its files complete. A crash half-way leaves files that the
//! next derivation writes again, identically. No HTTP here: see `tarn-server`'s `iceberg`.
//!
//! Not served (an `Unsupported` error naming the reason): deletion vectors, column mapping
//! modes other than `none`, `name` and `id`, types Iceberg v2 lacks (variant...), files
//! without a row count.

pub mod avro;
pub mod derive;
pub mod schema;
pub mod values;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde_json::json;
use tarn_table::{Error, ErrorKind, Result, Table, TableLocation, TableLog, TimeTravel};

pub use derive::History;

/// The environment variable of the test-only fault points (as `tarn serve` uses it): set to
/// `iceberg:manifests` or `iceberg:list`, the process kills itself there.
pub const FAULT_ENV: &str = "TARN_TEST_FAULT";

/// How many versions' metadata JSON files are kept behind the newest (older ones go once
/// they are an hour old).
pub const KEEP_METADATA: u64 = 10;

/// The folder under a table root that holds the derived Iceberg files.
pub const FOLDER: &str = "_tarn_iceberg";

/// Opens a table at a version, under whatever bound the caller keeps on opens.
pub trait OpenTable: Send + Sync {
    /// Opens the table at `location` as of `at`.
    fn open<'a>(
        &'a self,
        location: &'a TableLocation,
        at: &'a TimeTravel,
    ) -> Pin<Box<dyn Future<Output = Result<Table>> + Send + 'a>>;
}

/// What a load answers: the metadata JSON and where its file is.
#[derive(Debug, Clone)]
pub struct Served {
    /// The table metadata, serialized (with every snapshot, as in the file, or with the
    /// current one only).
    pub metadata_json: Arc<String>,
    /// The URL of the metadata JSON file (every snapshot, whichever the answer lists).
    pub metadata_location: String,
    /// The Delta version it is the metadata of.
    pub version: u64,
}

/// The Iceberg projection of one Delta table: its derived history (in memory) and the
/// files it writes.
#[derive(Debug)]
pub struct Projection {
    history: History,
    location: TableLocation,
    store: Arc<dyn ObjectStore>,
    /// Where the files go, relative to `store`'s root: `_tarn_iceberg/<key>` under the
    /// table root, or `<key>` under a metadata root given to the server.
    prefix: String,
    /// Whether `prefix` is in the table's own folder (no metadata root).
    beside_table: bool,
    committed: HashSet<u64>,
    /// The last version whose metadata file is written, and the file's URL.
    written: Option<(u64, String)>,
    /// The version to start at, until the first step.
    first: Option<u64>,
    /// How many versions this process derived (for tests and figures).
    pub derived: u64,
}

fn internal(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Internal, message)
}

/// A failed listing or write of the Iceberg files, naming the file or folder (`url`) and,
/// when they go beside the table, how to keep them elsewhere.
fn storage_error(what: &str, url: &str, beside_table: bool, e: object_store::Error) -> Error {
    let hint = if beside_table {
        " (a server that may not write there can keep the Iceberg metadata elsewhere: \
         `tarn serve --iceberg-metadata ROOT`)"
    } else {
        ""
    };
    internal(format!("cannot {what} `{url}`: {e}{hint}"))
}

/// The table root as a URL with raw (percent-decoded) characters, no trailing `/`: readers
/// (pyiceberg) take file paths as given.
pub fn root_url(location: &TableLocation) -> String {
    if let Some(path) = location.local_path() {
        return format!("file://{}", path.display())
            .trim_end_matches('/')
            .to_string();
    }
    let url = location.url().as_str().trim_end_matches('/');
    percent_encoding::percent_decode_str(url)
        .decode_utf8_lossy()
        .into_owned()
}

fn fault(point: &str) {
    if std::env::var_os(FAULT_ENV).is_some_and(|v| v == point) {
        eprintln!("{FAULT_ENV}: killing this process at `{point}` (test only)");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}

impl Projection {
    /// The projection of the table `latest` (opened at its latest version), starting at
    /// version 0 when the log still has it, else at the latest version. Its files go under
    /// the table's own `_tarn_iceberg/`, or, with `metadata_root`, under that root (for
    /// tables whose storage the server may read but not write): `<root>/<key>`, the key
    /// naming the table's id, location and first version, so tables never share a folder.
    pub async fn new(latest: &Table, metadata_root: Option<&TableLocation>) -> Result<Self> {
        let location = latest.location().clone();
        let metadata = latest.metadata()?;
        let root = root_url(&location);
        let first = if Table::has_commit(&location, 0).await? {
            0
        } else {
            latest.version()
        };
        use sha2::Digest;
        // The location's hash keeps tables apart. Under a shared metadata root it is long
        // enough that no one can choose a location (or a table id, which the log states)
        // that lands in another table's folder.
        // Under a root it hashes the URL as written (percent-encoded), which names one
        // location only; `root` is decoded (`a%2Fb` and `a/b` would meet).
        let (hashed, width) = match metadata_root {
            None => (root.as_str(), 4),
            Some(_) => (location.url().as_str(), 16),
        };
        let digest = sha2::Sha256::digest(hashed.as_bytes());
        let hash: String = digest[..width].iter().map(|b| format!("{b:02x}")).collect();
        let id: String = metadata
            .id
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let key = format!("{id}-{hash}-b{first}");
        let (prefix, folder, store) = match metadata_root {
            None => {
                let prefix = format!("{FOLDER}/{key}");
                let folder = format!("{root}/{prefix}");
                (
                    prefix,
                    folder,
                    latest.delta().log_store().object_store(None),
                )
            }
            Some(meta) => (
                key.clone(),
                format!("{}/{key}", root_url(meta)),
                Table::store_at(meta)?,
            ),
        };
        let mut committed = HashSet::new();
        let listing = format!("{prefix}/versions/");
        let mut list = store.list(Some(&StorePath::from(listing.as_str())));
        use futures::StreamExt;
        while let Some(meta) = list.next().await {
            let meta = meta.map_err(|e| {
                storage_error(
                    "list the Iceberg version records in",
                    &format!("{folder}/versions/"),
                    metadata_root.is_none(),
                    e,
                )
            })?;
            if let Some(v) = meta
                .location
                .filename()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                committed.insert(v);
            }
        }
        let mut history = History::new(&root, &folder, &metadata.id);
        // Nothing derived yet: the first step is a rebase at `first`.
        history.version = first;
        Ok(Self {
            history,
            location,
            store,
            prefix,
            beside_table: metadata_root.is_none(),
            committed,
            written: None,
            derived: 0,
            first: Some(first),
        })
    }

    /// The Delta table id this projection belongs to.
    pub fn table_id(&self) -> &str {
        &self.history.table_id
    }

    /// The last Delta version derived (or about to be, before the first step).
    pub fn version(&self) -> u64 {
        self.history.version
    }

    /// The derived history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Derives every version up to `latest`'s, writing the files of each version that has
    /// no record yet.
    pub async fn catch_up(&mut self, latest: &Table, opens: &dyn OpenTable) -> Result<()> {
        let target = latest.version();
        if let Some(first) = self.first.take() {
            self.rebase_at(first, latest, opens).await?;
        }
        while self.history.version < target {
            let v = self.history.version + 1;
            if self.history.needs_rebase() {
                self.rebase_at(v, latest, opens).await?;
                continue;
            }
            let changes = latest.commit_changes(v).await?;
            let step = self.history.apply(&changes);
            self.finish(v, step).await?;
        }
        Ok(())
    }

    /// Derives the versions after the last one derived, up to `target`, from their commits
    /// alone, without a snapshot of the table: the work follows what those versions
    /// changed. `false` (and nothing more derived) when that cannot be done: nothing
    /// derived yet, a version that starts over ([`History::needs_rebase`]), or a last
    /// derived version whose commit is no longer the one derived (the table was replaced
    /// at this location); the caller then catches up from an opened table.
    pub async fn catch_up_from_log(&mut self, log: &TableLog, target: u64) -> Result<bool> {
        if self.first.is_some() || self.history.needs_rebase() {
            return Ok(false);
        }
        let derived = log.commit_changes(self.history.version).await?;
        if Some(derived.commit.timestamp.timestamp_millis()) != self.history.last_commit_ms() {
            return Ok(false);
        }
        while self.history.version < target {
            if self.history.needs_rebase() {
                return Ok(false);
            }
            let v = self.history.version + 1;
            let changes = log.commit_changes(v).await?;
            let step = self.history.apply(&changes);
            self.finish(v, step).await?;
        }
        Ok(true)
    }

    async fn rebase_at(&mut self, v: u64, latest: &Table, opens: &dyn OpenTable) -> Result<()> {
        let changes = latest.commit_changes(v).await?;
        let table = if v == latest.version() {
            None
        } else {
            Some(opens.open(&self.location, &TimeTravel::Version(v)).await?)
        };
        let table = table.as_ref().unwrap_or(latest);
        let metadata = table.metadata()?;
        let files = table.data_files()?;
        let step = self.history.rebase(
            v,
            changes.commit.timestamp.timestamp_millis(),
            &changes.commit.operation,
            &metadata,
            &files,
        );
        self.finish(v, step).await
    }

    async fn finish(&mut self, v: u64, step: Result<derive::Step>) -> Result<()> {
        self.derived += 1;
        let (files, refused) = match step {
            Ok(step) => (step.files, None),
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                self.history.refuse(v, e.message().to_string());
                (vec![], Some(e.message().to_string()))
            }
            Err(e) => return Err(e),
        };
        if self.committed.contains(&v) {
            return Ok(());
        }
        let mut names = Vec::new();
        let mut manifests_done = false;
        for f in &files {
            if f.name.starts_with("lists/") && !manifests_done {
                fault("iceberg:manifests");
                manifests_done = true;
            }
            self.put(&f.name, f.bytes.clone()).await?;
            names.push(f.name.clone());
        }
        fault("iceberg:list");
        let record = json!({
            "delta_version": v,
            "snapshot_id": if refused.is_none() { Some(v as i64 + 1) } else { None },
            "refused": refused,
            "files": names,
        });
        let path = StorePath::from(format!("{}/versions/{v:020}.json", self.prefix));
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(
                &path,
                PutPayload::from(record.to_string().into_bytes()),
                opts,
            )
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(self.write_error(&format!("versions/{v:020}.json"), e)),
        }
        self.committed.insert(v);
        Ok(())
    }

    /// A failed write, naming the file's URL and what to do when the table's storage
    /// cannot take the files.
    fn write_error(&self, name: &str, e: object_store::Error) -> Error {
        storage_error(
            "write the Iceberg metadata file",
            &format!("{}/{name}", self.history.folder),
            self.beside_table,
            e,
        )
    }

    /// Deletes metadata JSON files more than [`KEEP_METADATA`] versions behind `v` and
    /// older than an hour: each holds the whole history, and clients take the metadata
    /// from the answer, not the file. Best effort: a failure only leaves files behind.
    async fn forget_old_metadata(&self, v: u64) {
        use futures::StreamExt;
        let Some(floor) = v.checked_sub(KEEP_METADATA) else {
            return;
        };
        let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
        let dir = StorePath::from(format!("{}/metadata/", self.prefix));
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&dir))
            .filter_map(|m| async move { m.ok() })
            .collect()
            .await;
        for m in metas {
            let version = m
                .location
                .filename()
                .and_then(|n| n.strip_prefix('v'))
                .and_then(|n| n.strip_suffix(".metadata.json"))
                .and_then(|n| n.parse::<u64>().ok());
            if version.is_some_and(|x| x < floor) && m.last_modified < hour_ago {
                let _ = self.store.delete(&m.location).await;
            }
        }
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        let path = StorePath::from(format!("{}/{name}", self.prefix));
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| self.write_error(name, e))?;
        Ok(())
    }

    /// The metadata of the last derived version (only the current snapshot with
    /// `current_only`), its file written once per version. `Unsupported` when that
    /// version cannot be read as Iceberg.
    ///
    /// Either way the file at `metadata_location` holds every snapshot, and is written
    /// before the first answer of its version: a client may read the file rather than the
    /// answer. Nothing else is kept here: the text is spliced from the snapshots' kept
    /// texts, and the server keeps the answers it sends (it asks once per version).
    pub async fn serve(&mut self, current_only: bool) -> Result<Served> {
        let v = self.history.version;
        let mut all = None;
        let location = match self.written.take() {
            Some((written, location)) if written == v => location,
            _ => {
                let metadata = self.history.metadata_text(false)?;
                let name = format!("metadata/v{v:020}.metadata.json");
                self.put(&name, metadata.as_bytes().to_vec()).await?;
                self.forget_old_metadata(v).await;
                all = Some(metadata);
                format!("{}/{name}", self.history.folder)
            }
        };
        self.written = Some((v, location.clone()));
        let metadata = match (current_only, all) {
            (true, _) => self.history.metadata_text(true)?,
            (false, Some(all)) => all,
            (false, None) => self.history.metadata_text(false)?,
        };
        Ok(Served {
            metadata_json: Arc::new(metadata),
            metadata_location: location,
            version: v,
        })
    }
}
