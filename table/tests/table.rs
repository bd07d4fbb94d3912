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
