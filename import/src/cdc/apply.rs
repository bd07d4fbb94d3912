//! A folded batch of one table as the rows of a MERGE ([`tarn_table::ChangeBatch`]): the
//! binary values decoded into Arrow columns, plus the match key, operation and keep flags.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tarn_table::deltalake::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use tarn_table::deltalake::arrow::datatypes::{DataType, Field, Schema};

use super::fold::{decode_key, Cell, TableFold};
use super::parts::{fold_change, Parts};
use crate::postgres::{decode_value, Decoder};
use crate::types::{ColBuilder, ColType};
use crate::{Error, ErrorKind, Result};

/// A column of a target table, as the source stream sends it.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// The column's name (in the source and in Delta).
    pub name: String,
    /// What Tarn stores.
    pub col_type: ColType,
    /// How its binary values decode.
    pub decoder: Decoder,
    /// The source type (OID, modifier) it was mapped from.
    pub type_oid: u32,
    pub typmod: i32,
    /// The source type as PostgreSQL writes it.
    pub type_text: String,
    /// Whether the source still has it (a dropped column stays in Delta, NULL from then on).
    pub present: bool,
}

/// A column's Delta type as text (`bigint`, `decimal(12,2)`...), to compare a source type's
/// mapping with what the table stores.
pub(crate) fn stored_types(
    schema: &tarn_table::deltalake::kernel::StructType,
) -> Vec<(String, String)> {
    schema
        .fields()
        .map(|f| (f.name().to_string(), tarn_table::type_text(f.data_type())))
        .collect()
}

/// The rows of one table's batch, for [`tarn_table::Table::apply_changes`]: the present
/// columns' names, and the indexes (into them) of columns with keep flags: those with a
/// kept value in the batch, and those of `keep_slots` (column slots).
pub(crate) fn change_rows(
    slots: &[Slot],
    key_slots: &[usize],
    fold: &TableFold,
    keep_slots: &BTreeSet<usize>,
) -> Result<(RecordBatch, Vec<String>, Vec<usize>)> {
    let included: Vec<usize> = (0..slots.len()).filter(|i| slots[*i].present).collect();
    let live: Vec<_> = fold.live.values().collect();
    let rows = live.len() + fold.deletes.len();
    let decode = |slot: &Slot, v: &[u8], b: &mut ColBuilder| {
        decode_value(&slot.decoder, v, b).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("column `{}`: {e}", slot.name),
            )
        })
    };
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut kept = Vec::new();
    let mut any_keep = vec![false; rows];
    let mut keep_columns = Vec::new();
    for (ci, &s) in included.iter().enumerate() {
        let slot = &slots[s];
        let mut b = ColBuilder::new(&slot.col_type);
        let mut keep = vec![false; rows];
        for (r, row) in live.iter().enumerate() {
            // By reference: a clone of every value was a hot spot of large batches.
            match row.cells.get(s) {
                None | Some(Cell::Null) => b.append_null(),
                Some(Cell::Value(v)) => decode(slot, v, &mut b)?,
                Some(Cell::Keep) => {
                    b.append_null();
                    keep[r] = true;
                    any_keep[r] = true;
                }
            }
        }
        for _ in 0..fold.deletes.len() {
            b.append_null();
        }
        fields.push(Field::new(&slot.name, slot.col_type.arrow(), true));
        arrays.push(b.finish());
        if keep_slots.contains(&s) || keep.iter().any(|k| *k) {
            kept.push(ci);
            keep_columns.push((ci, keep));
        }
    }
    for (j, &s) in key_slots.iter().enumerate() {
        let slot = &slots[s];
        let mut b = ColBuilder::new(&slot.col_type);
        let add = |key: Option<&Vec<u8>>, b: &mut ColBuilder| -> Result<()> {
            match key {
                None => b.append_null(),
                Some(k) => {
                    let values = decode_key(k);
                    let v = values.get(j).ok_or_else(|| {
                        Error::new(ErrorKind::Internal, "internal: a key with too few values")
                    })?;
                    decode(slot, v, b)?;
                }
            }
            Ok(())
        };
        for row in &live {
            add(row.match_key.as_ref(), &mut b)?;
        }
        for k in &fold.deletes {
            add(Some(k), &mut b)?;
        }
        fields.push(Field::new(format!("__mk_{j}"), slot.col_type.arrow(), true));
        arrays.push(b.finish());
    }
    let ops: Vec<&str> = std::iter::repeat_n("U", live.len())
        .chain(std::iter::repeat_n("D", fold.deletes.len()))
        .collect();
    fields.push(Field::new("__op", DataType::Utf8, false));
    arrays.push(Arc::new(StringArray::from(ops)));
    for (ci, keep) in keep_columns {
        fields.push(Field::new(format!("__keep_{ci}"), DataType::Boolean, false));
        arrays.push(Arc::new(BooleanArray::from(keep)));
    }
    fields.push(Field::new("__any_keep", DataType::Boolean, false));
    arrays.push(Arc::new(BooleanArray::from(any_keep)));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("internal: building a change batch: {e}"),
        )
    })?;
    let columns = included.iter().map(|s| slots[*s].name.clone()).collect();
    Ok((batch, columns, kept))
}

/// The rows of one table's huge transaction, for [`tarn_table::ChangeRows::Parquet`]: each
/// part folded on its own and its rows appended to the Parquet file `dir/changes.parquet`
/// (so that memory holds one part at a time). The file, the present columns' names and the
/// indexes of columns with keep flags (the same in every part).
pub(crate) fn change_file(
    slots: &[Slot],
    key_slots: &[usize],
    parts: Parts,
    dir: &Path,
) -> Result<(PathBuf, Vec<String>, Vec<usize>)> {
    use tarn_table::deltalake::parquet::arrow::ArrowWriter;
    use tarn_table::deltalake::parquet::basic::Compression;
    use tarn_table::deltalake::parquet::file::properties::WriterProperties;
    let path = dir.join("changes.parquet");
    let failed = |e: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::Internal,
            format!(
                "a large source transaction is folded through a temporary file ({}), which failed: {e} (set TMPDIR to a directory with room)",
                path.display()
            ),
        )
    };
    let keep_slots = parts.kept.clone();
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    let mut columns = (Vec::new(), Vec::new());
    for part in parts.into_parts()? {
        let mut fold = TableFold::default();
        for change in part {
            fold_change(&mut fold, change?.1);
        }
        let (batch, names, kept) = change_rows(slots, key_slots, &fold, &keep_slots)?;
        drop(fold);
        if writer.is_none() {
            let file = std::fs::File::create(&path).map_err(|e| failed(&e))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(64 * 1024))
                .build();
            writer = Some(
                ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| failed(&e))?,
            );
            columns = (names, kept);
        }
        if let Some(w) = &mut writer {
            w.write(&batch).map_err(|e| failed(&e))?;
            // Each part's rows go to disk before the next part is folded.
            w.flush().map_err(|e| failed(&e))?;
        }
    }
    if let Some(w) = writer {
        w.close().map_err(|e| failed(&e))?;
    }
    Ok((path, columns.0, columns.1))
}
