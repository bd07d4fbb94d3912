//! Library-level tests of tarn-table: behaviours that are awkward to drive from the CLI.

use tarn_table::{
    parse_columns, CreateOptions, ErrorKind, InputSource, Table, TableLocation, TimeTravel,
    WriteMode, WriteOptions,
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
