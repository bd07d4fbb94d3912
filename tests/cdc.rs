//! `tarn import --cdc` end to end against the real PostgreSQL at `TARN_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/test`; `skip` skips). The server needs
//! `wal_level = logical` (tests/run.sh sets it as root); otherwise each test says so and
//! skips. Every test uses its own tables and a `tarn_test_` slot, dropped at the end.
//!
//! Each test compares the Delta table with the source row for row.

use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;
use sqlx::{Connection, Row};

fn pg_url() -> Option<String> {
    let url = std::env::var("TARN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    (url != "skip").then_some(url)
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `sql` (one or more statements); the rows of the last one, every value as text.
fn sql(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    runtime().block_on(async {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {url} is needed ({e}); set TARN_TEST_POSTGRES=skip to skip")
        });
        let rows = sqlx::raw_sql(sql).fetch_all(&mut conn).await.unwrap();
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<Option<String>, _>(i).unwrap())
                    .collect()
            })
            .collect()
    })
}

fn one(url: &str, q: &str) -> Option<String> {
    sql(url, q).first().and_then(|r| r[0].clone())
}

/// The URL, or `None` (with a line saying why) when the server cannot do logical decoding.
fn logical() -> Option<String> {
    let url = pg_url()?;
    let level = one(&url, "SELECT current_setting('wal_level')");
    if level.as_deref() != Some("logical") {
        eprintln!(
            "skipped: PostgreSQL's wal_level is {level:?}, not logical (as a superuser: ALTER SYSTEM SET wal_level = logical and restart; tests/run.sh does it as root)"
        );
        return None;
    }
    Some(url)
}

fn tarn() -> Command {
    let mut cmd = Command::cargo_bin("tarn").unwrap();
    cmd.env_remove("TARN_FORMAT");
    cmd
}

fn tarn_path() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("tarn")
}

/// Runs `tarn --format json import <url> <args> --cdc`, expects success.
fn cdc(url: &str, args: &[&str]) -> Value {
    let out = tarn()
        .args(["--format", "json", "import", url, "--cdc", "--no-progress"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tarn import --cdc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cdc_fails(url: &str, args: &[&str]) -> String {
    let out = tarn()
        .args(["import", url, "--cdc", "--no-progress"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "tarn import --cdc {args:?} should fail"
    );
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "error should be one line: {err}");
    err
}

/// Rows of `query` over the Delta table `t`, as JSON.
fn delta_rows(table: &str, query: &str) -> Vec<Value> {
    let spec = format!("t={table}");
    let out = tarn()
        .args(["--format", "json", "query", query, "--table", &spec])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Each row of `columns` (text expressions valid in both PostgreSQL and Tarn) of the source
/// table and the Delta table, ordered by `id`: they must be equal.
fn assert_same(url: &str, source: &str, table: &str, columns: &[&str]) {
    let select: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("CAST({c} AS VARCHAR) AS c{i}"))
        .collect();
    let q = |from: &str| format!("SELECT {} FROM {from} ORDER BY id", select.join(", "));
    let pg: Vec<Vec<Option<String>>> = sql(url, &q(source));
    let delta: Vec<Vec<Option<String>>> = delta_rows(table, &q("t"))
        .iter()
        .map(|r| {
            (0..columns.len())
                .map(|i| r[format!("c{i}")].as_str().map(str::to_string))
                .collect()
        })
        .collect();
    assert_eq!(pg.len(), delta.len(), "row counts of {source} and {table}");
    for (i, (a, b)) in pg.iter().zip(&delta).enumerate() {
        assert_eq!(a, b, "row {i} of {source} (by id) differs from {table}");
    }
}

/// The Delta table's `txn` version and its commitInfo.tarnCdc of every commit.
fn cdc_commits(table: &str) -> Vec<Value> {
    let log = std::path::Path::new(table).join("_delta_log");
    let mut files: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(info) = v.get("commitInfo").and_then(|c| c.get("tarnCdc")) {
                out.push(info.clone());
            }
        }
    }
    out
}

fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// The slot's confirmed position, if it exists.
fn confirmed(url: &str, slot: &str) -> Option<u64> {
    one(
        url,
        &format!(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ),
    )
    .map(|l| lsn(&l))
}

/// Drops the slot, publication and tables of a test, whatever happened.
struct Cleanup {
    url: String,
    slot: String,
    tables: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut sqls = vec![format!(
            "DO $$BEGIN PERFORM pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{}' AND NOT active; END$$",
            self.slot
        )];
        sqls.push(format!("DROP PUBLICATION IF EXISTS {}", self.slot));
        for t in &self.tables {
            sqls.push(format!("DROP TABLE IF EXISTS {t}"));
        }
        for s in sqls {
            let url = self.url.clone();
            let _ = std::panic::catch_unwind(move || sql(&url, &s));
        }
    }
}

/// A small, seeded random number generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A writer running a 70/20/10 update/insert/delete mix on `table` (id bigint, n int,
/// name text), one row per statement, `per_txn` statements per transaction: deletes only
/// take rows of the first `initial` ids, inserts take fresh ids, so no change of a batch
/// cancels another. Returns the changes made.
fn write_mix(
    url: &str,
    table: &str,
    initial: u64,
    seed: u64,
    changes: u64,
    per_txn: u64,
    pause: Duration,
) -> u64 {
    let mut rng = Rng(seed | 1);
    let mut next = 10_000_000 + seed * 1_000_000;
    let mut deleted = std::collections::HashSet::new();
    let mut made = 0;
    runtime().block_on(async {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        while made < changes {
            let mut batch = String::from("BEGIN;");
            for _ in 0..per_txn.min(changes - made) {
                let roll = rng.below(10);
                if roll < 7 {
                    let id = loop {
                        let id = 1 + rng.below(initial);
                        if !deleted.contains(&id) {
                            break id;
                        }
                    };
                    batch.push_str(&format!(
                        "UPDATE {table} SET n = n + 1, name = 'u{made}' WHERE id = {id};"
                    ));
                } else if roll < 9 {
                    next += 1;
                    batch.push_str(&format!(
                        "INSERT INTO {table} (id, n, name) VALUES ({next}, {made}, 'i{made}');"
                    ));
                } else {
                    let id = loop {
                        let id = 1 + rng.below(initial);
                        if deleted.insert(id) {
                            break id;
                        }
                    };
                    batch.push_str(&format!("DELETE FROM {table} WHERE id = {id};"));
                }
                made += 1;
            }
            batch.push_str("COMMIT;");
            sqlx::raw_sql(&batch).execute(&mut conn).await.unwrap();
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    });
    made
}

fn create_mix_table(url: &str, table: &str, rows: u64) {
    sql(
        url,
        &format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, n int, name text);
             INSERT INTO {table} SELECT g, g, 'r' || g FROM generate_series(1, {rows}) g"
        ),
    );
}

#[test]
fn the_first_run_copies_under_concurrent_writes_and_later_runs_apply_every_operation() {
    let Some(url) = logical() else { return };
    let src = unique("cdc_ops");
    let slot = unique("tarn_test_ops");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![src.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("ops").to_string_lossy().to_string();
    sql(
        &url,
        &format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, n int, name text, doc text);
             ALTER TABLE {src} ALTER COLUMN doc SET STORAGE EXTERNAL;
             INSERT INTO {src} SELECT g, g, 'r' || g, NULL FROM generate_series(1, 20000) g"
        ),
    );
    // A writer runs during the first run (the copy from the slot's snapshot, then the
    // changes after it): every row it writes arrives once.
    let writer = {
        let (url, src) = (url.clone(), src.clone());
        std::thread::spawn(move || write_mix(&url, &src, 20_000, 7, 3_000, 5, Duration::ZERO))
    };
    std::thread::sleep(Duration::from_millis(100));
    let first = cdc(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    assert_eq!(first["snapshot"], true);
    assert_eq!(first["slot"], slot.as_str());
    assert_eq!(first["publication"], slot.as_str());
    let written = writer.join().unwrap();
    assert_eq!(written, 3_000);
    let second = cdc(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    assert_eq!(second["snapshot"], false);
    assert_same(&url, &src, &table, &["id", "n", "name"]);
    // The snapshot commit is at the slot's consistent point; later commits chain.
    let commits = cdc_commits(&table);
    assert_eq!(commits[0]["kind"], "snapshot");
    assert_eq!(commits[0]["lsn"], first["start_lsn"]);
    for pair in commits.windows(2) {
        assert_eq!(pair[1]["previousLsn"], pair[0]["lsn"], "{commits:?}");
        assert!(lsn(pair[1]["lsn"].as_str().unwrap()) > lsn(pair[0]["lsn"].as_str().unwrap()));
    }
    let applied: u64 = commits[1..]
        .iter()
        .map(|c| c["changes"].as_u64().unwrap())
        .sum();
    // The changes before the snapshot's point are in the copy, the rest were applied.
    assert!(applied <= written, "{applied} > {written}");

    // Every operation, in one batch: inserts, updates of non-key and key columns, deletes,
    // one key inserted, updated and deleted in a transaction, and across transactions.
    let big = |c: char| format!("repeat('{c}', 100000)");
    sql(
        &url,
        &format!(
            "INSERT INTO {src} VALUES (900001, 1, 'new', {}), (900002, 2, 'new2', NULL);
             UPDATE {src} SET name = 'changed' WHERE id BETWEEN 1 AND 50;
             UPDATE {src} SET id = id + 5000000 WHERE id BETWEEN 51 AND 60;
             DELETE FROM {src} WHERE id BETWEEN 61 AND 80;
             BEGIN; INSERT INTO {src} VALUES (900003, 3, 'x', NULL); UPDATE {src} SET n = 33 WHERE id = 900003; DELETE FROM {src} WHERE id = 900003; COMMIT;
             INSERT INTO {src} VALUES (900004, 4, 'y', NULL);
             UPDATE {src} SET id = 900005 WHERE id = 900004;
             UPDATE {src} SET n = 55 WHERE id = 900005;
             UPDATE {src} SET doc = {} WHERE id BETWEEN 100 AND 104;",
            big('a'),
            big('b')
        ),
    );
    let version = |t: &str| -> u64 {
        let out = tarn()
            .args(["--format", "json", "describe", t])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["version"]
            .as_u64()
            .unwrap()
    };
    let before = version(&table);
    let run = cdc(
        &url,
        &[
            "--source",
            &src,
            "--into",
            &table,
            "--slot",
            &slot,
            "--batch-seconds",
            "30",
        ],
    );
    assert_eq!(
        version(&table),
        before + 1,
        "one batch is one commit: {run}"
    );
    let cols = ["id", "n", "name", "length(doc)", "substr(doc, 1, 3)"];
    assert_same(&url, &src, &table, &cols);

    // TOAST: an update of another column keeps the stored large value; an update of the
    // large value then of another column in the same batch has the new value.
    sql(
        &url,
        &format!(
            "UPDATE {src} SET n = n + 1 WHERE id BETWEEN 100 AND 102;
             UPDATE {src} SET doc = {} WHERE id = 103;
             UPDATE {src} SET n = 7 WHERE id = 103;",
            big('c')
        ),
    );
    cdc(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    assert_same(&url, &src, &table, &cols);
    // (The writer may have deleted some of ids 100-102: the first one left.)
    let id = one(
        &url,
        &format!("SELECT min(id)::text FROM {src} WHERE id BETWEEN 100 AND 102"),
    )
    .expect("one of ids 100-102 is left");
    let kept = delta_rows(
        &table,
        &format!("SELECT length(doc) AS l, substr(doc, 1, 1) AS c FROM t WHERE id = {id}"),
    );
    assert_eq!(kept[0]["l"], 100000);
    assert_eq!(kept[0]["c"], "b");

    // A new column appears; truncate then inserts in one transaction replace everything.
    sql(
        &url,
        &format!(
            "ALTER TABLE {src} ADD COLUMN note text;
             UPDATE {src} SET note = 'noted' WHERE id BETWEEN 1 AND 5;
             INSERT INTO {src} (id, n, name, note) VALUES (900010, 10, 'withnote', 'hello');"
        ),
    );
    cdc(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    assert_same(&url, &src, &table, &["id", "n", "name", "note"]);
    sql(
        &url,
        &format!(
            "BEGIN; TRUNCATE {src}; INSERT INTO {src} (id, n, name) VALUES (1, 1, 'after'), (2, 2, 'truncate'); COMMIT;
             UPDATE {src} SET n = 22 WHERE id = 2;"
        ),
    );
    let run = cdc(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    assert_eq!(run["tables"][0]["truncated"], true);
    assert_same(&url, &src, &table, &["id", "n", "name", "note"]);

    // --drop removes the slot and the publication; again: nothing to drop.
    let dropped = cdc(
        &url,
        &[
            "--source", &src, "--into", &table, "--slot", &slot, "--drop",
        ],
    );
    assert_eq!(dropped["dropped_slot"], true);
    assert_eq!(dropped["dropped_publication"], true);
    assert!(confirmed(&url, &slot).is_none());
    assert_eq!(
        one(
            &url,
            &format!("SELECT count(*)::text FROM pg_publication WHERE pubname = '{slot}'")
        ),
        Some("0".into())
    );
    let again = tarn()
        .args([
            "import", &url, "--cdc", "--source", &src, "--into", &table, "--slot", &slot, "--drop",
        ])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to drop"));
    // A run now knows its changes are gone.
    let err = cdc_fails(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    assert!(err.contains("no longer exists"), "{err}");
}

#[test]
fn two_tables_one_with_replica_identity_full_follow_in_one_run() {
    let Some(url) = logical() else { return };
    let a = unique("cdc_two_a");
    let b = unique("cdc_two_b");
    let slot = unique("tarn_test_two");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![a.clone(), b.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let into = dir.path().join("shop").to_string_lossy().to_string();
    create_mix_table(&url, &a, 500);
    sql(
        &url,
        &format!(
            "CREATE TABLE {b} (id bigint PRIMARY KEY, n int, doc text);
             ALTER TABLE {b} REPLICA IDENTITY FULL;
             ALTER TABLE {b} ALTER COLUMN doc SET STORAGE EXTERNAL;
             INSERT INTO {b} SELECT g, g, repeat('d', 50000) FROM generate_series(1, 20) g"
        ),
    );
    let sources = format!("{a},{b}");
    cdc(
        &url,
        &["--source", &sources, "--into", &into, "--slot", &slot],
    );
    write_mix(&url, &a, 500, 3, 300, 3, Duration::ZERO);
    sql(
        &url,
        &format!(
            "UPDATE {b} SET n = n * 10 WHERE id <= 10;
             UPDATE {b} SET id = id + 100 WHERE id = 11;
             DELETE FROM {b} WHERE id = 12;"
        ),
    );
    // The slot is behind by the WAL written since: over the (lowered) threshold, a warning.
    let out = tarn()
        .args(["--format", "json", "import", &url, "--cdc", "--no-progress"])
        .args(["--source", &sources, "--into", &into, "--slot", &slot])
        .env("TARN_CDC_BEHIND_WARN_BYTES", "1000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        run["warnings"][0]
            .as_str()
            .unwrap()
            .contains("behind the server"),
        "{run}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: replication slot"));
    assert_eq!(run["tables"].as_array().unwrap().len(), 2);
    assert_same(&url, &a, &format!("{into}/{a}"), &["id", "n", "name"]);
    assert_same(
        &url,
        &b,
        &format!("{into}/{b}"),
        &["id", "n", "length(doc)"],
    );
}

#[test]
fn kill_9_at_random_points_neither_loses_nor_repeats_a_change() {
    let Some(url) = logical() else { return };
    let total: u64 = std::env::var("TARN_TEST_CDC_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let src = unique("cdc_kill");
    let slot = unique("tarn_test_kill");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![src.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("kill").to_string_lossy().to_string();
    let trace = dir.path().join("trace.jsonl");
    create_mix_table(&url, &src, 50_000);
    cdc(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    let writer = {
        let (url, src) = (url.clone(), src.clone());
        std::thread::spawn(move || {
            write_mix(&url, &src, 50_000, 11, total, 20, Duration::from_millis(8))
        })
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill seed {seed}");
    let mut rng = Rng(seed | 1);
    let mut kills = 0;
    let started = Instant::now();
    while !writer.is_finished() || kills < 3 {
        let mut child: Child = StdCommand::new(tarn_path())
            .args([
                "import",
                &url,
                "--cdc",
                "--follow",
                "--no-progress",
                "--source",
                &src,
            ])
            .args(["--into", &table, "--slot", &slot, "--batch-seconds", "0.3"])
            .env("TARN_TEST_CDC_TRACE", &trace)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + rng.below(2500)));
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        // What the slot confirmed is never past what the run said it may confirm.
        let slot_at = confirmed(&url, &slot).unwrap();
        let last_confirm = std::fs::read_to_string(&trace)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["confirm_u64"].as_u64())
            .max()
            .unwrap_or(0);
        let snapshot_at = lsn(cdc_commits(&table)[0]["lsn"].as_str().unwrap());
        assert!(
            slot_at <= last_confirm.max(snapshot_at),
            "the slot is past what tarn confirmed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(150 * total.div_ceil(30_000)),
            "the kill loop took too long"
        );
    }
    let made = writer.join().unwrap();
    cdc(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    assert_same(&url, &src, &table, &["id", "n", "name"]);
    let commits = cdc_commits(&table);
    let applied: u64 = commits[1..]
        .iter()
        .map(|c| c["changes"].as_u64().unwrap())
        .sum();
    assert_eq!(
        applied, made,
        "{kills} kills: every change applied exactly once"
    );
    for pair in commits.windows(2) {
        assert_eq!(pair[1]["previousLsn"], pair[0]["lsn"], "no gap or overlap");
    }
    // Over the whole trace: a confirm that was not idle never passed a committed position.
    let mut committed = 0u64;
    for line in std::fs::read_to_string(&trace).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(l) = v["lsn_u64"].as_u64() {
            committed = committed.max(l);
        }
        if let (Some(c), Some(false)) = (v["confirm_u64"].as_u64(), v["idle"].as_bool()) {
            assert!(
                c <= committed.max(lsn(commits[0]["lsn"].as_str().unwrap())),
                "confirmed {c} before Delta held it ({committed})"
            );
        }
    }
    eprintln!("{made} changes, {kills} kills, {} commits", commits.len());
}

#[test]
fn sigterm_in_follow_commits_confirms_and_exits_0() {
    let Some(url) = logical() else { return };
    let src = unique("cdc_term");
    let slot = unique("tarn_test_term");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![src.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("term").to_string_lossy().to_string();
    create_mix_table(&url, &src, 1000);
    cdc(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    let child = StdCommand::new(tarn_path())
        .args([
            "--format",
            "json",
            "import",
            &url,
            "--cdc",
            "--follow",
            "--no-progress",
        ])
        .args([
            "--source",
            &src,
            "--into",
            &table,
            "--slot",
            &slot,
            "--batch-seconds",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let made = write_mix(&url, &src, 1000, 5, 200, 4, Duration::ZERO);
    std::thread::sleep(Duration::from_millis(500));
    // A long batch interval: the changes are still buffered when SIGTERM arrives.
    let sent = Instant::now();
    StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(sent.elapsed() < Duration::from_secs(10));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["stopped"], "signal");
    assert_eq!(report["changes"].as_u64(), Some(made));
    assert_same(&url, &src, &table, &["id", "n", "name"]);
    let last = cdc_commits(&table).last().unwrap()["lsn"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(confirmed(&url, &slot).unwrap() >= lsn(&last));
    let again = cdc(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    assert_eq!(again["changes"], 0);
}

#[test]
fn bad_input_is_one_line_and_creates_nothing() {
    let Some(url) = logical() else { return };
    let nokey = unique("cdc_nokey");
    let noident = unique("cdc_noident");
    let ok = unique("cdc_ok");
    let slot = unique("tarn_test_bad");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![nokey.clone(), noident.clone(), ok.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("bad").to_string_lossy().to_string();
    sql(&url, &format!("CREATE TABLE {nokey} (a int, b text)"));
    create_mix_table(&url, &ok, 10);
    let nothing_created = || {
        assert!(confirmed(&url, &slot).is_none(), "no slot");
        assert_eq!(
            one(
                &url,
                &format!("SELECT count(*)::text FROM pg_publication WHERE pubname = '{slot}'")
            ),
            Some("0".into()),
            "no publication"
        );
        assert!(!std::path::Path::new(&table).exists(), "no table");
    };
    let err = cdc_fails(
        &url,
        &["--source", &nokey, "--into", &table, "--slot", &slot],
    );
    assert!(err.contains("has no primary key"), "{err}");
    nothing_created();
    // A key, but no replica identity: updates and deletes would come without it.
    sql(
        &url,
        &format!("CREATE TABLE {noident} (id int PRIMARY KEY, b text); ALTER TABLE {noident} REPLICA IDENTITY NOTHING"),
    );
    let err = cdc_fails(
        &url,
        &["--source", &noident, "--into", &table, "--slot", &slot],
    );
    assert!(
        err.contains("has REPLICA IDENTITY NOTHING") && err.contains("REPLICA IDENTITY DEFAULT"),
        "{err}"
    );
    nothing_created();
    let err = cdc_fails(
        &url,
        &[
            "--source",
            "cdc_no_such_table",
            "--into",
            &table,
            "--slot",
            &slot,
        ],
    );
    assert!(err.contains("does not exist"), "{err}");
    nothing_created();
    // A role without REPLICATION.
    let role = unique("tarn_norepl");
    sql(&url, &format!("CREATE ROLE {role} LOGIN"));
    let as_role = {
        let mut u = url::Url::parse(&url).unwrap();
        u.set_username(&role).unwrap();
        u.to_string()
    };
    let err = cdc_fails(
        &as_role,
        &["--source", &ok, "--into", &table, "--slot", &slot],
    );
    sql(&url, &format!("DROP ROLE {role}"));
    assert!(err.contains("may not start replication"), "{err}");
    nothing_created();
    // A slot that belongs to another target.
    let other = dir.path().join("other").to_string_lossy().to_string();
    cdc(&url, &["--source", &ok, "--into", &other, "--slot", &slot]);
    let err = cdc_fails(&url, &["--source", &ok, "--into", &table, "--slot", &slot]);
    assert!(err.contains("another target"), "{err}");
    assert!(!std::path::Path::new(&table).exists());
}

#[test]
fn a_lossy_type_change_stops_after_committing_what_came_before() {
    let Some(url) = logical() else { return };
    let src = unique("cdc_types");
    let slot = unique("tarn_test_types");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![src.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("types").to_string_lossy().to_string();
    sql(
        &url,
        &format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, n int, name varchar(10));
             INSERT INTO {src} SELECT g, g, 'r' || g FROM generate_series(1, 10) g"
        ),
    );
    cdc(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    // varchar(10) -> varchar(20) is still a string: it goes on.
    sql(
        &url,
        &format!(
            "ALTER TABLE {src} ALTER COLUMN name TYPE varchar(20);
             UPDATE {src} SET name = 'longer name' WHERE id = 1;"
        ),
    );
    cdc(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    assert_same(&url, &src, &table, &["id", "n", "name"]);
    // Three transactions (one simple-query message would be one).
    sql(&url, &format!("UPDATE {src} SET n = 100 WHERE id = 2"));
    sql(
        &url,
        &format!("ALTER TABLE {src} ALTER COLUMN n TYPE numeric(30, 5)"),
    );
    sql(&url, &format!("UPDATE {src} SET n = 1.5 WHERE id = 3"));
    let err = cdc_fails(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    assert!(
        err.contains("column `n`") && err.contains("without loss"),
        "{err}"
    );
    // The change before it is in; the slot holds nothing past the last commit.
    let n2 = delta_rows(&table, "SELECT n FROM t WHERE id = 2");
    assert_eq!(n2[0]["n"], 100);
    let last = cdc_commits(&table).last().unwrap()["lsn"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(confirmed(&url, &slot).unwrap() <= lsn(&last));
    let again = cdc_fails(&url, &["--source", &src, "--into", &table, "--slot", &slot]);
    assert!(again.contains("column `n`"), "{again}");
}

/// Spawns `tarn --format json import <url> --cdc --follow --no-progress <args>`.
fn spawn_follow(url: &str, args: &[&str]) -> Child {
    StdCommand::new(tarn_path())
        .args(["--format", "json", "import", url, "--cdc", "--follow"])
        .arg("--no-progress")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGTERM to `child`; its JSON report once it exited 0.
fn terminate(child: Child) -> Value {
    StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn lag_is_seconds_behind_while_catching_up_and_small_once_caught_up() {
    let Some(url) = logical() else { return };
    let src = unique("cdc_lag");
    let slot = unique("tarn_test_lag");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![src.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("lag").to_string_lossy().to_string();
    create_mix_table(&url, &src, 1000);
    let args = ["--source", &src, "--into", &table, "--slot", &slot];
    let first = cdc(&url, &args);
    assert_eq!(first["lag_seconds"], 0.0, "the copy applies no change");
    // Changes made 5 s before the run: it is (at least) that far behind when it commits.
    write_mix(&url, &src, 1000, 13, 300, 10, Duration::ZERO);
    std::thread::sleep(Duration::from_secs(5));
    let behind = cdc(&url, &args);
    assert_eq!(behind["changes"], 300);
    let lag = behind["lag_seconds"].as_f64().unwrap();
    assert!((5.0..60.0).contains(&lag), "catching up: {behind}");
    // Following, caught up: a change is in Delta soon after its source commit.
    let child = spawn_follow(&url, &[&args[..], &["--batch-seconds", "0.2"]].concat());
    std::thread::sleep(Duration::from_millis(1500));
    write_mix(&url, &src, 1000, 17, 50, 5, Duration::from_millis(20));
    std::thread::sleep(Duration::from_secs(3));
    let caught_up = terminate(child);
    assert_eq!(caught_up["changes"], 50);
    let lag = caught_up["lag_seconds"].as_f64().unwrap();
    assert!(lag > 0.0 && lag < 4.0, "caught up: {caught_up}");
    assert_same(&url, &src, &table, &["id", "n", "name"]);
}

/// Runs `command` under `script`, which gives it a terminal (so that tarn shows its
/// progress line), writing what it shows to `typescript`.
fn on_a_terminal(command: &str, typescript: &std::path::Path) -> std::process::Child {
    StdCommand::new("script")
        .args(["-q", "-f", "-e", "-c", command])
        .arg(typescript)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Whether `script` (util-linux) is here to give tarn a terminal; says why not.
fn have_script() -> bool {
    let here = StdCommand::new("script").arg("--version").output().is_ok();
    if !here {
        eprintln!("skipped: no `script` (util-linux) to give tarn a terminal");
    }
    here
}

/// The numbers the progress lines in `shown` give after `before` (up to the next space).
fn shown_after(shown: &str, before: &str) -> Vec<f64> {
    shown
        .split(before)
        .skip(1)
        .filter_map(|rest| rest.split(' ').next()?.parse::<f64>().ok())
        .collect()
}

/// A catch-up's progress line counts, in bytes behind, the whole backlog from its start:
/// the source's end of WAL, not how far the server has decoded (its keepalives say that).
#[test]
fn the_lag_in_bytes_counts_the_whole_backlog_from_the_start() {
    let Some(url) = logical() else { return };
    if !have_script() {
        return;
    }
    let src = unique("cdc_lagbytes");
    let slot = unique("tarn_test_lagbytes");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![src.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("lagbytes").to_string_lossy().to_string();
    create_mix_table(&url, &src, 200_000);
    let args = ["--source", &src, "--into", &table, "--slot", &slot];
    cdc(&url, &args);
    let lsn = |url: &str| {
        sql(url, "SELECT pg_current_wal_lsn()::text")[0][0]
            .clone()
            .unwrap()
    };
    let before = lsn(&url);
    sql(
        &url,
        &format!("UPDATE {src} SET name = name || repeat('x', 200)"),
    );
    let backlog: f64 = sql(
        &url,
        &format!(
            "SELECT (pg_wal_lsn_diff(pg_current_wal_lsn(), '{before}')::float8 / 1048576)::text"
        ),
    )[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let command = format!(
        "exec {} import '{url}' --cdc {}",
        tarn_path().display(),
        args.join(" ")
    );
    let typescript = dir.path().join("typescript");
    let mut child = on_a_terminal(&command, &typescript);
    assert!(child.wait().unwrap().success());
    let shown = std::fs::read_to_string(&typescript).unwrap();
    // The lines before any change is applied: the first that shows bytes behind shows all.
    let waiting: String = shown
        .split(['\r', '\n'])
        .filter(|l| l.contains(" 0 changes "))
        .collect::<Vec<_>>()
        .join("\n");
    let first = shown_after(&waiting, " s (")
        .into_iter()
        .find(|mib| *mib > 0.0)
        .unwrap_or(0.0);
    assert!(
        first >= backlog * 0.9,
        "a backlog of {backlog:.1} MiB first showed as {first:.1} MiB behind: {waiting}"
    );
    assert_same(&url, &src, &table, &["id", "n", "name"]);
}

/// The progress line (on a terminal: run under `script`, which gives it one) shows the
/// lag of changes that wait for their batch, in seconds and in bytes.
#[test]
fn the_progress_line_shows_the_lag_of_waiting_changes() {
    let Some(url) = logical() else { return };
    if !have_script() {
        return;
    }
    let src = unique("cdc_lagline");
    let slot = unique("tarn_test_lagline");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![src.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("lagline").to_string_lossy().to_string();
    create_mix_table(&url, &src, 20_000);
    let args = ["--source", &src, "--into", &table, "--slot", &slot];
    cdc(&url, &args);
    // A 4 s batch interval: the changes wait in the batch, their lag growing.
    let command = format!(
        "exec {} import '{url}' --cdc --follow {} --batch-seconds 4",
        tarn_path().display(),
        args.join(" ")
    );
    let typescript = dir.path().join("typescript");
    let child = on_a_terminal(&command, &typescript);
    std::thread::sleep(Duration::from_millis(1500));
    write_mix(&url, &src, 20_000, 19, 20, 5, Duration::ZERO);
    // Some MiB of WAL, waiting in the batch too: the lag in bytes must show them (the
    // stream's keepalives, every 30 s when following, cannot).
    sql(
        &url,
        &format!("UPDATE {src} SET name = name || repeat('x', 100) WHERE id <= 20000"),
    );
    std::thread::sleep(Duration::from_secs(3));
    // `script` runs tarn as its child: stop tarn itself.
    let tarn_pid = std::fs::read_to_string(format!("/proc/{}/task/{0}/children", child.id()))
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .map(str::to_string)
        .expect("tarn runs under script");
    StdCommand::new("kill")
        .args(["-TERM", &tarn_pid])
        .status()
        .unwrap();
    let mut child = child;
    assert!(child.wait().unwrap().success());
    let shown = std::fs::read_to_string(&typescript).unwrap();
    let max_lag = shown_after(&shown, "lag ")
        .into_iter()
        .fold(0.0f64, f64::max);
    assert!(
        max_lag >= 1.5,
        "the progress line never showed a lag of 1.5 s or more: {shown:?}"
    );
    let max_mib = shown_after(&shown, " s (")
        .into_iter()
        .fold(0.0f64, f64::max);
    assert!(
        max_mib >= 1.0,
        "the progress line never showed 1 MiB or more behind the source: {shown:?}"
    );
    assert_same(&url, &src, &table, &["id", "n", "name"]);
}

/// `--follow` checks on a timer how far behind the slot is (not only at the start): changes
/// held in a long batch keep the slot behind, and a warning says so while it runs.
#[test]
fn follow_warns_when_the_slot_falls_far_behind_while_it_runs() {
    let Some(url) = logical() else { return };
    let src = unique("cdc_behind");
    let slot = unique("tarn_test_behind");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![src.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("behind").to_string_lossy().to_string();
    create_mix_table(&url, &src, 100);
    // The first run (the copy, then following) has no slot to check at its start: any
    // warning comes from the check while following.
    let mut child = StdCommand::new(tarn_path())
        .args(["--format", "json", "import", &url, "--cdc", "--follow"])
        .args(["--no-progress", "--source", &src, "--into", &table])
        .args(["--slot", &slot, "--batch-seconds", "60"])
        .env("TARN_CDC_BEHIND_WARN_BYTES", "1000000")
        .env("TARN_CDC_BEHIND_CHECK_SECONDS", "0.5")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while one(
        &url,
        &format!("SELECT active::text FROM pg_replication_slots WHERE slot_name = '{slot}'"),
    )
    .as_deref()
        != Some("true")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never followed"
        );
        assert!(child.try_wait().unwrap().is_none(), "tarn exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    // About 3 MB of WAL held in the batch (not confirmed for 60 s).
    sql(
        &url,
        &format!(
            "INSERT INTO {src} SELECT g, g, repeat('x', 1000) FROM generate_series(1000, 4000) g"
        ),
    );
    std::thread::sleep(Duration::from_secs(3));
    let report = terminate(child);
    let warnings = report["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("MiB behind the server")),
        "{report}"
    );
    assert_same(&url, &src, &table, &["id", "n", "name"]);
}

/// A source transaction larger than the spill threshold (lowered here) is kept in a
/// temporary file until its commit, and applied as one commit, like any other.
#[test]
fn a_transaction_larger_than_the_spill_threshold_is_applied_whole() {
    let Some(url) = logical() else { return };
    let src = unique("cdc_spill");
    let slot = unique("tarn_test_spill");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![src.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("spill").to_string_lossy().to_string();
    sql(
        &url,
        &format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, n int, name text, doc text);
             ALTER TABLE {src} ALTER COLUMN doc SET STORAGE EXTERNAL;
             INSERT INTO {src} SELECT g, g, 'r' || g, CASE WHEN g <= 5 THEN repeat('t', 50000) END
               FROM generate_series(1, 5000) g"
        ),
    );
    let args = ["--source", &src, "--into", &table, "--slot", &slot];
    cdc(&url, &args);
    let trace = dir.path().join("trace.jsonl");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let run_spilling = |args: &[&str]| -> Value {
        let _ = std::fs::remove_file(&trace);
        let out = tarn()
            .env("TMPDIR", &tmp)
            .args(["--format", "json", "import", &url, "--cdc", "--no-progress"])
            .args(args)
            .env("TARN_CDC_SPILL_BYTES", "20000")
            .env("TARN_CDC_PART_CHANGES", "250")
            .env("TARN_TEST_CDC_TRACE", &trace)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // One big transaction with every kind of change (a key changed, a row updated twice,
    // unchanged TOASTed values, a delete), and small ones around it.
    sql(
        &url,
        &format!(
            "UPDATE {src} SET n = 0 WHERE id = 1;
             BEGIN;
               UPDATE {src} SET n = n * 2, name = name || '!';
               UPDATE {src} SET id = id + 100000 WHERE id BETWEEN 10 AND 20;
               UPDATE {src} SET n = -1 WHERE id = 2;
               DELETE FROM {src} WHERE id BETWEEN 30 AND 40;
               INSERT INTO {src} SELECT g, g, 'new', NULL FROM generate_series(200001, 201000) g;
             COMMIT;
             INSERT INTO {src} VALUES (300000, 3, 'after', NULL);"
        ),
    );
    // How each spilled transaction was folded: in how many parts (null: whole, in memory).
    let parts = || -> Vec<Value> {
        std::fs::read_to_string(&trace)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("spilled").is_some())
            .map(|v| v["parts"].clone())
            .collect()
    };
    let run = run_spilling(&args);
    assert_eq!(run["spilled_transactions"], 1, "{run}");
    // A key changed: folded whole.
    assert_eq!(parts(), vec![Value::Null]);
    let cols = ["id", "n", "name", "length(doc)"];
    assert_same(&url, &src, &table, &cols);
    // Without key changes, a spilled transaction is folded in parts of about 250 changes
    // (memory holds one part; the MERGE reads the rows from a file): updates (twice, and
    // leaving TOASTed values unchanged), deletes, inserts, an insert deleted again and a
    // deleted key inserted again.
    sql(
        &url,
        &format!(
            "BEGIN;
               UPDATE {src} SET n = n + 1;
               UPDATE {src} SET name = 'twice' WHERE id % 7 = 0;
               DELETE FROM {src} WHERE id % 11 = 0;
               INSERT INTO {src} SELECT g, g, 'p', NULL FROM generate_series(400001, 401000) g;
               DELETE FROM {src} WHERE id BETWEEN 400001 AND 400100;
               INSERT INTO {src} VALUES (22, 22, 'back', NULL);
               UPDATE {src} SET n = 5 WHERE id <= 5;
             COMMIT;"
        ),
    );
    // What a run killed while applying one leaves (its process gone) is removed; what a
    // live process has is not.
    let stale = tmp.join("tarn-cdc-4294967295-x");
    let live = tmp.join(format!("tarn-cdc-{}-y", std::process::id()));
    std::fs::create_dir_all(stale.join("sub")).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    let run = run_spilling(&args);
    assert!(
        !stale.exists(),
        "a stale directory of a huge transaction was left"
    );
    assert!(live.exists(), "the directory of a live process was removed");
    std::fs::remove_dir(&live).unwrap();
    // Nothing of this run is left either.
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    assert_eq!(run["spilled_transactions"], 1, "{run}");
    let used = parts();
    assert!(
        used.len() == 1 && used[0].as_u64().is_some_and(|n| n >= 20),
        "folded in parts: {used:?}"
    );
    assert_same(&url, &src, &table, &cols);
    // Spilled, a truncate and what follows it in the same transaction, too.
    sql(
        &url,
        &format!(
            "BEGIN; TRUNCATE {src};
               INSERT INTO {src} SELECT g, g, 'again', NULL FROM generate_series(1, 2000) g;
               UPDATE {src} SET n = 7 WHERE id <= 1000;
             COMMIT;"
        ),
    );
    let run = run_spilling(&args);
    assert_eq!(run["spilled_transactions"], 1, "{run}");
    assert_eq!(run["tables"][0]["truncated"], true);
    assert!(parts()[0].as_u64().is_some_and(|n| n > 1), "{:?}", parts());
    assert_same(&url, &src, &table, &cols);
    // Without the lowered threshold nothing spills.
    sql(&url, &format!("UPDATE {src} SET n = n + 1 WHERE id <= 100"));
    let run = cdc(&url, &args);
    assert_eq!(run["spilled_transactions"], 0);
    assert_same(&url, &src, &table, &cols);
}

/// A throwaway PostgreSQL 15 cluster with `wal_level = replica` (initdb and pg_ctl as the
/// user postgres, in a temporary directory, on a free port), stopped when dropped.
struct Throwaway {
    dir: tempfile::TempDir,
    port: u16,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl Throwaway {
    /// `None` (saying why) when not root or PostgreSQL 15's binaries are missing.
    fn start() -> Option<Throwaway> {
        let root = StdCommand::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !root || !std::path::Path::new(&format!("{PG_BIN}/initdb")).exists() {
            eprintln!(
                "skipped: a throwaway PostgreSQL needs root (to run initdb as postgres) and {PG_BIN}/initdb"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let postgres = |args: &[&str]| {
            let out = StdCommand::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        StdCommand::new("chown")
            .args(["postgres:postgres", &dir.path().to_string_lossy()])
            .status()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = dir.path().join("data").to_string_lossy().to_string();
        postgres(&[
            &format!("{PG_BIN}/initdb"),
            "-D",
            &data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c wal_level=replica -c fsync=off",
            dir.path().display()
        );
        postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            &data,
            "-o",
            &options,
            "-l",
            &dir.path().join("log").to_string_lossy(),
            "-w",
            "start",
        ]);
        Some(Throwaway { dir, port })
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = StdCommand::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl"), "-D"])
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

#[test]
fn a_server_without_logical_wal_is_refused_in_one_line_and_nothing_is_created() {
    if pg_url().is_none() {
        return;
    }
    let Some(pg) = Throwaway::start() else { return };
    let url = pg.url();
    sql(
        &url,
        "CREATE TABLE orders (id int PRIMARY KEY, n int); INSERT INTO orders VALUES (1, 1)",
    );
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("orders").to_string_lossy().to_string();
    let err = cdc_fails(&url, &["--source", "orders", "--into", &table]);
    assert!(
        err.contains("has wal_level = replica")
            && err.contains("ALTER SYSTEM SET wal_level = logical")
            && err.contains("nothing was created"),
        "{err}"
    );
    assert_eq!(
        one(
            &url,
            "SELECT ((SELECT count(*) FROM pg_publication) + (SELECT count(*) FROM pg_replication_slots))::text"
        ),
        Some("0".into())
    );
    assert!(!std::path::Path::new(&table).exists());
}

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// `postgres://tarn_tls@localhost:PORT/DB?sslmode=verify-full&...` when the role that may
/// only connect over TLS is set up with REPLICATION (tests/run.sh does it as root).
fn tls_replication_role(url: &str) -> Option<String> {
    let ready = one(
        url,
        "SELECT (EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tarn_tls' AND rolcanlogin AND rolreplication) \
           AND EXISTS (SELECT 1 FROM pg_hba_file_rules WHERE type = 'hostssl' AND 'tarn_tls' = ANY(user_name)) \
           AND EXISTS (SELECT 1 FROM pg_hba_file_rules WHERE type = 'host' AND auth_method = 'reject' AND 'tarn_tls' = ANY(user_name)) \
           AND current_setting('ssl') = 'on')::text",
    );
    if ready.as_deref() != Some("true") || !std::path::Path::new(SNAKEOIL).exists() {
        eprintln!(
            "skipped: no PostgreSQL role tarn_tls with REPLICATION that may only connect over TLS (or no {SNAKEOIL}); run tests/run.sh as root once"
        );
        return None;
    }
    let u = url::Url::parse(url).unwrap();
    Some(format!(
        "postgres://tarn_tls@localhost:{}{}",
        u.port().unwrap_or(5432),
        u.path()
    ))
}

/// CDC as a role that may only connect over TLS: the copy, the replication stream and the
/// catalog look-ups all go over TLS (the server rejects anything else), with the server's
/// certificate and name checked (`verify-full`).
#[test]
fn cdc_runs_over_tls_with_verify_full() {
    let Some(url) = logical() else { return };
    let Some(role) = tls_replication_role(&url) else {
        return;
    };
    let src = unique("cdc_tls");
    let slot = unique("tarn_test_tls");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![src.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("tls").to_string_lossy().to_string();
    // The role does not own the table: the owner makes the publication.
    create_mix_table(&url, &src, 500);
    sql(
        &url,
        &format!("GRANT SELECT ON {src} TO tarn_tls; CREATE PUBLICATION {slot} FOR TABLE {src}"),
    );
    let tls = format!("{role}?sslmode=verify-full&sslrootcert={SNAKEOIL}");
    let args = [
        "--source",
        &src,
        "--into",
        &table,
        "--slot",
        &slot,
        "--publication",
        &slot,
    ];
    let first = cdc(&tls, &args);
    assert_eq!(first["snapshot"], true);
    write_mix(&url, &src, 500, 23, 200, 4, Duration::ZERO);
    // A new column: its type is looked up on a plain connection, over TLS too.
    sql(
        &url,
        &format!(
            "ALTER TABLE {src} ADD COLUMN note text; UPDATE {src} SET note = 'x' WHERE id < 5"
        ),
    );
    let run = cdc(&tls, &args);
    assert!(run["changes"].as_u64().unwrap() >= 200, "{run}");
    assert_same(&url, &src, &table, &["id", "n", "name", "note"]);
    // Without TLS the server refuses the role: one line, the table untouched.
    let err = cdc_fails(&format!("{role}?sslmode=disable"), &args);
    assert!(err.contains("cannot connect"), "{err}");
    // --drop over TLS drops the slot (the publication is the owner's: it stays).
    let dropped = cdc(&tls, &[&args[..], &["--drop"]].concat());
    assert_eq!(dropped["dropped_slot"], true);
    assert_eq!(dropped["dropped_publication"], false);
}

/// `--into` a catalog schema (several sources: a table per source under it) and a catalog
/// table name (one source): the tables are registered once their copy committed, and later
/// runs find them by name.
#[test]
fn targets_given_as_catalog_names_are_registered_and_followed() {
    let Some(url) = logical() else { return };
    let a = unique("cdc_cat_a");
    let b = unique("cdc_cat_b");
    let slot = unique("tarn_test_cat");
    let slot_one = unique("tarn_test_cat1");
    let _cleanup = Cleanup {
        url: url.clone(),
        slot: slot.clone(),
        tables: vec![a.clone(), b.clone()],
    };
    let _cleanup_one = Cleanup {
        url: url.clone(),
        slot: slot_one.clone(),
        tables: vec![],
    };
    create_mix_table(&url, &a, 300);
    create_mix_table(&url, &b, 200);
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh").to_string_lossy().to_string();
    let g = ["--warehouse", wh.as_str()];
    let tarn_in = |args: &[&str]| -> Value {
        let out = tarn()
            .args(["--format", "json"])
            .args(g)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    tarn_in(&["catalog", "create", "main"]);
    tarn_in(&["schema", "create", "main.shop"]);
    let sources = format!("{a},{b}");
    let run = |into: &str, sources: &str, slot: &str| {
        tarn_in(&[
            "import",
            &url,
            "--cdc",
            "--no-progress",
            "--source",
            sources,
            "--into",
            into,
            "--slot",
            slot,
        ])
    };
    let first = run("main.shop", &sources, &slot);
    assert_eq!(first["snapshot"], true);
    let one_table = run("main.shop.only_a", &a, &slot_one);
    assert_eq!(one_table["snapshot"], true);
    let listed = tarn_in(&["table", "list", "main.shop"]);
    let mut names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    let mut expected = vec![a.as_str(), b.as_str(), "only_a"];
    expected.sort();
    assert_eq!(names, expected, "{listed}");
    write_mix(&url, &a, 300, 29, 150, 3, Duration::ZERO);
    write_mix(&url, &b, 200, 31, 100, 3, Duration::ZERO);
    let second = run("main.shop", &sources, &slot);
    assert_eq!(second["snapshot"], false);
    assert_eq!(second["changes"], 250);
    let again = run("main.shop.only_a", &a, &slot_one);
    assert_eq!(again["changes"], 150);
    // Each catalog table holds what its source holds.
    for (source, leaf) in [(&a, a.as_str()), (&b, b.as_str()), (&a, "only_a")] {
        let q = format!(
            "SELECT CAST(id AS VARCHAR) AS id, CAST(n AS VARCHAR) AS n, name FROM {leaf} ORDER BY id"
        );
        let name = format!("main.shop.{leaf}");
        let delta = tarn_in(&["query", &q, "--table", &name]);
        let pg = sql(
            &url,
            &format!("SELECT id::text, n::text, name FROM {source} ORDER BY id"),
        );
        let delta: Vec<Vec<Option<String>>> = delta
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                ["id", "n", "name"]
                    .iter()
                    .map(|c| r[*c].as_str().map(str::to_string))
                    .collect()
            })
            .collect();
        assert_eq!(pg, delta, "{name}");
    }
}

/// The last `lsn` of each table's CDC commits (0: no table yet).
fn held(table: &str) -> u64 {
    if !std::path::Path::new(table).join("_delta_log").exists() {
        return 0;
    }
    cdc_commits(table)
        .last()
        .map(|c| lsn(c["lsn"].as_str().unwrap()))
        .unwrap_or(0)
}

/// A run killed at each fault point (as `kill -9` would), then run again: both tables equal
/// their sources, every change applied once, and the slot never confirmed a position past
/// a change that Delta does not hold.
#[test]
fn a_run_killed_at_each_fault_point_resumes_exactly_once() {
    let Some(url) = logical() else { return };
    // Points in the first run (the copy), and in a later run (applying changes).
    let in_copy = [
        "cdc:after-publication",
        "cdc:after-slot",
        "cdc:between-snapshot-commits",
    ];
    let in_changes = [
        "cdc:between-table-commits",
        "cdc:after-commit-before-confirm",
    ];
    let mut all: Vec<&str> = in_copy.iter().chain(&in_changes).copied().collect();
    all.sort();
    let mut known = tarn_import::cdc::FAULT_POINTS.to_vec();
    known.sort();
    assert_eq!(all, known, "every fault point is tested");
    for point in in_copy.iter().chain(&in_changes) {
        let tag = point.trim_start_matches("cdc:").replace('-', "_");
        let a = unique(&format!("cdc_f_{}_a", &tag[..6]));
        let b = unique(&format!("cdc_f_{}_b", &tag[..6]));
        let slot = unique("tarn_test_fault");
        let _cleanup = Cleanup {
            url: url.clone(),
            slot: slot.clone(),
            tables: vec![a.clone(), b.clone()],
        };
        let dir = tempfile::tempdir().unwrap();
        let into = dir.path().join("f").to_string_lossy().to_string();
        let (ta, tb) = (format!("{into}/{a}"), format!("{into}/{b}"));
        create_mix_table(&url, &a, 200);
        create_mix_table(&url, &b, 200);
        let sources = format!("{a},{b}");
        // One batch per run: both tables' changes in it.
        let args = [
            "--source",
            &sources,
            "--into",
            &into,
            "--slot",
            &slot,
            "--batch-seconds",
            "30",
        ];
        let killed = |point: &str| {
            let out = tarn()
                .args(["import", &url, "--cdc", "--no-progress"])
                .args(args)
                .env("TARN_TEST_FAULT", point)
                .output()
                .unwrap();
            assert!(!out.status.success(), "{point}: the run was not killed");
            assert!(
                String::from_utf8_lossy(&out.stderr)
                    .contains(&format!("killing this process at `{point}`")),
                "{point}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        if in_copy.contains(point) {
            killed(point);
            write_mix(&url, &a, 200, 37, 60, 3, Duration::ZERO);
        } else {
            cdc(&url, &args);
            // Where the changes written next begin: a confirmed position past it would
            // lose them.
            let before_changes = lsn(&one(&url, "SELECT pg_current_wal_lsn()::text").unwrap());
            write_mix(&url, &a, 200, 37, 60, 3, Duration::ZERO);
            write_mix(&url, &b, 200, 41, 40, 3, Duration::ZERO);
            killed(point);
            let slot_at = confirmed(&url, &slot).unwrap();
            let (ha, hb) = (held(&ta), held(&tb));
            if ha.min(hb) < before_changes {
                assert!(
                    slot_at <= before_changes,
                    "{point}: the slot confirmed {slot_at} though a table holds only {}",
                    ha.min(hb)
                );
            }
            assert!(slot_at <= ha.max(hb).max(before_changes), "{point}");
        }
        // Started again: everything arrives, once.
        cdc(&url, &args);
        // (New ids: a second mix could pick rows the first deleted, changing nothing.)
        sql(
            &url,
            &format!("INSERT INTO {b} SELECT g, g, 'late' FROM generate_series(500, 529) g"),
        );
        cdc(&url, &args);
        assert_same(&url, &a, &ta, &["id", "n", "name"]);
        assert_same(&url, &b, &tb, &["id", "n", "name"]);
        // Changes made before the (new) copy are in it; the others were applied once.
        let expected = if in_copy.contains(point) {
            [0, 30]
        } else {
            [60, 70]
        };
        for (t, expected) in [&ta, &tb].into_iter().zip(expected) {
            let commits = cdc_commits(t);
            let last_snapshot = commits
                .iter()
                .rposition(|c| c["kind"] == "snapshot")
                .unwrap();
            let after = &commits[last_snapshot..];
            for pair in after.windows(2) {
                assert_eq!(
                    pair[1]["previousLsn"], pair[0]["lsn"],
                    "{point}: no gap or overlap"
                );
            }
            let applied: u64 = after[1..]
                .iter()
                .map(|c| c["changes"].as_u64().unwrap())
                .sum();
            assert_eq!(applied, expected, "{point}: {t}");
        }
    }
}
