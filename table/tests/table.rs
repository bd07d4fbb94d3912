//! Library-level tests of tarn-table: behaviours that are awkward to drive from the CLI.

use std::sync::Arc;

use tarn_table::{
    parse_columns, ChangeBatch, ChangeRows, CreateOptions, ErrorKind, InputSource, Table,
    TableLocation, TimeTravel, WriteMode, WriteOptions,
};

fn csv(dir: &std::path::Path, name: &str, content: &str) -> InputSource {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    InputSource::file(p, None).unwrap()
}

#[tokio::test]
async fn checkpoints_are_written_every_100_commits_by_default() {
    // Delta checkpoints when (version + 1) is a multiple of the interval: 99, 199, ...
    let dir = tempfile::tempdir().unwrap();
    let loc = TableLocation::parse(&dir.path().join("t").to_string_lossy()).unwrap();
    Table::create(
        &loc,
        CreateOptions::new(parse_columns("id bigint").unwrap()),
    )
    .await
    .unwrap();
    for i in 0..100 {
        let src = csv(dir.path(), "x.csv", &format!("id\n{i}\n"));
        Table::write(&loc, vec![src], WriteOptions::default())
            .await
            .unwrap();
    }
    let log = dir.path().join("t/_delta_log");
    assert!(log.join("00000000000000000099.checkpoint.parquet").exists());
    assert!(!log.join("00000000000000000098.checkpoint.parquet").exists());
    assert!(!log.join("00000000000000000100.checkpoint.parquet").exists());
    let t = Table::open(&loc, &TimeTravel::Version(50)).await.unwrap();
    assert_eq!(t.version(), 50);
}

#[tokio::test]
async fn a_delete_racing_an_overwrite_of_the_same_files_conflicts_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let loc = TableLocation::parse(&dir.path().join("t").to_string_lossy()).unwrap();
    Table::create(
        &loc,
        CreateOptions::new(parse_columns("id bigint").unwrap()),
    )
    .await
    .unwrap();
    Table::write(
        &loc,
        vec![csv(dir.path(), "a.csv", "id\n1\n")],
        WriteOptions::default(),
    )
    .await
    .unwrap();
    // A writer plans a delete at version 1 ...
    let stale = Table::open(&loc, &TimeTravel::Latest).await.unwrap();
    // ... while another overwrites the table, removing the file the delete would rewrite.
    let overwrite = WriteOptions {
        mode: WriteMode::Overwrite,
        ..WriteOptions::default()
    };
    Table::write(&loc, vec![csv(dir.path(), "b.csv", "id\n2\n")], overwrite)
        .await
        .unwrap();
    let err = stale.delete_where("id > 0").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.message().contains("concurrent"), "{err}");
    let latest = Table::open(&loc, &TimeTravel::Latest).await.unwrap();
    assert_eq!(latest.version(), 2);
}

#[tokio::test]
async fn describing_without_loading_agrees_with_a_loaded_table_at_every_version() {
    // Checkpoints at versions 2, 5, 8; files added, replaced by an overwrite and a delete,
    // in two partitions: the lazy description must count what a full load counts.
    let dir = tempfile::tempdir().unwrap();
    let loc = TableLocation::parse(&dir.path().join("t").to_string_lossy()).unwrap();
    let mut options = CreateOptions::new(parse_columns("id bigint, part string").unwrap());
    options.partition_by = vec!["part".into()];
    options
        .properties
        .insert("delta.checkpointInterval".into(), "3".into());
    Table::create(&loc, options).await.unwrap();
    let write = |content: String, mode: WriteMode| {
        let src = csv(dir.path(), "x.csv", &content);
        let loc = loc.clone();
        async move {
            let options = WriteOptions {
                mode,
                ..WriteOptions::default()
            };
            Table::write(&loc, vec![src], options).await.unwrap();
        }
    };
    for i in 0..4 {
        write(format!("id,part\n{i},a\n{},b\n", i + 10), WriteMode::Append).await;
    }
    write("id,part\n99,a\n".into(), WriteMode::Overwrite).await;
    for i in 20..23 {
        write(format!("id,part\n{i},a\n{},b\n", i + 10), WriteMode::Append).await;
    }
    let latest = Table::open(&loc, &TimeTravel::Latest).await.unwrap();
    latest.delete_where("id = 30").await.unwrap();
    let last = Table::open(&loc, &TimeTravel::Latest)
        .await
        .unwrap()
        .version();
    assert_eq!(last, 9);
    assert!(dir
        .path()
        .join("t/_delta_log/00000000000000000008.checkpoint.parquet")
        .exists());

    for v in 0..=last {
        let loaded = Table::open(&loc, &TimeTravel::Version(v))
            .await
            .unwrap()
            .describe()
            .unwrap();
        let lazy = Table::describe_at(&loc, &TimeTravel::Version(v))
            .await
            .unwrap();
        assert_eq!(format!("{lazy:?}"), format!("{loaded:?}"), "version {v}");
    }
    let lazy = Table::describe_at(&loc, &TimeTravel::Latest).await.unwrap();
    assert_eq!(lazy.version, last);
    // One file from the overwrite, two from each of three appends, less the deleted row's file.
    assert_eq!(lazy.num_files, 6);
    // The removed files are still on disk (nothing vacuumed), so they count there only.
    let on_disk = parquet_bytes(&dir.path().join("t"));
    assert!(lazy.size_bytes > 0 && lazy.size_bytes < on_disk);

    let err = Table::describe_at(&loc, &TimeTravel::Version(last + 1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.message(),
        format!(
            "table `{}` has no version {} (latest is {last})",
            loc.display_name(),
            last + 1
        )
    );
    let missing = TableLocation::parse(&dir.path().join("nope").to_string_lossy()).unwrap();
    let err = Table::describe_at(&missing, &TimeTravel::Latest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

fn parquet_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                parquet_bytes(&p)
            } else if p.extension().is_some_and(|x| x == "parquet")
                && !p.to_string_lossy().contains("_delta_log")
            {
                std::fs::metadata(&p).unwrap().len()
            } else {
                0
            }
        })
        .sum()
}

/// A batch of `ids` with a string, a binary and nested columns holding strings, for
/// [`files_written_by_every_rewrite_declare_plain_string_and_binary_types`].
fn text_rows(ids: std::ops::Range<i64>) -> deltalake::arrow::array::RecordBatch {
    use deltalake::arrow::array::{
        ArrayRef, BinaryBuilder, Int64Array, ListBuilder, MapBuilder, MapFieldNames, RecordBatch,
        StringBuilder, StructBuilder,
    };
    use deltalake::arrow::datatypes::{DataType, Field};
    let mut name = StringBuilder::new();
    let mut raw = BinaryBuilder::new();
    let mut tags = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
        "element",
        DataType::Utf8,
        true,
    )));
    let mut info = StructBuilder::from_fields(vec![Field::new("city", DataType::Utf8, true)], 0);
    let names = MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    };
    let mut attrs = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
    for i in ids.clone() {
        name.append_value(format!("name {i}"));
        raw.append_value(format!("raw {i}").as_bytes());
        tags.values().append_value(format!("tag {i}"));
        tags.append(true);
        info.field_builder::<StringBuilder>(0)
            .unwrap()
            .append_value(format!("city {i}"));
        info.append(true);
        attrs.keys().append_value("k");
        attrs.values().append_value(format!("v {i}"));
        attrs.append(true).unwrap();
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from_iter_values(ids))),
        ("name", Arc::new(name.finish())),
        ("raw", Arc::new(raw.finish())),
        ("tags", Arc::new(tags.finish())),
        ("info", Arc::new(info.finish())),
        ("attrs", Arc::new(attrs.finish())),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

/// `batch` as an input source.
async fn batch_input(batch: deltalake::arrow::array::RecordBatch) -> InputSource {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let schema = batch.schema();
    tx.send(Ok(batch)).await.unwrap();
    InputSource::batches("rows", schema, rx)
}

/// The data files under `dir` (relative paths), the log left out.
fn data_files(dir: &std::path::Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("_delta_log") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.insert(p);
            }
        }
    }
    out
}

/// The view types (`Utf8View`, `BinaryView`, `ListView`...) anywhere in a Parquet file's
/// Arrow schema, the one its `ARROW:schema` footer metadata declares.
fn view_types_in(file: &std::path::Path) -> Vec<String> {
    use deltalake::arrow::datatypes::{DataType, Field};
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    fn walk(field: &Field, path: String, out: &mut Vec<String>) {
        let path = format!("{path}{}", field.name());
        match field.data_type() {
            DataType::Utf8View
            | DataType::BinaryView
            | DataType::ListView(_)
            | DataType::LargeListView(_) => out.push(format!("{path}: {}", field.data_type())),
            DataType::List(f) | DataType::LargeList(f) | DataType::Map(f, _) => {
                walk(f, format!("{path}."), out)
            }
            DataType::Struct(fs) => fs.iter().for_each(|f| walk(f, format!("{path}."), out)),
            _ => {}
        }
    }
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap()).unwrap();
    assert!(
        reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .is_some_and(|kv| kv.iter().any(|kv| kv.key == "ARROW:schema")),
        "{} has no ARROW:schema metadata",
        file.display()
    );
    let mut out = Vec::new();
    for f in reader.schema().fields() {
        walk(f, String::new(), &mut out);
    }
    out
}

/// One string of `sql`'s single value, whatever string type DataFusion answers with.
async fn one_string(loc: &TableLocation, sql: &str) -> String {
    use deltalake::arrow::array::AsArray;
    use deltalake::arrow::datatypes::DataType;
    use futures::TryStreamExt;
    let tables = [tarn_table::QueryTable {
        name: "t".into(),
        location: loc.clone(),
    }];
    let result = Table::query(sql, &tables, &TimeTravel::Latest)
        .await
        .unwrap();
    let batches: Vec<_> = result.stream.try_collect().await.unwrap();
    let column = deltalake::arrow::compute::cast(batches[0].column(0), &DataType::Utf8).unwrap();
    column.as_string::<i32>().value(0).to_string()
}

#[tokio::test]
async fn deletes_and_updates_of_a_partitioned_table_with_a_change_data_feed_keep_partitions_right()
{
    // The rule that casts view types sees the partition column too (as deltalake's scan
    // gives it, dictionary-encoded): the rewritten files must land in the right partition.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let loc = TableLocation::parse(&root.to_string_lossy()).unwrap();
    let mut options =
        CreateOptions::new(parse_columns("id bigint, region string, name string").unwrap());
    options.partition_by = vec!["region".into()];
    options
        .properties
        .insert("delta.enableChangeDataFeed".into(), "true".into());
    Table::create(&loc, options).await.unwrap();
    let src = csv(
        dir.path(),
        "x.csv",
        "id,region,name\n1,EU,a\n2,EU,b\n3,US,c\n4,US,d\n",
    );
    Table::write(&loc, vec![src], WriteOptions::default())
        .await
        .unwrap();
    let before = data_files(&root);
    let t = Table::open(&loc, &TimeTravel::Latest).await.unwrap();
    let (t, deleted) = t.delete_where("id = 1").await.unwrap();
    assert_eq!(deleted.rows, 1);
    let (_, updated) = t
        .update_where(&[("name".into(), "upper(name)".into())], Some("id = 4"))
        .await
        .unwrap();
    assert_eq!(updated.rows, 1);
    let new: Vec<_> = data_files(&root).difference(&before).cloned().collect();
    assert!(!new.is_empty());
    for f in &new {
        let views = view_types_in(f);
        assert!(views.is_empty(), "{} declares {views:?}", f.display());
        let path = f.to_string_lossy();
        assert!(
            path.contains("region=EU") || path.contains("region=US"),
            "{path} is in no partition"
        );
    }
    let rows = "SELECT string_agg(concat(id, region, name), ',' ORDER BY id) FROM t";
    assert_eq!(one_string(&loc, rows).await, "2EUb,3USc,4USD");
    let eu = "SELECT string_agg(concat(id, name), ',' ORDER BY id) FROM t WHERE region = 'EU'";
    assert_eq!(one_string(&loc, eu).await, "2b");
}

#[tokio::test]
async fn deletes_and_updates_with_a_change_data_feed_write_plain_types_in_data_and_change_files() {
    // With the change data feed on, deltalake writes DELETE's and UPDATE's rewritten rows
    // and their change rows (`_change_data/`) from one plan: both must declare Utf8 / Binary.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let loc = TableLocation::parse(&root.to_string_lossy()).unwrap();
    let columns = "id bigint, name string, raw binary, tags array<string>, \
                   info struct<city:string>, attrs map<string,string>";
    let mut options = CreateOptions::new(parse_columns(columns).unwrap());
    options
        .properties
        .insert("delta.enableChangeDataFeed".into(), "true".into());
    Table::create(&loc, options).await.unwrap();
    let input = batch_input(text_rows(0..20)).await;
    Table::write(&loc, vec![input], WriteOptions::default())
        .await
        .unwrap();
    let before = data_files(&root);
    let t = Table::open(&loc, &TimeTravel::Latest).await.unwrap();
    let (t, deleted) = t.delete_where("id < 3").await.unwrap();
    assert_eq!(deleted.rows, 3);
    let (_, updated) = t
        .update_where(&[("name".into(), "upper(name)".into())], Some("id > 15"))
        .await
        .unwrap();
    assert_eq!(updated.rows, 4);
    let new: Vec<_> = data_files(&root).difference(&before).cloned().collect();
    assert!(
        new.iter()
            .any(|f| f.to_string_lossy().contains("_change_data")),
        "no change data file among {new:?}"
    );
    for f in &new {
        let views = view_types_in(f);
        assert!(views.is_empty(), "{} declares {views:?}", f.display());
    }
    // And the rows are what they should be.
    use futures::TryStreamExt;
    let tables = [tarn_table::QueryTable {
        name: "t".into(),
        location: loc.clone(),
    }];
    let sql = "SELECT count(*) AS n, count(*) FILTER (WHERE name LIKE 'NAME %') AS upper, \
               min(id) AS first FROM t";
    let result = Table::query(sql, &tables, &TimeTravel::Latest)
        .await
        .unwrap();
    let batches: Vec<_> = result.stream.try_collect().await.unwrap();
    use deltalake::arrow::array::AsArray;
    use deltalake::arrow::datatypes::Int64Type;
    let values: Vec<i64> = batches[0]
        .columns()
        .iter()
        .map(|c| c.as_primitive::<Int64Type>().value(0))
        .collect();
    assert_eq!(values, [17, 4, 3], "rows, updated names, first id");
}

#[tokio::test]
async fn files_written_by_every_rewrite_declare_plain_string_and_binary_types() {
    // DataFusion reads Parquet strings as Utf8View by default; files rewritten from such a
    // scan would declare string_view in their Arrow schema, which pyiceberg 0.12 and other
    // Delta readers do not expect. Each operation's new files must declare Utf8 / Binary.
    // Delete and update too, although deltalake 1.1.3 plans their rewrite scans without
    // Tarn's session (see `plain_types`).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let loc = TableLocation::parse(&root.to_string_lossy()).unwrap();
    let columns = "id bigint, name string, raw binary, tags array<string>, \
                   info struct<city:string>, attrs map<string,string>";
    Table::create(&loc, CreateOptions::new(parse_columns(columns).unwrap()))
        .await
        .unwrap();
    let mut seen = data_files(&root);
    let mut check = |step: &str, checked: bool| {
        let now = data_files(&root);
        let new: Vec<_> = now.difference(&seen).cloned().collect();
        assert!(!new.is_empty(), "{step} wrote no file");
        for f in new.iter().filter(|_| checked) {
            let views = view_types_in(f);
            assert!(views.is_empty(), "{step} wrote {}: {views:?}", f.display());
        }
        seen = now;
    };

    for ids in [0..10, 10..20] {
        let input = batch_input(text_rows(ids)).await;
        Table::write(&loc, vec![input], WriteOptions::default())
            .await
            .unwrap();
    }
    check("write", true);
    let t = Table::open(&loc, &TimeTravel::Latest).await.unwrap();
    t.delete_where("id = 3").await.unwrap();
    check("delete", true);
    let t = Table::open(&loc, &TimeTravel::Latest).await.unwrap();
    t.update_where(
        &[("name".into(), "concat(name, '!')".into())],
        Some("id = 4"),
    )
    .await
    .unwrap();
    check("update", true);
    let upsert = WriteOptions {
        upsert_on: vec!["id".into()],
        ..WriteOptions::default()
    };
    // A MERGE reads its source twice: from a file, as `tarn write --upsert-on` does.
    let source = dir.path().join("upsert.parquet");
    let batch = text_rows(15..25);
    let mut writer = deltalake::parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&source).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let input = InputSource::file(&source, None).unwrap();
    Table::write(&loc, vec![input], upsert).await.unwrap();
    check("upsert", true);
    let t = Table::open(&loc, &TimeTravel::Latest).await.unwrap();
    let (_, report) = t.optimize(&[], None).await.unwrap();
    assert!(report.files_added > 0, "{report:?}");
    check("optimize", true);
    // The merge that change data capture applies.
    use deltalake::arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
    let int = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
    let text = |v: Vec<&str>| Arc::new(StringArray::from(v)) as ArrayRef;
    let batch = RecordBatch::try_from_iter(vec![
        ("id", int(vec![5, 100])),
        ("name", text(vec!["five", "hundred"])),
        ("__op", text(vec!["U", "U"])),
        ("__mk_0", int(vec![5, 100])),
        (
            "__any_keep",
            Arc::new(BooleanArray::from(vec![false, false])) as ArrayRef,
        ),
    ])
    .unwrap();
    let changes = ChangeBatch {
        rows: ChangeRows::Batch(batch),
        keys: vec!["id".into()],
        columns: vec!["id".into(), "name".into()],
        kept: vec![],
        truncate: false,
        app_transaction: ("test".into(), 1),
        commit_info: Default::default(),
    };
    Table::apply_changes(&loc, changes).await.unwrap();
    check("change data capture", true);
}
