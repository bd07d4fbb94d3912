//! TLS to the databases, end to end through the `tarn` binary: `tarn import` and the
//! PostgreSQL catalog as a PostgreSQL role that may only connect over TLS, with `sslmode`
//! and `sslrootcert` as libpq reads them; and MySQL's `ssl-mode`.
//!
//! The role is `tarn_tls` on the PostgreSQL at `TARN_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`, whose user must be a superuser): pg_hba lets
//! it in only over TLS (`hostssl ... trust`, then `host ... reject`). `tests/run.sh` sets
//! that up when run as root; elsewhere these tests say how and skip. The server's
//! certificate is Debian's self-signed snakeoil one (`CN = localhost`), used as the CA.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;
use sqlx::{Connection, Row};

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

fn admin_url() -> Option<String> {
    let url = std::env::var("TARN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    (url != "skip").then_some(url)
}

fn mysql_url() -> Option<String> {
    let url = std::env::var("TARN_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    (url != "skip").then_some(url)
}

async fn admin(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {url} is needed ({e}); set TARN_TEST_POSTGRES=skip to skip")
    })
}

async fn run_sql(url: &str, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(&mut admin(url).await)
        .await
        .unwrap();
}

/// The server's port.
fn port(url: &str) -> u16 {
    url::Url::parse(url).unwrap().port().unwrap_or(5432)
}

/// `postgres://tarn_tls@HOST:PORT/DB` when the TLS-only role is set up (else says how, and
/// `None`). The role has no password: a `trust` line lets it in, over TLS only.
async fn tls_role(admin_url: &str, host: &str, db: &str) -> Option<String> {
    let mut conn = admin(admin_url).await;
    let ready: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tarn_tls' AND rolcanlogin) \
           AND EXISTS (SELECT 1 FROM pg_hba_file_rules WHERE type = 'hostssl' AND 'tarn_tls' = ANY(user_name)) \
           AND EXISTS (SELECT 1 FROM pg_hba_file_rules WHERE type = 'host' AND auth_method = 'reject' AND 'tarn_tls' = ANY(user_name)) \
           AND current_setting('ssl') = 'on'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap_or(false);
    if !ready || !Path::new(SNAKEOIL).exists() {
        eprintln!(
            "skipped: no PostgreSQL role `tarn_tls` that may only connect over TLS (or no {SNAKEOIL}). \
             Run tests/run.sh as root once: it creates the role and adds `hostssl all tarn_tls 127.0.0.1/32 trust` \
             and `host all tarn_tls 127.0.0.1/32 reject` before the other lines of pg_hba.conf, then reloads"
        );
        return None;
    }
    Some(format!(
        "postgres://tarn_tls@{host}:{}/{db}",
        port(admin_url)
    ))
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

fn tarn() -> Command {
    let mut cmd = Command::cargo_bin("tarn").unwrap();
    cmd.env_remove("TARN_FORMAT");
    cmd
}

fn tarn_bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("tarn")
}

fn json_out(args: &[&str]) -> Value {
    let out = tarn()
        .arg("--format")
        .arg("json")
        .args(args)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tarn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Expects failure with one `error:` line on stderr, and returns it.
fn fails(args: &[&str]) -> String {
    let out = tarn()
        .args(args)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(!out.status.success(), "tarn {args:?} should have failed");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "error should be one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn count(table: &str) -> i64 {
    let spec = format!("t={table}");
    json_out(&["query", "SELECT COUNT(*) AS n FROM t", "--table", &spec])[0]["n"]
        .as_i64()
        .unwrap()
}

/// A backend of the TLS-only role, as the server sees it.
#[derive(Debug, Clone)]
struct Backend {
    pid: i32,
    application: String,
    query: String,
    waiting_on_lock: bool,
    ssl: bool,
}

/// Every backend of `tarn_tls` now, with `pg_stat_ssl.ssl` (in database `db`, if given).
async fn backends(conn: &mut sqlx::PgConnection, db: Option<&str>) -> Vec<Backend> {
    sqlx::query(
        "SELECT a.pid, COALESCE(a.application_name, '') AS app, COALESCE(a.query, '') AS query, \
                COALESCE(a.wait_event_type, '') = 'Lock' AS waiting, COALESCE(s.ssl, false) AS ssl \
         FROM pg_stat_activity a LEFT JOIN pg_stat_ssl s ON s.pid = a.pid \
         WHERE a.usename = 'tarn_tls' AND ($1::text IS NULL OR a.datname = $1)",
    )
    .bind(db)
    .fetch_all(conn)
    .await
    .unwrap()
    .into_iter()
    .map(|r| Backend {
        pid: r.get("pid"),
        application: r.get("app"),
        query: r.get("query"),
        waiting_on_lock: r.get("waiting"),
        ssl: r.get("ssl"),
    })
    .collect()
}

/// Watches `tarn_tls`'s backends until `child` exits, recording every one seen; returns
/// them (by pid) and the child's output.
async fn watch_until_exit(
    conn: &mut sqlx::PgConnection,
    mut child: Child,
    seen: &mut BTreeMap<i32, Backend>,
) -> std::process::Output {
    let guard = Instant::now();
    loop {
        for b in backends(conn, None).await {
            seen.insert(b.pid, b);
        }
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        assert!(
            guard.elapsed() < Duration::from_secs(300),
            "the import did not end"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls `tarn_tls`'s backends until `ready` holds of them (a guard against hanging, not a
/// timing assertion), recording every one seen.
async fn wait_for(
    conn: &mut sqlx::PgConnection,
    seen: &mut BTreeMap<i32, Backend>,
    child: &mut Child,
    ready: impl Fn(&[Backend]) -> bool,
) -> Vec<Backend> {
    let guard = Instant::now();
    loop {
        let now = backends(conn, None).await;
        for b in &now {
            seen.insert(b.pid, b.clone());
        }
        if ready(&now) {
            return now;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the import ended ({status}) before it was seen: {err}");
        }
        assert!(
            guard.elapsed() < Duration::from_secs(120),
            "never seen: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn spawn_import(args: &[&str]) -> Child {
    StdCommand::new(tarn_bin())
        .args(["--format", "json", "import"])
        .args(args)
        .arg("--no-progress")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A query import as the TLS-only role with `sslmode=verify-ca` (sqlx's connection through
/// the TLS tunnel), held mid-COPY by an advisory lock: every backend of the run (sqlx's, and
/// the COPY client's, whose COPY is seen waiting) has `pg_stat_ssl.ssl`, and the rows
/// arrive.
#[tokio::test]
async fn tls_only_role_imports_a_query_with_the_copy_stream_over_tls() {
    let Some(admin_url) = admin_url() else { return };
    let Some(role) = tls_role(&admin_url, "127.0.0.1", "test").await else {
        return;
    };
    let src = unique("tls_query");
    let key = std::process::id() as i64 * 1000 + 1;
    run_sql(
        &admin_url,
        &format!(
            "CREATE TABLE {src} (id bigint, note text);
             INSERT INTO {src} SELECT g, repeat('n', 50) FROM generate_series(1, 5000) g;
             GRANT SELECT ON {src} TO tarn_tls;"
        ),
    )
    .await;
    let mut watcher = admin(&admin_url).await;
    let mut holder = admin(&admin_url).await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut holder)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let url = format!("{role}?sslmode=verify-ca&sslrootcert={SNAKEOIL}");
    // The view's rows wait for the lock: the COPY that reads them is held until it goes.
    let query = format!(
        "SELECT t.* FROM {src} t CROSS JOIN (SELECT pg_advisory_xact_lock_shared({key})::text AS l) l"
    );
    let mut child = spawn_import(&[
        &url,
        "--query",
        &query,
        "--into",
        &table,
        "--mode",
        "overwrite",
    ]);
    let mut seen = BTreeMap::new();
    let held = wait_for(&mut watcher, &mut seen, &mut child, |now| {
        now.iter()
            .any(|b| b.waiting_on_lock && b.query.contains("COPY ("))
    })
    .await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut holder)
        .await
        .unwrap();
    let out = watch_until_exit(&mut watcher, child, &mut seen).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let copying: Vec<&Backend> = held
        .iter()
        .filter(|b| b.waiting_on_lock && b.query.contains("COPY ("))
        .collect();
    assert_eq!(copying.len(), 1, "{held:?}");
    assert_eq!(
        copying[0].application, "tarn import",
        "the rows come on Tarn's own COPY client: {held:?}"
    );
    assert!(
        held.len() >= 2,
        "sqlx's connection and the COPY's: {held:?}"
    );
    assert!(
        seen.values().all(|b| b.ssl),
        "every backend of the run used TLS: {seen:?}"
    );
    assert_eq!(count(&table), 5000);
    run_sql(&admin_url, &format!("DROP TABLE {src}")).await;
}

/// A table large enough for two parallel COPY streams, imported as the TLS-only role with
/// the default `sslmode` (prefer; sqlx's connection on sqlx's own TLS, as nothing is checked
/// of the certificate): held at its first statement by a table lock, the run's
/// three connections (sqlx's, and the COPY client's two, already logged in) all have
/// `pg_stat_ssl.ssl`, as has every backend seen until the run ends.
#[tokio::test]
async fn tls_only_role_imports_a_large_table_on_parallel_tls_streams_by_default() {
    let Some(admin_url) = admin_url() else { return };
    let Some(role) = tls_role(&admin_url, "127.0.0.1", "test").await else {
        return;
    };
    let src = unique("tls_table");
    // 2,048 blocks or more: read as two streams.
    run_sql(
        &admin_url,
        &format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, note text);
             INSERT INTO {src} SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 160000) g;
             GRANT SELECT ON {src} TO tarn_tls;"
        ),
    )
    .await;
    let mut watcher = admin(&admin_url).await;
    let blocks: i64 = sqlx::query_scalar(&format!(
        "SELECT pg_relation_size('{src}') / current_setting('block_size')::int"
    ))
    .fetch_one(&mut watcher)
    .await
    .unwrap();
    assert!(blocks >= 2048, "{blocks} blocks");
    let mut holder = admin(&admin_url).await;
    sqlx::raw_sql(&format!("BEGIN; LOCK TABLE {src} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut holder)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let mut child = spawn_import(&[
        &role,
        "--source",
        &src,
        "--into",
        &table,
        "--mode",
        "overwrite",
    ]);
    let mut seen = BTreeMap::new();
    let held = wait_for(&mut watcher, &mut seen, &mut child, |now| {
        now.iter().any(|b| b.waiting_on_lock)
            && now
                .iter()
                .filter(|b| b.application == "tarn import")
                .count()
                == 2
    })
    .await;
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    let out = watch_until_exit(&mut watcher, child, &mut seen).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(held.iter().all(|b| b.ssl), "{held:?}");
    assert!(
        seen.values().all(|b| b.ssl),
        "every backend of the run used TLS: {seen:?}"
    );
    assert_eq!(count(&table), 160_000);
    run_sql(&admin_url, &format!("DROP TABLE {src}")).await;
}

/// `sslmode` and `sslrootcert` as libpq has them, against the TLS-only role: what must be
/// refused is refused in one line (and creates nothing), what must work works.
#[tokio::test]
async fn sslmode_and_sslrootcert_behave_as_in_libpq() {
    let Some(admin_url) = admin_url() else { return };
    let Some(role) = tls_role(&admin_url, "127.0.0.1", "test").await else {
        return;
    };
    let by_name = format!("postgres://tarn_tls@localhost:{}/test", port(&admin_url));
    let src = unique("tls_modes");
    run_sql(
        &admin_url,
        &format!(
            "CREATE TABLE {src} (id bigint, note text);
             INSERT INTO {src} SELECT g, 'x' FROM generate_series(1, 100) g;
             GRANT SELECT ON {src} TO tarn_tls;"
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    // No ~/.postgresql/root.crt, whatever the machine has.
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let import_into = |url: &str, table: &str| {
        let out = tarn()
            .env("HOME", &home)
            .env_remove("PGSSLMODE")
            .env_remove("PGSSLROOTCERT")
            .args([
                "--format", "json", "import", url, "--source", &src, "--into",
            ])
            .arg(table)
            .args(["--mode", "overwrite", "--no-progress"])
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.success() {
            Ok(serde_json::from_slice::<Value>(&out.stdout).unwrap())
        } else {
            assert_eq!(err.lines().count(), 1, "one line: {err}");
            assert!(!err.contains("sekret"), "no password: {err}");
            Err(err)
        }
    };
    let import = |url: &str| import_into(url, &table);
    // Refused runs go to a table no run creates.
    let untouched = dir.path().join("never").to_string_lossy().to_string();
    let refused = |url: &str| {
        let err = import_into(url, &untouched).expect_err(url);
        assert!(!Path::new(&untouched).exists(), "{url}: nothing is created");
        err
    };

    // In the clear, the role is turned away by the server.
    let err = refused(&format!("{role}?sslmode=disable"));
    assert!(err.contains("no encryption"), "{err}");
    // `allow` tries the clear, then TLS; `require` encrypts.
    for mode in ["allow", "require"] {
        let report = import(&format!("{role}?sslmode={mode}")).unwrap();
        assert_eq!(report["rows_read"], 100, "{mode}");
    }
    // verify-ca: the snakeoil certificate is its own CA; the name (localhost) is not checked.
    let report = import(&format!("{role}?sslmode=verify-ca&sslrootcert={SNAKEOIL}")).unwrap();
    assert_eq!(report["rows_read"], 100);
    // verify-full checks the name: 127.0.0.1 is not in the certificate, localhost is.
    let err = refused(&format!(
        "postgres://tarn_tls:sekret@127.0.0.1:{}/test?sslmode=verify-full&sslrootcert={SNAKEOIL}",
        port(&admin_url)
    ));
    assert!(
        err.contains("certificate verification failed")
            && err.contains("is for localhost, not 127.0.0.1"),
        "{err}"
    );
    let report = import(&format!(
        "{by_name}?sslmode=verify-full&sslrootcert={SNAKEOIL}"
    ))
    .unwrap();
    assert_eq!(report["rows_read"], 100);
    // With a root certificate, `require` checks the chain, as libpq does: a CA that did not
    // sign the server's certificate is refused.
    let other_ca = "/etc/ssl/certs/ca-certificates.crt";
    if Path::new(other_ca).exists() {
        let err = refused(&format!("{role}?sslmode=require&sslrootcert={other_ca}"));
        assert!(
            err.contains("certificate verification failed")
                && err.contains("not signed by a CA of sslrootcert"),
            "{err}"
        );
    }
    // verify-ca without a CA to check against, and a mode that does not exist.
    let err = refused(&format!("{role}?sslmode=verify-ca"));
    assert!(err.contains("add sslrootcert="), "{err}");
    let err = refused(&format!("{role}?sslmode=always"));
    assert!(err.contains("sslmode `always` is not one of"), "{err}");
    run_sql(&admin_url, &format!("DROP TABLE {src}")).await;
}

/// A server that does not offer TLS (it answers PostgreSQL's SSLRequest with `N`):
/// `require` refuses in one line and never goes on in the clear.
#[test]
fn sslmode_require_refuses_a_server_without_tls() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let clear = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let saw_clear = clear.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { continue };
            let mut request = [0u8; 8];
            if socket.read_exact(&mut request).is_err() {
                continue;
            }
            if request == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] {
                let _ = socket.write_all(b"N");
                // Whatever comes next would be in the clear.
                let mut more = [0u8; 1];
                if matches!(socket.read(&mut more), Ok(n) if n > 0) {
                    saw_clear.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            } else {
                saw_clear.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    let url = format!("postgres://app:sekret@127.0.0.1:{port}/shop?sslmode=require");
    let err = fails(&[
        "import",
        &url,
        "--source",
        "orders",
        "--into",
        target.to_str().unwrap(),
        "--mode",
        "overwrite",
    ]);
    assert_eq!(
        err,
        format!(
            "error: cannot connect to postgres://***@127.0.0.1:{port}/shop?sslmode=require: the server does not offer TLS but sslmode=require (turn ssl on at the server, or use sslmode=prefer or disable)"
        )
    );
    assert!(!target.exists(), "nothing is created");
    assert!(
        !clear.load(std::sync::atomic::Ordering::SeqCst),
        "nothing was sent in the clear"
    );
}

/// The PostgreSQL catalog as the TLS-only role: the CLI's `--catalog` with
/// `sslmode=require` and `tarn serve` with `sslmode=verify-ca` (its connections through the
/// TLS tunnel) work, every backend the server opens has `pg_stat_ssl.ssl`, and the clear or
/// a wrong host name are refused in one line.
#[tokio::test]
async fn the_postgresql_catalog_works_as_a_tls_only_role() {
    let Some(admin_url) = admin_url() else { return };
    let db = unique("tarn_tls_catalog");
    let Some(role) = tls_role(&admin_url, "127.0.0.1", &db).await else {
        return;
    };
    run_sql(&admin_url, &format!("CREATE DATABASE {db} OWNER tarn_tls")).await;
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let wh = wh.to_str().unwrap();
    let catalog = format!("{role}?sslmode=require");
    let local = |args: &[&str]| {
        let mut all = vec!["--warehouse", wh, "--catalog", catalog.as_str()];
        all.extend(args);
        json_out(&all)
    };
    local(&["catalog", "create", "main"]);
    let token = local(&["token", "create", "admin", "--scope", "admin"])["token"]
        .as_str()
        .unwrap()
        .to_string();

    let mut server = StdCommand::new(tarn_bin())
        .args([
            "--warehouse",
            wh,
            "--catalog",
            &catalog,
            "serve",
            "--bind",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    {
        use std::io::BufRead;
        std::io::BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
    }
    let url = format!(
        "http://{}",
        line.split("http://")
            .nth(1)
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .split_whitespace()
            .next()
            .unwrap()
    );
    let remote = |args: &[&str]| {
        let mut all = vec![
            "--warehouse",
            wh,
            "--server",
            url.as_str(),
            "--token",
            token.as_str(),
        ];
        all.extend(args);
        json_out(&all)
    };
    remote(&["schema", "create", "main.shop"]);
    let schemas = remote(&["schema", "list", "main"]);
    assert!(schemas.to_string().contains("shop"), "{schemas}");
    let catalogs = remote(&["catalog", "list"]);
    assert!(catalogs.to_string().contains("main"), "{catalogs}");

    let mut watcher = admin(&admin_url).await;
    let serving = backends(&mut watcher, Some(&db)).await;
    let _ = server.kill();
    let _ = server.wait();
    assert!(!serving.is_empty(), "the server holds connections");
    assert!(serving.iter().all(|b| b.ssl), "{serving:?}");

    let err = fails(&[
        "--warehouse",
        wh,
        "--catalog",
        &format!("{role}?sslmode=disable"),
        "catalog",
        "list",
    ]);
    assert!(err.contains("no encryption"), "{err}");
    let err = fails(&[
        "--warehouse",
        wh,
        "--catalog",
        &format!("{role}?sslmode=verify-full&sslrootcert={SNAKEOIL}"),
        "catalog",
        "list",
    ]);
    assert!(err.contains("is for localhost, not 127.0.0.1"), "{err}");
    let listed = local(&["catalog", "list"]);
    assert!(listed.to_string().contains("main"), "{listed}");

    drop(watcher);
    run_sql(&admin_url, &format!("DROP DATABASE {db} WITH (FORCE)")).await;
}

/// The mode bits of `path` (not following a symlink).
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// `tarn serve` started under `umask 000` with a `verify-ca` catalog (its connections
/// through the TLS tunnel), its `$TMPDIR` holding a tunnel directory a killed Tarn left
/// behind: the stale directory is removed, the new tunnel directory is 0700 and its socket
/// 0600; our own user's psql goes through it over TLS, and another local user's psql
/// (uid 65534, when we are root) is refused.
#[tokio::test]
async fn the_tls_tunnel_is_private_whatever_the_umask() {
    let Some(admin_url) = admin_url() else { return };
    let db = unique("tarn_tls_tunnel");
    let Some(role) = tls_role(&admin_url, "127.0.0.1", &db).await else {
        return;
    };
    run_sql(&admin_url, &format!("CREATE DATABASE {db} OWNER tarn_tls")).await;
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let wh = wh.to_str().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // What `kill -9` leaves: a directory whose socket nobody listens on.
    let stale = tmp.join("tarn-pg-killed");
    std::fs::create_dir(&stale).unwrap();
    drop(std::os::unix::net::UnixListener::bind(stale.join(".s.PGSQL.5432")).unwrap());
    let catalog = format!("{role}?sslmode=verify-ca&sslrootcert={SNAKEOIL}");
    json_out(&[
        "--warehouse",
        wh,
        "--catalog",
        &catalog,
        "catalog",
        "create",
        "main",
    ]);

    let mut server = StdCommand::new("sh")
        .args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(tarn_bin())
        .args([
            "--warehouse",
            wh,
            "--catalog",
            &catalog,
            "serve",
            "--bind",
            "127.0.0.1:0",
        ])
        .env("TMPDIR", &tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    {
        use std::io::BufRead;
        std::io::BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
    }
    assert!(
        line.contains("http://"),
        "the server did not start: {line:?}"
    );
    let tunnels: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("tarn-pg-")
        })
        .collect();
    let socket = tunnels
        .iter()
        .find(|p| **p != stale)
        .map(|p| p.join(".s.PGSQL.5432"));
    let psql = |uid: Option<u32>| {
        use std::os::unix::process::CommandExt;
        let socket = socket.as_ref().unwrap();
        let conninfo = format!(
            "host={} port=5432 user=tarn_tls dbname={db} connect_timeout=10",
            socket.parent().unwrap().display()
        );
        let mut cmd = StdCommand::new("psql");
        cmd.args([
            conninfo.as_str(),
            "-XAtc",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ])
        .env_remove("PGPASSWORD");
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        cmd.output()
    };
    let ours = socket.as_ref().map(|_| psql(None));
    let root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&tmp).unwrap().uid() == 0
    };
    let theirs = (root && socket.is_some()).then(|| psql(Some(65534)));
    let tunnel_modes = socket
        .as_ref()
        .map(|s| (mode(s.parent().unwrap()), mode(s)));
    let _ = server.kill();
    let _ = server.wait();
    run_sql(&admin_url, &format!("DROP DATABASE {db} WITH (FORCE)")).await;

    let (dir_mode, socket_mode) = tunnel_modes.expect("no tunnel directory in $TMPDIR");
    assert_eq!(dir_mode, 0o700, "tunnel directory mode {dir_mode:o}");
    assert_eq!(socket_mode, 0o600, "tunnel socket mode {socket_mode:o}");
    match ours.unwrap() {
        Ok(out) => assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "t",
            "our psql through the tunnel: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("skipped the psql clients: no psql ({e})"),
    }
    match theirs {
        Some(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "another user got through: {err}");
            assert!(err.contains("Permission denied"), "{err}");
        }
        Some(Err(_)) => {}
        None => eprintln!("skipped another user's psql: it needs root to take uid 65534"),
    }
    assert!(
        !stale.exists(),
        "the stale tunnel directory is removed: {tunnels:?}"
    );
    assert_eq!(tunnels.len(), 1, "one tunnel directory: {tunnels:?}");
}

/// MySQL's `ssl-mode=REQUIRED` against a server without TLS (a greeting without the SSL
/// capability, as MariaDB sends with TLS off): one line, and nothing more is sent.
#[test]
fn mysql_ssl_mode_required_refuses_a_server_without_tls() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client_sent = sent.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { continue };
            // Protocol 10; capabilities LONG_PASSWORD, CONNECT_WITH_DB, PROTOCOL_41,
            // SECURE_CONNECTION, PLUGIN_AUTH: no SSL.
            let mut payload = vec![0x0a];
            payload.extend_from_slice(b"5.5.5-10.11.0-MariaDB\0");
            payload.extend_from_slice(&1u32.to_le_bytes());
            payload.extend_from_slice(b"abcdefgh\0");
            payload.extend_from_slice(&0x8209u16.to_le_bytes());
            payload.push(0x21);
            payload.extend_from_slice(&2u16.to_le_bytes());
            payload.extend_from_slice(&0x0008u16.to_le_bytes());
            payload.push(21);
            payload.extend_from_slice(&[0; 10]);
            payload.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
            let mut packet = (payload.len() as u32).to_le_bytes()[..3].to_vec();
            packet.push(0);
            packet.extend_from_slice(&payload);
            let _ = socket.write_all(&packet);
            let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
            let mut more = [0u8; 1];
            if matches!(socket.read(&mut more), Ok(n) if n > 0) {
                client_sent.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    let url = format!("mysql://app:sekret@127.0.0.1:{port}/shop?ssl-mode=REQUIRED");
    let err = fails(&[
        "import",
        &url,
        "--source",
        "orders",
        "--into",
        target.to_str().unwrap(),
        "--mode",
        "overwrite",
    ]);
    assert_eq!(
        err,
        format!(
            "error: cannot connect to mysql://***@127.0.0.1:{port}/shop?ssl-mode=REQUIRED: the server does not offer TLS but ssl-mode=REQUIRED (turn TLS on at the server, or use ssl-mode=PREFERRED or DISABLED)"
        )
    );
    assert!(!target.exists(), "nothing is created");
    assert!(
        !sent.load(std::sync::atomic::Ordering::SeqCst),
        "nothing (no login) was sent in the clear"
    );
}

/// The local MariaDB with TLS on (tests/run.sh, as root) and a user that may only connect
/// over TLS (`REQUIRE SSL`): the default ssl-mode and REQUIRED import as that user,
/// DISABLED is refused, and VERIFY_IDENTITY with the test CA works by the certificate's
/// name (localhost) and is refused for 127.0.0.1, in one line.
#[tokio::test]
async fn mysql_tls_only_user_imports_over_tls_and_the_certificate_is_checked() {
    let Some(url) = mysql_url() else { return };
    let ca = "/etc/mysql/tarn-tls/ca.pem";
    let mut conn = sqlx::MySqlConnection::connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!("MySQL/MariaDB at {url} is needed ({e}); set TARN_TEST_MYSQL=skip to skip")
        });
    let ready = sqlx::query(
        "SELECT user FROM mysql.user WHERE user = 'tarn_tls' AND host = '127.0.0.1' AND LENGTH(ssl_type) > 0",
    )
    .fetch_optional(&mut conn)
    .await
    .unwrap()
    .is_some();
    if !ready || !Path::new(ca).exists() {
        eprintln!(
            "skipped: no MariaDB with TLS on and user tarn_tls@127.0.0.1 REQUIRE SSL (and {ca}): run tests/run.sh as root once"
        );
        return;
    }
    let src = unique("tls_my");
    sqlx::raw_sql(&format!(
        "CREATE TABLE {src} (id BIGINT PRIMARY KEY, note TEXT); INSERT INTO {src} VALUES (1, 'a'), (2, 'b'), (3, 'c')"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let mysql_port = url::Url::parse(&url).unwrap().port().unwrap_or(3306);
    // No password (the user has none); the refused runs give one, which must not show.
    let as_role =
        |host: &str, query: &str| format!("mysql://tarn_tls@{host}:{mysql_port}/test{query}");
    let with_password = |host: &str, query: &str| {
        format!("mysql://tarn_tls:sekret@{host}:{mysql_port}/test{query}")
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t").to_string_lossy().to_string();
    let untouched = dir.path().join("never").to_string_lossy().to_string();
    let import = |url: &str, into: &str| {
        tarn()
            .args([
                "--format", "json", "import", url, "--source", &src, "--into", into,
            ])
            .args(["--mode", "overwrite", "--no-progress"])
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap()
    };
    for query in [
        String::new(),
        "?ssl-mode=REQUIRED".to_string(),
        format!("?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
    ] {
        let host = if query.contains("VERIFY") {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let out = import(&as_role(host, &query), &table);
        assert!(
            out.status.success(),
            "{query}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["rows_read"], 3, "{query}");
    }
    let refused = |url: &str| {
        let out = import(url, &untouched);
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert!(!out.status.success(), "{url}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains("sekret"), "{err}");
        assert!(!Path::new(&untouched).exists(), "{url}: nothing is created");
        err
    };
    let err = refused(&with_password("127.0.0.1", "?ssl-mode=DISABLED"));
    assert!(err.contains("Access denied for user 'tarn_tls'"), "{err}");
    let err = refused(&with_password(
        "127.0.0.1",
        &format!("?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
    ));
    assert!(
        err.contains("certificate verification failed: the server's certificate is for localhost, not 127.0.0.1"),
        "{err}"
    );
    let err = refused(&with_password(
        "localhost",
        &format!("?ssl-mode=VERIFY_IDENTITY&ssl-ca={SNAKEOIL}"),
    ));
    assert!(
        err.contains("certificate verification failed: the server's certificate is not signed by a CA of ssl-ca"),
        "{err}"
    );
    sqlx::raw_sql(&format!("DROP TABLE {src}"))
        .execute(&mut conn)
        .await
        .unwrap();
}
