//! `tarn import` end to end, against real databases: PostgreSQL at `TARN_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/test`) and MySQL/MariaDB at
//! `TARN_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306/test`). Set either to `skip` on
//! a machine without that server; `tests/run.sh` starts MariaDB when none is running.
//!
//! Every test works on its own source tables (unique names) and drops them afterwards.

use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::{json, Value};
use sqlx::Connection;

fn pg_url() -> Option<String> {
    let url = std::env::var("TARN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    (url != "skip").then_some(url)
}

fn mysql_url() -> Option<String> {
    let url = std::env::var("TARN_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    (url != "skip").then_some(url)
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

async fn pg(url: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {url} is needed ({e}); set TARN_TEST_POSTGRES=skip to skip")
    });
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
}

async fn my(url: &str, sql: &str) {
    let mut conn = sqlx::MySqlConnection::connect(url)
        .await
        .unwrap_or_else(|e| {
            panic!("MySQL/MariaDB at {url} is needed ({e}); set TARN_TEST_MYSQL=skip to skip")
        });
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
}

fn tarn() -> Command {
    let mut cmd = Command::cargo_bin("tarn").unwrap();
    cmd.env_remove("TARN_FORMAT");
    cmd
}

fn json_out(args: &[&str]) -> Value {
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
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = tarn().args(args).output().unwrap();
    assert!(!out.status.success(), "tarn {args:?} should have failed");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "error should be one line: {err}");
    err
}

fn rows(table: &str, sql: &str) -> Value {
    let spec = format!("t={table}");
    json_out(&["query", sql, "--table", &spec])
}

fn version(table: &str) -> Option<u64> {
    let out = tarn()
        .args(["--format", "json", "describe", table])
        .output()
        .unwrap();
    out.status.success().then(|| {
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["version"]
            .as_u64()
            .unwrap()
    })
}

#[tokio::test]
async fn postgres_every_type_cell_by_cell_then_incremental_runs() {
    let Some(url) = pg_url() else { return };
    let src = unique("imp_types");
    let mood = format!("{src}_mood");
    pg(&url, &format!(
        "CREATE TYPE {mood} AS ENUM ('sad', 'happy');
         CREATE TABLE {src} (
           id bigint PRIMARY KEY, i2 smallint, i4 integer, f4 real, f8 double precision,
           amount numeric(12,2), big numeric(38,10), name text, code varchar(10), ch char(3),
           flag boolean, day date, at timestamptz, naive timestamp, doc json, docb jsonb,
           uid uuid, raw bytea, tags text[], nums integer[], m {mood},
           updated_at timestamptz NOT NULL);
         INSERT INTO {src} VALUES
          (1, 1, 10, 1.5, 2.25, 12.34, 12345678901234567890.0123456789, 'ann', 'A1', 'x', true,
           '2026-01-31', '2026-01-31 10:00:00+02', '2026-01-31 10:00:00.5', '{{\"a\":1}}', '{{\"b\": [1, 2]}}',
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\xdeadbeef', '{{a,b,NULL}}', '{{1,2,3}}', 'happy', '2026-01-01 00:00:00+00'),
          (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, '{{}}', NULL, '2026-01-02 00:00:00+00'),
          (3, -32768, -2147483648, -1.25, 1e300, -99999.99, -0.0000000001, 'ünïcödé', '', 'yz', false,
           '0001-01-01', '1970-01-01 00:00:00+00', '9999-12-31 23:59:59.999999', '[]', 'null',
           '00000000-0000-0000-0000-000000000000', '', '{{}}', '{{NULL}}', 'sad', '2026-01-03 00:00:00+00');"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "import",
            url.as_str(),
            "--source",
            src.as_str(),
            "--into",
            table.as_str(),
            "--key",
            "id",
            "--cursor",
            "updated_at",
            "--no-progress",
        ];
        args.extend(extra);
        json_out(&args)
    };

    let plan = run(&["--dry-run"]);
    let types: Vec<String> = plan["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["name"].as_str().unwrap(),
                c["type"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            "id bigint",
            "i2 smallint",
            "i4 int",
            "f4 float",
            "f8 double",
            "amount decimal(12,2)",
            "big decimal(38,10)",
            "name string",
            "code string",
            "ch string",
            "flag boolean",
            "day date",
            "at timestamp",
            "naive timestamp",
            "doc string",
            "docb string",
            "uid string",
            "raw binary",
            "tags array<string>",
            "nums array<int>",
            "m string",
            "updated_at timestamp"
        ]
    );
    assert!(version(&table).is_none(), "a dry run creates nothing");

    let first = run(&[]);
    assert_eq!(first["mode"], "create");
    assert_eq!(first["rows_read"], 3);
    assert_eq!(first["committed"], true);
    assert_eq!(first["watermark"], "2026-01-03 00:00:00+00");
    // Every cell, as Tarn reads it back (decimals as text, to compare them exactly).
    let got = rows(
        &table,
        "SELECT id, i2, i4, f4, f8, CAST(amount AS VARCHAR) AS amount, CAST(big AS VARCHAR) AS big, \
         name, code, ch, flag, CAST(day AS VARCHAR) AS day, CAST(at AS VARCHAR) AS at, \
         CAST(naive AS VARCHAR) AS naive, doc, docb, uid, encode(raw, 'hex') AS raw, tags, nums, m, \
         CAST(updated_at AS VARCHAR) AS updated_at FROM t ORDER BY id",
    );
    let expected = json!([
        {"id": 1, "i2": 1, "i4": 10, "f4": 1.5, "f8": 2.25, "amount": "12.34",
         "big": "12345678901234567890.0123456789", "name": "ann", "code": "A1", "ch": "x  ",
         "flag": true, "day": "2026-01-31", "at": "2026-01-31T08:00:00Z",
         "naive": "2026-01-31T10:00:00.500Z", "doc": "{\"a\":1}", "docb": "{\"b\": [1, 2]}",
         "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "raw": "deadbeef",
         "tags": ["a", "b", null], "nums": [1, 2, 3], "m": "happy",
         "updated_at": "2026-01-01T00:00:00Z"},
        {"id": 2, "i2": null, "i4": null, "f4": null, "f8": null, "amount": null, "big": null,
         "name": null, "code": null, "ch": null, "flag": null, "day": null, "at": null,
         "naive": null, "doc": null, "docb": null, "uid": null, "raw": null, "tags": null,
         "nums": [], "m": null, "updated_at": "2026-01-02T00:00:00Z"},
        {"id": 3, "i2": -32768, "i4": -2147483648, "f4": -1.25, "f8": 1e300, "amount": "-99999.99",
         "big": "-0.0000000001", "name": "ünïcödé", "code": "", "ch": "yz ", "flag": false,
         "day": "0001-01-01", "at": "1970-01-01T00:00:00Z", "naive": "9999-12-31T23:59:59.999999Z",
         "doc": "[]", "docb": "null", "uid": "00000000-0000-0000-0000-000000000000", "raw": "",
         "tags": [], "nums": [null], "m": "sad", "updated_at": "2026-01-03T00:00:00Z"}
    ]);
    assert_eq!(got, expected);

    // Updates and inserts at the source: the next run brings exactly those.
    pg(
        &url,
        &format!(
            "UPDATE {src} SET name = 'bob', updated_at = '2026-01-05 00:00:00+00' WHERE id = 2;
         INSERT INTO {src} (id, name, updated_at) VALUES (4, 'dan', '2026-01-04 00:00:00+00');"
        ),
    )
    .await;
    let second = run(&[]);
    assert_eq!(second["mode"], "upsert");
    assert_eq!(
        (
            second["rows_read"].as_u64(),
            second["inserted"].as_u64(),
            second["updated"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(second["previous_watermark"], "2026-01-03 00:00:00+00");
    assert_eq!(second["watermark"], "2026-01-05 00:00:00+00");
    let names = rows(&table, "SELECT id, name FROM t ORDER BY id");
    assert_eq!(
        names,
        json!([{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}, {"id": 3, "name": "ünïcödé"}, {"id": 4, "name": "dan"}])
    );
    // Nothing new: no commit, twice.
    let v = version(&table);
    for _ in 0..2 {
        let idle = run(&[]);
        assert_eq!(idle["committed"], false);
        assert_eq!(idle["rows_read"], 0);
    }
    assert_eq!(version(&table), v);

    // A new source column needs --merge-schema; without it nothing changes.
    pg(&url, &format!(
        "ALTER TABLE {src} ADD COLUMN extra int; UPDATE {src} SET extra = 7, updated_at = '2026-01-09 00:00:00+00' WHERE id = 1;"
    ))
    .await;
    let v = version(&table);
    let mut args = vec![
        "import",
        url.as_str(),
        "--source",
        src.as_str(),
        "--into",
        table.as_str(),
        "--key",
        "id",
        "--cursor",
        "updated_at",
    ];
    let err = fails(&args);
    assert!(
        err.contains("`extra` (int)")
            && err.contains("--merge-schema")
            && !err.contains(".parquet"),
        "{err}"
    );
    assert_eq!(version(&table), v);
    args.push("--merge-schema");
    json_out(&args);
    assert_eq!(
        rows(&table, "SELECT extra FROM t WHERE id = 1"),
        json!([{"extra": 7}])
    );

    // --timestamp-ntz keeps naive timestamps naive.
    let ntz = dir.path().join("ntz").to_string_lossy().to_string();
    json_out(&[
        "import",
        &url,
        "--source",
        &src,
        "--into",
        &ntz,
        "--mode",
        "overwrite",
        "--timestamp-ntz",
        "--no-progress",
    ]);
    let described = json_out(&["describe", &ntz]);
    let naive = described["schema"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "naive")
        .unwrap()
        .clone();
    assert_eq!(naive["type"], "timestamp_ntz", "{described}");

    pg(&url, &format!("DROP TABLE {src}; DROP TYPE {mood};")).await;
}

#[tokio::test]
async fn postgres_a_killed_import_reruns_to_exactly_the_source_rows() {
    let Some(url) = pg_url() else { return };
    let src = unique("imp_kill");
    pg(&url, &format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
         INSERT INTO {src} SELECT g, repeat('x', 40) || g, '2026-01-01'::timestamptz + g * interval '1 microsecond'
           FROM generate_series(1, 200000) g;"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let args = [
        "import",
        url.as_str(),
        "--source",
        src.as_str(),
        "--into",
        table.as_str(),
        "--key",
        "id",
        "--cursor",
        "updated_at",
        "--no-progress",
    ];
    json_out(&args);
    let before = version(&table).unwrap();
    // 300,000 changed or new rows, then a run killed part-way.
    pg(&url, &format!(
        "UPDATE {src} SET payload = 'changed', updated_at = '2026-02-01'::timestamptz + id * interval '1 microsecond' WHERE id % 2 = 0;
         INSERT INTO {src} SELECT g, 'new', '2026-03-01'::timestamptz + g * interval '1 microsecond' FROM generate_series(200001, 400000) g;"
    ))
    .await;
    let bin = assert_cmd::cargo::cargo_bin("tarn");
    let mut child = StdCommand::new(&bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let _ = child.kill();
    let _ = child.wait();
    // Never a partial commit: the table is at the old version or has the whole run.
    let after_kill = version(&table).unwrap();
    assert!(
        after_kill == before || after_kill == before + 1,
        "{before} -> {after_kill}"
    );
    // Re-run until nothing is new, then compare with the source.
    json_out(&args);
    let idle = json_out(&args);
    assert_eq!(idle["committed"], false);
    let got = rows(&table, "SELECT COUNT(*) AS n, SUM(id) AS s, SUM(CASE WHEN payload = 'changed' THEN 1 ELSE 0 END) AS changed, SUM(CASE WHEN payload = 'new' THEN 1 ELSE 0 END) AS new FROM t");
    assert_eq!(
        got,
        json!([{"n": 400000, "s": 80000200000i64, "changed": 100000, "new": 200000}])
    );
    pg(&url, &format!("DROP TABLE {src};")).await;
}

#[tokio::test]
async fn postgres_bad_input_is_refused_and_changes_nothing() {
    let Some(url) = pg_url() else { return };
    let src = unique("imp_bad");
    pg(&url, &format!(
        "CREATE TABLE {src} (id bigint, label text, span interval, total numeric, updated_at timestamptz);
         INSERT INTO {src} VALUES (1, 'a', '1 day', 1.5, '2026-01-01'), (1, 'b', '2 days', 2.5, '2026-01-02');"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "import",
            &url,
            "--source",
            &src,
            "--into",
            &table,
            "--no-progress",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let fail = |args: Vec<String>| fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // A type with no faithful mapping is named, with the way out.
    let err = fail(base(&["--mode", "overwrite"]));
    assert!(
        err.contains("`span`") && err.contains("interval") && err.contains("--exclude-column span"),
        "{err}"
    );
    // numeric without precision: no fixed decimal type.
    let err = fail(base(&["--mode", "overwrite", "--exclude-column", "span"]));
    assert!(err.contains("`total`") && err.contains("numeric"), "{err}");
    let ok = ["--exclude-column", "span", "--exclude-column", "total"];
    // Unknown columns, a cursor that is not monotonic-typed, a key that is not unique.
    let err = fail(base(
        &[&ok[..], &["--key", "nope", "--cursor", "updated_at"]].concat(),
    ));
    assert!(err.contains("`nope` is not a column"), "{err}");
    let err = fail(base(
        &[&ok[..], &["--key", "id", "--cursor", "label"]].concat(),
    ));
    assert!(
        err.contains("--cursor `label`") && err.contains("text"),
        "{err}"
    );
    let err = fail(base(
        &[&ok[..], &["--key", "id", "--cursor", "updated_at"]].concat(),
    ));
    assert!(err.contains("not unique") && err.contains("(1)"), "{err}");
    // Unknown table, unreachable server, bad credentials, no mode.
    let err = fails(&[
        "import",
        &url,
        "--source",
        "no_such_table",
        "--into",
        &table,
        "--mode",
        "append",
    ]);
    assert!(err.contains("no_such_table"), "{err}");
    let err = fails(&[
        "import",
        "postgres://postgres@127.0.0.1:1/test",
        "--source",
        &src,
        "--into",
        &table,
        "--mode",
        "append",
    ]);
    assert!(err.contains("cannot connect"), "{err}");
    let err = fails(&[
        "import",
        "postgres://no_such_user:pw@127.0.0.1:5432/test",
        "--source",
        &src,
        "--into",
        &table,
        "--mode",
        "append",
    ]);
    assert!(
        err.contains("cannot connect") && !err.contains("pw@"),
        "{err}"
    );
    let err = fails(&["import", &url, "--source", &src, "--into", &table]);
    assert!(err.contains("--mode"), "{err}");
    assert!(version(&table).is_none(), "nothing was created");
    assert!(!std::path::Path::new(&table).exists());
    pg(&url, &format!("DROP TABLE {src};")).await;
}

#[tokio::test]
async fn postgres_a_failure_while_rows_stream_changes_nothing() {
    let Some(url) = pg_url() else { return };
    let src = unique("imp_midway");
    // Large enough (> 16 MiB) to be read as two parallel streams over block ranges; the
    // bad value sits in the last rows, so the failure comes after many batches were sent.
    pg(
        &url,
        &format!(
            "CREATE TABLE {src} (id bigint, payload text, amount numeric(10,2));
         INSERT INTO {src} SELECT g, repeat('x', 100), g FROM generate_series(1, 200000) g;
         ANALYZE {src};"
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let import = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["import", &url, "--into", &table, "--no-progress"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let first = import(&["--source", &src, "--mode", "append"]);
    assert_eq!(json_out(&args(&first))["rows_read"], 200000);
    let before = version(&table).unwrap();

    // A value Tarn refuses (NaN in a decimal column), found while decoding the stream.
    pg(
        &url,
        &format!("UPDATE {src} SET amount = 'NaN' WHERE id = 199990;"),
    )
    .await;
    let err = fails(&args(&first));
    assert!(err.contains("`amount`") && err.contains("NaN"), "{err}");
    assert_eq!(
        version(&table),
        Some(before),
        "no commit after a failed run"
    );

    // An error the server raises part-way through the COPY.
    let query = format!("SELECT id, 1000 / (id - 150000) AS x FROM {src}");
    let err = fails(&args(&import(&[
        "--query",
        &query,
        "--mode",
        "append",
        "--merge-schema",
    ])));
    assert!(err.contains("division by zero"), "{err}");
    assert_eq!(
        version(&table),
        Some(before),
        "no commit after a failed run"
    );
    let got = rows(&table, "SELECT COUNT(*) AS n FROM t");
    assert_eq!(got, json!([{"n": 200000}]));
    pg(&url, &format!("DROP TABLE {src};")).await;
}

/// A server that accepts connections and never says a word: a MySQL client waits for the
/// greeting, a PostgreSQL client for the answer to its start-up message.
#[test]
fn a_source_that_never_answers_times_out_with_one_line() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for socket in listener.incoming() {
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    for scheme in ["mysql", "postgres"] {
        let url = format!("{scheme}://app@127.0.0.1:{port}/shop");
        let out = tarn()
            .args(["import", &url, "--source", "orders", "--into"])
            .arg(&target)
            .args(["--mode", "overwrite", "--connect-timeout", "1"])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert!(!out.status.success(), "{scheme}: {err}");
        assert_eq!(
            err,
            format!(
                "error: cannot connect to {scheme}://***@127.0.0.1:{port}/shop: no answer within 1 s (is a PostgreSQL or MySQL server listening there? --connect-timeout sets how long to wait)"
            )
        );
        assert!(!target.exists(), "{scheme}: nothing is created");
    }
}

/// Another service on the port: an HTTP server, and each database's port given to the
/// other's scheme.
#[test]
fn a_source_that_speaks_another_protocol_is_named_so() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { continue };
            let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = socket.read(&mut [0u8; 512]);
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let mut cases = vec![
        (
            format!("postgres://app@127.0.0.1:{http}/shop"),
            "PostgreSQL's",
        ),
        (format!("mysql://app@127.0.0.1:{http}/shop"), "MySQL's"),
    ];
    if let Some(port) = pg_url().and_then(|u| url_port(&u, 5432)) {
        cases.push((format!("mysql://app@127.0.0.1:{port}/shop"), "MySQL's"));
    }
    if let Some(port) = mysql_url().and_then(|u| url_port(&u, 3306)) {
        cases.push((
            format!("postgres://app@127.0.0.1:{port}/shop"),
            "PostgreSQL's",
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    for (url, protocol) in cases {
        let out = tarn()
            .args(["import", &url, "--source", "orders", "--into"])
            .arg(&target)
            .args(["--mode", "overwrite", "--connect-timeout", "5"])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let shown = url.replace("app@", "***@");
        assert!(
            err == format!("error: cannot connect to {shown}: the server there does not speak {protocol} protocol (is the port right?)")
                // A MySQL client waits for the server to speak first, and PostgreSQL waits
                // for the client: only the timeout tells.
                || (protocol == "MySQL's" && err.contains("no answer within 5 s")),
            "{url}: {err}"
        );
        assert!(!target.exists(), "{url}: nothing is created");
    }
}

/// The port of a database URL (`default` when it names none).
fn url_port(url: &str, default: u16) -> Option<u16> {
    let host = url.split('@').nth(1)?.split('/').next()?;
    Some(match host.rsplit_once(':') {
        Some((_, port)) => port.parse().ok()?,
        None => default,
    })
}

#[tokio::test]
async fn postgres_imported_files_are_laid_out_for_readers() {
    let Some(url) = pg_url() else { return };
    let src = unique("imp_layout");
    pg(
        &url,
        &format!(
            "CREATE TABLE {src} AS SELECT g::bigint AS id, 'customer_' || (g % 100) AS customer,
                 timestamptz '2026-01-01' + g * interval '1 second' AS created_at
             FROM generate_series(1, 300000) g;"
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("layout");
    let target = target.to_str().unwrap();
    let report = json_out(&[
        "import",
        &url,
        "--source",
        &src,
        "--into",
        target,
        "--mode",
        "overwrite",
        "--no-progress",
    ]);
    assert_eq!(report["rows_read"], 300_000);
    use tarn_table::deltalake::parquet::basic::Encoding;
    use tarn_table::deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
    let files: Vec<_> = std::fs::read_dir(target)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let meta = SerializedFileReader::new(std::fs::File::open(&files[0]).unwrap())
        .unwrap()
        .metadata()
        .clone();
    // Row groups of 131,072 rows: written as they fill, and readable in parallel.
    let groups: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
    assert_eq!(groups, vec![131_072, 131_072, 37_856]);
    // Mostly distinct columns are written plain; the others keep a dictionary.
    for group in meta.row_groups() {
        for column in group.columns() {
            let name = column.column_descr().name().to_string();
            let dictionary = column
                .encodings()
                .any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY));
            assert_eq!(
                dictionary,
                name == "customer",
                "{name}: {:?}",
                column.encodings().collect::<Vec<_>>()
            );
        }
    }
    // Whatever the layout, the rows are the source's.
    let got = rows(
        target,
        "SELECT COUNT(*) AS n, SUM(id) AS s, COUNT(DISTINCT customer) AS c FROM t",
    );
    assert_eq!(
        got,
        json!([{"n": 300_000, "s": 45_000_150_000i64, "c": 100}])
    );
    pg(&url, &format!("DROP TABLE {src};")).await;
}

#[tokio::test]
async fn postgres_query_sources_and_named_targets() {
    let Some(url) = pg_url() else { return };
    let src = unique("imp_q");
    pg(
        &url,
        &format!(
            "CREATE TABLE {src} (id int, amount numeric(10,2));
         INSERT INTO {src} SELECT g, g * 1.25 FROM generate_series(1, 10) g;"
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh").to_string_lossy().to_string();
    let g = ["--warehouse", wh.as_str()];
    json_out(&[&g[..], &["catalog", "create", "main"]].concat());
    json_out(&[&g[..], &["schema", "create", "main.shop"]].concat());
    // A trailing line comment, as pasted from an editor, ends nothing else.
    let query = format!("SELECT id, amount FROM {src} WHERE amount > 5 -- the larger ones");
    let args = [
        &g[..],
        &[
            "import",
            &url,
            "--query",
            &query,
            "--into",
            "main.shop.big",
            "--mode",
            "overwrite",
            "--no-progress",
        ],
    ]
    .concat();
    let report = json_out(&args);
    assert_eq!(report["rows_read"], 6);
    // The new name is a managed table in the catalog.
    let listed = json_out(&[&g[..], &["table", "list", "main.shop"]].concat());
    assert_eq!(listed[0]["name"], "big", "{listed}");
    let got = json_out(
        &[
            &g[..],
            &[
                "query",
                "SELECT COUNT(*) AS n, CAST(SUM(amount) AS VARCHAR) AS s FROM big",
                "--table",
                "main.shop.big",
            ],
        ]
        .concat(),
    );
    assert_eq!(got, json!([{"n": 6, "s": "56.25"}]));
    // Overwrite replaces, it does not add.
    json_out(&args);
    let got = json_out(
        &[
            &g[..],
            &[
                "query",
                "SELECT COUNT(*) AS n FROM big",
                "--table",
                "main.shop.big",
            ],
        ]
        .concat(),
    );
    assert_eq!(got, json!([{"n": 6}]));
    pg(&url, &format!("DROP TABLE {src};")).await;
}

#[tokio::test]
async fn mysql_every_type_then_incremental_runs() {
    let Some(url) = mysql_url() else { return };
    let src = unique("imp_my");
    my(&url, &format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, ti tinyint, si smallint, i int, iu int unsigned,
           bu bigint unsigned, amount decimal(12,2), f float, d double, name varchar(40), t text,
           flag bit(1), day date, at timestamp(6) NULL, naive datetime(6), doc json, raw blob,
           e enum('a','b'), yr year, updated_at datetime(6) NOT NULL);
         INSERT INTO {src} VALUES
          (1, -128, -32768, -2147483648, 4294967295, 18446744073709551615, -12.34, 1.5, 2.25, 'ünï',
           'long text', b'1', '2026-01-31', '2026-01-31 10:00:00.123456', '2026-01-31 10:00:00',
           '{{\"a\": 1}}', x'deadbeef', 'b', 2026, '2026-01-01'),
          (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, b'0', NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, '2026-01-02');"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let args = [
        "import",
        url.as_str(),
        "--source",
        src.as_str(),
        "--into",
        table.as_str(),
        "--key",
        "id",
        "--cursor",
        "updated_at",
        "--no-progress",
    ];
    let first = json_out(&args);
    assert_eq!(first["rows_read"], 2);
    let got = rows(
        &table,
        "SELECT id, ti, si, i, iu, CAST(bu AS VARCHAR) AS bu, CAST(amount AS VARCHAR) AS amount, f, d, \
         name, t, flag, CAST(day AS VARCHAR) AS day, CAST(at AS VARCHAR) AS at, CAST(naive AS VARCHAR) AS naive, \
         doc, encode(raw, 'hex') AS raw, e, yr FROM t ORDER BY id",
    );
    assert_eq!(
        got,
        json!([
            {"id": 1, "ti": -128, "si": -32768, "i": -2147483648, "iu": 4294967295u64,
             "bu": "18446744073709551615", "amount": "-12.34", "f": 1.5, "d": 2.25, "name": "ünï",
             "t": "long text", "flag": true, "day": "2026-01-31", "at": "2026-01-31T10:00:00.123456Z",
             "naive": "2026-01-31T10:00:00Z", "doc": "{\"a\": 1}", "raw": "deadbeef", "e": "b", "yr": 2026},
            {"id": 2, "ti": null, "si": null, "i": null, "iu": null, "bu": null, "amount": null,
             "f": null, "d": null, "name": null, "t": null, "flag": false, "day": null, "at": null,
             "naive": null, "doc": null, "raw": null, "e": null, "yr": null}
        ])
    );
    my(
        &url,
        &format!(
            "UPDATE {src} SET name = 'bob', updated_at = '2026-01-05' WHERE id = 2;
         INSERT INTO {src} (id, name, updated_at) VALUES (3, 'dan', '2026-01-04');"
        ),
    )
    .await;
    let second = json_out(&args);
    assert_eq!(
        (second["inserted"].as_u64(), second["updated"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        rows(&table, "SELECT id, name FROM t ORDER BY id"),
        json!([{"id": 1, "name": "ünï"}, {"id": 2, "name": "bob"}, {"id": 3, "name": "dan"}])
    );
    assert_eq!(json_out(&args)["committed"], false);
    // Bad input: a type with no faithful mapping, a bad password.
    my(&url, &format!("ALTER TABLE {src} ADD COLUMN dur time")).await;
    let err = fails(&args);
    assert!(
        err.contains("`dur`") && err.contains("--exclude-column dur"),
        "{err}"
    );
    let bad = url.replacen("root@", "root:wrong@", 1);
    let err = fails(&[
        "import",
        &bad,
        "--source",
        &src,
        "--into",
        &table,
        "--key",
        "id",
        "--cursor",
        "updated_at",
    ]);
    assert!(
        err.contains("cannot connect") && !err.contains("wrong@"),
        "{err}"
    );
    my(&url, &format!("DROP TABLE {src}")).await;
}
