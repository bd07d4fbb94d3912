//! End-to-end tests of the `tarn` binary: every command driven the way a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

fn tarn() -> Command {
    let mut cmd = Command::cargo_bin("tarn").unwrap();
    cmd.env_remove("TARN_FORMAT");
    cmd
}

/// Runs tarn with `--format json`, expects success, returns the parsed output.
fn json(args: &[&str]) -> Value {
    let out = tarn()
        .arg("--format")
        .arg("json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tarn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON from {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs tarn, expects failure, returns stderr (which must be one line).
fn fails(args: &[&str]) -> String {
    let out = tarn().args(args).output().unwrap();
    assert!(!out.status.success(), "tarn {args:?} should have failed");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "error should be one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn version(table: &str) -> u64 {
    json(&["describe", table])["version"].as_u64().unwrap()
}

fn count(table: &str, extra: &[&str]) -> i64 {
    let mut args = vec!["query", "SELECT COUNT(*) AS n FROM t"];
    let spec = format!("t={table}");
    args.extend(["--table", spec.as_str()]);
    args.extend(extra);
    json(&args)[0]["n"].as_i64().unwrap()
}

const ORDERS_SCHEMA: &str =
    "id bigint not null, customer string, amount decimal(12,2), created_at timestamp";

fn orders_table(dir: &Path) -> String {
    let t = dir.join("orders").to_string_lossy().to_string();
    tarn()
        .args(["create", &t, "--schema", ORDERS_SCHEMA])
        .assert()
        .success();
    t
}

#[test]
fn create_write_query_history_describe() {
    let dir = tempfile::tempdir().unwrap();
    let t = orders_table(dir.path());
    let csv = write_file(dir.path(), "a.csv", "id,customer,amount,created_at\n1,ann,10.50,2026-01-05 10:00:00\n2,bob,20.25,2026-01-06T11:00:00Z\n");
    let r = json(&["write", &t, csv.to_str().unwrap()]);
    assert_eq!(r["version"], 1);
    assert_eq!(r["rows"], 2);
    let jsonl = write_file(
        dir.path(),
        "b.jsonl",
        "{\"id\":3,\"customer\":\"cy\",\"amount\":5.00,\"created_at\":\"2026-02-01T00:00:00Z\"}\n",
    );
    assert_eq!(json(&["write", &t, jsonl.to_str().unwrap()])["version"], 2);

    let rows = json(&[
        "query",
        "SELECT id, customer, CAST(amount AS VARCHAR) AS amount FROM orders ORDER BY id",
        "--table",
        &t,
    ]);
    assert_eq!(rows.as_array().unwrap().len(), 3);
    assert_eq!(rows[0]["customer"], "ann");
    assert_eq!(rows[1]["amount"], "20.25");
    assert_eq!(count(&t, &["--version", "1"]), 2);
    assert_eq!(
        json(&[
            "query",
            "SELECT * FROM orders",
            "--table",
            &t,
            "--version",
            "0"
        ]),
        serde_json::json!([])
    );

    let history = json(&["history", &t]);
    let versions: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![2, 1, 0]);
    assert_eq!(history[2]["operation"], "CREATE TABLE");

    let d = json(&["describe", &t]);
    assert_eq!(d["version"], 2);
    let types: Vec<&str> = d["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec!["bigint", "string", "decimal(12,2)", "timestamp"]
    );
    assert_eq!(d["schema"][0]["nullable"], false);
    assert_eq!(d["num_files"], 2);

    let csv_out = tarn()
        .args([
            "query",
            "SELECT id FROM orders ORDER BY id",
            "--table",
            &t,
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&csv_out.stdout), "id\n1\n2\n3\n");
}

/// Runs `sql` over `t=table` and returns the `n` column of its single row.
fn query_n(table: &str, sql: &str) -> i64 {
    let spec = format!("t={table}");
    let rows = json(&["query", sql, "--table", &spec]);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{sql}: {rows}");
    rows[0]["n"].as_i64().unwrap()
}

#[test]
fn queries_skip_files_by_the_logs_statistics_and_read_partitioned_tables() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("events").to_string_lossy().to_string();
    tarn()
        .args([
            "create",
            &t,
            "--schema",
            "id bigint, kind string, ts timestamp",
        ])
        .assert()
        .success();
    // Three commits, three files with disjoint ids. The last file's latest timestamp has
    // microseconds, which the log's statistics (milliseconds) round down.
    for (i, rows) in [
        "1,a,2026-01-01T00:00:00Z\n2,b,2026-01-01T00:00:01Z\n",
        "101,a,2026-01-02T00:00:00Z\n102,c,2026-01-02T00:00:01Z\n",
        "201,b,2026-01-03T00:00:00Z\n202,c,2026-01-03T00:00:00.123456Z\n",
    ]
    .iter()
    .enumerate()
    {
        let csv = write_file(
            dir.path(),
            &format!("{i}.csv"),
            &format!("id,kind,ts\n{rows}"),
        );
        json(&["write", &t, csv.to_str().unwrap()]);
    }
    assert_eq!(
        query_n(
            &t,
            "SELECT COUNT(*) AS n FROM t WHERE id > 100 AND id < 200"
        ),
        2
    );
    assert_eq!(
        query_n(&t, "SELECT COUNT(*) AS n FROM t WHERE kind = 'c'"),
        2
    );
    assert_eq!(
        query_n(&t, "SELECT COUNT(*) AS n FROM t WHERE id > 1000"),
        0
    );
    assert_eq!(
        query_n(
            &t,
            "SELECT COUNT(*) AS n FROM t WHERE ts > TIMESTAMP '2026-01-03T00:00:00.123400Z'"
        ),
        1,
        "a file's timestamp maximum in the log is a lower bound to the millisecond"
    );
    assert_eq!(
        query_n(
            &t,
            "SELECT COUNT(*) AS n FROM t WHERE ts >= TIMESTAMP '2026-01-03T00:00:00.123456Z'"
        ),
        1
    );
    // Only the file whose ids can match is opened.
    let spec = format!("t={t}");
    let plan = tarn()
        .args([
            "query",
            "EXPLAIN ANALYZE SELECT COUNT(*) AS n FROM t WHERE id > 100 AND id < 200",
            "--table",
            &spec,
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.contains("files_ranges_pruned_statistics=3 total \u{2192} 1 matched"),
        "{plan}"
    );

    // The log's row counts answer a bare count without reading a file, and give the
    // planner each table's size: a small table is the side of a join built in memory.
    let explain = |sql: &str, tables: &[&str]| {
        let mut args = vec!["query".to_string(), format!("EXPLAIN {sql}")];
        for t in tables {
            args.extend(["--table".to_string(), t.to_string()]);
        }
        args.extend(["--format".to_string(), "csv".to_string()]);
        let out = tarn().args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(query_n(&t, "SELECT COUNT(*) AS n FROM t"), 6);
    let plan = explain("SELECT COUNT(*) AS n FROM t", &[&spec]);
    assert!(!plan.contains("DataSourceExec"), "{plan}");
    let kinds = dir.path().join("kinds").to_string_lossy().to_string();
    let csv = write_file(
        dir.path(),
        "kinds.csv",
        "kind,label\na,first\nb,second\nc,third\n",
    );
    json(&["write", &kinds, csv.to_str().unwrap(), "--create"]);
    let kinds_spec = format!("k={kinds}");
    let join = "SELECT k.label, COUNT(*) AS n FROM t JOIN k ON k.kind = t.kind GROUP BY k.label";
    let plan = explain(join, &[&spec, &kinds_spec]);
    assert!(plan.contains("HashJoinExec: mode=CollectLeft"), "{plan}");
    let rows = json(&[
        "query",
        &format!("{join} ORDER BY 1"),
        "--table",
        &spec,
        "--table",
        &kinds_spec,
    ]);
    assert_eq!(
        rows,
        serde_json::json!([{"label": "first", "n": 2}, {"label": "second", "n": 2}, {"label": "third", "n": 2}])
    );

    // A partitioned table: the partition values live in the log, not in the files.
    let p = dir.path().join("by_day").to_string_lossy().to_string();
    tarn()
        .args([
            "create",
            &p,
            "--schema",
            "id bigint, day date",
            "--partition-by",
            "day",
        ])
        .assert()
        .success();
    let csv = write_file(
        dir.path(),
        "days.csv",
        "id,day\n1,2026-01-01\n2,2026-01-01\n3,2026-01-02\n",
    );
    json(&["write", &p, csv.to_str().unwrap()]);
    assert_eq!(
        query_n(
            &p,
            "SELECT COUNT(*) AS n FROM t WHERE day = DATE '2026-01-01'"
        ),
        2
    );
    assert_eq!(
        query_n(
            &p,
            "SELECT SUM(id) AS n FROM t WHERE day > DATE '2026-01-01'"
        ),
        3
    );
}

#[test]
fn dashboard_query_runs_over_users_and_orders() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users").to_string_lossy().to_string();
    let orders = dir.path().join("orders").to_string_lossy().to_string();
    tarn()
        .args([
            "create",
            &users,
            "--schema",
            "id bigint not null, name string",
        ])
        .assert()
        .success();
    tarn()
        .args([
            "create",
            &orders,
            "--schema",
            "id bigint not null, user_id bigint, amount decimal(12,2), created_at timestamp",
        ])
        .assert()
        .success();
    let u = write_file(dir.path(), "u.csv", "id,name\n1,ann\n2,bob\n");
    let o = write_file(
        dir.path(),
        "o.csv",
        "id,user_id,amount,created_at\n1,1,10.00,2026-01-05T00:00:00Z\n2,1,30.00,2026-01-20T00:00:00Z\n3,2,5.00,2026-02-02T00:00:00Z\n",
    );
    json(&["write", &users, u.to_str().unwrap()]);
    json(&["write", &orders, o.to_str().unwrap()]);
    let sql = "SELECT DATE_TRUNC('month', o.created_at) AS month, u.name, COUNT(*) AS n, AVG(o.amount) AS avg_amount, \
               SUM(o.amount) AS revenue FROM orders o JOIN users u ON u.id = o.user_id GROUP BY 1, 2 ORDER BY 1, 2";
    let rows = json(&["query", sql, "--table", &orders, "--table", &users]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "ann");
    assert_eq!(rows[0]["n"], 2);
    assert!(rows[0]["month"].as_str().unwrap().starts_with("2026-01-01"));
    assert_eq!(rows[1]["n"], 1);
}

#[test]
fn bad_inputs_give_one_line_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = orders_table(dir.path());
    let good = write_file(
        dir.path(),
        "good.csv",
        "id,customer,amount,created_at\n1,ann,1.00,2026-01-01T00:00:00Z\n",
    );
    json(&["write", &t, good.to_str().unwrap()]);

    let ragged = write_file(
        dir.path(),
        "ragged.csv",
        "id,customer,amount,created_at\n2,bob,1.00,2026-01-01T00:00:00Z\n3,cy\n",
    );
    let err = fails(&["write", &t, ragged.to_str().unwrap()]);
    assert!(err.contains("ragged.csv") && err.contains("line"), "{err}");

    let wrong_type = write_file(
        dir.path(),
        "wrong.csv",
        "id,customer,amount,created_at\nfour,bob,1.00,2026-01-01T00:00:00Z\n",
    );
    let err = fails(&["write", &t, wrong_type.to_str().unwrap()]);
    assert!(err.contains("wrong.csv") && err.contains("four"), "{err}");

    let bad_json = write_file(dir.path(), "bad.json", "{\"id\": 5, \"customer\": \n");
    let err = fails(&["write", &t, bad_json.to_str().unwrap()]);
    assert!(err.contains("bad.json"), "{err}");

    // A good file followed by a bad one: nothing from either is committed.
    let err = fails(&[
        "write",
        &t,
        good.to_str().unwrap(),
        wrong_type.to_str().unwrap(),
    ]);
    assert!(err.contains("wrong.csv"), "{err}");

    let err = fails(&["query", "SELEC * FROM t", "--table", &format!("t={t}")]);
    assert!(
        err.to_lowercase().contains("sql") || err.contains("Expected"),
        "{err}"
    );
    let err = fails(&["query", "SELECT nope FROM t", "--table", &format!("t={t}")]);
    assert!(err.contains("nope"), "{err}");

    assert_eq!(version(&t), 1);
    assert_eq!(count(&t, &[]), 1);

    let err = fails(&[
        "create",
        &dir.path().join("x").to_string_lossy(),
        "--schema",
        "",
    ]);
    assert!(err.contains("empty"), "{err}");
    let err = fails(&["create", &t, "--schema", "id bigint"]);
    assert!(err.contains("already exists"), "{err}");
    let nothing = dir.path().join("nothing").to_string_lossy().to_string();
    std::fs::create_dir_all(&nothing).unwrap();
    let err = fails(&["history", &nothing]);
    assert!(err.contains("no Delta table"), "{err}");
    let err = fails(&["write", &nothing, good.to_str().unwrap()]);
    assert!(err.contains("--create"), "{err}");
    let err = fails(&["describe", &dir.path().join("missing").to_string_lossy()]);
    assert!(err.contains("no Delta table"), "{err}");
    let err = fails(&["write", &t, dir.path().join("absent.csv").to_str().unwrap()]);
    assert!(err.contains("absent.csv"), "{err}");
}

#[test]
fn time_travel_errors_name_the_valid_range() {
    let dir = tempfile::tempdir().unwrap();
    let t = orders_table(dir.path());
    let err = fails(&["query", "SELECT 1", "--table", &t, "--version", "12"]);
    assert!(
        err.contains("no version 12") && err.contains("latest is 0"),
        "{err}"
    );
    let err = fails(&["query", "SELECT 1", "--table", &t, "--as-of", "2001-01-01"]);
    assert!(
        err.contains("did not exist yet") && err.contains("version 0"),
        "{err}"
    );
    let err = fails(&[
        "query",
        "SELECT 1",
        "--table",
        &t,
        "--as-of",
        "last tuesday",
    ]);
    assert!(err.contains("RFC 3339"), "{err}");
}

#[test]
fn as_of_uses_commit_times_from_the_log_even_after_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let t = orders_table(dir.path());
    for i in 1..=3 {
        std::thread::sleep(Duration::from_millis(50));
        let f = write_file(
            dir.path(),
            &format!("{i}.csv"),
            &format!("id,customer,amount,created_at\n{i},c,1.00,2026-01-01T00:00:00Z\n"),
        );
        json(&["write", &t, f.to_str().unwrap()]);
    }
    let history = json(&["history", &t]);
    let copy = dir.path().join("copy");
    let status = StdCommand::new("cp")
        .args(["-r", &t, copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    // Make every file in the copy look brand new.
    std::thread::sleep(Duration::from_millis(50));
    let status = StdCommand::new("sh")
        .arg("-c")
        .arg(format!(
            "find '{}' -type f -exec touch {{}} +",
            copy.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let copy = copy.to_string_lossy().to_string();
    for commit in history.as_array().unwrap() {
        let ts = commit["timestamp"].as_str().unwrap();
        let v = commit["version"].as_i64().unwrap();
        assert_eq!(count(&t, &["--as-of", ts]), v, "original as of {ts}");
        assert_eq!(count(&copy, &["--as-of", ts]), v, "copy as of {ts}");
    }
}

/// Sets the time commit `version` of `table` records (`commitInfo.timestamp`, in ms), as a
/// writer with a wrong clock would have.
fn set_commit_time(table: &str, version: u64, millis: i64) {
    let path = Path::new(table)
        .join("_delta_log")
        .join(format!("{version:020}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut action: Value = serde_json::from_str(line).unwrap();
            if let Some(ts) = action.pointer_mut("/commitInfo/timestamp") {
                *ts = Value::from(millis);
            }
            action.to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn as_of_goes_by_monotonic_adjusted_commit_times_when_clocks_go_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let t = orders_table(dir.path());
    for i in 1..=3 {
        let f = write_file(
            dir.path(),
            &format!("{i}.csv"),
            &format!("id,customer,amount,created_at\n{i},c,1.00,2026-01-01T00:00:00Z\n"),
        );
        json(&["write", &t, f.to_str().unwrap()]);
    }
    // Writers whose clocks disagree: version 2 records a time before version 1's.
    // 2026-01-01T00:00:00Z = 1767225600000 ms.
    let t0 = 1_767_225_600_000i64;
    for (version, offset) in [(0, 0), (1, 10_000), (2, 5_000), (3, 20_000)] {
        set_commit_time(&t, version, t0 + offset);
    }
    // The protocol's adjusted times: 0 s, 10 s, 10.001 s (pushed past version 1), 20 s.
    for (at, version) in [
        ("2026-01-01T00:00:00Z", 0),
        // Version 2's recorded 5 s is not its time: it came after version 1 (10 s).
        ("2026-01-01T00:00:05Z", 0),
        ("2026-01-01T00:00:07Z", 0),
        ("2026-01-01T00:00:10Z", 1),
        ("2026-01-01T00:00:10.001Z", 2),
        ("2026-01-01T00:00:19Z", 2),
        ("2026-01-01T00:00:20Z", 3),
        ("2027-01-01T00:00:00Z", 3),
    ] {
        assert_eq!(
            json(&["describe", &t, "--as-of", at])["version"],
            version,
            "as of {at}"
        );
        assert_eq!(count(&t, &["--as-of", at]), version, "rows as of {at}");
    }
    let err = fails(&["query", "SELECT 1", "--table", &t, "--as-of", "2025-12-31"]);
    assert!(
        err.contains("did not exist yet") && err.contains("2026-01-01T00:00:20.000Z"),
        "{err}"
    );
}

#[test]
fn schema_evolution_needs_merge_schema_and_refuses_lossy_types() {
    let dir = tempfile::tempdir().unwrap();
    let t = orders_table(dir.path());
    let base = write_file(
        dir.path(),
        "base.csv",
        "id,customer,amount,created_at\n1,ann,1.00,2026-01-01T00:00:00Z\n",
    );
    json(&["write", &t, base.to_str().unwrap()]);
    let wider = write_file(
        dir.path(),
        "wider.csv",
        "id,customer,amount,created_at,discount\n2,bob,2.00,2026-01-02T00:00:00Z,0.5\n",
    );
    let err = fails(&["write", &t, wider.to_str().unwrap()]);
    assert!(
        err.contains("discount") && err.contains("--merge-schema"),
        "{err}"
    );
    assert_eq!(version(&t), 1);
    let r = json(&["write", &t, wider.to_str().unwrap(), "--merge-schema"]);
    assert_eq!(r["added_columns"][0], "discount");
    let rows = json(&[
        "query",
        "SELECT id, discount FROM t ORDER BY id",
        "--table",
        &format!("t={t}"),
    ]);
    assert!(rows[0]["discount"].is_null(), "{rows}");
    assert_eq!(rows[1]["discount"], 0.5);

    // A JSON number cannot silently become a string column, nor text a number.
    let typed = write_file(
        dir.path(),
        "typed.json",
        "{\"id\": 3, \"customer\": \"x\", \"amount\": \"lots\"}\n",
    );
    let err = fails(&["write", &t, typed.to_str().unwrap()]);
    assert!(err.contains("typed.json"), "{err}");

    // alter add-column makes a nullable column without rewriting data.
    let r = json(&["alter", &t, "add-column", "note string"]);
    assert_eq!(r["version"], 3);
    let err = fails(&["alter", &t, "add-column", "note string"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(version(&t), 3);
}

#[test]
fn upsert_delete_update_restore() {
    let dir = tempfile::tempdir().unwrap();
    let t = orders_table(dir.path());
    let base = write_file(dir.path(), "base.csv", "id,customer,amount,created_at\n1,ann,1.00,2026-01-01T00:00:00Z\n2,bob,2.00,2026-01-02T00:00:00Z\n");
    json(&["write", &t, base.to_str().unwrap()]);
    let change = write_file(dir.path(), "change.csv", "id,customer,amount,created_at\n2,bob,20.00,2026-01-02T00:00:00Z\n3,cy,3.00,2026-01-03T00:00:00Z\n");
    let r = json(&["write", &t, change.to_str().unwrap(), "--upsert-on", "id"]);
    assert_eq!(
        (
            r["inserted"].as_u64(),
            r["updated"].as_u64(),
            r["version"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
    let sum = |extra: &[&str]| -> String {
        let spec = format!("t={t}");
        let mut args = vec![
            "query",
            "SELECT CAST(SUM(amount) AS VARCHAR) AS s FROM t",
            "--table",
            spec.as_str(),
        ];
        args.extend(extra);
        json(&args)[0]["s"].as_str().unwrap().to_string()
    };
    assert_eq!(sum(&[]), "24.00");

    let r = json(&["delete", &t, "--where", "id = 1"]);
    assert_eq!(
        (r["rows"].as_u64(), r["version"].as_u64()),
        (Some(1), Some(3))
    );
    let r = json(&[
        "update",
        &t,
        "--set",
        "amount = amount * 2",
        "--where",
        "id = 3",
    ]);
    assert_eq!(
        (r["rows"].as_u64(), r["version"].as_u64()),
        (Some(1), Some(4))
    );
    assert_eq!(sum(&[]), "26.00");
    let err = fails(&["update", &t, "--set", "nope = 1"]);
    assert!(err.contains("nope"), "{err}");
    let err = fails(&["delete", &t, "--where", "nope = 1"]);
    assert!(err.contains("nope"), "{err}");
    assert_eq!(version(&t), 4);

    let r = json(&["restore", &t, "--version", "1"]);
    assert_eq!(
        (r["version"].as_u64(), r["restored_version"].as_u64()),
        (Some(5), Some(1))
    );
    assert_eq!(sum(&[]), "3.00");
    assert_eq!(sum(&["--version", "4"]), "26.00");

    let overwrite = write_file(
        dir.path(),
        "over.csv",
        "id,customer,amount,created_at\n9,zed,9.00,2026-03-01T00:00:00Z\n",
    );
    json(&[
        "write",
        &t,
        overwrite.to_str().unwrap(),
        "--mode",
        "overwrite",
    ]);
    assert_eq!(sum(&[]), "9.00");
    let err = fails(&[
        "write",
        &t,
        overwrite.to_str().unwrap(),
        "--replace-where",
        "id = 9",
    ]);
    assert!(err.contains("--mode overwrite"), "{err}");
}

#[test]
fn optimize_vacuum_checkpoint_and_properties() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t").to_string_lossy().to_string();
    tarn()
        .args([
            "create",
            &t,
            "--schema",
            "id bigint, v string",
            "--property",
            "delta.checkpointInterval=3",
        ])
        .assert()
        .success();
    for i in 0..4 {
        let f = write_file(
            dir.path(),
            &format!("{i}.csv"),
            &format!("id,v\n{i},x{i}\n"),
        );
        json(&["write", &t, f.to_str().unwrap()]);
    }
    let log = Path::new(&t).join("_delta_log");
    // Delta checkpoints when (version + 1) is a multiple of the interval: versions 2, 5, ...
    assert!(
        log.join("00000000000000000002.checkpoint.parquet").exists(),
        "automatic checkpoint at interval 3"
    );
    let r = json(&["optimize", &t]);
    assert_eq!(r["files_removed"], 4);
    assert_eq!(r["files_added"], 1);
    assert_eq!(count(&t, &[]), 4);
    let r = json(&["vacuum", &t, "--dry-run", "--retain-hours", "0", "--force"]);
    assert_eq!(r["files"].as_array().unwrap().len(), 4);
    let err = fails(&["vacuum", &t, "--retain-hours", "0"]);
    assert!(err.contains("--force"), "{err}");
    assert!(
        log.join("00000000000000000005.checkpoint.parquet").exists(),
        "optimize made version 5"
    );
    json(&[
        "alter",
        &t,
        "set-property",
        "delta.logRetentionDuration=interval 60 days",
    ]);
    assert!(!log.join("00000000000000000006.checkpoint.parquet").exists());
    assert_eq!(json(&["checkpoint", &t])["version"], 6);
    assert!(log.join("00000000000000000006.checkpoint.parquet").exists());
    assert_eq!(
        json(&["describe", &t])["properties"]["delta.logRetentionDuration"],
        "interval 60 days"
    );
    let err = fails(&["alter", &t, "set-property", "delta.noSuchThing=1"]);
    assert!(err.contains("noSuchThing"), "{err}");
}

/// Tables Tarn creates checkpoint every 10 commits unless told otherwise, so a reader
/// replays at most 9 commit files.
#[test]
fn new_tables_checkpoint_every_ten_commits() {
    let dir = tempfile::tempdir().unwrap();
    let row = write_file(dir.path(), "row.csv", "id\n1\n");
    let created = dir.path().join("created").to_string_lossy().to_string();
    tarn()
        .args(["create", &created, "--schema", "id bigint"])
        .assert()
        .success();
    let written = dir.path().join("written").to_string_lossy().to_string();
    json(&["write", &written, row.to_str().unwrap(), "--create"]);
    let custom = dir.path().join("custom").to_string_lossy().to_string();
    tarn()
        .args([
            "create",
            &custom,
            "--schema",
            "id bigint",
            "--property",
            "delta.checkpointInterval=50",
        ])
        .assert()
        .success();
    for (t, interval) in [(&created, "10"), (&written, "10"), (&custom, "50")] {
        assert_eq!(
            json(&["describe", t])["properties"]["delta.checkpointInterval"],
            interval
        );
        while version(t) < 9 {
            json(&["write", t, row.to_str().unwrap()]);
        }
        let checkpoint = Path::new(t).join("_delta_log/00000000000000000009.checkpoint.parquet");
        assert_eq!(checkpoint.exists(), interval == "10", "{t}");
    }
}

/// Commit files that a checkpoint covers and that are older than
/// `delta.logRetentionDuration` are deleted when a commit writes a checkpoint, and only
/// when `delta.enableExpiredLogCleanup` allows it.
#[test]
fn expired_commit_files_are_deleted_when_a_checkpoint_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log_files = |t: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(Path::new(t).join("_delta_log"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".json") || n.ends_with(".checkpoint.parquet"))
            .map(|n| {
                let (digits, rest) = n.split_once('.').unwrap();
                format!("{}.{rest}", digits.parse::<u64>().unwrap())
            })
            .collect();
        names.sort();
        names
    };
    for cleanup in ["true", "false"] {
        let t = dir.path().join(cleanup).to_string_lossy().to_string();
        tarn()
            .args([
                "create",
                &t,
                "--schema",
                "id bigint",
                "--property",
                "delta.checkpointInterval=3",
                "--property",
                "delta.logRetentionDuration=interval 0 seconds",
                "--property",
                &format!("delta.enableExpiredLogCleanup={cleanup}"),
            ])
            .assert()
            .success();
        let row = write_file(dir.path(), "row.csv", "id\n1\n");
        let mut after = Vec::new();
        for _ in 1..=5 {
            json(&["write", &t, row.to_str().unwrap()]);
            after.push(log_files(&t));
        }
        if cleanup == "false" {
            assert_eq!(after[4].len(), 8, "nothing deleted: {:?}", after[4]);
            continue;
        }
        // Version 2 writes a checkpoint: versions 0 and 1 go.
        assert_eq!(after[0], ["0.json", "1.json"]);
        assert_eq!(after[1], ["2.checkpoint.parquet", "2.json"]);
        assert_eq!(
            after[3],
            ["2.checkpoint.parquet", "2.json", "3.json", "4.json"]
        );
        // Version 5 writes the next one: everything before it goes.
        assert_eq!(after[4], ["5.checkpoint.parquet", "5.json"]);
        assert_eq!(count(&t, &[]), 5);
        assert_eq!(version(&t), 5);
    }
}

#[test]
fn concurrent_appenders_lose_no_commit() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t").to_string_lossy().to_string();
    tarn()
        .args(["create", &t, "--schema", "writer bigint, n bigint"])
        .assert()
        .success();
    let bin = assert_cmd::cargo::cargo_bin("tarn");
    let mut children = Vec::new();
    for w in 0..4 {
        let files: Vec<PathBuf> = (0..3)
            .map(|n| {
                write_file(
                    dir.path(),
                    &format!("w{w}-{n}.csv"),
                    &format!("writer,n\n{w},{n}\n"),
                )
            })
            .collect();
        let bin = bin.clone();
        let t = t.clone();
        children.push(std::thread::spawn(move || {
            for f in files {
                let out = StdCommand::new(&bin)
                    .args(["write", &t, f.to_str().unwrap()])
                    .stderr(Stdio::piped())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }));
    }
    for c in children {
        c.join().unwrap();
    }
    assert_eq!(count(&t, &[]), 12);
    let versions: Vec<u64> = json(&["history", &t])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, (0..=12).rev().collect::<Vec<_>>());
}

#[test]
fn a_killed_write_leaves_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t").to_string_lossy().to_string();
    tarn()
        .args(["create", &t, "--schema", "id bigint, payload string"])
        .assert()
        .success();
    let big = dir.path().join("big.csv");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        writeln!(f, "id,payload").unwrap();
        for i in 0..3_000_000u64 {
            writeln!(f, "{i},row-{i}-abcdefghijklmnopqrstuvwxyz").unwrap();
        }
    }
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("tarn"))
        .args(["write", &t, big.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has started writing data files, before it can commit.
    let started = std::time::Instant::now();
    loop {
        let has_data = std::fs::read_dir(&t)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".parquet"));
        if has_data
            || started.elapsed() > Duration::from_secs(60)
            || child.try_wait().unwrap().is_some()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let v = version(&t);
    let n = count(&t, &[]);
    assert!(
        (v == 0 && n == 0) || (v == 1 && n == 3_000_000),
        "partial state: version {v}, {n} rows"
    );
}

#[test]
fn help_teaches_with_examples() {
    let out = tarn().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Examples:") && text.contains("tarn write"),
        "{text}"
    );
    let out = tarn().args(["write", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--upsert-on"));
}

#[test]
fn quickstart_builds_a_warehouse_and_runs_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let out = tarn()
        .args(["quickstart", "--dir", wh.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("MERGE") && text.contains("revenue"), "{text}");
    assert_eq!(version(wh.join("orders").to_str().unwrap()), 4);
    let err = fails(&["quickstart", "--dir", wh.to_str().unwrap()]);
    assert!(err.contains("not empty"), "{err}");
}

/// Runs tarn with a warehouse, `--format json`, expecting success.
fn wh_json(wh: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--warehouse", wh.to_str().unwrap()];
    all.extend(args);
    json(&all)
}

/// `--warehouse wh --catalog catalog` and then `extra`, as arguments.
fn wh_and_catalog(wh: &Path, catalog: &Path, extra: &[&str]) -> Vec<String> {
    let mut all = vec![
        "--warehouse",
        wh.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
    ];
    all.extend(extra);
    all.into_iter().map(String::from).collect()
}

fn wh_fails(wh: &Path, args: &[&str]) -> String {
    let mut all = vec!["--warehouse", wh.to_str().unwrap()];
    all.extend(args);
    fails(&all)
}

#[test]
fn named_tables_are_created_written_queried_listed_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    wh_json(&wh, &["catalog", "create", "main"]);
    wh_json(&wh, &["schema", "create", "main.shop"]);
    let created = wh_json(
        &wh,
        &["create", "main.shop.orders", "--schema", ORDERS_SCHEMA],
    );
    let location = created["location"].as_str().unwrap().to_string();
    assert!(
        location.starts_with("file:///") && location.contains("/main/shop/orders_"),
        "{location}"
    );

    let csv = write_file(
        dir.path(),
        "a.csv",
        "id,customer,amount,created_at\n1,ann,1.00,2026-01-01T00:00:00Z\n",
    );
    assert_eq!(
        wh_json(&wh, &["write", "main.shop.orders", csv.to_str().unwrap()])["version"],
        1
    );
    let rows = wh_json(
        &wh,
        &[
            "query",
            "SELECT COUNT(*) AS n FROM orders",
            "--table",
            "main.shop.orders",
        ],
    );
    assert_eq!(rows[0]["n"], 1);
    assert_eq!(
        wh_json(&wh, &["history", "main.shop.orders"])
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Registering an existing table under a second name; it is EXTERNAL.
    let ext = orders_table(dir.path());
    let reg = wh_json(&wh, &["register", "main.shop.ext", &ext]);
    assert_eq!(reg["table_type"], "EXTERNAL");
    let tables = wh_json(&wh, &["table", "list", "main.shop"]);
    let names: Vec<&str> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["ext", "orders"]);

    // Bad names, duplicates and missing parents change nothing.
    let err = wh_fails(&wh, &["create", "main.shop.orders", "--schema", "id int"]);
    assert!(err.contains("already exists"), "{err}");
    let err = wh_fails(&wh, &["create", "main.nope.t", "--schema", "id int"]);
    assert!(
        err.contains("main.nope") && err.contains("does not exist"),
        "{err}"
    );
    let err = wh_fails(&wh, &["schema", "create", "main.sh/op"]);
    assert!(err.contains("invalid"), "{err}");
    let err = wh_fails(
        &wh,
        &[
            "register",
            "main.shop.x",
            dir.path().join("nothing").to_str().unwrap(),
        ],
    );
    assert!(err.contains("no Delta table"), "{err}");
    let err = wh_fails(&wh, &["history", "main.shop.nope"]);
    assert!(err.contains("main.shop.nope"), "{err}");
    assert_eq!(
        std::fs::read_dir(wh.join("main/shop")).unwrap().count(),
        1,
        "no stray table directories"
    );
    assert_eq!(
        wh_json(&wh, &["table", "list"]).as_array().unwrap().len(),
        2
    );

    // Drop: external data is never deleted; managed data only with --purge.
    let err = wh_fails(&wh, &["drop", "main.shop.ext", "--purge"]);
    assert!(err.contains("EXTERNAL"), "{err}");
    wh_json(&wh, &["drop", "main.shop.ext"]);
    assert!(Path::new(&ext).join("_delta_log").is_dir());
    let err = wh_fails(&wh, &["schema", "drop", "main.shop"]);
    assert!(err.contains("1 table"), "{err}");
    let path = url_to_path(&location);
    wh_json(&wh, &["drop", "main.shop.orders", "--purge"]);
    assert!(!path.exists(), "purged data is gone");
    wh_json(&wh, &["schema", "drop", "main.shop"]);
    wh_json(&wh, &["catalog", "drop", "main"]);
    assert_eq!(wh_json(&wh, &["catalog", "list"]), serde_json::json!([]));
}

fn url_to_path(url: &str) -> PathBuf {
    PathBuf::from(url.strip_prefix("file://").unwrap())
}

#[test]
fn tokens_are_shown_once_and_listed_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let t = wh_json(&wh, &["token", "create", "ci", "--scope", "write"]);
    let secret = t["token"].as_str().unwrap();
    assert!(secret.starts_with("tarn_") && secret.len() > 60);
    let list = wh_json(&wh, &["token", "list"]);
    assert_eq!(list[0]["name"], "ci");
    assert_eq!(list[0]["scope"], "write");
    assert!(!list.to_string().contains(secret));
    wh_json(&wh, &["token", "revoke", "ci"]);
    let err = wh_fails(&wh, &["token", "revoke", "ci"]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn serve_refuses_to_run_without_tokens_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let err = wh_fails(&wh, &["serve", "--bind", "0.0.0.0:0", "--no-auth"]);
    assert!(err.contains("loopback"), "{err}");
    let err = wh_fails(&wh, &["serve", "--bind", "nowhere"]);
    assert!(err.contains("--bind"), "{err}");
}

#[test]
fn a_parquet_column_whose_type_would_lose_data_is_refused_naming_both_types() {
    use std::sync::Arc;
    use tarn_table::deltalake::arrow::array::{Int64Array, RecordBatch, StringArray};
    use tarn_table::deltalake::arrow::datatypes::{DataType, Field, Schema};
    use tarn_table::deltalake::parquet::arrow::ArrowWriter;

    let dir = tempfile::tempdir().unwrap();
    let t = orders_table(dir.path());
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["12.50"])),
        ],
    )
    .unwrap();
    let path = dir.path().join("typed.parquet");
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let err = fails(&["write", &t, path.to_str().unwrap()]);
    assert!(
        err.contains("`amount` is string in the input but decimal(12,2) in the table"),
        "{err}"
    );
    assert_eq!(version(&t), 0);
}

/// `tarn serve` on a free loopback port; killed on drop. Only the banner's first line is
/// read, then stdout is closed: the server must keep serving (it once died writing the rest).
struct Served {
    child: std::process::Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(wh: &Path) -> Served {
    serve_logging_to(wh, Stdio::null())
}

/// [`serve`], with the server's log (its stderr) going to `log`.
fn serve_logging_to(wh: &Path, log: impl Into<Stdio>) -> Served {
    use std::io::BufRead;
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("tarn"))
        .args([
            "--warehouse",
            wh.to_str().unwrap(),
            "serve",
            "--bind",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = format!(
        "http://{}",
        line.split("http://")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
    );
    Served { child, url }
}

#[test]
fn the_cli_works_on_a_remote_catalog_with_server_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let server_wh = dir.path().join("server-wh");
    let admin = wh_json(
        &server_wh,
        &["token", "create", "admin", "--scope", "admin"],
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let reader = wh_json(
        &server_wh,
        &["token", "create", "reader", "--scope", "read"],
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let served = serve(&server_wh);
    let client_wh = dir.path().join("client-wh");
    let remote = |token: &str, args: &[&str]| -> Value {
        let mut all = vec!["--server", served.url.as_str(), "--token", token];
        all.extend(args);
        wh_json(&client_wh, &all)
    };
    remote(&admin, &["catalog", "create", "main"]);
    remote(&admin, &["schema", "create", "main.shop"]);
    let created = remote(
        &admin,
        &["create", "main.shop.orders", "--schema", ORDERS_SCHEMA],
    );
    assert!(
        created["location"].as_str().unwrap().contains("server-wh"),
        "the server made the managed table: {created}"
    );
    let csv = write_file(
        dir.path(),
        "a.csv",
        "id,customer,amount,created_at\n1,ann,1.00,2026-01-01T00:00:00Z\n",
    );
    assert_eq!(
        remote(
            &admin,
            &["write", "main.shop.orders", csv.to_str().unwrap()]
        )["version"],
        1
    );
    let rows = remote(
        &reader,
        &[
            "query",
            "SELECT COUNT(*) AS n FROM orders",
            "--table",
            "main.shop.orders",
        ],
    );
    assert_eq!(rows[0]["n"], 1);
    let tables = remote(&reader, &["table", "list"]);
    assert_eq!(tables[0]["name"], "orders");
    assert!(
        !client_wh.join("catalog.db").exists(),
        "nothing was written to a local catalog"
    );

    let mut bad = vec![
        "--warehouse",
        client_wh.to_str().unwrap(),
        "--server",
        served.url.as_str(),
        "--token",
        "tarn_forged",
    ];
    bad.extend(["catalog", "list"]);
    let err = fails(&bad);
    assert!(
        err.contains("invalid token") && err.contains("401"),
        "{err}"
    );
    let mut denied = vec![
        "--warehouse",
        client_wh.to_str().unwrap(),
        "--server",
        served.url.as_str(),
        "--token",
        reader.as_str(),
    ];
    denied.extend(["catalog", "create", "other"]);
    let err = fails(&denied);
    assert!(err.contains("403"), "{err}");
    let mut tokens = vec![
        "--warehouse",
        client_wh.to_str().unwrap(),
        "--server",
        served.url.as_str(),
        "--token",
        admin.as_str(),
    ];
    tokens.extend(["token", "list"]);
    let err = fails(&tokens);
    assert!(err.contains("server's machine"), "{err}");
    remote(&admin, &["drop", "main.shop.orders"]);
    assert_eq!(
        remote(&reader, &["table", "list", "main.shop"]),
        serde_json::json!([])
    );
}

#[test]
fn shares_and_recipients_refuse_bad_input_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let wh_s = wh.to_str().unwrap();
    wh_json(&wh, &["catalog", "create", "main"]);
    wh_json(&wh, &["schema", "create", "main.shop"]);
    wh_json(
        &wh,
        &["create", "main.shop.orders", "--schema", "id bigint"],
    );
    let csv = write_file(dir.path(), "o.csv", "id\n1\n2\n");
    wh_json(
        &wh,
        &[
            "write",
            "main.shop.orders",
            csv.to_str().unwrap(),
            "--no-progress",
        ],
    );
    wh_json(&wh, &["share", "create", "partners"]);
    let err = wh_fails(&wh, &["share", "create", "partners"]);
    assert!(err.contains("already exists"), "{err}");
    // Only catalog names can be shared, and only tables that exist.
    let err = wh_fails(&wh, &["share", "add", "partners", "./some/path"]);
    assert!(err.contains("catalog.schema.table"), "{err}");
    let err = wh_fails(&wh, &["share", "add", "partners", "main.shop.nope"]);
    assert!(err.contains("does not exist"), "{err}");
    let err = wh_fails(&wh, &["share", "add", "nope", "main.shop.orders"]);
    assert!(err.contains("share `nope` does not exist"), "{err}");
    let err = wh_fails(
        &wh,
        &[
            "share",
            "add",
            "partners",
            "main.shop.orders",
            "--as",
            "flat",
        ],
    );
    assert!(err.contains("SCHEMA.TABLE"), "{err}");
    let added = wh_json(
        &wh,
        &[
            "share",
            "add",
            "partners",
            "main.shop.orders",
            "--as",
            "sales.orders",
        ],
    );
    assert_eq!(added["history"], false);
    let listed = wh_json(&wh, &["share", "list", "partners"]);
    assert_eq!(listed[0]["name"], "partners.sales.orders");
    assert_eq!(listed[0]["table"], "main.shop.orders");

    // A recipient with an unknown share is not created, and no profile is left behind.
    let profile = dir.path().join("acme.share");
    let p = profile.to_str().unwrap();
    let err = wh_fails(
        &wh,
        &[
            "recipient",
            "create",
            "acme",
            "--share",
            "nope",
            "--profile",
            p,
        ],
    );
    assert!(err.contains("share `nope` does not exist"), "{err}");
    assert!(!profile.exists());
    assert_eq!(wh_json(&wh, &["recipient", "list"]), serde_json::json!([]));
    let err = wh_fails(
        &wh,
        &[
            "recipient",
            "create",
            "acme",
            "--share",
            "partners",
            "--profile",
            p,
            "--expires",
            "yesterday",
        ],
    );
    assert!(err.contains("--expires"), "{err}");
    let err = wh_fails(
        &wh,
        &[
            "recipient",
            "create",
            "acme",
            "--share",
            "partners",
            "--profile",
            p,
            "--endpoint",
            "ftp://x",
        ],
    );
    assert!(err.contains("http(s)"), "{err}");
    assert!(!profile.exists());

    let made = wh_json(
        &wh,
        &[
            "recipient",
            "create",
            "acme",
            "--share",
            "partners",
            "--profile",
            p,
        ],
    );
    assert_eq!(made["shares"], serde_json::json!(["partners"]));
    let body: Value = serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    assert_eq!(body["shareCredentialsVersion"], 1);
    assert_eq!(body["endpoint"], "http://127.0.0.1:8080/delta-sharing");
    assert!(body["bearerToken"].as_str().unwrap().starts_with("tarn_"));
    assert!(body.get("expirationTime").is_none());
    // The token is only in the profile: never in the listing.
    let listing = tarn()
        .args(["--warehouse", wh_s, "recipient", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(text.contains("acme") && text.contains("active"), "{text}");
    assert!(!text.contains(body["bearerToken"].as_str().unwrap()));
    // An existing profile is never overwritten.
    let err = wh_fails(
        &wh,
        &[
            "recipient",
            "create",
            "other",
            "--share",
            "partners",
            "--profile",
            p,
        ],
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&std::fs::read_to_string(&profile).unwrap()).unwrap(),
        body
    );
    wh_json(&wh, &["recipient", "revoke", "acme"]);
    let err = wh_fails(&wh, &["recipient", "revoke", "acme"]);
    assert!(err.contains("already revoked"), "{err}");
    // Against a server, sharing commands say where to run them.
    let err = fails(&["--server", "http://127.0.0.1:9", "share", "list"]);
    assert!(err.contains("not with --server"), "{err}");
}

/// A CSV file of at least 10 MB (read by several threads) whose rows hold quoted commas,
/// quoted line breaks, doubled quotes and CRLF line ends; row `i` has id `i`.
fn large_csv(dir: &Path, name: &str, rows: usize, row: impl Fn(usize) -> String) -> PathBuf {
    let mut text = String::from("id,note,amount\n");
    for i in 0..rows {
        text.push_str(&row(i));
    }
    assert!(text.len() > 10 << 20, "{} bytes is too small", text.len());
    write_file(dir, name, &text)
}

fn note(i: usize) -> String {
    match i % 4 {
        0 => format!("\"a, b {i}\""),
        1 => format!("\"line\nbreak {i}\""),
        2 => format!("\"say \"\"{i}\"\"\""),
        _ => format!("plain {i}"),
    }
}

#[test]
fn large_csv_files_read_on_several_threads_give_every_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("big").to_string_lossy().to_string();
    let rows = 400_000;
    let csv = large_csv(dir.path(), "big.csv", rows, |i| {
        let end = if i % 3 == 0 { "\r\n" } else { "\n" };
        format!("{i},{},{}.25{end}", note(i), i % 1000)
    });
    json(&["write", &t, csv.to_str().unwrap(), "--create"]);
    let spec = format!("t={t}");
    let out = json(&[
        "query",
        "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids, SUM(id) AS ids_sum, \
         SUM(CASE WHEN note = CONCAT('line', CHR(10), 'break ', CAST(id AS VARCHAR)) THEN 1 ELSE 0 END) AS breaks, \
         SUM(CASE WHEN note = CONCAT('say \"', CAST(id AS VARCHAR), '\"') THEN 1 ELSE 0 END) AS quotes, \
         SUM(CASE WHEN note = CONCAT('a, b ', CAST(id AS VARCHAR)) THEN 1 ELSE 0 END) AS commas, \
         SUM(CASE WHEN note = CONCAT('plain ', CAST(id AS VARCHAR)) THEN 1 ELSE 0 END) AS plain \
         FROM t",
        "--table",
        &spec,
    ]);
    let n = rows as i64;
    assert_eq!(out[0]["n"], n, "{out}");
    assert_eq!(out[0]["ids"], n, "{out}");
    assert_eq!(out[0]["ids_sum"], n * (n - 1) / 2, "{out}");
    for kind in ["breaks", "quotes", "commas", "plain"] {
        assert_eq!(out[0][kind], n / 4, "{kind}: {out}");
    }
}

#[test]
fn large_csv_with_a_quote_inside_an_unquoted_field_is_read_as_written() {
    // `5"x` is read literally by the CSV reader; from there the file is read on one thread.
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("stray").to_string_lossy().to_string();
    let rows = 400_000;
    let csv = large_csv(dir.path(), "stray.csv", rows, |i| {
        let note = if i == 200_000 {
            "5\"x".to_string()
        } else {
            note(i)
        };
        format!("{i},{note},{}.5\n", i % 7)
    });
    json(&["write", &t, csv.to_str().unwrap(), "--create"]);
    let spec = format!("t={t}");
    let out = json(&[
        "query",
        "SELECT COUNT(*) AS n, SUM(id) AS ids_sum, MAX(CASE WHEN id = 200000 THEN note END) AS stray FROM t",
        "--table",
        &spec,
    ]);
    let n = rows as i64;
    assert_eq!(out[0]["n"], n, "{out}");
    assert_eq!(out[0]["ids_sum"], n * (n - 1) / 2, "{out}");
    assert_eq!(out[0]["stray"], "5\"x", "{out}");
}

#[test]
fn a_bad_value_deep_in_a_large_csv_names_its_line_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("deep").to_string_lossy().to_string();
    tarn()
        .args([
            "create",
            &t,
            "--schema",
            "id bigint, note string, amount double",
        ])
        .assert()
        .success();
    let csv = large_csv(dir.path(), "deep.csv", 400_000, |i| {
        let amount = if i == 345_678 {
            "oops".to_string()
        } else {
            format!("{i}.5")
        };
        format!("{i},plain note {i},{amount}\n")
    });
    let err = fails(&["write", &t, csv.to_str().unwrap()]);
    assert!(err.contains("deep.csv") && err.contains("oops"), "{err}");
    // The line is counted from the file's start, as the one-thread reader counts it.
    assert!(err.contains("line 345679"), "{err}");
    assert_eq!(version(&t), 0);
}

/// Sets the storage location of the table `name` in the SQLite catalog `db`, as anyone who
/// can write the catalog database could.
fn set_location(db: &Path, name: &str, location: &str) {
    let parts: Vec<&str> = name.split('.').collect();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let url = format!("sqlite://{}", db.display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let done = sqlx::query(
                "UPDATE tables SET storage_location = $1 \
                 WHERE catalog_name = $2 AND schema_name = $3 AND name = $4",
            )
            .bind(location)
            .bind(parts[0])
            .bind(parts[1])
            .bind(parts[2])
            .execute(&mut conn)
            .await
            .unwrap();
            assert_eq!(done.rows_affected(), 1, "{name}");
        });
}

/// `drop --purge` deletes a MANAGED table's own directory under the warehouse, and nothing
/// else. A catalog row naming any other place (edited in the catalog database here: a
/// directory outside the warehouse, the warehouse itself, a catalog or schema directory,
/// another table's) or a symlink at the table's location pointing out is refused with one
/// line, nothing deleted and the name kept; locally, and through `--server`, where the
/// server decides about its own warehouse and the client deletes nothing.
#[test]
fn drop_purge_deletes_nothing_outside_the_tables_managed_location() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let db = wh.join("catalog.db");
    wh_json(&wh, &["catalog", "create", "main"]);
    wh_json(&wh, &["schema", "create", "main.shop"]);
    let created = wh_json(
        &wh,
        &["create", "main.shop.orders", "--schema", ORDERS_SCHEMA],
    );
    let own_url = created["location"].as_str().unwrap().to_string();
    let own = PathBuf::from(
        own_url
            .strip_prefix("file://")
            .unwrap()
            .trim_end_matches('/'),
    );
    let other = wh_json(&wh, &["create", "main.shop.other", "--schema", "id int"]);
    let other = url_to_path(other["location"].as_str().unwrap());
    let outside = dir.path().join("precious");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("data.txt"), "keep me").unwrap();
    let all_there = |when: &str| {
        assert!(outside.join("data.txt").exists(), "{when}: outside deleted");
        assert!(
            other.join("_delta_log").is_dir(),
            "{when}: other table deleted"
        );
        assert_eq!(
            wh_json(&wh, &["table", "list", "main.shop"])
                .as_array()
                .unwrap()
                .len(),
            2,
            "{when}: the name is kept"
        );
    };
    let targets = [
        outside.clone(),
        wh.clone(),
        wh.join("main"),
        wh.join("main/shop"),
        other.clone(),
    ];
    for target in &targets {
        set_location(
            &db,
            "main.shop.orders",
            &format!("file://{}/", target.display()),
        );
        let err = wh_fails(&wh, &["drop", "main.shop.orders", "--purge"]);
        assert!(err.contains("refusing to delete"), "{err}");
        all_there(&target.display().to_string());
        assert!(own.join("_delta_log").is_dir());
    }

    // A symlink at the table's own location, pointing outside.
    set_location(&db, "main.shop.orders", &own_url);
    let moved = dir.path().join("moved");
    std::fs::rename(&own, &moved).unwrap();
    std::os::unix::fs::symlink(&outside, &own).unwrap();
    let err = wh_fails(&wh, &["drop", "main.shop.orders", "--purge"]);
    assert!(err.contains("refusing to delete"), "{err}");
    all_there("symlink");
    std::fs::remove_file(&own).unwrap();
    std::fs::rename(&moved, &own).unwrap();

    // Through a server: refused the same way, and nothing deleted on the client's side.
    let token = wh_json(&wh, &["token", "create", "admin", "--scope", "admin"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let served = serve(&wh);
    let client_wh = dir.path().join("client-wh");
    let remote = |args: &[&str]| -> Vec<String> {
        let mut all = vec![
            "--warehouse",
            client_wh.to_str().unwrap(),
            "--server",
            served.url.as_str(),
            "--token",
            token.as_str(),
        ];
        all.extend(args);
        all.into_iter().map(String::from).collect()
    };
    set_location(
        &db,
        "main.shop.orders",
        &format!("file://{}/", outside.display()),
    );
    let args = remote(&["drop", "main.shop.orders", "--purge"]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("refusing to delete") && err.contains("400"),
        "{err}"
    );
    all_there("--server");

    // Its own location: deleted, by the server.
    set_location(&db, "main.shop.orders", &own_url);
    let args = remote(&["drop", "main.shop.orders", "--purge"]);
    let done = json(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(done["purged"], true);
    assert!(!own.exists(), "purged by the server");
    assert!(other.join("_delta_log").is_dir());
    assert!(outside.join("data.txt").exists());
}

fn entries_of(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Makes a file immutable (`chattr +i`: as root, permissions would not stop a write) until
/// dropped.
struct Immutable(PathBuf);

impl Immutable {
    fn new(path: &Path) -> Immutable {
        let status = StdCommand::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "chattr +i {} (needs root and ext4/xfs)",
            path.display()
        );
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = StdCommand::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// The CLI's named-table steps say what went wrong, in one line, where they printed
/// "internal error (error id …)": a catalog database that cannot be written, and a table on
/// object storage the CLI has no credentials for. Nothing is registered or left behind. A
/// table directory that cannot be made under the warehouse, and a warehouse given as a URL
/// (which became a local directory named `s3:`), are said too.
#[test]
fn named_table_steps_say_what_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let catalog = dir.path().join("catalog.db");
    let args = |extra: &[&str]| wh_and_catalog(&wh, &catalog, extra);
    let ok = |extra: &[&str]| {
        json(&args(extra).iter().map(String::as_str).collect::<Vec<_>>());
    };
    let failed = |extra: &[&str]| -> String {
        fails(&args(extra).iter().map(String::as_str).collect::<Vec<_>>())
    };
    ok(&["catalog", "create", "main"]);
    ok(&["schema", "create", "main.shop"]);
    {
        let _frozen = Immutable::new(&catalog);
        let err = failed(&["create", "main.shop.t", "--schema", "id int"]);
        assert!(!err.contains("error id"), "{err}");
        assert!(err.contains("readonly database"), "{err}");
    }
    assert!(!wh.join("main/shop").exists() || entries_of(&wh.join("main/shop")) == 0);
    std::fs::create_dir_all(&wh).unwrap();
    std::fs::write(wh.join("main"), "a file where the catalog's directory goes").unwrap();
    let err = failed(&["create", "main.shop.t", "--schema", "id int"]);
    assert!(!err.contains("error id"), "{err}");
    assert!(err.contains("Not a directory"), "{err}");
    assert_eq!(
        json(
            &args(&["table", "list", "main.shop"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        ),
        serde_json::json!([])
    );

    // A warehouse given as a URL: said so, and no local directory named `s3:` made.
    let out = tarn()
        .current_dir(dir.path())
        .args([
            "--warehouse",
            "s3://tarn-test-no-such-bucket/wh",
            "create",
            "main.shop.t",
            "--schema",
            "id int",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("must be a local directory"), "{err}");
    assert!(!dir.path().join("s3:").exists(), "a local `s3:` directory");

    let out = tarn()
        .args(args(&[
            "--storage-option",
            "aws_region=us-east-1",
            "register",
            "main.shop.s3",
            "s3://tarn-test-no-such-bucket/t",
        ]))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("error id"), "{err}");
    assert!(err.to_lowercase().contains("credential"), "{err}");
}

/// A named `tarn create` on a warehouse that cannot be written says why on one line: the
/// directory it could not make, that the warehouse must be a directory Tarn can write, and
/// the operating system's own cause; nothing is registered or left behind. The warehouse
/// is made immutable (`chattr +i`), which stops root too, as permissions would not.
/// Through `--server`, the server answers 500 with an error id and nothing of its disk, the
/// CLI says that the server's log has the cause, and the log has it under that id.
#[test]
fn named_create_on_a_read_only_warehouse_says_the_real_cause() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let catalog = dir.path().join("catalog.db");
    let args = |extra: &[&str]| wh_and_catalog(&wh, &catalog, extra);
    let run = |extra: &[&str], ok: bool| -> String {
        let all = args(extra);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        if ok {
            json(&all).to_string()
        } else {
            fails(&all)
        }
    };
    run(&["catalog", "create", "main"], true);
    run(&["schema", "create", "main.shop"], true);
    std::fs::create_dir_all(&wh).unwrap();
    {
        let _frozen = Immutable::new(&wh);
        assert!(
            std::fs::create_dir(wh.join("probe")).is_err(),
            "the warehouse can still be written"
        );
        let err = run(&["create", "main.shop.t", "--schema", "id int"], false);
        assert!(!err.contains("error id"), "{err}");
        assert!(err.contains("for `main.shop.t`"), "{err}");
        assert!(
            err.contains(&format!(
                "the warehouse `{}` must be a directory Tarn can write",
                wh.canonicalize().unwrap().display()
            )),
            "{err}"
        );
        assert!(
            err.contains("Operation not permitted (os error 1)"),
            "{err}"
        );
    }
    assert_eq!(
        run(&["table", "list", "main.shop"], true),
        serde_json::json!([]).to_string()
    );
    assert_eq!(entries_of(&wh), 0, "nothing left in the warehouse");

    // Through a server whose warehouse cannot be written under its catalog's directory.
    let server_wh = dir.path().join("server-wh");
    wh_json(&server_wh, &["catalog", "create", "main"]);
    wh_json(&server_wh, &["schema", "create", "main.shop"]);
    let token = wh_json(&server_wh, &["token", "create", "a", "--scope", "admin"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::create_dir_all(server_wh.join("main")).unwrap();
    let _frozen = Immutable::new(&server_wh.join("main"));
    let log_path = dir.path().join("serve.log");
    let served = serve_logging_to(&server_wh, std::fs::File::create(&log_path).unwrap());
    let client_wh = dir.path().join("client-wh");
    let err = wh_fails(
        &client_wh,
        &[
            "--server",
            &served.url,
            "--token",
            &token,
            "create",
            "main.shop.t",
            "--schema",
            "id int",
        ],
    );
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(
        err.contains("the server's log has the cause under that error id"),
        "{err}"
    );
    assert!(
        !err.contains("server-wh"),
        "the server's disk is not shown: {err}"
    );
    let id = err
        .split("error id ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no error id in {err}"));
    let log = std::fs::read_to_string(&log_path).unwrap();
    let logged = log
        .lines()
        .find(|line| line.contains(id))
        .unwrap_or_else(|| panic!("error id {id} not in the server's log: {log}"));
    assert!(
        logged.contains("for `main.shop.t`") && logged.contains("Operation not permitted"),
        "{logged}"
    );
    assert_eq!(
        wh_json(&server_wh, &["table", "list", "main.shop"]),
        serde_json::json!([])
    );
}

/// A Spark-written table checked in under tests/data/spark-golden.
fn spark_table(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/spark-golden")
        .join(name)
        .join("delta")
        .to_string_lossy()
        .to_string()
}

/// Runs `tarn --format FORMAT ARGS`, expects success, returns stdout.
fn printed(format: &str, args: &[&str]) -> String {
    let out = tarn()
        .arg("--format")
        .arg(format)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tarn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn maps_with_keys_of_any_type_print_in_json_csv_and_table() {
    // Spark's map<int,int>, map<bigint,tinyint>, map<smallint,boolean>, map<float,double>,
    // map<string,decimal(1,0)> and map<int,array<struct<val:int>>>.
    let spec = format!("t={}", spark_table("data-reader-map"));
    let sql = "SELECT * FROM t WHERE i = 5";
    let rows = json(&["query", sql, "--table", &spec]);
    assert_eq!(
        rows[0],
        serde_json::json!({
            "i": 5,
            "a": [{"key": 5, "value": 5}],
            "b": [{"key": 5, "value": 5}],
            "c": [{"key": 5, "value": false}],
            "d": [{"key": 5.0, "value": 5.0}],
            "e": {"5": 5},
            "f": [{"key": 5, "value": [{"val": 5}, {"val": 5}, {"val": 5}]}],
        })
    );
    let csv = printed(
        "csv",
        &[
            "query",
            "SELECT i, a, e, f FROM t WHERE i = 5",
            "--table",
            &spec,
        ],
    );
    assert_eq!(
        csv,
        "i,a,e,f\n5,\"[{\"\"key\"\":5,\"\"value\"\":5}]\",\"{\"\"5\"\":5}\",\"[{\"\"key\"\":5,\"\"value\"\":[{\"\"val\"\":5},{\"\"val\"\":5},{\"\"val\"\":5}]}]\"\n"
    );
    let table = printed(
        "table",
        &["query", "SELECT i, f FROM t WHERE i = 5", "--table", &spec],
    );
    assert_eq!(
        table,
        "+---+-----------------------------------------------------+\n\
         | i | f                                                   |\n\
         +---+-----------------------------------------------------+\n\
         | 5 | [{\"key\":5,\"value\":[{\"val\":5},{\"val\":5},{\"val\":5}]}] |\n\
         +---+-----------------------------------------------------+\n\
         (1 row)\n"
    );
}

#[test]
fn json_keeps_big_numbers_exact_and_names_floats_that_are_not_finite() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("numbers").to_string_lossy().to_string();
    tarn()
        .args([
            "create",
            &t,
            "--schema",
            "id int, big bigint, d decimal(38,10), x double, f float, b binary",
        ])
        .assert()
        .success();
    let csv = write_file(
        dir.path(),
        "n.csv",
        "id,big,d,x,f\n\
         1,9007199254740993,-9999999999999999999999999999.9999999999,NaN,inf\n\
         2,-9223372036854775808,0.0000000001,-inf,1.5\n\
         3,,,,\n",
    );
    json(&["write", &t, csv.to_str().unwrap()]);
    let spec = format!("t={t}");
    let text = printed(
        "json",
        &["query", "SELECT * FROM t ORDER BY id", "--table", &spec],
    );
    assert!(text.contains("\"big\":9007199254740993,"), "{text}");
    assert!(
        text.contains("\"d\":-9999999999999999999999999999.9999999999,"),
        "{text}"
    );
    assert!(text.contains("\"d\":0.0000000001,"), "{text}");
    let rows: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rows[0]["x"], "NaN");
    assert_eq!(rows[0]["f"], "Infinity");
    assert_eq!(rows[1]["x"], "-Infinity");
    assert_eq!(rows[1]["big"], i64::MIN);
    assert_eq!(rows[1]["f"], 1.5);
    for column in ["big", "d", "x", "f", "b"] {
        assert_eq!(rows[2][column], Value::Null, "{column}");
    }
    let csv = printed(
        "csv",
        &[
            "query",
            "SELECT x, f, b FROM t ORDER BY id",
            "--table",
            &spec,
        ],
    );
    assert_eq!(csv, "x,f,b\nNaN,inf,\n-inf,1.5,\n,,\n");
}

#[test]
fn long_values_are_cut_in_the_text_table_and_whole_in_csv_and_json() {
    let spec = format!("t={}", spark_table("data-reader-array-complex-objects"));
    let sql = "SELECT i, make_array(\"4d_int_list\", \"4d_int_list\") AS deep FROM t WHERE i = 5";
    let table = printed("table", &["query", sql, "--table", &spec]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "{table}");
    let width = lines[0].chars().count();
    assert!(
        lines[..5].iter().all(|l| l.chars().count() == width),
        "{table}"
    );
    let four = "[[[[5,5,5],[5,5,5]],[[5,5,5],[5,5,5]]],[[[5,5,5],[5,5,5]],[[5,5,5],[5,5,5]]]]";
    let whole = format!("[{four},{four}]");
    let cut: String = whole.chars().take(79).collect();
    assert_eq!(lines[3], format!("| 5 | {cut}… |"), "{table}");
    let rows = json(&["query", sql, "--table", &spec]);
    assert_eq!(rows[0]["deep"].to_string(), whole);
    let csv = printed("csv", &["query", sql, "--table", &spec]);
    assert_eq!(csv, format!("i,deep\n5,\"{whole}\"\n"));
}

#[test]
fn spark_tables_with_column_mapping_and_deletion_vectors_read_exactly() {
    // Spark's answers (tests/data/spark-golden/*/expected): 6 rows in each column-mapping
    // table, 35 rows left by the deletion vectors.
    for (name, rows) in [
        ("table-with-columnmapping-mode-name", 6),
        ("table-with-columnmapping-mode-id", 6),
        ("dv-with-columnmapping", 35),
        ("dv-partitioned-with-checkpoint", 35),
    ] {
        let spec = format!("t={}", spark_table(name));
        assert_eq!(
            query_n(&spark_table(name), "SELECT COUNT(*) AS n FROM t"),
            rows,
            "{name}"
        );
        let all = json(&["query", "SELECT * FROM t", "--table", &spec]);
        assert_eq!(all.as_array().unwrap().len(), rows as usize, "{name}");
    }
    let spec = format!("t={}", spark_table("table-with-columnmapping-mode-id"));
    let rows = json(&[
        "query",
        "SELECT \"ByteType\", \"BinaryType\", \"TimestampType\", nested_struct, map_of_arrays \
         FROM t WHERE \"IntegerType\" = 2",
        "--table",
        &spec,
    ]);
    assert_eq!(
        rows,
        serde_json::json!([{
            "ByteType": 2,
            "BinaryType": "32",
            "TimestampType": "1970-01-01T00:00:00.002Z",
            "nested_struct": {"aa": "2", "ac": {"aca": 2}},
            "map_of_arrays": [{"key": 2, "value": [2, null, 3]}, {"key": 3, "value": []}],
        }])
    );
    let spec = format!("t={}", spark_table("dv-with-columnmapping"));
    let rows = json(&[
        "query",
        "SELECT SUM(col1) AS s, COUNT(DISTINCT part) AS parts FROM t",
        "--table",
        &spec,
    ]);
    assert_eq!(rows[0], serde_json::json!({"s": 1015, "parts": 10}));
}

#[test]
fn the_text_table_streams_and_cuts_a_value_wider_than_its_column_after_the_first_1000_rows() {
    let sql =
        "SELECT value, CASE WHEN value = 1500 THEN 'a much longer value' ELSE 'short' END AS v \
               FROM range(2000) ORDER BY value";
    let table = printed("table", &["query", sql]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2000 + 5, "{}", &table[..200]);
    let width = lines[0].chars().count();
    assert!(lines[..2004].iter().all(|l| l.chars().count() == width));
    assert_eq!(lines[3], "| 0     | short |");
    assert_eq!(lines[3 + 1500], "| 1500  | a mu… |");
    assert_eq!(lines[2004], "(2000 rows)");
    // A wider value among the first 1000 rows widens its column instead.
    let sql =
        "SELECT value, CASE WHEN value = 999 THEN 'a much longer value' ELSE 'short' END AS v \
               FROM range(2000) ORDER BY value";
    let table = printed("table", &["query", sql]);
    assert!(
        table.contains("| 999   | a much longer value |\n"),
        "{}",
        &table[..200]
    );
}

#[test]
fn history_cuts_long_parameters_in_the_text_table_only() {
    let dir = tempfile::tempdir().unwrap();
    let t = orders_table(dir.path());
    // The CREATE TABLE commit's parameters hold the whole metadata, schema included.
    let history = json(&["history", &t]);
    let metadata = history[0]["parameters"]["metadata"].as_str().unwrap();
    assert!(metadata.contains("created_at"), "{history}");
    let table = printed("table", &["history", &t]);
    assert!(table.contains('…'), "{table}");
    assert!(!table.contains("created_at"), "{table}");
    assert!(table.lines().all(|l| l.chars().count() < 5 * 84), "{table}");
    let csv = printed("csv", &["history", &t]);
    assert!(csv.contains("created_at"), "{csv}");
}

#[test]
fn databricks_tables_with_a_deletion_vector_and_column_mapping_read_exactly() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/databricks");
    let dv = format!("t={}", data.join("table-with-dv-small").display());
    let rows = json(&[
        "query",
        "SELECT value FROM t ORDER BY value",
        "--table",
        &dv,
    ]);
    let values: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_i64().unwrap())
        .collect();
    assert_eq!(values, (1..=8).collect::<Vec<_>>());
    let mapped = format!("t={}", data.join("table_with_column_mapping").display());
    let csv = printed(
        "csv",
        &[
            "query",
            "SELECT * FROM t ORDER BY \"Super Name\"",
            "--table",
            &mapped,
        ],
    );
    assert_eq!(
        csv,
        "Company Very Short,Super Name\n\
         BMS,Anthony Johnson\n\
         BMS,Mr. Daniel Ferguson MD\n\
         BMS,Nathan Bennett\n\
         BMS,Stephanie Mcgrath\n\
         BME,Timothy Lamb\n"
    );
}

/// `tarn query … | head`: when the reader of the output stops reading, tarn stops too,
/// quietly and with success (as `cat` does), in every format and for record lists too.
#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,name\n");
    for i in 0..200_000 {
        text.push_str(&format!("{i},name number {i}\n"));
    }
    let csv = write_file(dir.path(), "rows.csv", &text);
    let t = dir.path().join("rows").to_string_lossy().to_string();
    json(&["write", &t, csv.to_str().unwrap(), "--create"]);
    for _ in 0..3 {
        json(&["write", &t, csv.to_str().unwrap()]);
    }
    let bin = assert_cmd::cargo::cargo_bin("tarn");
    let runs: Vec<Vec<&str>> = vec![
        vec!["--format", "table", "query", "SELECT * FROM t", "--table"],
        vec!["--format", "csv", "query", "SELECT * FROM t", "--table"],
        vec!["--format", "json", "query", "SELECT * FROM t", "--table"],
    ];
    for args in runs {
        let table = format!("t={t}");
        let mut child = StdCommand::new(&bin)
            .args(&args)
            .arg(&table)
            .env_remove("TARN_FORMAT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 100];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert_eq!(stderr, "", "{args:?}");
    }
}
