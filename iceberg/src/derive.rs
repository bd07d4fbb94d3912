//! One Iceberg snapshot per Delta version, derived incrementally: a version's adds become
//! one new manifest, its removes rewrite only the manifests that held the removed files,
//! and manifests are merged in size tiers so a snapshot's list stays short. The work for a
//! version is proportional to what it changed. The metadata JSON lists every snapshot
//! whose files the table's name mapping reads (see [`schema::name_mapping`]).
//!
//! Everything here is a pure function of the Delta log (and of where it starts, the
//! bootstrap version, which is part of the folder's name), so two servers deriving the same
//! table write the same bytes under the same names; see [`crate::store`] for the files.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Map, Value};
use tarn_table::{
    CommitChanges, DataFile, Error, ErrorKind, FileAction, LogAction, Result, TableMetadata,
};

use crate::avro::{self, EntryData, ManifestFile, PartitionField};
use crate::schema::{self, ColumnMapping, Field, Schema, Type};
use crate::values::{self, Datum, End};

/// At most this many entries per manifest written for one version.
pub const MANIFEST_ENTRIES: usize = 16_384;

/// Merge when this many live manifests of one spec share a size tier.
pub const MERGE_FANOUT: usize = 8;

/// A file to write under the projection's folder.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Relative to the folder: `manifests/…`, `lists/…`.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A live manifest: its manifest-list row and its entries (by Delta path).
#[derive(Debug, Clone)]
struct Manifest {
    file: ManifestFile,
    entries: Vec<(String, EntryData)>,
}

/// A partition spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Its id.
    pub spec_id: i32,
    /// Its identity fields.
    pub fields: Vec<PartitionField>,
}

/// The Delta state the next version builds on.
#[derive(Debug, Clone)]
struct DeltaState {
    metadata: TableMetadata,
}

/// The derived Iceberg history of one Delta table, up to some version.
#[derive(Debug, Clone)]
pub struct History {
    /// The table's root URL, without a trailing `/`.
    pub root: String,
    /// The projection folder's URL (`<root>/_tarn_iceberg/<key>`).
    pub folder: String,
    /// The Delta table id.
    pub table_id: String,
    /// The last Delta version derived.
    pub version: u64,
    schemas: Vec<Schema>,
    current_schema: Option<i32>,
    last_column_id: i32,
    specs: Vec<Spec>,
    current_spec: i32,
    last_partition_id: i32,
    manifests: BTreeMap<u64, Manifest>,
    next_manifest: u64,
    index: HashMap<String, u64>,
    snapshots: Vec<Value>,
    /// Each snapshot as JSON text, and its `snapshot-log` entry, serialized once: the
    /// metadata JSON of a new version copies them instead of serializing the history again.
    snapshot_texts: Vec<(String, String)>,
    last_snapshot: Option<i64>,
    last_timestamp: i64,
    totals: Totals,
    delta: Option<DeltaState>,
    /// Why the last version cannot be served, if it cannot.
    pub refused: Option<String>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    files: i64,
    records: i64,
    bytes: i64,
}

/// What one version produced: files to write, and whether it is servable.
#[derive(Debug, Default)]
pub struct Step {
    /// The manifests and the manifest list, in the order to write them.
    pub files: Vec<NewFile>,
}

fn unsupported(message: String) -> Error {
    Error::new(ErrorKind::Unsupported, message)
}

impl History {
    /// An empty history of the table at `root`, writing under `folder`.
    pub fn new(root: &str, folder: &str, table_id: &str) -> Self {
        Self {
            root: root.trim_end_matches('/').to_string(),
            folder: folder.trim_end_matches('/').to_string(),
            table_id: table_id.to_string(),
            version: 0,
            schemas: vec![],
            current_schema: None,
            last_column_id: 0,
            specs: vec![],
            current_spec: 0,
            last_partition_id: 999,
            manifests: BTreeMap::new(),
            next_manifest: 0,
            index: HashMap::new(),
            snapshots: vec![],
            snapshot_texts: vec![],
            last_snapshot: None,
            last_timestamp: i64::MIN,
            totals: Totals::default(),
            delta: None,
            refused: None,
        }
    }

    /// The schema a new version is checked against: refuses types Iceberg v2 cannot
    /// represent and column mapping modes other than `none`, `name` and `id`.
    fn adopt_metadata(&mut self, metadata: &TableMetadata) -> Result<()> {
        let mapping = ColumnMapping::from_mode(metadata.property("delta.columnMapping.mode"))?;
        let delta: Value = serde_json::from_str(&metadata.schema_string).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("the Delta schema does not parse: {e}"),
            )
        })?;
        let previous = self.current_schema();
        let (fields, last) = schema::convert(&delta, previous, self.last_column_id, mapping)?;
        let schema_id = match self.schemas.iter().find(|s| s.fields == fields) {
            Some(s) => s.schema_id,
            None => {
                let id = self
                    .schemas
                    .iter()
                    .map(|s| s.schema_id + 1)
                    .max()
                    .unwrap_or(0);
                self.schemas.push(Schema {
                    kind: "struct".into(),
                    schema_id: id,
                    fields,
                });
                id
            }
        };
        self.last_column_id = self.last_column_id.max(last);
        self.current_schema = Some(schema_id);
        let schema = self
            .current_schema()
            .cloned()
            .unwrap_or_else(unreachable_schema);
        let mut fields = Vec::new();
        for column in &metadata.partition_columns {
            let field = schema.field(column).ok_or_else(|| {
                Error::new(
                    ErrorKind::Internal,
                    format!("partition column `{column}` is not in the schema"),
                )
            })?;
            let Type::Primitive(t) = &field.field_type else {
                return Err(unsupported(format!(
                    "partition column `{column}` is not of a primitive type"
                )));
            };
            let reuse = self
                .specs
                .iter()
                .flat_map(|s| &s.fields)
                .find(|f| f.source_id == field.id && f.name == *column)
                .map(|f| f.field_id);
            let field_id = match reuse {
                Some(id) => id,
                None => {
                    self.last_partition_id += 1;
                    self.last_partition_id
                }
            };
            fields.push(PartitionField {
                field_id,
                source_id: field.id,
                name: column.clone(),
                iceberg_type: t.clone(),
            });
        }
        self.current_spec = match self.specs.iter().find(|s| s.fields == fields) {
            Some(s) => s.spec_id,
            None => {
                let id = self.specs.iter().map(|s| s.spec_id + 1).max().unwrap_or(0);
                self.specs.push(Spec {
                    spec_id: id,
                    fields,
                });
                id
            }
        };
        self.delta = Some(DeltaState {
            metadata: metadata.clone(),
        });
        Ok(())
    }

    fn current_schema(&self) -> Option<&Schema> {
        let id = self.current_schema?;
        self.schemas.iter().find(|s| s.schema_id == id)
    }

    fn spec(&self, id: i32) -> Option<&Spec> {
        self.specs.iter().find(|s| s.spec_id == id)
    }

    /// The manifest entry of a Delta data file added by snapshot `snapshot_id`.
    fn entry(&self, file: &DataFile, snapshot_id: i64) -> Result<EntryData> {
        if file.deletion_vector.is_some() {
            return Err(unsupported(format!(
                "data file `{}` has a deletion vector, which Iceberg v2 readers cannot apply",
                file.path
            )));
        }
        // A relative path is percent-encoded: `..` may come as `%2E%2E`.
        let leaves = file.path.split('/').any(|segment| {
            percent_encoding::percent_decode_str(segment).decode_utf8_lossy() == ".."
        });
        if file.path.contains("://") || file.path.starts_with('/') || leaves {
            return Err(unsupported(format!(
                "data file `{}` is outside the table's folder (an absolute path, as a shallow \
                 clone writes, or one through `..`)",
                file.path
            )));
        }
        let stats = file.stats().unwrap_or_default();
        let record_count = stats.num_records.ok_or_else(|| {
            unsupported(format!(
                "data file `{}` has no row count in its statistics, which Iceberg requires",
                file.path
            ))
        })? as i64;
        let schema = self
            .current_schema()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "no schema before the first file"))?;
        let spec = self
            .spec(self.current_spec)
            .ok_or_else(|| Error::new(ErrorKind::Internal, "no partition spec"))?;
        let partition = spec
            .fields
            .iter()
            .map(|f| {
                // Under column mapping the log keys partition values by physical name.
                let physical = schema
                    .fields
                    .iter()
                    .find(|c| c.id == f.source_id)
                    .map_or(f.name.as_str(), Field::physical_name);
                let text = file
                    .partition_values
                    .get(physical)
                    .or_else(|| file.partition_values.get(&f.name))
                    .or_else(|| {
                        file.partition_values
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(&f.name))
                            .map(|(_, v)| v)
                    })
                    .and_then(|v| v.as_deref());
                values::partition_value(text, &f.iceberg_type)
            })
            .collect();
        let mut entry = EntryData {
            status: 1,
            snapshot_id,
            sequence_number: snapshot_id,
            file_path: format!("{}/{}", self.root, file.path),
            partition,
            record_count,
            file_size: file.size,
            value_counts: vec![],
            null_counts: vec![],
            lower: vec![],
            upper: vec![],
        };
        let partition_columns: Vec<&str> = spec.fields.iter().map(|f| f.name.as_str()).collect();
        collect_stats(
            &schema.fields,
            Some(&stats.null_count),
            Some(&stats.min_values),
            Some(&stats.max_values),
            record_count,
            true,
            &partition_columns,
            &mut entry,
        );
        Ok(entry)
    }

    fn manifest_name(&self, version: u64, k: usize) -> String {
        format!("manifests/v{version:020}-m{k}.avro")
    }

    /// Encodes a manifest of `entries` for `spec_id`, added by `snapshot_id`.
    fn make_manifest(
        &mut self,
        name: String,
        spec_id: i32,
        snapshot_id: i64,
        entries: Vec<(String, EntryData)>,
        files: &mut Vec<NewFile>,
    ) -> Result<()> {
        let schema = self
            .current_schema()
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "no schema"))?;
        let spec = self
            .spec(spec_id)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "no partition spec"))?;
        let data: Vec<EntryData> = entries.iter().map(|(_, e)| e.clone()).collect();
        let bytes = avro::manifest(&schema, spec_id, &spec.fields, &data);
        let (mut added, mut existing, mut added_rows, mut existing_rows) = (0, 0, 0, 0);
        for e in &data {
            if e.status == 1 {
                added += 1;
                added_rows += e.record_count;
            } else {
                existing += 1;
                existing_rows += e.record_count;
            }
        }
        let partitions = spec
            .fields
            .iter()
            .enumerate()
            .map(|(i, _)| {
                summary(
                    data.iter()
                        .map(|e| e.partition.get(i).and_then(Option::as_ref)),
                )
            })
            .collect();
        let file = ManifestFile {
            path: format!("{}/{}", self.folder, name),
            length: bytes.len() as i64,
            spec_id,
            sequence_number: snapshot_id,
            min_sequence_number: data
                .iter()
                .map(|e| e.sequence_number)
                .min()
                .unwrap_or(snapshot_id),
            added_snapshot_id: snapshot_id,
            added_files: added,
            existing_files: existing,
            added_rows,
            existing_rows,
            partitions,
        };
        let id = self.next_manifest;
        self.next_manifest += 1;
        for (path, _) in &entries {
            self.index.insert(path.clone(), id);
        }
        self.manifests.insert(id, Manifest { file, entries });
        files.push(NewFile { name, bytes });
        Ok(())
    }

    /// Starts (or restarts) the history at `version`, whose files are `files`: every file
    /// goes into new manifests. Used for the first version derived and after a version that
    /// could not be served.
    pub fn rebase(
        &mut self,
        version: u64,
        timestamp_ms: i64,
        operation: &str,
        metadata: &TableMetadata,
        files: &[DataFile],
    ) -> Result<Step> {
        self.version = version;
        self.manifests.clear();
        self.index.clear();
        self.totals = Totals::default();
        self.refused = None;
        let first = self.snapshots.is_empty();
        let result: Result<Step> = (|| {
            self.adopt_metadata(metadata)?;
            let snapshot_id = version as i64 + 1;
            let mut entries = Vec::with_capacity(files.len());
            for f in files {
                entries.push((f.path.clone(), self.entry(f, snapshot_id)?));
            }
            let mut step = Step::default();
            let (added_files, added_records, added_bytes) = (
                entries.len() as i64,
                entries.iter().map(|(_, e)| e.record_count).sum::<i64>(),
                entries.iter().map(|(_, e)| e.file_size).sum::<i64>(),
            );
            for (k, chunk) in entries.chunks(MANIFEST_ENTRIES).enumerate() {
                let name = self.manifest_name(version, k);
                self.make_manifest(
                    name,
                    self.current_spec,
                    snapshot_id,
                    chunk.to_vec(),
                    &mut step.files,
                )?;
            }
            self.totals = Totals {
                files: added_files,
                records: added_records,
                bytes: added_bytes,
            };
            let kind = if first { "append" } else { "overwrite" };
            let counts = Counts {
                added_files,
                added_records,
                added_bytes,
                ..Counts::default()
            };
            self.snapshot(version, timestamp_ms, kind, operation, counts, &mut step);
            Ok(step)
        })();
        if let Err(e) = &result {
            if e.kind() == ErrorKind::Unsupported {
                self.refused = Some(e.message().to_string());
            }
        }
        result
    }

    /// Whether the next version must start over with [`History::rebase`] (nothing derived
    /// yet, or the last version could not be served).
    pub fn needs_rebase(&self) -> bool {
        self.refused.is_some() || self.current_schema.is_none() || self.delta.is_none()
    }

    /// Derives the snapshot of the commit `changes` (the version after [`History::version`]).
    pub fn apply(&mut self, changes: &CommitChanges) -> Result<Step> {
        let version = changes.commit.version;
        self.version = version;
        let result = self.apply_inner(changes);
        if let Err(e) = &result {
            if e.kind() == ErrorKind::Unsupported {
                self.refused = Some(e.message().to_string());
            }
        }
        result
    }

    fn apply_inner(&mut self, changes: &CommitChanges) -> Result<Step> {
        let version = changes.commit.version;
        let snapshot_id = version as i64 + 1;
        let mut removes: Vec<&DataFile> = vec![];
        let mut adds: Vec<&DataFile> = vec![];
        let (mut any_data_change, mut any_file) = (false, false);
        for action in &changes.actions {
            match action {
                LogAction::Metadata(m) => self.adopt_metadata(m)?,
                LogAction::File(FileAction::Add { file, data_change }) => {
                    adds.push(file);
                    any_data_change |= *data_change;
                    any_file = true;
                }
                LogAction::File(FileAction::Remove {
                    file, data_change, ..
                }) => {
                    removes.push(file);
                    any_data_change |= *data_change;
                    any_file = true;
                }
                _ => {}
            }
        }
        let mut step = Step::default();
        let mut counts = Counts::default();
        // Removes: rewrite each manifest that held a removed file, without it.
        let mut touched: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for f in &removes {
            if let Some(id) = self.index.remove(&f.path) {
                touched.entry(id).or_default().push(&f.path);
            }
        }
        let mut k = 0;
        for (id, paths) in touched {
            let Some(m) = self.manifests.remove(&id) else {
                continue;
            };
            let (gone, kept): (Vec<_>, Vec<_>) = m
                .entries
                .into_iter()
                .partition(|(p, _)| paths.contains(&p.as_str()));
            for (_, e) in &gone {
                counts.deleted_files += 1;
                counts.deleted_records += e.record_count;
                counts.deleted_bytes += e.file_size;
            }
            if !kept.is_empty() {
                let kept = kept
                    .into_iter()
                    .map(|(p, mut e)| {
                        e.status = 0;
                        (p, e)
                    })
                    .collect();
                let name = self.manifest_name(version, k);
                k += 1;
                self.make_manifest(name, m.file.spec_id, snapshot_id, kept, &mut step.files)?;
            }
        }
        // Adds: new manifests.
        let mut entries = Vec::with_capacity(adds.len());
        for f in adds {
            let e = self.entry(f, snapshot_id)?;
            counts.added_files += 1;
            counts.added_records += e.record_count;
            counts.added_bytes += e.file_size;
            entries.push((f.path.clone(), e));
        }
        for chunk in entries.chunks(MANIFEST_ENTRIES) {
            let name = self.manifest_name(version, k);
            k += 1;
            self.make_manifest(
                name,
                self.current_spec,
                snapshot_id,
                chunk.to_vec(),
                &mut step.files,
            )?;
        }
        self.merge_tiers(version, snapshot_id, &mut k, &mut step)?;
        self.totals.files += counts.added_files - counts.deleted_files;
        self.totals.records += counts.added_records - counts.deleted_records;
        self.totals.bytes += counts.added_bytes - counts.deleted_bytes;
        let kind = match (counts.added_files > 0, counts.deleted_files > 0) {
            (true, false) => "append",
            (false, true) => "delete",
            (true, true) if !any_data_change => "replace",
            (true, true) => "overwrite",
            (false, false) => {
                let _ = any_file;
                "replace"
            }
        };
        self.snapshot(
            version,
            changes.commit.timestamp.timestamp_millis(),
            kind,
            &changes.commit.operation,
            counts,
            &mut step,
        );
        Ok(step)
    }

    /// Merges live manifests of one spec that share a size tier (⌊log4 entries⌋) once
    /// [`MERGE_FANOUT`] of them do, oldest first: O(log N) manifests in a list.
    fn merge_tiers(
        &mut self,
        version: u64,
        snapshot_id: i64,
        k: &mut usize,
        step: &mut Step,
    ) -> Result<()> {
        loop {
            let mut tiers: BTreeMap<(i32, u32), Vec<u64>> = BTreeMap::new();
            for (id, m) in &self.manifests {
                let n = m.entries.len().max(1) as f64;
                let tier = n.log(4.0).floor() as u32;
                tiers.entry((m.file.spec_id, tier)).or_default().push(*id);
            }
            let Some(((spec_id, _), ids)) =
                tiers.into_iter().find(|(_, ids)| ids.len() >= MERGE_FANOUT)
            else {
                return Ok(());
            };
            let mut entries = Vec::new();
            for id in ids.into_iter().take(MERGE_FANOUT) {
                if let Some(m) = self.manifests.remove(&id) {
                    entries.extend(m.entries.into_iter().map(|(p, mut e)| {
                        e.status = 0;
                        (p, e)
                    }));
                }
            }
            let name = self.manifest_name(version, *k);
            *k += 1;
            self.make_manifest(name, spec_id, snapshot_id, entries, &mut step.files)?;
        }
    }

    fn snapshot(
        &mut self,
        version: u64,
        timestamp_ms: i64,
        kind: &str,
        delta_operation: &str,
        counts: Counts,
        step: &mut Step,
    ) {
        let snapshot_id = version as i64 + 1;
        // Strictly increasing, as Delta readers adjust commit times.
        let timestamp = if self.last_timestamp == i64::MIN {
            timestamp_ms
        } else {
            timestamp_ms.max(self.last_timestamp + 1)
        };
        self.last_timestamp = timestamp;
        let list_name = format!("lists/v{version:020}.avro");
        let rows: Vec<ManifestFile> = self
            .manifests
            .values()
            .rev()
            .map(|m| m.file.clone())
            .collect();
        let bytes = avro::manifest_list(snapshot_id, self.last_snapshot, snapshot_id, &rows);
        step.files.push(NewFile {
            name: list_name.clone(),
            bytes,
        });
        let s = |v: i64| v.to_string();
        let summary = json!({
            "operation": kind,
            "delta-version": version.to_string(),
            "delta-timestamp": timestamp_ms.to_string(),
            "delta-operation": delta_operation,
            "added-data-files": s(counts.added_files),
            "added-records": s(counts.added_records),
            "added-files-size": s(counts.added_bytes),
            "deleted-data-files": s(counts.deleted_files),
            "deleted-records": s(counts.deleted_records),
            "removed-files-size": s(counts.deleted_bytes),
            "total-data-files": s(self.totals.files),
            "total-records": s(self.totals.records),
            "total-files-size": s(self.totals.bytes),
            "total-delete-files": "0",
            "total-position-deletes": "0",
            "total-equality-deletes": "0",
        });
        let mut snap = json!({
            "snapshot-id": snapshot_id,
            "sequence-number": snapshot_id,
            "timestamp-ms": timestamp,
            "schema-id": self.current_schema.unwrap_or(0),
            "manifest-list": format!("{}/{}", self.folder, list_name),
            "summary": summary,
        });
        if let Some(p) = self.last_snapshot {
            snap["parent-snapshot-id"] = json!(p);
        }
        let log = json!({"snapshot-id": snapshot_id, "timestamp-ms": timestamp});
        self.snapshot_texts
            .push((snap.to_string(), log.to_string()));
        self.snapshots.push(snap);
        self.last_snapshot = Some(snapshot_id);
    }

    /// Marks `version` as derived but not servable (after an error the caller could not
    /// turn into a snapshot): the next version starts over.
    pub fn refuse(&mut self, version: u64, reason: String) {
        self.version = version;
        self.refused = Some(reason);
    }

    /// The table metadata JSON after the last version: every servable snapshot (or only
    /// the current one with `current_only`), the schemas and specs, and the properties
    /// readers need. `Unsupported` when the last version cannot be served.
    pub fn metadata(&self, current_only: bool) -> Result<Value> {
        let (mut head, served) = self.metadata_parts(current_only)?;
        let snapshots: Vec<&Value> = served.iter().map(|&i| &self.snapshots[i]).collect();
        head["snapshot-log"] = json!(snapshots
            .iter()
            .map(|s| json!({"snapshot-id": s["snapshot-id"], "timestamp-ms": s["timestamp-ms"]}))
            .collect::<Vec<_>>());
        head["snapshots"] = json!(snapshots);
        Ok(head)
    }

    /// [`History::metadata`] as JSON text, with each snapshot's text (and log entry) as
    /// it was serialized when derived: with a long history they are most of the text, and
    /// serializing them again was most of the cost of serving a new version.
    pub fn metadata_text(&self, current_only: bool) -> Result<String> {
        let (head, served) = self.metadata_parts(current_only)?;
        let texts: Vec<&(String, String)> =
            served.iter().map(|&i| &self.snapshot_texts[i]).collect();
        let mut text = head.to_string();
        let size: usize = texts.iter().map(|(s, l)| s.len() + l.len() + 2).sum();
        text.reserve(size + 40);
        // The head is a non-empty object: its closing brace makes room for the rest.
        text.pop();
        text.push_str(",\"snapshot-log\":[");
        for (i, (_, log)) in texts.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(log);
        }
        text.push_str("],\"snapshots\":[");
        for (i, (snapshot, _)) in texts.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(snapshot);
        }
        text.push_str("]}");
        Ok(text)
    }

    /// The table metadata JSON but its snapshots and snapshot log, and which snapshots
    /// (indexes) it serves: the current one, and unless `current_only` every older one
    /// whose schema reads its files through the table's name mapping (see
    /// [`schema::name_mapping`]).
    fn metadata_parts(&self, current_only: bool) -> Result<(Value, Vec<usize>)> {
        if let Some(reason) = &self.refused {
            return Err(unsupported(format!(
                "version {} of the table cannot be read as Iceberg: {reason}",
                self.version
            )));
        }
        let current = self
            .snapshots
            .last()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "no snapshot derived"))?;
        let schema = self
            .current_schema()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "no schema derived"))?;
        let n = self.snapshots.len();
        // The current schema first, then the older ones, newest first.
        let mut schemas: Vec<&Schema> = vec![schema];
        schemas.extend(
            self.schemas
                .iter()
                .rev()
                .filter(|s| s.schema_id != schema.schema_id),
        );
        let (name_mapping, readable) = schema::name_mapping(&schemas);
        let unreadable: HashSet<i64> = schemas
            .iter()
            .zip(readable)
            .filter(|(_, readable)| !readable)
            .map(|(s, _)| i64::from(s.schema_id))
            .collect();
        let served: Vec<usize> = if current_only {
            vec![n - 1]
        } else {
            (0..n)
                .filter(|&i| {
                    i == n - 1
                        || self.snapshots[i]["schema-id"]
                            .as_i64()
                            .is_none_or(|id| !unreadable.contains(&id))
                })
                .collect()
        };
        let specs: Vec<Value> = self
            .specs
            .iter()
            .map(|s| {
                json!({"spec-id": s.spec_id, "fields": s.fields.iter().map(|f| json!({
                    "source-id": f.source_id, "field-id": f.field_id, "name": f.name, "transform": "identity"
                })).collect::<Vec<_>>()})
            })
            .collect();
        let mut properties = Map::new();
        properties.insert("schema.name-mapping.default".into(), json!(name_mapping));
        properties.insert(
            "write.metadata.path".into(),
            json!(format!("{}/metadata", self.folder)),
        );
        properties.insert("delta-version".into(), json!(self.version.to_string()));
        properties.insert(
            "delta-timestamp".into(),
            current["summary"]["delta-timestamp"].clone(),
        );
        properties.insert("tarn.source".into(), json!("delta"));
        if let Some(d) = &self.delta {
            if let Some(c) = &d.metadata.description {
                properties.insert("comment".into(), json!(c));
            }
        }
        let current_id = current["snapshot-id"].clone();
        let head = json!({
            "format-version": 2,
            "table-uuid": table_uuid(&self.table_id),
            "location": self.root,
            "last-sequence-number": current["sequence-number"],
            "last-updated-ms": current["timestamp-ms"],
            "last-column-id": self.last_column_id,
            "schemas": self.schemas,
            "current-schema-id": schema.schema_id,
            "partition-specs": specs,
            "default-spec-id": self.current_spec,
            "last-partition-id": self.last_partition_id,
            "sort-orders": [{"order-id": 0, "fields": []}],
            "default-sort-order-id": 0,
            "properties": properties,
            "current-snapshot-id": current_id,
            "refs": {"main": {"snapshot-id": current_id, "type": "branch"}},
            "metadata-log": [],
            "statistics": [],
            "partition-statistics": [],
        });
        Ok((head, served))
    }

    /// How many live manifests the current snapshot lists.
    pub fn manifest_count(&self) -> usize {
        self.manifests.len()
    }

    /// How many snapshots are derived (the metadata may leave some out: see [`History::metadata`]).
    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    /// The commit time (ms) of the Delta version the last snapshot was derived from, as
    /// the commit gave it.
    pub fn last_commit_ms(&self) -> Option<i64> {
        self.snapshots.last()?["summary"]["delta-timestamp"]
            .as_str()?
            .parse()
            .ok()
    }
}

fn unreachable_schema() -> Schema {
    Schema {
        kind: "struct".into(),
        schema_id: 0,
        fields: vec![],
    }
}

/// The Delta table id when it is a UUID, else a UUID-shaped hash of it.
pub fn table_uuid(id: &str) -> String {
    let is_uuid = id.len() == 36
        && id.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if is_uuid {
        return id.to_ascii_lowercase();
    }
    use sha2::Digest;
    let h = sha2::Sha256::digest(id.as_bytes());
    let hex: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    added_files: i64,
    added_records: i64,
    added_bytes: i64,
    deleted_files: i64,
    deleted_records: i64,
    deleted_bytes: i64,
}

/// (contains null, lower, upper) of one partition field over a manifest's entries.
fn summary<'a>(values: impl Iterator<Item = Option<&'a Datum>>) -> avro::PartitionSummary {
    let mut contains_null = false;
    let mut lo: Option<&Datum> = None;
    let mut hi: Option<&Datum> = None;
    let mut comparable = true;
    for v in values {
        let Some(v) = v else {
            contains_null = true;
            continue;
        };
        match lo {
            None => {
                lo = Some(v);
                hi = Some(v);
            }
            Some(l) => match (compare(v, l), hi.and_then(|h| compare(v, h))) {
                (Some(a), Some(b)) => {
                    if a.is_lt() {
                        lo = Some(v);
                    }
                    if b.is_gt() {
                        hi = Some(v);
                    }
                }
                _ => comparable = false,
            },
        }
    }
    if !comparable {
        return (contains_null, None, None);
    }
    (
        contains_null,
        lo.map(Datum::to_bytes),
        hi.map(Datum::to_bytes),
    )
}

fn compare(a: &Datum, b: &Datum) -> Option<std::cmp::Ordering> {
    use Datum as D;
    match (a, b) {
        (D::Boolean(x), D::Boolean(y)) => Some(x.cmp(y)),
        (D::Int(x), D::Int(y)) | (D::Date(x), D::Date(y)) => Some(x.cmp(y)),
        (D::Long(x), D::Long(y)) | (D::Timestamp(x), D::Timestamp(y)) => Some(x.cmp(y)),
        (D::Float(x), D::Float(y)) => x.partial_cmp(y),
        (D::Double(x), D::Double(y)) => x.partial_cmp(y),
        (D::String(x), D::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (D::Binary(x), D::Binary(y)) => Some(x.cmp(y)),
        (D::Decimal(x), D::Decimal(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Counts and bounds of `fields` from (nested) Delta statistics.
#[allow(clippy::too_many_arguments)]
fn collect_stats(
    fields: &[Field],
    nulls: Option<&Map<String, Value>>,
    mins: Option<&Map<String, Value>>,
    maxes: Option<&Map<String, Value>>,
    record_count: i64,
    top: bool,
    partition_columns: &[&str],
    entry: &mut EntryData,
) {
    for f in fields {
        if top && partition_columns.contains(&f.name.as_str()) {
            continue;
        }
        // Delta statistics name columns as the files do.
        let name = f.physical_name();
        fn get<'m>(m: Option<&'m Map<String, Value>>, name: &str) -> Option<&'m Value> {
            m.and_then(|m| m.get(name))
        }
        match &f.field_type {
            Type::Primitive(t) => {
                if let Some(n) = get(nulls, name).and_then(Value::as_i64) {
                    entry.null_counts.push((f.id, n));
                    if top {
                        entry.value_counts.push((f.id, record_count));
                    }
                }
                if let Some(d) = get(mins, name).and_then(|v| values::bound(v, t, End::Lower)) {
                    entry.lower.push((f.id, d.to_bytes()));
                }
                if let Some(d) = get(maxes, name).and_then(|v| values::bound(v, t, End::Upper)) {
                    entry.upper.push((f.id, d.to_bytes()));
                }
            }
            Type::Struct(s) => collect_stats(
                &s.fields,
                get(nulls, name).and_then(Value::as_object),
                get(mins, name).and_then(Value::as_object),
                get(maxes, name).and_then(Value::as_object),
                record_count,
                false,
                partition_columns,
                entry,
            ),
            Type::List(_) | Type::Map(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tarn_table::{Commit, FileFormat};

    fn metadata() -> TableMetadata {
        TableMetadata {
            id: "5e0c0000-0000-4000-8000-000000000001".into(),
            name: None,
            description: None,
            format: FileFormat {
                provider: "parquet".into(),
                options: BTreeMap::new(),
            },
            schema_string: r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":false,"metadata":{}},{"name":"day","type":"date","nullable":true,"metadata":{}}]}"#.into(),
            partition_columns: vec!["day".into()],
            created_time: None,
            configuration: BTreeMap::new(),
        }
    }

    fn file(i: usize) -> DataFile {
        DataFile {
            path: format!("day=2024-01-0{}/part-{i}.parquet", 1 + i % 3),
            size: 100,
            modification_time: 0,
            partition_values: BTreeMap::from([(
                "day".to_string(),
                Some(format!("2024-01-0{}", 1 + i % 3)),
            )]),
            stats_json: Some(format!(
                r#"{{"numRecords":10,"minValues":{{"id":{i}}},"maxValues":{{"id":{}}},"nullCount":{{"id":0}}}}"#,
                i + 9
            )),
            deletion_vector: None,
        }
    }

    fn commit(version: u64, actions: Vec<LogAction>) -> CommitChanges {
        CommitChanges {
            commit: Commit {
                version,
                timestamp: chrono::DateTime::from_timestamp_millis(1_000 + version as i64).unwrap(),
                operation: "WRITE".into(),
                parameters: Map::new(),
                metrics: Map::new(),
                engine: None,
            },
            actions,
        }
    }

    fn kinds(step: &Step) -> (usize, usize) {
        let manifests = step
            .files
            .iter()
            .filter(|f| f.name.starts_with("manifests/"))
            .count();
        let lists = step
            .files
            .iter()
            .filter(|f| f.name.starts_with("lists/"))
            .count();
        (manifests, lists)
    }

    #[test]
    fn a_version_costs_what_it_changed_not_the_table_size() {
        let mut h = History::new("file:///t", "file:///t/_tarn_iceberg/x", "id");
        let files: Vec<DataFile> = (0..1000).map(file).collect();
        let step = h.rebase(0, 1_000, "WRITE", &metadata(), &files).unwrap();
        assert_eq!(kinds(&step), (1, 1));
        // A one-file append on a 1,000-file table: one new manifest and the list.
        let add = LogAction::File(FileAction::Add {
            file: file(1000),
            data_change: true,
        });
        let step = h.apply(&commit(1, vec![add])).unwrap();
        assert_eq!(kinds(&step), (1, 1));
        // A one-file remove rewrites only the manifest that held it.
        let remove = LogAction::File(FileAction::Remove {
            file: file(1000),
            data_change: true,
            deletion_timestamp: None,
        });
        let step = h.apply(&commit(2, vec![remove])).unwrap();
        assert_eq!(
            kinds(&step),
            (0, 1),
            "the one-file manifest is dropped, nothing else rewritten"
        );
        let remove = LogAction::File(FileAction::Remove {
            file: file(5),
            data_change: true,
            deletion_timestamp: None,
        });
        let step = h.apply(&commit(3, vec![remove])).unwrap();
        assert_eq!(kinds(&step), (1, 1));
        let m = h.metadata(false).unwrap();
        // The text served and written says the same as the metadata value.
        for current_only in [false, true] {
            let text: Value =
                serde_json::from_str(&h.metadata_text(current_only).unwrap()).unwrap();
            assert_eq!(text, h.metadata(current_only).unwrap(), "{current_only}");
        }
        assert_eq!(m["snapshots"].as_array().unwrap().len(), 4);
        assert_eq!(m["snapshots"][3]["summary"]["operation"], "delete");
        assert_eq!(m["snapshots"][3]["summary"]["total-data-files"], "999");
        assert_eq!(m["snapshots"][3]["parent-snapshot-id"], 3);
        assert_eq!(m["partition-specs"][0]["fields"][0]["field-id"], 1000);
        assert_eq!(m["last-partition-id"], 1000);
    }

    #[test]
    fn many_small_appends_keep_the_manifest_list_short() {
        let mut h = History::new("file:///t", "file:///t/_tarn_iceberg/x", "id");
        h.rebase(0, 1_000, "CREATE TABLE", &metadata(), &[])
            .unwrap();
        for v in 1..=500u64 {
            let add = LogAction::File(FileAction::Add {
                file: file(v as usize),
                data_change: true,
            });
            h.apply(&commit(v, vec![add])).unwrap();
        }
        assert!(
            h.manifest_count() <= 40,
            "{} manifests for 500 appends",
            h.manifest_count()
        );
        assert_eq!(h.snapshot_count(), 501);
    }

    #[test]
    fn the_same_log_gives_the_same_bytes() {
        let run = || {
            let mut h = History::new("file:///t", "file:///t/_tarn_iceberg/x", "id");
            let mut all = h
                .rebase(
                    0,
                    1_000,
                    "WRITE",
                    &metadata(),
                    &(0..10).map(file).collect::<Vec<_>>(),
                )
                .unwrap()
                .files;
            let add = LogAction::File(FileAction::Add {
                file: file(10),
                data_change: true,
            });
            all.extend(h.apply(&commit(1, vec![add])).unwrap().files);
            (
                all.into_iter()
                    .map(|f| (f.name, f.bytes))
                    .collect::<Vec<_>>(),
                h.metadata(false).unwrap(),
            )
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn commit_times_are_made_strictly_increasing() {
        let mut h = History::new("file:///t", "file:///t/_tarn_iceberg/x", "id");
        h.rebase(0, 5_000, "WRITE", &metadata(), &[]).unwrap();
        let mut c = commit(1, vec![]);
        c.commit.timestamp = chrono::DateTime::from_timestamp_millis(4_000).unwrap();
        h.apply(&c).unwrap();
        let m = h.metadata(false).unwrap();
        assert_eq!(m["snapshots"][1]["timestamp-ms"], 5_001);
        assert_eq!(m["snapshots"][1]["summary"]["operation"], "replace");
    }
    #[test]
    fn column_mapped_partition_values_and_stats_are_read_by_physical_name() {
        let mut m = metadata();
        m.schema_string = r#"{"type":"struct","fields":[
            {"name":"id","type":"long","nullable":false,"metadata":{"delta.columnMapping.id":3,"delta.columnMapping.physicalName":"col-id"}},
            {"name":"Day","type":"date","nullable":true,"metadata":{"delta.columnMapping.id":1,"delta.columnMapping.physicalName":"col-day"}}]}"#.into();
        m.partition_columns = vec!["Day".into()];
        m.configuration
            .insert("delta.columnMapping.mode".into(), "name".into());
        let mut f = file(0);
        f.partition_values =
            BTreeMap::from([("col-day".to_string(), Some("2024-01-02".to_string()))]);
        f.stats_json = Some(
            r#"{"numRecords":10,"minValues":{"col-id":4},"maxValues":{"col-id":9},"nullCount":{"col-id":0}}"#
                .into(),
        );
        let mut h = History::new("file:///t", "file:///t/_tarn_iceberg/x", "id");
        h.rebase(0, 1_000, "WRITE", &m, &[f]).unwrap();
        let entry = &h.manifests.values().next().unwrap().entries[0].1;
        assert_eq!(entry.partition, vec![Some(Datum::Date(19_724))]);
        assert_eq!(entry.lower, vec![(3, 4i64.to_le_bytes().to_vec())]);
        assert_eq!(entry.upper, vec![(3, 9i64.to_le_bytes().to_vec())]);
        assert_eq!(entry.null_counts, vec![(3, 0)]);
        let meta = h.metadata(false).unwrap();
        assert_eq!(meta["partition-specs"][0]["fields"][0]["source-id"], 1);
        assert_eq!(meta["schemas"][0]["fields"][1]["name"], "Day");
        let mapping = meta["properties"]["schema.name-mapping.default"]
            .as_str()
            .unwrap();
        assert!(mapping.contains(r#""names":["col-day"]"#), "{mapping}");
    }

    /// The metadata of `schema` (Delta schema JSON fields), unpartitioned, with column
    /// mapping when `mapped`.
    fn with_fields(fields: &str, mapped: bool) -> LogAction {
        let mut m = metadata();
        m.schema_string = format!(r#"{{"type":"struct","fields":[{fields}]}}"#);
        m.partition_columns = vec![];
        if mapped {
            m.configuration
                .insert("delta.columnMapping.mode".into(), "name".into());
        }
        LogAction::Metadata(Box::new(m))
    }

    fn served(m: &Value) -> Vec<i64> {
        m["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["snapshot-id"].as_i64().unwrap())
            .collect()
    }

    #[test]
    fn older_snapshots_read_through_the_name_mapping_or_are_left_out() {
        let field = |name: &str, t: &str| {
            format!(r#"{{"name":"{name}","type":"{t}","nullable":true,"metadata":{{}}}}"#)
        };
        let mapped = |name: &str, id: i64| {
            format!(
                r#"{{"name":"{name}","type":"long","nullable":true,"metadata":{{"delta.columnMapping.id":{id},"delta.columnMapping.physicalName":"{name}"}}}}"#
            )
        };
        let start = |fields: &str| {
            let LogAction::Metadata(first) = with_fields(fields, false) else {
                unreachable!()
            };
            let mut h = History::new("file:///t", "file:///t/_tarn_iceberg/x", "id");
            h.rebase(0, 1_000, "WRITE", &first, &[]).unwrap();
            h
        };
        let mut h = start(&[field("a", "long"), field("b", "long")].join(","));
        // An overwrite drops `b` for `c`: the files of version 0 still say `b`, and the
        // name mapping keeps it, so snapshot 1 still reads it.
        let next = [field("a", "long"), field("c", "long")].join(",");
        h.apply(&commit(1, vec![with_fields(&next, false)]))
            .unwrap();
        let m = h.metadata(false).unwrap();
        assert_eq!(served(&m), vec![1, 2]);
        let mapping: Value = serde_json::from_str(
            m["properties"]["schema.name-mapping.default"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            mapping,
            json!([{"field-id":1,"names":["a"]},{"field-id":3,"names":["c"]},{"field-id":2,"names":["b"]}])
        );
        // `c` again, as a string: a new field under the same name. The snapshot of the
        // schema whose `c` was a long cannot be read through the one mapping and is left
        // out; the others stay.
        let next = [field("a", "long"), field("c", "string")].join(",");
        h.apply(&commit(2, vec![with_fields(&next, false)]))
            .unwrap();
        let m = h.metadata(false).unwrap();
        assert_eq!(served(&m), vec![1, 3], "{m}");
        let log: Vec<i64> = m["snapshot-log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["snapshot-id"].as_i64().unwrap())
            .collect();
        assert_eq!(log, vec![1, 3]);
        let text: Value = serde_json::from_str(&h.metadata_text(false).unwrap()).unwrap();
        assert_eq!(text, m);
        assert_eq!(served(&h.metadata(true).unwrap()), vec![3]);

        // Column mapping turned on later, with the ids Tarn had given by name: every
        // snapshot stays. With other ids, the older snapshots are left out.
        let mut h = start(&[field("a", "long"), field("b", "long")].join(","));
        let next = [mapped("a", 1), mapped("b", 2)].join(",");
        h.apply(&commit(1, vec![with_fields(&next, true)])).unwrap();
        assert_eq!(served(&h.metadata(false).unwrap()), vec![1, 2]);
        let mut h = start(&[field("a", "long"), field("b", "long")].join(","));
        let next = [mapped("a", 2), mapped("b", 1)].join(",");
        h.apply(&commit(1, vec![with_fields(&next, true)])).unwrap();
        assert_eq!(served(&h.metadata(false).unwrap()), vec![2]);
    }

    #[test]
    fn a_data_file_path_that_leaves_the_table_is_refused() {
        for path in [
            "../other/part-0.parquet",
            "day=1/%2E%2E/%2e%2e/x.parquet",
            "/etc/passwd",
        ] {
            let mut f = file(0);
            f.path = path.into();
            let mut h = History::new("file:///t", "file:///t/_tarn_iceberg/x", "id");
            let err = h.rebase(0, 1_000, "WRITE", &metadata(), &[f]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{path}");
            assert!(
                err.message().contains("outside the table's folder"),
                "{path}: {}",
                err.message()
            );
        }
        let mut f = file(0);
        f.path = "day=2024-01-01/a..b.parquet".into();
        let mut h = History::new("file:///t", "file:///t/_tarn_iceberg/x", "id");
        h.rebase(0, 1_000, "WRITE", &metadata(), &[f]).unwrap();
    }

    #[test]
    fn a_column_mapping_mode_tarn_does_not_know_is_refused_with_the_reason() {
        let mut m = metadata();
        m.configuration
            .insert("delta.columnMapping.mode".into(), "other".into());
        let mut h = History::new("file:///t", "file:///t/_tarn_iceberg/x", "id");
        assert!(h.rebase(0, 1_000, "WRITE", &m, &[]).is_err());
        let err = h.metadata(false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(
            err.message().contains("column mapping mode `other`"),
            "{}",
            err.message()
        );
    }
}
