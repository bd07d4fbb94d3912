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

/// Rewrites the watermark the newest commit of `table` records, as anyone who can write
/// the table's `_delta_log` could.
fn edit_saved_watermark(table: &str, watermark: &str) {
    let log = std::path::Path::new(table).join("_delta_log");
    let newest = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .max()
        .unwrap();
    let text = std::fs::read_to_string(&newest).unwrap();
    let mut edited = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut action: Value = serde_json::from_str(line).unwrap();
            if let Some(w) = action.pointer_mut("/commitInfo/tarnImport/watermark") {
                *w = json!(watermark);
                edited += 1;
            }
            action.to_string()
        })
        .collect();
    assert_eq!(edited, 1, "{newest:?} records no watermark");
    std::fs::write(&newest, lines.join("\n") + "\n").unwrap();
}

/// Payloads a writer of the log might plant as the watermark: quote breaking, MySQL's
/// backslash escape (which makes PostgreSQL's `''` quoting useless there), stacked
/// statements, comments.
const WATERMARK_PAYLOADS: [&str; 4] = [
    "3'; DROP TABLE {src}; -- ",
    "3\\') AS w; DROP TABLE {src}; -- ",
    "3\\' OR 1=1 OR \\'",
    "2026-01-01 00:00:00\\'); DROP TABLE {src}; -- ",
];

#[tokio::test]
async fn mysql_an_edited_watermark_cannot_run_sql_on_the_source() {
    let Some(url) = mysql_url() else { return };
    let src = unique("imp_my_wm");
    my(
        &url,
        &format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, at datetime(6) NOT NULL);
             INSERT INTO {src} VALUES (1, '2026-01-01'), (2, '2026-01-02'), (3, '2026-01-03');"
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    for cursor in ["id", "at"] {
        let table = dir.path().join(cursor).to_string_lossy().to_string();
        let args = [
            "import",
            url.as_str(),
            "--source",
            src.as_str(),
            "--into",
            table.as_str(),
            "--cursor",
            cursor,
            "--no-progress",
        ];
        json_out(&args);
        let v = version(&table);
        for payload in WATERMARK_PAYLOADS {
            let payload = payload.replace("{src}", &src);
            edit_saved_watermark(&table, &payload);
            let err = fails(&args);
            assert!(
                err.contains(&format!("saved watermark for cursor `{cursor}`"))
                    && err.contains("not a value of type")
                    && err.contains("nothing was imported"),
                "{payload}: {err}"
            );
            assert_eq!(version(&table), v, "{payload}: nothing was written");
            // The source table is still there, rows and all.
            let mut conn = sqlx::MySqlConnection::connect(&url).await.unwrap();
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {src}"))
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{payload}: the source table is gone: {e}"));
            assert_eq!(n, 3, "{payload}");
        }
    }
    my(&url, &format!("DROP TABLE {src}")).await;
}

#[tokio::test]
async fn postgres_an_edited_watermark_cannot_run_sql_on_the_source() {
    let Some(url) = pg_url() else { return };
    let src = unique("imp_pg_wm");
    pg(
        &url,
        &format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, at timestamptz NOT NULL);
             INSERT INTO {src} VALUES (1, '2026-01-01'), (2, '2026-01-02'), (3, '2026-01-03');"
        ),
    )
    .await;
    // Also with standard_conforming_strings off, where a backslash escapes a quote.
    let sep = if url.contains('?') { '&' } else { '?' };
    let no_scs = format!("{url}{sep}options=-c%20standard_conforming_strings%3Doff");
    let dir = tempfile::tempdir().unwrap();
    for (i, source_url) in [url.as_str(), no_scs.as_str()].into_iter().enumerate() {
        for cursor in ["id", "at"] {
            let table = dir
                .path()
                .join(format!("{cursor}{i}"))
                .to_string_lossy()
                .to_string();
            let args = [
                "import",
                source_url,
                "--source",
                src.as_str(),
                "--into",
                table.as_str(),
                "--cursor",
                cursor,
                "--no-progress",
            ];
            json_out(&args);
            let v = version(&table);
            for payload in WATERMARK_PAYLOADS {
                let payload = payload.replace("{src}", &src);
                edit_saved_watermark(&table, &payload);
                let err = fails(&args);
                assert!(
                    err.contains(&format!("saved watermark for cursor `{cursor}`"))
                        && err.contains("not a value of type"),
                    "{payload}: {err}"
                );
                assert_eq!(version(&table), v, "{payload}: nothing was written");
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {src}"))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{payload}: the source table is gone: {e}"));
                assert_eq!(n, 3, "{payload}");
            }
            // A genuine value still works as one, and only rows beyond it come.
            let genuine = if cursor == "id" {
                "1"
            } else {
                "2026-01-01 00:00:00+00"
            };
            edit_saved_watermark(&table, genuine);
            let report = json_out(&args);
            assert_eq!(report["rows_read"], 2, "{report}");
        }
    }
    pg(&url, &format!("DROP TABLE {src}")).await;
}

#[tokio::test]
async fn postgres_query_sources_run_read_only() {
    let Some(url) = pg_url() else { return };
    let src = unique("imp_pg_ro");
    pg(
        &url,
        &format!(
            "CREATE TABLE {src} (id int); INSERT INTO {src} VALUES (1), (2);
             CREATE SEQUENCE {src}_seq;"
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let import = |query: &str| {
        fails(&[
            "import",
            &url,
            "--query",
            query,
            "--into",
            &table,
            "--mode",
            "overwrite",
            "--no-progress",
        ])
    };
    // A second statement, even one that commits first, never runs.
    let err = import(&format!("SELECT 1 AS id; COMMIT; DROP TABLE {src}"));
    assert!(
        err.contains("--query must be one SELECT statement"),
        "{err}"
    );
    // A function that writes is refused by the read-only transaction.
    let err = import(&format!("SELECT nextval('{src}_seq') AS id"));
    assert!(
        err.contains("read-only transaction") && err.contains("an import only reads"),
        "{err}"
    );
    let err = import(&format!(
        "WITH gone AS (DELETE FROM {src} RETURNING id) SELECT id FROM gone"
    ));
    assert!(err.contains("--query"), "{err}");
    let err = import(&format!("DELETE FROM {src}"));
    assert!(err.contains("--query"), "{err}");
    assert!(version(&table).is_none(), "nothing was created");
    // The source is as it was: its rows, and the sequence never advanced.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {src}"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let called: bool = sqlx::query_scalar(&format!("SELECT is_called FROM {src}_seq"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!called, "the sequence was advanced");
    pg(&url, &format!("DROP TABLE {src}; DROP SEQUENCE {src}_seq")).await;
}

#[tokio::test]
async fn mysql_query_sources_run_read_only() {
    let Some(url) = mysql_url() else { return };
    let src = unique("imp_my_ro");
    my(
        &url,
        &format!(
            "CREATE TABLE {src} (id int); INSERT INTO {src} VALUES (1), (2);
             CREATE TABLE {src}_log (n int) ENGINE=InnoDB;"
        ),
    )
    .await;
    my(
        &url,
        &format!(
            "CREATE FUNCTION {src}_f() RETURNS int MODIFIES SQL DATA
             BEGIN INSERT INTO {src}_log VALUES (1); RETURN 1; END"
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let import = |query: &str| {
        fails(&[
            "import",
            &url,
            "--query",
            query,
            "--into",
            &table,
            "--mode",
            "overwrite",
            "--no-progress",
        ])
    };
    // Text that closes the source's derived table and stacks a statement never runs.
    let err = import(&format!(
        "SELECT 1 AS id) AS x; DROP TABLE {src}; SELECT * FROM (SELECT 1 AS id"
    ));
    assert!(
        err.contains("--query must be one SELECT statement"),
        "{err}"
    );
    // A function that writes: refused, and its write undone, also in the column probe.
    let err = import(&format!("SELECT {src}_f() AS id"));
    assert!(
        err.contains("READ ONLY transaction") && err.contains("an import only reads"),
        "{err}"
    );
    let err = import(&format!("DELETE FROM {src}"));
    assert!(err.contains("--query"), "{err}");
    assert!(version(&table).is_none(), "nothing was created");
    let mut conn = sqlx::MySqlConnection::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {src}"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let written: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {src}_log"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(written, 0, "the function's write stayed");
    my(
        &url,
        &format!("DROP TABLE {src}; DROP TABLE {src}_log; DROP FUNCTION {src}_f"),
    )
    .await;
}

/// Runs `tarn` with debug logging on; returns (success, stdout + stderr).
fn run_logged(args: &[&str]) -> (bool, String) {
    let out = tarn()
        .env("RUST_LOG", "debug")
        .env("TARN_LOG", "debug")
        .args(args)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Every file under `dir`, as text.
fn all_text_under(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&all_text_under(&path));
        } else {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}

/// Imports from `url` (which holds `secrets`) in every way a run shows or records the
/// source, and checks no secret is anywhere: stdout, stderr (debug logging on), the
/// table's files.
fn assert_secrets_stay_secret(url: &str, src: &str, secrets: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let mut shown = String::new();
    let base = [
        "import",
        url,
        "--source",
        src,
        "--into",
        &table,
        "--cursor",
        "id",
        "--no-progress",
    ];
    for (global, extra) in [
        (&[][..], &["--dry-run"][..]),
        (&["--format", "json"], &["--dry-run"]),
        (&[], &[]),
        (&["--format", "json"], &[]),
        (&["--format", "json"], &[]),
    ] {
        let (ok, text) = run_logged(&[global, &base[..], extra].concat());
        assert!(ok, "{text}");
        shown.push_str(&text);
    }
    // Failures name the source too.
    for args in [
        vec![
            "import",
            url,
            "--source",
            "no_such_table",
            "--into",
            &table,
            "--cursor",
            "id",
        ],
        vec![
            "import", url, "--source", src, "--into", &table, "--cursor", "nope",
        ],
        vec![
            "--format", "json", "import", url, "--source", src, "--into", &table,
        ],
    ] {
        let (ok, text) = run_logged(&args);
        assert!(!ok, "{text}");
        shown.push_str(&text);
    }
    // A server that refuses the connection (a port nothing listens on).
    let mut dead = url::Url::parse(url).unwrap();
    dead.set_port(Some(1)).unwrap();
    let dead = dead.to_string();
    let (ok, text) = run_logged(&[
        "import",
        &dead,
        "--source",
        src,
        "--into",
        &table,
        "--cursor",
        "id",
        "--connect-timeout",
        "2",
    ]);
    assert!(!ok && text.contains("cannot connect"), "{text}");
    shown.push_str(&text);
    let files = all_text_under(dir.path());
    assert!(files.contains("tarnImport"), "the log records the run");
    for secret in secrets {
        assert!(!shown.contains(secret), "`{secret}` was shown:\n{shown}");
        assert!(
            !files.contains(secret),
            "`{secret}` is in the table's files"
        );
    }
}

#[tokio::test]
async fn postgres_passwords_never_reach_the_log_or_any_output() {
    let Some(url) = pg_url() else { return };
    let src = unique("imp_pg_pw");
    pg(
        &url,
        &format!("CREATE TABLE {src} (id int PRIMARY KEY); INSERT INTO {src} VALUES (1), (2);"),
    )
    .await;
    // The local server trusts its clients, so any password is accepted.
    let mut with_pw = url::Url::parse(&url).unwrap();
    with_pw.set_password(Some("Us3rinfoSecret")).unwrap();
    with_pw
        .query_pairs_mut()
        .append_pair("password", "Qu3rySecret");
    let with_pw = with_pw.to_string();
    // Both forms really reach the server: the URL works.
    sqlx::PgConnection::connect(&with_pw).await.unwrap();
    assert_secrets_stay_secret(&with_pw, &src, &["Us3rinfoSecret", "Qu3rySecret"]);
    pg(&url, &format!("DROP TABLE {src}")).await;
}

#[tokio::test]
async fn postgres_a_password_with_white_space_is_hidden_whole() {
    let Some(url) = pg_url() else { return };
    let src = unique("imp_pg_pw_ws");
    pg(
        &url,
        &format!("CREATE TABLE {src} (id int PRIMARY KEY); INSERT INTO {src} VALUES (1), (2);"),
    )
    .await;
    // Written as a user types it: the `url` crate the driver parses with keeps the space
    // (encoded) in the value, so the password really is `Sp4ceOpen Sp4ceSesame`; a tab or a
    // line break is dropped from it, and the rest is the password.
    let sep = if url.contains('?') { '&' } else { '?' };
    for (ws, secrets) in [
        (" ", ["Sp4ceOpen", "Sp4ceSesame"]),
        ("\t", ["T4bOpen", "T4bSesame"]),
        ("\n", ["L1neOpen", "L1neSesame"]),
    ] {
        let with_pw = format!(
            "{url}{sep}sslmode=prefer&password={}{ws}{}&application_name=tarn test",
            secrets[0], secrets[1]
        );
        sqlx::PgConnection::connect(&with_pw).await.unwrap();
        assert_secrets_stay_secret(&with_pw, &src, &secrets);
    }
    pg(&url, &format!("DROP TABLE {src}")).await;
}

/// The application id runs before query secrets were hidden gave a table source: a hash
/// of the URL with only its user info hidden (so with `?password=…` in it).
fn legacy_app_id(url: &str, source: &str) -> String {
    use sha2::{Digest, Sha256};
    let (scheme, at) = (url.find("://").unwrap(), url.rfind('@').unwrap());
    let shown = format!("{}://***@{}", &url[..scheme], &url[at + 1..]);
    let mut h = Sha256::new();
    h.update(shown.as_bytes());
    h.update([0]);
    h.update(format!("table:{source}"));
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("tarn-import-{}", &hex[..16])
}

/// The text of commit `version` of the table at `table`.
fn commit_text(table: &str, version: u64) -> String {
    let path = std::path::Path::new(table)
        .join("_delta_log")
        .join(format!("{version:020}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The `txn` action of commit `version`: (application id, run).
fn commit_txn(table: &str, version: u64) -> (String, i64) {
    let text = commit_text(table, version);
    let txn = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find_map(|a| a.get("txn").cloned())
        .unwrap_or_else(|| panic!("commit {version} has no txn: {text}"));
    (
        txn["appId"].as_str().unwrap().to_string(),
        txn["version"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn postgres_a_run_id_made_from_a_password_is_never_written_again() {
    let Some(url) = pg_url() else { return };
    let src = unique("imp_pg_legacy");
    pg(
        &url,
        &format!("CREATE TABLE {src} (id int PRIMARY KEY); INSERT INTO {src} VALUES (1), (2);"),
    )
    .await;
    let mut with_pw = url::Url::parse(&url).unwrap();
    with_pw
        .query_pairs_mut()
        .append_pair("password", "Leg4cySecret");
    let with_pw = with_pw.to_string();
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let args = [
        "import",
        with_pw.as_str(),
        "--source",
        src.as_str(),
        "--into",
        table.as_str(),
        "--cursor",
        "id",
        "--no-progress",
    ];
    json_out(&args);
    // Make the first commit what a run before query secrets were hidden wrote: its id
    // (txn and commitInfo) a hash of the URL with the password in it.
    let (id, run) = commit_txn(&table, 0);
    let legacy = legacy_app_id(&with_pw, &src);
    assert_ne!(id, legacy);
    assert_eq!(run, 1);
    let first = std::path::Path::new(&table).join("_delta_log/00000000000000000000.json");
    let text = std::fs::read_to_string(&first).unwrap();
    assert_eq!(text.matches(&id).count(), 2, "txn and commitInfo: {text}");
    std::fs::write(&first, text.replace(&id, &legacy)).unwrap();

    // The next runs carry on exactly where that run ended, under the new id only.
    for (version, new_row) in [(1, 3), (2, 4)] {
        pg(&url, &format!("INSERT INTO {src} VALUES ({new_row})")).await;
        let report = json_out(&args);
        assert_eq!(report["rows_read"], 1, "{report}");
        assert_eq!(report["version"], version, "{report}");
        let text = commit_text(&table, version);
        assert!(
            !text.contains(&legacy),
            "commit {version} writes the id made from the password again: {text}"
        );
        assert_eq!(
            commit_txn(&table, version),
            (id.clone(), run + version as i64)
        );
        assert!(text.contains(&format!("\"appId\":\"{id}\"")), "{text}");
    }
    // Exactly once: every source row once.
    let got = rows(
        &table,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM t",
    );
    assert_eq!(got, json!([{"n": 4, "d": 4}]), "{got}");
    assert!(!all_text_under(dir.path()).contains("Leg4cySecret"));
    pg(&url, &format!("DROP TABLE {src}")).await;
}

#[tokio::test]
async fn mysql_passwords_never_reach_the_log_or_any_output() {
    let Some(url) = mysql_url() else { return };
    let src = unique("imp_my_pw");
    let user = format!("tarn_pw_{}", std::process::id());
    let db = url::Url::parse(&url)
        .unwrap()
        .path()
        .trim_matches('/')
        .to_string();
    my(
        &url,
        &format!(
            "CREATE TABLE {src} (id int PRIMARY KEY); INSERT INTO {src} VALUES (1), (2);
             CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'Us3rinfoSecret';
             GRANT ALL ON {db}.* TO '{user}'@'%';"
        ),
    )
    .await;
    let mut with_pw = url::Url::parse(&url).unwrap();
    with_pw.set_username(&user).unwrap();
    with_pw.set_password(Some("Us3rinfoSecret")).unwrap();
    with_pw
        .query_pairs_mut()
        .append_pair("password", "Qu3rySecret");
    let with_pw = with_pw.to_string();
    // The password is checked: a wrong one is refused, so the right one is really used.
    let mut wrong = url::Url::parse(&with_pw).unwrap();
    wrong.set_password(Some("wrong")).unwrap();
    assert!(sqlx::MySqlConnection::connect(wrong.as_str())
        .await
        .is_err());
    sqlx::MySqlConnection::connect(&with_pw).await.unwrap();
    assert_secrets_stay_secret(&with_pw, &src, &["Us3rinfoSecret", "Qu3rySecret"]);
    my(&url, &format!("DROP TABLE {src}; DROP USER '{user}'@'%'")).await;
}

#[tokio::test]
async fn postgres_timestamps_beyond_what_delta_holds_are_refused_clearly() {
    let Some(url) = pg_url() else { return };
    let src = unique("imp_pg_far");
    pg(
        &url,
        &format!(
            "CREATE TABLE {src} (id int, at timestamptz, naive timestamp, day date);
             INSERT INTO {src} VALUES
               (1, '262142-12-31 23:59:59.999999+00', '262142-12-31 23:59:59.999999', '262142-12-31');"
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let import = |query: &str| {
        let mut cmd = tarn();
        cmd.args([
            "import",
            &url,
            "--query",
            query,
            "--into",
            &table,
            "--mode",
            "overwrite",
            "--no-progress",
        ]);
        cmd.output().unwrap()
    };
    // The last microsecond and the last day Delta's writers hold come through exactly.
    let out = import(&format!("SELECT * FROM {src}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        rows(
            &table,
            "SELECT CAST(at AS VARCHAR) AS at, CAST(naive AS VARCHAR) AS naive, CAST(day AS VARCHAR) AS day FROM t"
        ),
        json!([{"at": "+262142-12-31T23:59:59.999999Z", "naive": "+262142-12-31T23:59:59.999999Z", "day": "+262142-12-31"}])
    );
    let v = version(&table);
    // Beyond (up to PostgreSQL's own ends, where 64-bit microseconds since 1970 overflow),
    // in either kind of timestamp, dates, and infinity: one line naming the column and the
    // value, never a panic or a wrapped-around time.
    for (query, column, value) in [
        (
            "SELECT 1 AS id, '262143-01-01 00:00:00+00'::timestamptz AS at",
            "at",
            "262143-01-01 00:00:00.000000",
        ),
        (
            "SELECT 1 AS id, '294247-01-10 04:00:54.775808+00'::timestamptz AS at",
            "at",
            "294247-01-10 04:00:54.775808",
        ),
        (
            "SELECT 1 AS id, '294276-12-31 23:59:59.999999'::timestamp AS naive",
            "naive",
            "294276-12-31 23:59:59.999999",
        ),
        (
            "SELECT 1 AS id, '5874897-12-31'::date AS day",
            "day",
            "5874897-12-31",
        ),
        (
            "SELECT 1 AS id, 'infinity'::timestamptz AS at",
            "at",
            "infinity",
        ),
        (
            "SELECT 1 AS id, '-infinity'::timestamp AS naive",
            "naive",
            "-infinity",
        ),
        (
            "SELECT 1 AS id, ARRAY['infinity'::timestamptz] AS ats",
            "ats",
            "infinity",
        ),
    ] {
        let out = import(query);
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert!(!out.status.success(), "{query}");
        assert_eq!(err.lines().count(), 1, "{query}: {err}");
        assert!(
            err.contains(&format!("column `{column}`")) && err.contains(value),
            "{query}: {err}"
        );
        assert!(!err.contains("panick"), "{err}");
        assert_eq!(version(&table), v, "{query}: nothing was written");
    }
    pg(&url, &format!("DROP TABLE {src}")).await;
}

#[tokio::test]
async fn a_catalog_url_s_passwords_never_reach_the_server_log() {
    let Some(url) = pg_url() else { return };
    let db = unique("tarn_secret_catalog");
    pg(&url, &format!("CREATE DATABASE {db}")).await;
    let mut catalog = url::Url::parse(&url).unwrap();
    catalog.set_path(&db);
    catalog.set_password(Some("Us3rinfoSecret")).unwrap();
    catalog
        .query_pairs_mut()
        .append_pair("sslpassword", "SslPassSecret")
        .append_pair("pass", "PassSecret")
        .append_pair("password", "Qu3rySecret");
    let catalog = catalog.to_string();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().to_string_lossy().to_string();
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("tarn"))
        .args(["--warehouse", &wh, "--catalog", &catalog])
        .args(["serve", "--bind", "127.0.0.1:0", "--no-auth"])
        .env("TARN_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The banner: the catalog is open (its connections made, its URL parsed).
    let mut banner = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut banner,
    )
    .unwrap();
    assert!(banner.contains("tarn serving"), "{banner}");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let mut shown = banner + &String::from_utf8_lossy(&out.stderr);
    // And a catalog that cannot be opened: the error line.
    let mut dead = url::Url::parse(&catalog).unwrap();
    dead.set_port(Some(1)).unwrap();
    let out = tarn()
        .env("TARN_LOG", "debug")
        .args([
            "--warehouse",
            &wh,
            "--catalog",
            dead.as_str(),
            "table",
            "list",
            "main.x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    shown.push_str(&String::from_utf8_lossy(&out.stderr));
    for secret in [
        "Us3rinfoSecret",
        "SslPassSecret",
        "PassSecret",
        "Qu3rySecret",
    ] {
        assert!(!shown.contains(secret), "`{secret}` was shown:\n{shown}");
    }
    pg(&url, &format!("DROP DATABASE {db} WITH (FORCE)")).await;
}
