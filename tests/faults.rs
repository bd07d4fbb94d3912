//! Fault tests: the named-table steps killed at each step (through the test-only fault
//! points of `TARN_TEST_FAULT`, which SIGKILL the process there), `tarn serve` killed with
//! SIGKILL under load on a PostgreSQL catalog, and PostgreSQL stopped and started again
//! under a running server. Each checks that the catalog and the warehouse agree afterwards:
//! every name has its table, every table directory has its name.
//!
//! The PostgreSQL tests use `TARN_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`; `skip` skips them) for a database of their own,
//! and a throwaway cluster started with the local `initdb`/`pg_ctl` (as the `postgres` user)
//! for the restart test, so the machine's PostgreSQL is never stopped.

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

fn tarn_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("tarn")
}

/// Runs tarn with `args` and the extra environment `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(tarn_bin());
    cmd.env_remove("TARN_FORMAT").env_remove("TARN_TEST_FAULT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).output().unwrap()
}

/// Runs tarn with `--format json`, expecting success.
fn json(args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend(args);
    let out = run(&all, &[]);
    assert!(
        out.status.success(),
        "tarn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs tarn expecting failure with one `error:` line, and returns it.
fn fails(args: &[&str]) -> String {
    let out = run(args, &[]);
    assert!(!out.status.success(), "tarn {args:?} should have failed");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// Runs tarn with the fault point `point` and expects it to die there of SIGKILL.
fn killed_at(point: &str, args: &[&str]) {
    let out = run(args, &[("TARN_TEST_FAULT", point)]);
    assert_eq!(
        out.status.signal(),
        Some(9),
        "tarn {args:?} should have been killed at `{point}`: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn url_to_path(url: &str) -> PathBuf {
    PathBuf::from(url.strip_prefix("file://").unwrap().trim_end_matches('/'))
}

/// Every entry under `dir` (a schema's directory in the warehouse), by path.
fn entries(dir: &Path) -> BTreeSet<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(read) => read.map(|e| e.unwrap().path()).collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// The table directories the catalog names in `schema` (through `args`, which pick the
/// catalog), each checked to hold a Delta log.
fn named_dirs(args: &[&str], schema: &str) -> BTreeSet<PathBuf> {
    let mut all = args.to_vec();
    all.extend(["table", "list", schema]);
    json(&all)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let dir = url_to_path(t["storage_location"].as_str().unwrap());
            assert!(
                dir.join("_delta_log").is_dir(),
                "`{}` is named but has no table at {}",
                t["name"],
                dir.display()
            );
            dir
        })
        .collect()
}

/// Rows of an SQLite catalog that are not in use (a create or drop under way).
fn pending_rows(catalog: &Path) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::{Connection, Row};
        let url = format!("sqlite://{}", catalog.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT COUNT(*) AS n FROM tables WHERE state IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get::<i64, _>("n")
    })
}

/// A create killed at each of its steps: right after, the name is either not in use (the
/// first two steps) or in use with its table (after the commit); the next create of the
/// same name frees what was left and succeeds, or says it exists. Afterwards every
/// directory under the schema is a named table's, and no row is left half-made.
#[test]
fn a_create_killed_at_any_step_is_undone_or_kept_whole() {
    for point in ["create:reserved", "create:files", "create:committed"] {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("wh");
        let w = wh.to_str().unwrap();
        json(&["--warehouse", w, "catalog", "create", "main"]);
        json(&["--warehouse", w, "schema", "create", "main.s"]);
        let create = ["--warehouse", w, "create", "main.s.t", "--schema", "id int"];
        killed_at(point, &create);
        let schema_dir = wh.join("main/s");
        if point == "create:committed" {
            // Done before the kill: only the answer was lost.
            assert_eq!(named_dirs(&["--warehouse", w], "main.s").len(), 1);
            let err = fails(&create);
            assert!(err.contains("already exists"), "{point}: {err}");
        } else {
            assert!(
                named_dirs(&["--warehouse", w], "main.s").is_empty(),
                "{point}"
            );
            let err = fails(&["--warehouse", w, "describe", "main.s.t"]);
            assert!(err.contains("does not exist"), "{point}: {err}");
            // The next create frees the name and deletes what the killed one made.
            json(&create[..]);
        }
        assert_eq!(
            entries(&schema_dir),
            named_dirs(&["--warehouse", w], "main.s"),
            "{point}: every directory is a named table's"
        );
        assert_eq!(pending_rows(&wh.join("catalog.db")), 0, "{point}");
    }
}

/// A commit whose answer is lost (the test-only fault makes the step see an error after
/// the row was really committed): the create looks the row up, finds it in use, and
/// succeeds, keeping its files.
#[test]
fn a_create_whose_commit_answer_is_lost_keeps_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let w = wh.to_str().unwrap();
    json(&["--warehouse", w, "catalog", "create", "main"]);
    json(&["--warehouse", w, "schema", "create", "main.s"]);
    let out = run(
        &[
            "--warehouse",
            w,
            "--format",
            "json",
            "create",
            "main.s.t",
            "--schema",
            "id int",
        ],
        &[("TARN_TEST_FAULT", "create:commit-ack-lost")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dirs = named_dirs(&["--warehouse", w], "main.s");
    assert_eq!(dirs.len(), 1);
    assert_eq!(entries(&wh.join("main/s")), dirs);
}

/// `drop --purge` killed at each of its steps: the table is no longer visible, and the
/// next command finishes the drop (a retry of the drop, a create, or the start of
/// `tarn serve`): no directory and no row are left.
#[test]
fn a_purge_killed_at_any_step_is_finished_by_the_next_command() {
    for (point, next) in [
        ("drop:marked", "drop"),
        ("drop:half-deleted", "create"),
        ("drop:files-deleted", "serve"),
        ("drop:marked", "serve"),
        ("drop:half-deleted", "drop"),
        ("drop:files-deleted", "drop"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("wh");
        let w = wh.to_str().unwrap();
        json(&["--warehouse", w, "catalog", "create", "main"]);
        json(&["--warehouse", w, "schema", "create", "main.s"]);
        let created = json(&["--warehouse", w, "create", "main.s.t", "--schema", "id int"]);
        let table_dir = url_to_path(created["location"].as_str().unwrap());
        let csv = dir.path().join("a.csv");
        std::fs::write(&csv, "id\n1\n2\n").unwrap();
        json(&["--warehouse", w, "write", "main.s.t", csv.to_str().unwrap()]);
        killed_at(point, &["--warehouse", w, "drop", "main.s.t", "--purge"]);
        assert!(
            named_dirs(&["--warehouse", w], "main.s").is_empty(),
            "{point}"
        );
        let err = fails(&["--warehouse", w, "describe", "main.s.t"]);
        assert!(err.contains("does not exist"), "{point}: {err}");
        match next {
            "drop" => {
                let done = json(&["--warehouse", w, "drop", "main.s.t", "--purge"]);
                assert_eq!(done["purged"], true, "{point}");
            }
            "create" => {
                json(&["--warehouse", w, "create", "main.s.t", "--schema", "id int"]);
            }
            _ => drop(Served::start(&["--warehouse", w], &[])),
        }
        assert!(!table_dir.exists(), "{point} then {next}: files left");
        assert_eq!(
            entries(&wh.join("main/s")),
            named_dirs(&["--warehouse", w], "main.s"),
            "{point} then {next}"
        );
        assert_eq!(pending_rows(&wh.join("catalog.db")), 0, "{point}");
        if next != "create" {
            // No hidden row holds the schema.
            json(&["--warehouse", w, "schema", "drop", "main.s"]);
        }
    }
}

/// A server killed half-way through a create it was asked for: the client gets an error,
/// and the server's next start removes the half-made table and frees the name.
#[test]
fn a_server_killed_during_a_create_cleans_up_when_it_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let w = wh.to_str().unwrap();
    let token = json(&[
        "--warehouse",
        w,
        "token",
        "create",
        "admin",
        "--scope",
        "admin",
    ])["token"]
        .as_str()
        .unwrap()
        .to_string();
    json(&["--warehouse", w, "catalog", "create", "main"]);
    json(&["--warehouse", w, "schema", "create", "main.s"]);
    let mut served = Served::start(&["--warehouse", w], &[("TARN_TEST_FAULT", "create:files")]);
    let client = dir.path().join("client");
    let remote = [
        "--warehouse",
        client.to_str().unwrap(),
        "--server",
        &served.url,
        "--token",
        &token,
    ];
    let mut create = remote.to_vec();
    create.extend(["create", "main.s.t", "--schema", "id int"]);
    fails(&create);
    assert_eq!(served.child.wait().unwrap().signal(), Some(9));
    assert_eq!(entries(&wh.join("main/s")).len(), 1, "the half-made table");
    let served = Served::start(&["--warehouse", w], &[]);
    assert!(
        entries(&wh.join("main/s")).is_empty(),
        "cleaned up at start"
    );
    assert_eq!(pending_rows(&wh.join("catalog.db")), 0);
    let mut create = vec![
        "--warehouse",
        client.to_str().unwrap(),
        "--server",
        &served.url,
        "--token",
        &token,
    ];
    create.extend(["create", "main.s.t", "--schema", "id int"]);
    json(&create);
}

/// `tarn serve`, started as a child; SIGKILLed on drop.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    /// Starts `tarn ARGS serve` on a free loopback port with the extra environment `env`,
    /// and returns once it listens (the start-up clean-up is done by then).
    fn start(args: &[&str], env: &[(&str, &str)]) -> Served {
        let mut cmd = Command::new(tarn_bin());
        cmd.env_remove("TARN_TEST_FAULT")
            .args(args)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(rest) = line.split("http://").nth(1) else {
            let _ = child.kill();
            panic!("tarn serve did not start: {line:?} {:?}", child.wait());
        };
        let url = format!("http://{}", rest.split_whitespace().next().unwrap());
        Served { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PostgreSQL the tests may create databases on, or `None` to skip.
fn postgres_base() -> Option<String> {
    let base = std::env::var("TARN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    if base == "skip" {
        eprintln!("TARN_TEST_POSTGRES=skip: not testing against PostgreSQL");
        return None;
    }
    Some(base)
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn psql(url: &str, sql: &str) -> Vec<sqlx::postgres::PgRow> {
    block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).fetch_all(&mut conn).await.unwrap()
    })
}

/// A database of its own on the test PostgreSQL, dropped at the end.
struct FreshDatabase {
    base: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    fn new(base: &str) -> FreshDatabase {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("tarn_fault_{}_{nanos}", std::process::id());
        psql(base, &format!("CREATE DATABASE {name}"));
        let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
        FreshDatabase {
            base: base.to_string(),
            name,
            url,
        }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            psql(
                &self.base,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            )
        });
    }
}

/// `tarn serve` on a PostgreSQL catalog, killed with SIGKILL five times while four
/// clients create, write and list tables through it, and started again each time: every
/// create it acknowledged is there with its table, every table directory in the warehouse
/// has its name, and no row is left half-made.
#[test]
fn serve_killed_under_load_on_postgres_keeps_every_acknowledged_create_and_no_orphans() {
    let Some(base) = postgres_base() else { return };
    let db = FreshDatabase::new(&base);
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let local: Vec<String> = vec![
        "--warehouse".into(),
        wh.to_str().unwrap().into(),
        "--catalog".into(),
        db.url.clone(),
    ];
    let local: Vec<&str> = local.iter().map(String::as_str).collect();
    let mut token_args = local.clone();
    token_args.extend(["token", "create", "load", "--scope", "admin"]);
    let token = json(&token_args)["token"].as_str().unwrap().to_string();
    let csv = dir.path().join("row.csv");
    std::fs::write(&csv, "id\n1\n").unwrap();
    let client = dir.path().join("client");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let started = Instant::now();
    for round in 0..5 {
        let mut served = Served::start(&local, &[]);
        let remote: Vec<String> = vec![
            "--warehouse".into(),
            client.to_str().unwrap().into(),
            "--server".into(),
            served.url.clone(),
            "--token".into(),
            token.clone(),
        ];
        if round == 0 {
            let mut args: Vec<&str> = remote.iter().map(String::as_str).collect();
            args.extend(["catalog", "create", "main"]);
            json(&args);
            let mut args: Vec<&str> = remote.iter().map(String::as_str).collect();
            args.extend(["schema", "create", "main.s"]);
            json(&args);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let before = acked.lock().unwrap().len();
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let (remote, stop, acked, csv) =
                    (remote.clone(), stop.clone(), acked.clone(), csv.clone());
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let name = format!("main.s.r{round}_w{worker}_{i}");
                        let mut args: Vec<&str> = remote.iter().map(String::as_str).collect();
                        args.extend(["create", &name, "--schema", "id int"]);
                        if run(&args, &[]).status.success() {
                            acked.lock().unwrap().push(name.clone());
                            let mut args: Vec<&str> = remote.iter().map(String::as_str).collect();
                            args.extend(["write", &name, csv.to_str().unwrap()]);
                            run(&args, &[]);
                        }
                        let mut args: Vec<&str> = remote.iter().map(String::as_str).collect();
                        args.extend(["table", "list", "main.s"]);
                        run(&args, &[]);
                        i += 1;
                    }
                })
            })
            .collect();
        // Kill it in the middle of the load, a few acknowledged creates in.
        while acked.lock().unwrap().len() < before + 6 {
            assert!(
                started.elapsed() < Duration::from_secs(50),
                "the load made too little progress"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        served.child.kill().unwrap();
        served.child.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.join().unwrap();
        }
    }
    // Started again: it finishes what the kills interrupted before it answers.
    let served = Served::start(&local, &[]);
    let remote = [
        "--warehouse",
        client.to_str().unwrap(),
        "--server",
        served.url.as_str(),
        "--token",
        token.as_str(),
    ];
    let named = named_dirs(&remote, "main.s");
    let mut list = remote.to_vec();
    list.extend(["table", "list", "main.s"]);
    let names: BTreeSet<String> = json(&list)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("main.s.{}", t["name"].as_str().unwrap()))
        .collect();
    for name in acked.lock().unwrap().iter() {
        assert!(names.contains(name), "acknowledged create `{name}` is lost");
    }
    assert_eq!(
        entries(&wh.join("main/s")),
        named,
        "table directories without a name"
    );
    let pending = psql(&db.url, "SELECT id FROM tables WHERE state IS NOT NULL");
    assert!(pending.is_empty(), "{} rows left half-made", pending.len());
}

/// A throwaway PostgreSQL cluster (initdb into a temporary directory, run as the
/// `postgres` user on a free port), stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

impl Cluster {
    /// `None` when this machine has no PostgreSQL binaries or no `postgres` user.
    fn new() -> Option<Cluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").exists())?;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let chown = Command::new("chown")
            .args(["postgres:postgres", data.to_str().unwrap()])
            .status()
            .ok()?;
        if !chown.success() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster { dir, port, bin };
        cluster.as_postgres(&[
            "initdb",
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        cluster.start();
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn as_postgres(&self, args: &[&str]) {
        let program = self.bin.join(args[0]);
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        let data = self.data();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            data.display()
        );
        self.as_postgres(&[
            "pg_ctl",
            "-D",
            data.to_str().unwrap(),
            "-l",
            data.join("log").to_str().unwrap(),
            "-w",
            "-o",
            &options,
            "start",
        ]);
    }

    fn stop(&self) {
        let data = self.data();
        self.as_postgres(&[
            "pg_ctl",
            "-D",
            data.to_str().unwrap(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

/// One HTTP/1.1 request; the status and the body. Reading is bounded (a guard against a
/// hang, not a measurement).
fn http(base: &str, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, String) {
    let addr = base.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("the server answers (no hang)");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// PostgreSQL stopped (immediate shutdown) and started again under a running server: while
/// it is down, requests that need the catalog fail at once with a 503 that says so (no
/// internals, no hang, the server keeps running); once it is back, the same requests
/// succeed, without restarting Tarn.
#[test]
fn a_postgres_restart_under_a_running_server_fails_requests_cleanly_then_they_succeed() {
    if postgres_base().is_none() {
        return;
    }
    let Some(cluster) = Cluster::new() else {
        eprintln!("no PostgreSQL binaries or `postgres` user here: skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let url = cluster.url();
    let local = [
        "--warehouse",
        wh.to_str().unwrap(),
        "--catalog",
        url.as_str(),
    ];
    let mut args = local.to_vec();
    args.extend(["token", "create", "t", "--scope", "admin"]);
    let token = json(&args)["token"].as_str().unwrap().to_string();
    let mut served = Served::start(&local, &[]);
    let base = served.url.clone();
    const UC: &str = "/api/2.1/unity-catalog";
    let create_table = |name: &str| {
        format!(
            r#"{{"name":"{name}","catalog_name":"main","schema_name":"s","table_type":"MANAGED","columns":[{{"name":"id","type_text":"int"}}]}}"#
        )
    };
    let ok = |method: &str, path: &str, body: Option<&str>| {
        let (status, body) = http(&base, method, &format!("{UC}{path}"), &token, body);
        assert_eq!(status, 200, "{method} {path}: {body}");
    };
    ok("POST", "/catalogs", Some(r#"{"name":"main"}"#));
    ok(
        "POST",
        "/schemas",
        Some(r#"{"name":"s","catalog_name":"main"}"#),
    );
    ok("POST", "/tables", Some(&create_table("before")));
    ok("GET", "/tables/main.s.before", None);

    cluster.stop();
    let down = [
        ("GET", "/tables/main.s.before".to_string(), None),
        ("GET", "/catalogs".to_string(), None),
        (
            "GET",
            "/tables?catalog_name=main&schema_name=s".to_string(),
            None,
        ),
        ("POST", "/tables".to_string(), Some(create_table("during"))),
    ];
    for (method, path, body) in &down {
        let (status, answer) = http(
            &base,
            method,
            &format!("{UC}{path}"),
            &token,
            body.as_deref(),
        );
        assert_eq!(status, 503, "{method} {path} during the outage: {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["error_code"], "TEMPORARILY_UNAVAILABLE", "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains("unavailable"), "{message}");
        assert!(
            !message.contains("127.0.0.1") && !message.contains("refused"),
            "internals leaked: {message}"
        );
    }
    let (status, _) = http(&base, "GET", "/health", &token, None);
    assert_eq!(status, 200, "the server itself is fine");
    let client = dir.path().join("client");
    let err = fails(&[
        "--warehouse",
        client.to_str().unwrap(),
        "--server",
        &base,
        "--token",
        &token,
        "table",
        "list",
        "main.s",
    ]);
    assert!(err.contains("unavailable") && err.contains("503"), "{err}");
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "the server runs"
    );

    cluster.start();
    ok("GET", "/tables/main.s.before", None);
    ok("POST", "/tables", Some(&create_table("after")));
    let (status, body) = http(
        &base,
        "GET",
        &format!("{UC}/tables?catalog_name=main&schema_name=s"),
        &token,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let names: Vec<String> = serde_json::from_str::<Value>(&body).unwrap()["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["after", "before"],
        "the create during the outage left nothing"
    );
    assert_eq!(
        entries(&wh.join("main/s")).len(),
        2,
        "no table directory from the failed create"
    );
    assert!(served.child.try_wait().unwrap().is_none());
    let _ = served.child.kill();
}
