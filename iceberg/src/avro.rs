//! The two Avro files of an Iceberg snapshot, manifests and manifest lists (spec v2, every
//! field with its `field-id`), written by a small object-container-file encoder with the
//! `deflate` codec. The sync marker is taken from the content, so the same manifest is the
//! same bytes whoever writes it: two servers deriving the same version write identical
//! files.

use std::io::Write;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::schema::{decimal_parts, Schema};
use crate::values::{decimal_fixed, Datum};

/// Appends Avro's zig-zag varint encoding of `v` (both `int` and `long`).
pub fn put_long(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z & !0x7f == 0 {
            buf.push(z as u8);
            return;
        }
        buf.push((z & 0x7f | 0x80) as u8);
        z >>= 7;
    }
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_long(buf, b.len() as i64);
    buf.extend_from_slice(b);
}

fn put_null(buf: &mut Vec<u8>) {
    put_long(buf, 0);
}

fn put_some(buf: &mut Vec<u8>) {
    put_long(buf, 1);
}

/// An object container file: header with `schema` and `metadata`, one deflate block of
/// `count` records already encoded in `records`.
pub fn container(
    schema: &Value,
    metadata: &[(&str, String)],
    count: usize,
    records: &[u8],
) -> Vec<u8> {
    let mut deflated =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = deflated.write_all(records);
    let deflated = deflated.finish().unwrap_or_default();

    let mut out = b"Obj\x01".to_vec();
    let schema_text = schema.to_string();
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("avro.schema", schema_text.as_bytes()),
        ("avro.codec", &b"deflate"[..]),
    ];
    entries.extend(metadata.iter().map(|(k, v)| (*k, v.as_bytes())));
    put_long(&mut out, entries.len() as i64);
    for (k, v) in &entries {
        put_bytes(&mut out, k.as_bytes());
        put_bytes(&mut out, v);
    }
    put_long(&mut out, 0);
    let mut hash = Sha256::new();
    hash.update(&out);
    hash.update(records);
    let sync: [u8; 16] = hash.finalize()[..16].try_into().unwrap_or([0; 16]);
    out.extend_from_slice(&sync);
    if count > 0 {
        put_long(&mut out, count as i64);
        put_long(&mut out, deflated.len() as i64);
        out.extend_from_slice(&deflated);
        out.extend_from_slice(&sync);
    }
    out
}

/// One data file as a manifest entry holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryData {
    /// 1 added, 0 existing.
    pub status: i32,
    /// The snapshot that added the file.
    pub snapshot_id: i64,
    /// Its data sequence number (the adding snapshot's).
    pub sequence_number: i64,
    /// The absolute file URL.
    pub file_path: String,
    /// The partition tuple, in spec order.
    pub partition: Vec<Option<Datum>>,
    /// Rows.
    pub record_count: i64,
    /// Bytes.
    pub file_size: i64,
    /// `value_counts` by field id.
    pub value_counts: Vec<(i32, i64)>,
    /// `null_value_counts` by field id.
    pub null_counts: Vec<(i32, i64)>,
    /// `lower_bounds` by field id.
    pub lower: Vec<(i32, Vec<u8>)>,
    /// `upper_bounds` by field id.
    pub upper: Vec<(i32, Vec<u8>)>,
}

/// A partition field of a spec, with the Iceberg type of its source column.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionField {
    /// The partition field id (1000, 1001, ...).
    pub field_id: i32,
    /// The source column's field id.
    pub source_id: i32,
    /// The partition field's name (the column's).
    pub name: String,
    /// The source column's Iceberg primitive type.
    pub iceberg_type: String,
}

/// An Avro-safe name, as Java's `makeCompatibleName` makes it.
fn avro_name(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if ok {
            out.push(c);
        } else if i == 0 && c.is_ascii_digit() {
            out.push('_');
            out.push(c);
        } else {
            out.push_str(&format!("_x{:X}", c as u32));
        }
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn avro_type(iceberg_type: &str, field_id: i32) -> Value {
    match iceberg_type {
        "boolean" | "int" | "long" | "float" | "double" | "string" => json!(iceberg_type),
        "binary" => json!("bytes"),
        "date" => json!({"type": "int", "logicalType": "date"}),
        "timestamptz" => {
            json!({"type": "long", "logicalType": "timestamp-micros", "adjust-to-utc": true})
        }
        "timestamp" => {
            json!({"type": "long", "logicalType": "timestamp-micros", "adjust-to-utc": false})
        }
        d => {
            let (p, s) = decimal_parts(d).unwrap_or((38, 0));
            json!({"type": "fixed", "name": format!("decimal_{field_id}"),
                   "size": crate::values::decimal_size(p), "logicalType": "decimal",
                   "precision": p, "scale": s})
        }
    }
}

fn put_datum(buf: &mut Vec<u8>, d: &Datum, iceberg_type: &str) {
    match d {
        Datum::Boolean(b) => buf.push(u8::from(*b)),
        Datum::Int(v) | Datum::Date(v) => put_long(buf, i64::from(*v)),
        Datum::Long(v) | Datum::Timestamp(v) => put_long(buf, *v),
        Datum::Float(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Datum::Double(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Datum::String(s) => put_bytes(buf, s.as_bytes()),
        Datum::Binary(b) => put_bytes(buf, b),
        Datum::Decimal(v) => {
            let (p, _) = decimal_parts(iceberg_type).unwrap_or((38, 0));
            buf.extend_from_slice(&decimal_fixed(*v, p));
        }
    }
}

fn int_map(key: i32, value: i32, value_type: &str) -> Value {
    json!(["null", {"type": "array", "logicalType": "map", "items": {
        "type": "record", "name": format!("k{key}_v{value}"), "fields": [
            {"name": "key", "type": "int", "field-id": key},
            {"name": "value", "type": value_type, "field-id": value}]}}])
}

/// The Avro schema of a manifest whose partition spec has `fields`.
pub fn manifest_schema(fields: &[PartitionField]) -> Value {
    let partition: Vec<Value> = fields
        .iter()
        .map(|f| {
            json!({"name": avro_name(&f.name), "type": ["null", avro_type(&f.iceberg_type, f.field_id)],
                   "default": null, "field-id": f.field_id})
        })
        .collect();
    json!({"type": "record", "name": "manifest_entry", "fields": [
        {"name": "status", "type": "int", "field-id": 0},
        {"name": "snapshot_id", "type": ["null", "long"], "default": null, "field-id": 1},
        {"name": "sequence_number", "type": ["null", "long"], "default": null, "field-id": 3},
        {"name": "file_sequence_number", "type": ["null", "long"], "default": null, "field-id": 4},
        {"name": "data_file", "field-id": 2, "type": {"type": "record", "name": "r2", "fields": [
            {"name": "content", "type": "int", "field-id": 134},
            {"name": "file_path", "type": "string", "field-id": 100},
            {"name": "file_format", "type": "string", "field-id": 101},
            {"name": "partition", "field-id": 102, "type": {"type": "record", "name": "r102", "fields": partition}},
            {"name": "record_count", "type": "long", "field-id": 103},
            {"name": "file_size_in_bytes", "type": "long", "field-id": 104},
            {"name": "value_counts", "type": int_map(119, 120, "long"), "default": null, "field-id": 109},
            {"name": "null_value_counts", "type": int_map(121, 122, "long"), "default": null, "field-id": 110},
            {"name": "lower_bounds", "type": int_map(126, 127, "bytes"), "default": null, "field-id": 125},
            {"name": "upper_bounds", "type": int_map(129, 130, "bytes"), "default": null, "field-id": 128}]}}]})
}

fn put_int_map<T>(buf: &mut Vec<u8>, items: &[(i32, T)], put: impl Fn(&mut Vec<u8>, &T)) {
    put_some(buf);
    if !items.is_empty() {
        put_long(buf, items.len() as i64);
        for (k, v) in items {
            put_long(buf, i64::from(*k));
            put(buf, v);
        }
    }
    put_long(buf, 0);
}

/// A manifest file holding `entries`, for the table `schema` and the spec `spec_id` with
/// `fields`.
pub fn manifest(
    schema: &Schema,
    spec_id: i32,
    fields: &[PartitionField],
    entries: &[EntryData],
) -> Vec<u8> {
    let mut buf = Vec::new();
    for e in entries {
        put_long(&mut buf, i64::from(e.status));
        put_some(&mut buf);
        put_long(&mut buf, e.snapshot_id);
        put_some(&mut buf);
        put_long(&mut buf, e.sequence_number);
        put_some(&mut buf);
        put_long(&mut buf, e.sequence_number);
        put_long(&mut buf, 0);
        put_bytes(&mut buf, e.file_path.as_bytes());
        put_bytes(&mut buf, b"PARQUET");
        for (f, v) in fields.iter().zip(&e.partition) {
            match v {
                None => put_null(&mut buf),
                Some(d) => {
                    put_some(&mut buf);
                    put_datum(&mut buf, d, &f.iceberg_type);
                }
            }
        }
        put_long(&mut buf, e.record_count);
        put_long(&mut buf, e.file_size);
        put_int_map(&mut buf, &e.value_counts, |b, v| put_long(b, *v));
        put_int_map(&mut buf, &e.null_counts, |b, v| put_long(b, *v));
        put_int_map(&mut buf, &e.lower, |b, v| put_bytes(b, v));
        put_int_map(&mut buf, &e.upper, |b, v| put_bytes(b, v));
    }
    let spec: Vec<Value> = fields
        .iter()
        .map(|f| json!({"source-id": f.source_id, "field-id": f.field_id, "name": f.name, "transform": "identity"}))
        .collect();
    let metadata = [
        ("schema", serde_json::to_string(schema).unwrap_or_default()),
        ("schema-id", schema.schema_id.to_string()),
        ("partition-spec", Value::Array(spec).to_string()),
        ("partition-spec-id", spec_id.to_string()),
        ("format-version", "2".to_string()),
        ("content", "data".to_string()),
    ];
    container(&manifest_schema(fields), &metadata, entries.len(), &buf)
}

/// One partition field over a manifest's entries: (contains null, lower bound, upper
/// bound), bounds in single-value bytes.
pub type PartitionSummary = (bool, Option<Vec<u8>>, Option<Vec<u8>>);

/// A manifest as a manifest list names it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestFile {
    /// Its absolute URL.
    pub path: String,
    /// Its size in bytes.
    pub length: i64,
    /// Its partition spec.
    pub spec_id: i32,
    /// The sequence number of the snapshot that added it.
    pub sequence_number: i64,
    /// The smallest data sequence number of its entries.
    pub min_sequence_number: i64,
    /// The snapshot that added it.
    pub added_snapshot_id: i64,
    /// Entries with status added.
    pub added_files: i32,
    /// Entries with status existing.
    pub existing_files: i32,
    /// Rows of the added entries.
    pub added_rows: i64,
    /// Rows of the existing entries.
    pub existing_rows: i64,
    /// Per partition field: its summary.
    pub partitions: Vec<PartitionSummary>,
}

/// The Avro schema of a manifest list.
pub fn manifest_list_schema() -> Value {
    json!({"type": "record", "name": "manifest_file", "fields": [
        {"name": "manifest_path", "type": "string", "field-id": 500},
        {"name": "manifest_length", "type": "long", "field-id": 501},
        {"name": "partition_spec_id", "type": "int", "field-id": 502},
        {"name": "content", "type": "int", "field-id": 517},
        {"name": "sequence_number", "type": "long", "field-id": 515},
        {"name": "min_sequence_number", "type": "long", "field-id": 516},
        {"name": "added_snapshot_id", "type": "long", "field-id": 503},
        {"name": "added_files_count", "type": "int", "field-id": 504},
        {"name": "existing_files_count", "type": "int", "field-id": 505},
        {"name": "deleted_files_count", "type": "int", "field-id": 506},
        {"name": "added_rows_count", "type": "long", "field-id": 512},
        {"name": "existing_rows_count", "type": "long", "field-id": 513},
        {"name": "deleted_rows_count", "type": "long", "field-id": 514},
        {"name": "partitions", "type": ["null", {"type": "array", "element-id": 508, "items": {
            "type": "record", "name": "r508", "fields": [
                {"name": "contains_null", "type": "boolean", "field-id": 509},
                {"name": "contains_nan", "type": ["null", "boolean"], "default": null, "field-id": 518},
                {"name": "lower_bound", "type": ["null", "bytes"], "default": null, "field-id": 510},
                {"name": "upper_bound", "type": ["null", "bytes"], "default": null, "field-id": 511}]}}],
         "default": null, "field-id": 507}]})
}

/// The manifest list of snapshot `snapshot_id`.
pub fn manifest_list(
    snapshot_id: i64,
    parent: Option<i64>,
    sequence_number: i64,
    manifests: &[ManifestFile],
) -> Vec<u8> {
    let mut buf = Vec::new();
    for m in manifests {
        put_bytes(&mut buf, m.path.as_bytes());
        put_long(&mut buf, m.length);
        put_long(&mut buf, i64::from(m.spec_id));
        put_long(&mut buf, 0);
        put_long(&mut buf, m.sequence_number);
        put_long(&mut buf, m.min_sequence_number);
        put_long(&mut buf, m.added_snapshot_id);
        put_long(&mut buf, i64::from(m.added_files));
        put_long(&mut buf, i64::from(m.existing_files));
        put_long(&mut buf, 0);
        put_long(&mut buf, m.added_rows);
        put_long(&mut buf, m.existing_rows);
        put_long(&mut buf, 0);
        put_some(&mut buf);
        if !m.partitions.is_empty() {
            put_long(&mut buf, m.partitions.len() as i64);
            for (contains_null, lower, upper) in &m.partitions {
                buf.push(u8::from(*contains_null));
                put_null(&mut buf);
                for b in [lower, upper] {
                    match b {
                        Some(b) => {
                            put_some(&mut buf);
                            put_bytes(&mut buf, b);
                        }
                        None => put_null(&mut buf),
                    }
                }
            }
        }
        put_long(&mut buf, 0);
    }
    let metadata = [
        ("snapshot-id", snapshot_id.to_string()),
        (
            "parent-snapshot-id",
            parent.map_or_else(|| "null".to_string(), |p| p.to_string()),
        ),
        ("sequence-number", sequence_number.to_string()),
        ("format-version", "2".to_string()),
    ];
    container(&manifest_list_schema(), &metadata, manifests.len(), &buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get_long(b: &[u8], at: &mut usize) -> i64 {
        let (mut z, mut shift) = (0u64, 0);
        loop {
            let byte = b[*at];
            *at += 1;
            z |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                return ((z >> 1) as i64) ^ -((z & 1) as i64);
            }
        }
    }

    #[test]
    fn longs_are_zigzag_varints() {
        for (v, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (64, vec![0x80, 1]),
            (-65, vec![0x81, 1]),
        ] {
            let mut b = Vec::new();
            put_long(&mut b, v);
            assert_eq!(b, bytes, "{v}");
            let mut at = 0;
            assert_eq!(get_long(&b, &mut at), v);
        }
    }

    #[test]
    fn a_container_has_header_schema_with_field_ids_and_one_deflated_block() {
        let list = manifest_list(
            2,
            Some(1),
            2,
            &[ManifestFile {
                path: "file:///t/a.avro".into(),
                length: 10,
                spec_id: 0,
                sequence_number: 2,
                min_sequence_number: 1,
                added_snapshot_id: 2,
                added_files: 1,
                existing_files: 0,
                added_rows: 3,
                existing_rows: 0,
                partitions: vec![],
            }],
        );
        assert_eq!(&list[..4], b"Obj\x01");
        let mut at = 4;
        let n = get_long(&list, &mut at);
        let mut meta = std::collections::BTreeMap::new();
        for _ in 0..n {
            let len = get_long(&list, &mut at) as usize;
            let k = String::from_utf8(list[at..at + len].to_vec()).unwrap();
            at += len;
            let len = get_long(&list, &mut at) as usize;
            let v = String::from_utf8(list[at..at + len].to_vec()).unwrap();
            at += len;
            meta.insert(k, v);
        }
        assert_eq!(get_long(&list, &mut at), 0);
        let schema: Value = serde_json::from_str(&meta["avro.schema"]).unwrap();
        assert_eq!(schema["fields"][0]["field-id"], 500);
        assert_eq!(schema["fields"][13]["type"][1]["element-id"], 508);
        assert_eq!(meta["avro.codec"], "deflate");
        assert_eq!(meta["parent-snapshot-id"], "1");
        let sync = list[at..at + 16].to_vec();
        at += 16;
        assert_eq!(get_long(&list, &mut at), 1);
        let size = get_long(&list, &mut at) as usize;
        let mut records = Vec::new();
        flate2::read::DeflateDecoder::new(&list[at..at + size])
            .read_to_end(&mut records)
            .unwrap();
        assert_eq!(&list[at + size..], &sync[..]);
        let mut r = 0;
        let len = get_long(&records, &mut r) as usize;
        assert_eq!(&records[r..r + len], b"file:///t/a.avro");
        // The same content gives the same bytes (the sync marker comes from the content).
        assert_eq!(
            list,
            manifest_list(
                2,
                Some(1),
                2,
                &[ManifestFile {
                    path: "file:///t/a.avro".into(),
                    length: 10,
                    spec_id: 0,
                    sequence_number: 2,
                    min_sequence_number: 1,
                    added_snapshot_id: 2,
                    added_files: 1,
                    existing_files: 0,
                    added_rows: 3,
                    existing_rows: 0,
                    partitions: vec![]
                }]
            )
        );
    }

    #[test]
    fn partition_names_become_avro_names() {
        assert_eq!(avro_name("day"), "day");
        assert_eq!(avro_name("1st"), "_1st");
        assert_eq!(avro_name("a-b"), "a_x2Db");
    }
}
