//! The server under hostile requests (issue 20): each test drives `tarn serve` over real
//! sockets the way an attacker or a careless client would, and checks that the server
//! refuses clearly, stays up, keeps answering everyone else, and never serves a file from
//! outside a table. The raw HTTP/1.1 client here is deliberate: a well-behaved client
//! library would not send half a request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, ExitStatus, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::{json, Value};

/// A guard against hanging. No wait in these tests is meant to come near it; a test that
/// reaches it has failed.
const GUARD: Duration = Duration::from_secs(60);

fn tarn() -> Command {
    let mut cmd = Command::cargo_bin("tarn").unwrap();
    cmd.env_remove("TARN_FORMAT");
    cmd
}

/// Runs `tarn --warehouse WH --format json ARGS`, expects success, returns the output.
fn wh_json(wh: &Path, args: &[&str]) -> Value {
    let out = tarn()
        .args(["--warehouse", wh.to_str().unwrap(), "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tarn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

// ---- a server ----------------------------------------------------------------------------

/// `tarn serve` on a free loopback port, its log in a file; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// `tarn --warehouse WH serve --bind 127.0.0.1:0 ARGS` with `env` set.
    fn start(wh: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_limited(wh, args, env, None)
    }

    /// Like [`Server::start`], with at most `open_files` file descriptors (soft and hard).
    fn start_limited(
        wh: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        open_files: Option<u64>,
    ) -> Server {
        let log = wh.with_extension(format!("serve-{}.log", uuid_like()));
        let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("tarn"));
        cmd.args([
            "--warehouse",
            wh.to_str().unwrap(),
            "serve",
            "--bind",
            "127.0.0.1:0",
        ])
        .args(args)
        .envs(env.iter().copied())
        .env("TARN_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
        if let Some(n) = open_files {
            limit_open_files(&mut cmd, n);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| {
                panic!(
                    "tarn serve did not start: {line:?} {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .parse()
            .unwrap();
        Server { child, addr, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status (a graceful shutdown exits 0).
    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(StdCommand::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = std::time::Instant::now() + GUARD;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tarn serve did not stop within {GUARD:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_open_files(cmd: &mut StdCommand, n: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only setrlimit runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: n as libc::rlim_t,
                rlim_max: n as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_open_files(_cmd: &mut StdCommand, _n: u64) {}

// ---- a raw HTTP/1.1 client ---------------------------------------------------------------

/// An answer: status, headers (names lowercase), the decoded body, and whether the body
/// arrived whole (a chunked body that ends without its last chunk did not).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    complete: bool,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// NDJSON lines.
    fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
            .collect()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, GUARD).unwrap();
    stream.set_read_timeout(Some(GUARD)).unwrap();
    stream.set_write_timeout(Some(GUARD)).unwrap();
    stream
}

/// Sends one request (`Connection: close`, `Host: <addr>` unless `headers` has a Host) and
/// reads the whole answer.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Answer {
    let mut stream = connect(addr);
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    if let Some(body) = body {
        stream.write_all(body).unwrap();
    }
    read_answer(&mut stream)
}

fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    // A connection broken after the answer began still returns what arrived.
    let read = stream.read_to_end(&mut raw);
    parse_answer(&raw, read.err())
}

fn parse_answer(raw: &[u8], read_error: Option<std::io::Error>) -> Answer {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no answer head in {:?} (reading ended with {read_error:?})",
                String::from_utf8_lossy(raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let (body, complete) = if chunked {
        dechunk(rest)
    } else {
        let complete = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .is_none_or(|(_, v)| v.parse::<usize>().ok() == Some(rest.len()));
        (rest.to_vec(), complete)
    };
    Answer {
        status,
        headers,
        body,
        complete,
    }
}

/// A chunked body, and whether it ended with its last (empty) chunk.
fn dechunk(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
        else {
            return (body, false);
        };
        data = &data[line_end + 2..];
        if size == 0 {
            return (body, true);
        }
        if data.len() < size + 2 {
            body.extend_from_slice(&data[..size.min(data.len())]);
            return (body, false);
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, &[], None)
}

fn post_json(addr: SocketAddr, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    request(addr, "POST", path, &all, Some(body.to_string().as_bytes()))
}

/// Whether the server closes `stream` (end of file, or a reset) before the guard.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // An answer (e.g. 408) before the close is fine.
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

// ---- fixtures ----------------------------------------------------------------------------

const UC: &str = "/api/2.1/unity-catalog";

/// A warehouse with the catalog `main` and the schema `main.shop`.
fn warehouse() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    wh_json(&wh, &["catalog", "create", "main"]);
    wh_json(&wh, &["schema", "create", "main.shop"]);
    (dir, wh)
}

/// `main.shop.orders` written `commits` times (one file each), shared with its history as
/// `s.sales.orders`; the recipient's token and the table's directory.
struct Shared {
    _dir: tempfile::TempDir,
    wh: PathBuf,
    token: String,
    table_dir: PathBuf,
}

const T: &str = "/delta-sharing/shares/s/schemas/sales/tables/orders";

fn shared_table(commits: usize) -> Shared {
    let (dir, wh) = warehouse();
    let created = wh_json(
        &wh,
        &[
            "create",
            "main.shop.orders",
            "--schema",
            "id bigint, region string",
            "--property",
            "delta.enableChangeDataFeed=true",
        ],
    );
    let location = created["location"].as_str().unwrap().to_string();
    let table_dir = url::Url::parse(&location).unwrap().to_file_path().unwrap();
    for i in 0..commits {
        let csv = dir.path().join(format!("{i}.csv"));
        std::fs::write(&csv, format!("id,region\n{i},EU\n{},US\n", i + 100)).unwrap();
        wh_json(
            &wh,
            &[
                "write",
                "main.shop.orders",
                csv.to_str().unwrap(),
                "--no-progress",
            ],
        );
    }
    wh_json(&wh, &["share", "create", "s"]);
    wh_json(
        &wh,
        &[
            "share",
            "add",
            "s",
            "main.shop.orders",
            "--as",
            "sales.orders",
            "--history",
        ],
    );
    let profile = dir.path().join("r.share");
    wh_json(
        &wh,
        &[
            "recipient",
            "create",
            "r",
            "--share",
            "s",
            "--profile",
            profile.to_str().unwrap(),
        ],
    );
    let profile: Value = serde_json::from_slice(&std::fs::read(&profile).unwrap()).unwrap();
    let token = profile["bearerToken"].as_str().unwrap().to_string();
    Shared {
        _dir: dir,
        wh,
        token,
        table_dir,
    }
}

impl Shared {
    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn query(&self, addr: SocketAddr, body: &Value) -> Answer {
        let auth = self.bearer();
        post_json(
            addr,
            &format!("{T}/query"),
            body,
            &[("Authorization", &auth)],
        )
    }

    fn get(&self, addr: SocketAddr, path: &str) -> Answer {
        let auth = self.bearer();
        request(addr, "GET", path, &[("Authorization", &auth)], None)
    }
}

/// The `file` / `add` / `remove` / `cdf` lines of an answer: their URLs.
fn file_urls(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            ["file", "add", "remove", "cdf"]
                .iter()
                .find_map(|k| l.get(*k))
                .and_then(|f| f["url"].as_str())
                .map(str::to_string)
        })
        .collect()
}

fn file_ids(lines: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            ["file", "add", "remove", "cdf"]
                .iter()
                .find_map(|k| l.get(*k))
                .and_then(|f| f["id"].as_str())
                .map(str::to_string)
        })
        .collect();
    ids.sort();
    ids
}

fn end_action(lines: &[Value]) -> Option<&Value> {
    lines.last().and_then(|l| l.get("endStreamAction"))
}

// ---- nothing a request sends may crash or wedge the server ---------------------------------

fn nested(levels: usize) -> String {
    format!("{}int{}", "array<".repeat(levels), ">".repeat(levels))
}

#[test]
fn a_deeply_nested_type_text_is_refused_and_the_server_keeps_serving() {
    let (_dir, wh) = warehouse();
    let server = Server::start(&wh, &["--no-auth"], &[]);
    let create = |type_text: &str| {
        post_json(
            server.addr,
            &format!("{UC}/tables"),
            &json!({
                "name": "t", "catalog_name": "main", "schema_name": "shop",
                "table_type": "MANAGED", "data_source_format": "DELTA",
                "columns": [{"name": "a", "type_text": type_text}],
            }),
            &[],
        )
    };
    // 50,000 levels overflowed the parser's stack and killed the process.
    let deep = create(&nested(50_000));
    assert_eq!(deep.status, 400, "{}", deep.text());
    let message = deep.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("nests deeper than 64"), "{message}");
    assert!(
        message.len() < 500,
        "the message quotes the text, not all of it: {message}"
    );
    assert_eq!(get(server.addr, "/health").status, 200);
    // 65 levels are refused, 64 are a type.
    assert_eq!(create(&nested(65)).status, 400);
    let ok = create(&nested(64));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        get(server.addr, &format!("{UC}/tables/main.shop.t")).status,
        200
    );
}

#[test]
fn a_deeply_nested_schema_on_the_command_line_is_one_line_of_error() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t");
    // An argument may be at most 128 KiB: 15,000 levels fit, and overflowed the stack.
    let schema = format!("a {}", nested(15_000));
    let out = tarn()
        .args(["create", table.to_str().unwrap(), "--schema", &schema])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: column `a`: type `array<"), "{err}");
    assert!(err.contains("nests deeper than 64"), "{err}");
    assert!(!table.join("_delta_log").exists(), "nothing was created");
}

#[test]
fn a_deeply_nested_predicate_hint_is_refused_and_the_server_keeps_serving() {
    let shared = shared_table(2);
    let server = Server::start(&shared.wh, &[], &[]);
    let not_chain = |levels: usize| {
        let mut hint = json!({"op": "equal", "children": [
            {"op": "column", "name": "region", "valueType": "string"},
            {"op": "literal", "value": "EU", "valueType": "string"}]});
        for _ in 0..levels {
            hint = json!({"op": "not", "children": [hint]});
        }
        hint.to_string()
    };
    for hint in [
        not_chain(64),
        // Text far deeper than any JSON parser's limit (within the 1 MiB body limit).
        format!(
            "{}{}",
            "{\"op\":\"not\",\"children\":[".repeat(20_000),
            "]}".repeat(20_000)
        ),
    ] {
        let answer = shared.query(server.addr, &json!({"jsonPredicateHints": hint}));
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert!(
            answer.json()["message"]
                .as_str()
                .unwrap()
                .contains("nests deeper than 64"),
            "{}",
            answer.text()
        );
    }
    // A hint within the limit is used; the server is still there.
    let answer = shared.query(server.addr, &json!({"jsonPredicateHints": not_chain(62)}));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(get(server.addr, "/health").status, 200);
}

#[test]
fn a_client_that_sends_half_a_request_is_disconnected() {
    let (_dir, wh) = warehouse();
    let server = Server::start(&wh, &[], &[("TARN_HEADER_READ_TIMEOUT", "1")]);
    let mut half = connect(server.addr);
    half.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    assert!(
        closed_by_server(&mut half),
        "a half-sent request held its connection for {GUARD:?}"
    );
    assert_eq!(get(server.addr, "/health").status, 200);
}

#[test]
fn three_hundred_half_open_connections_do_not_starve_a_normal_request() {
    let (_dir, wh) = warehouse();
    // 256 descriptors: on a server that keeps every half-open connection, 300 of them take
    // every descriptor and nothing more is ever accepted.
    let server = Server::start_limited(&wh, &[], &[("TARN_HEADER_READ_TIMEOUT", "1")], Some(256));
    let mut abusers: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = connect(server.addr);
            s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
            s
        })
        .collect();
    // While they hang on, a normal client is answered.
    let answer = get(server.addr, "/health");
    assert_eq!(answer.status, 200, "{}", answer.text());
    // And every one of them was let go.
    for s in &mut abusers {
        assert!(closed_by_server(s), "a half-open connection was kept");
    }
    assert_eq!(get(server.addr, "/health").status, 200);
    assert!(
        server.log().contains("open-file limit is 256") || server.log().is_empty(),
        "{}",
        server.log()
    );
}

/// `GET path`, or `Err` when no answer arrived within `wait` (the server kept the client
/// waiting).
fn get_within(addr: SocketAddr, path: &str, wait: Duration) -> Result<Answer, String> {
    let mut stream = TcpStream::connect_timeout(&addr, wait).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.set_write_timeout(Some(wait)).unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Err(e) if raw.is_empty() => Err(format!("no answer within {wait:?}: {e}")),
        Ok(_) if raw.is_empty() => Err("closed without an answer".to_string()),
        read => Ok(parse_answer(&raw, read.err())),
    }
}

/// Keeps `n` connections to `addr` open that send `greeting` and then nothing, opening a
/// new one for each the server closes, until `stop` is set.
fn silent_flood(
    addr: SocketAddr,
    n: usize,
    greeting: Vec<u8>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let open = |_| {
            let mut s = connect(addr);
            s.write_all(&greeting).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        };
        let mut silent: Vec<TcpStream> = (0..n).map(open).collect();
        let mut reopened = 0;
        let mut buf = [0u8; 1024];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for s in &mut silent {
                let closed = match s.read(&mut buf) {
                    Ok(_) => true,
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                };
                if closed {
                    *s = open(0);
                    reopened += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        reopened
    })
}

#[test]
fn silent_connections_past_the_limit_do_not_lock_out_a_normal_request() {
    let (_dir, wh) = warehouse();
    // Long timeouts, so that only making room at the limit can let the client in.
    let server = Server::start(
        &wh,
        &["--no-auth", "--max-connections", "50"],
        &[
            ("TARN_HEADER_READ_TIMEOUT", "60"),
            ("TARN_BODY_READ_TIMEOUT", "60"),
            ("TARN_IDLE_TIMEOUT", "60"),
        ],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let silent = silent_flood(server.addr, 40, Vec::new(), stop.clone());
    // A request whose body never comes.
    let no_body = silent_flood(
        server.addr,
        40,
        format!("POST {UC}/catalogs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{", server.addr).into_bytes(),
        stop.clone(),
    );
    // Let the flood take every slot.
    std::thread::sleep(Duration::from_millis(500));
    // Waiting for a slot, the client would wait for the 60 s timeouts, again and again; a
    // third of that is the guard.
    let wait = Duration::from_secs(20);
    for _ in 0..3 {
        let answer = get_within(server.addr, &format!("{UC}/catalogs"), wait);
        let answer = answer
            .unwrap_or_else(|e| panic!("a normal request behind 80 stalled connections got {e}"));
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    silent.join().unwrap();
    no_body.join().unwrap();
    assert!(
        server.log().contains("the one idle longest is closed"),
        "{}",
        server.log()
    );
}

#[test]
fn a_connection_that_never_sends_a_byte_is_closed_after_the_header_timeout() {
    let (_dir, wh) = warehouse();
    let server = Server::start(
        &wh,
        &[],
        &[
            ("TARN_HEADER_READ_TIMEOUT", "1"),
            ("TARN_IDLE_TIMEOUT", "3600"),
        ],
    );
    let mut silent = connect(server.addr);
    assert!(
        closed_by_server(&mut silent),
        "a connection that sent nothing was kept for {GUARD:?}"
    );
    assert_eq!(get(server.addr, "/health").status, 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let (_dir, wh) = warehouse();
    let server = Server::start(&wh, &[], &[("TARN_IDLE_TIMEOUT", "1")]);
    let mut stream = connect(server.addr);
    // One whole request and answer, then nothing: the connection stays open for the next.
    stream
        .write_all(format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_by_server(&mut stream),
        "an idle connection was kept for {GUARD:?}"
    );
    // A connection that never sends anything is closed too.
    let mut silent = connect(server.addr);
    assert!(closed_by_server(&mut silent));
}

#[test]
fn a_body_that_never_arrives_gets_408() {
    let (_dir, wh) = warehouse();
    let server = Server::start(&wh, &["--no-auth"], &[("TARN_BODY_READ_TIMEOUT", "1")]);
    let mut stream = connect(server.addr);
    stream
        .write_all(
            format!(
                "POST {UC}/catalogs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\":",
                server.addr
            )
            .as_bytes(),
        )
        .unwrap();
    let answer = read_answer(&mut stream);
    assert_eq!(answer.status, 408, "{}", answer.text());
    assert!(
        answer.json()["message"]
            .as_str()
            .unwrap()
            .contains("did not arrive within 1 s"),
        "{}",
        answer.text()
    );
    assert_eq!(get(server.addr, "/health").status, 200);
}

#[test]
fn sigterm_stops_the_server_while_a_client_holds_half_a_request() {
    let (_dir, wh) = warehouse();
    let mut server = Server::start(&wh, &[], &[("TARN_HEADER_READ_TIMEOUT", "1")]);
    let mut half = connect(server.addr);
    half.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let mut idle = connect(server.addr);
    idle.write_all(format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(idle.read(&mut buf).unwrap() > 0);
    assert!(server.terminate().success(), "{}", server.log());
    assert!(server.log().contains("shutting down"), "{}", server.log());
}

#[test]
fn history_and_changes_are_sent_as_they_are_read() {
    let shared = shared_table(3);
    let server = Server::start(&shared.wh, &[], &[]);
    // Version 2 refers to a file outside the table: it cannot be shared. Versions 0 and 1
    // are sent before the server gets to it, then the answer says what went wrong and is
    // cut off, so no client takes it for a whole answer.
    let commit = shared
        .table_dir
        .join("_delta_log/00000000000000000002.json");
    let text = std::fs::read_to_string(&commit).unwrap();
    let broken = regex_like_replace_path(&text, "/etc/hostname");
    std::fs::write(&commit, broken).unwrap();
    for answer in [
        shared.query(server.addr, &json!({"startingVersion": 0})),
        shared.get(server.addr, &format!("{T}/changes?startingVersion=0")),
    ] {
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
        assert!(!answer.complete, "a failed answer must not end cleanly");
        let lines = answer.lines();
        assert_eq!(
            file_urls(&lines).len(),
            1,
            "version 1's file came first: {lines:?}"
        );
        let error = end_action(&lines).expect("an endStreamAction at the end")["errorMessage"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(error.contains("outside its location"), "{error}");
    }
    assert_eq!(get(server.addr, "/health").status, 200);
}

/// `text` (a commit) with the path of its `add` action replaced by `path`.
fn regex_like_replace_path(text: &str, path: &str) -> String {
    text.lines()
        .map(|line| {
            let mut action: Value = serde_json::from_str(line).unwrap();
            if let Some(add) = action.get_mut("add") {
                add["path"] = json!(path);
            }
            action.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn max_files_pages_snapshot_history_and_changes() {
    let shared = shared_table(5);
    let server = Server::start(&shared.wh, &[], &[]);
    let all = shared.query(server.addr, &json!({}));
    assert_eq!(all.status, 200);
    let all_ids = file_ids(&all.lines());
    assert_eq!(all_ids.len(), 5);
    assert!(
        end_action(&all.lines()).is_none(),
        "no paging asked, none given"
    );

    // A snapshot in pages of two: 2 + 2 + 1, every file once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({"maxFiles": 2});
        if let Some(t) = &token {
            body["pageToken"] = json!(t);
        }
        let page = shared.query(server.addr, &body);
        assert_eq!(page.status, 200, "{}", page.text());
        let lines = page.lines();
        assert!(file_ids(&lines).len() <= 2);
        seen.extend(file_ids(&lines));
        pages += 1;
        let end = end_action(&lines).expect("paged answers end with an endStreamAction");
        assert!(end["minUrlExpirationTimestamp"].as_i64().is_some());
        match end["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 3);
    seen.sort();
    assert_eq!(seen, all_ids);

    // A token only continues the query it came from.
    let first = shared.query(server.addr, &json!({"maxFiles": 2}));
    let token = end_action(&first.lines()).unwrap()["nextPageToken"]
        .as_str()
        .unwrap()
        .to_string();
    let other = shared.query(
        server.addr,
        &json!({"maxFiles": 2, "pageToken": token, "limitHint": 1}),
    );
    assert_eq!(other.status, 400, "{}", other.text());
    let forged = shared.query(
        server.addr,
        &json!({"maxFiles": 2, "pageToken": format!("x{token}")}),
    );
    assert_eq!(forged.status, 400, "{}", forged.text());
    assert_eq!(
        shared.query(server.addr, &json!({"maxFiles": 0})).status,
        400
    );

    // History (startingVersion) and the change data feed, one file per page.
    for paged in [
        Box::new(|token: Option<&str>| {
            let mut body = json!({"startingVersion": 1, "maxFiles": 1});
            if let Some(t) = token {
                body["pageToken"] = json!(t);
            }
            shared.query(server.addr, &body)
        }) as Box<dyn Fn(Option<&str>) -> Answer>,
        Box::new(|token: Option<&str>| {
            let mut path = format!("{T}/changes?startingVersion=1&maxFiles=1");
            if let Some(t) = token {
                path.push_str(&format!("&pageToken={t}"));
            }
            shared.get(server.addr, &path)
        }),
    ] {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..10 {
            let page = paged(token.as_deref());
            assert_eq!(page.status, 200, "{}", page.text());
            assert_eq!(page.header("delta-table-version"), Some("1"));
            let lines = page.lines();
            assert!(lines[0].get("protocol").is_some() && lines[1].get("metaData").is_some());
            let ids = file_ids(&lines);
            assert!(ids.len() <= 1, "{lines:?}");
            seen.extend(ids);
            token = end_action(&lines).unwrap()["nextPageToken"]
                .as_str()
                .map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        assert!(token.is_none(), "paging never ended");
        seen.sort();
        assert_eq!(seen, all_ids, "versions 1..=5 added each file once");
    }
}

/// The server's thread count now (Linux), from `/proc`.
fn threads_of(server: &Server) -> Option<usize> {
    std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn a_thousand_sharing_requests_at_once_open_tables_a_few_at_a_time() {
    let shared = shared_table(12);
    let server = Server::start(&shared.wh, &[], &[]);
    let addr = server.addr;
    let token = shared.bearer();
    // Each opens the table: the latest version, or an older one for the history queries.
    let abusers: Vec<_> = (0..1000)
        .map(|i| {
            let token = token.clone();
            std::thread::spawn(move || {
                let body = match i % 3 {
                    0 => json!({}),
                    1 => json!({"startingVersion": 0}),
                    _ => json!({"version": 1}),
                };
                post_json(
                    addr,
                    &format!("{T}/query"),
                    &body,
                    &[("Authorization", &token)],
                )
                .status
            })
        })
        .collect();
    // Opening a table parks a thread of the blocking pool: unbounded, a burst of requests
    // grew the server by hundreds of threads (289 for 600 requests before the limit),
    // towards tokio's 512, where opens waiting on reads that need a thread deadlocked.
    let mut peak = 0;
    // Meanwhile, a normal request is answered.
    assert_eq!(get(addr, "/health").status, 200);
    while abusers.iter().any(|a| !a.is_finished()) {
        peak = peak.max(threads_of(&server).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    for a in abusers {
        assert_eq!(a.join().unwrap(), 200);
    }
    assert_eq!(shared.get(addr, &format!("{T}/version")).status, 200);
    if cfg!(target_os = "linux") {
        assert!(
            peak < 128,
            "{peak} threads: tables were opened more than 16 (MAX_TABLE_OPENS) at a time"
        );
    }
}

// ---- nothing may escape its root ---------------------------------------------------------

#[test]
fn a_symlink_in_a_shared_table_does_not_serve_the_file_it_points_to() {
    let shared = shared_table(2);
    let server = Server::start(&shared.wh, &[], &[]);
    let lines = shared.query(server.addr, &json!({})).lines();
    let urls = file_urls(&lines);
    assert_eq!(urls.len(), 2);
    // Both files, as the log names them.
    let paths: Vec<PathBuf> = std::fs::read_dir(&shared.table_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert_eq!(paths.len(), 2);
    let catalog = shared.wh.join("catalog.db");
    assert!(catalog.exists());
    // Someone who can write in the table's directory swaps each data file for a link: one
    // to the catalog database (which holds the URL-signing key), one to the table's log.
    std::fs::remove_file(&paths[0]).unwrap();
    std::os::unix::fs::symlink(&catalog, &paths[0]).unwrap();
    std::fs::remove_file(&paths[1]).unwrap();
    std::os::unix::fs::symlink(
        shared
            .table_dir
            .join("_delta_log/00000000000000000000.json"),
        &paths[1],
    )
    .unwrap();
    for url in &urls {
        let path = url.split_once(&server.addr.to_string()).unwrap().1;
        for method in ["GET", "HEAD"] {
            let answer = request(server.addr, method, path, &[], None);
            assert_eq!(answer.status, 404, "{method} {path}: {}", answer.text());
            assert!(!answer.text().contains("SQLite"), "{}", answer.text());
            if method == "GET" {
                assert!(
                    answer.json()["message"]
                        .as_str()
                        .unwrap()
                        .contains("leads outside the table's directory"),
                    "{}",
                    answer.text()
                );
            }
        }
    }
    let log = server.log();
    assert!(log.contains("refused a file URL"), "{log}");
    let token = urls[0].rsplit('/').next().unwrap();
    assert!(!log.contains(token), "the log holds no file URL: {log}");
    // A link to a file inside the table is still a file of the table.
    std::fs::remove_file(&paths[0]).unwrap();
    std::fs::copy(
        shared
            .table_dir
            .join("_delta_log/00000000000000000001.json"),
        shared.table_dir.join("copy.bin"),
    )
    .unwrap();
    std::fs::remove_file(&paths[1]).unwrap();
    for path in &paths {
        std::os::unix::fs::symlink(shared.table_dir.join("copy.bin"), path).unwrap();
    }
    let inside = request(
        server.addr,
        "GET",
        urls[0].split_once(&server.addr.to_string()).unwrap().1,
        &[],
        None,
    );
    assert_eq!(inside.status, 200, "{}", inside.text());
}

#[test]
fn an_allowed_azure_container_does_not_admit_another_container() {
    let (_dir, wh) = warehouse();
    let server = Server::start(
        &wh,
        &[
            "--no-auth",
            "--allow-location",
            "abfss://lake@acct.dfs.core.windows.net/data",
        ],
        &[],
    );
    let credentials = |url: &str| {
        post_json(
            server.addr,
            &format!("{UC}/temporary-path-credentials"),
            &json!({"url": url, "operation": "PATH_READ"}),
            &[],
        )
    };
    let ok = credentials("abfss://lake@acct.dfs.core.windows.net/data/t");
    assert_eq!(ok.status, 200, "{}", ok.text());
    for other in [
        "abfss://other@acct.dfs.core.windows.net/data/t",
        "abfss://acct.dfs.core.windows.net/data/t",
        "abfss://lake@acct.dfs.core.windows.net/database/t",
        "abfss://lake@acct.dfs.core.windows.net:444/data/t",
    ] {
        let refused = credentials(other);
        assert_eq!(refused.status, 403, "{other}: {}", refused.text());
        // Registering a table there is refused before anything is read.
        let register = post_json(
            server.addr,
            &format!("{UC}/tables"),
            &json!({
                "name": "x", "catalog_name": "main", "schema_name": "shop",
                "table_type": "EXTERNAL", "data_source_format": "DELTA",
                "storage_location": other,
            }),
            &[],
        );
        assert_eq!(register.status, 403, "{other}: {}", register.text());
        assert!(register.text().contains("outside the allowed locations"));
    }
}

#[test]
fn without_tokens_a_second_host_name_in_the_request_is_refused() {
    let (_dir, wh) = warehouse();
    let server = Server::start(&wh, &["--no-auth"], &[]);
    let port = server.addr.port();
    let ours = format!("127.0.0.1:{port}");
    let evil = format!("attacker.example:{port}");
    let catalogs = format!("{UC}/catalogs");
    // The absolute form naming this server, with a Host header that agrees: answered.
    let agreed = request(
        server.addr,
        "GET",
        &format!("http://{ours}{catalogs}"),
        &[("Host", &ours)],
        None,
    );
    assert_eq!(agreed.status, 200, "{}", agreed.text());
    let ambiguous: [(String, Vec<(&str, &str)>); 4] = [
        (format!("http://{ours}{catalogs}"), vec![("Host", &evil)]),
        (format!("http://{evil}{catalogs}"), vec![("Host", &ours)]),
        (catalogs.clone(), vec![("Host", &ours), ("Host", &evil)]),
        (catalogs.clone(), vec![("Host", &evil), ("Host", &ours)]),
    ];
    for (target, headers) in &ambiguous {
        let answer = request(server.addr, "GET", target, headers, None);
        assert_eq!(
            answer.status,
            400,
            "{target} {headers:?}: {}",
            answer.text()
        );
        let message = answer.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains("Host header"), "{message}");
        let posted = request(
            server.addr,
            "POST",
            target,
            &[headers.clone(), vec![("Content-Type", "application/json")]].concat(),
            Some(br#"{"name":"evil"}"#),
        );
        assert_eq!(
            posted.status,
            400,
            "{target} {headers:?}: {}",
            posted.text()
        );
    }
    assert_eq!(
        wh_json(&wh, &["catalog", "list"]).as_array().unwrap().len(),
        1,
        "no catalog was created"
    );
}

#[test]
fn without_tokens_only_requests_addressed_to_the_server_are_answered() {
    let (_dir, wh) = warehouse();
    let server = Server::start(
        &wh,
        &["--no-auth", "--public-url", "https://tarn.example.com"],
        &[],
    );
    let port = server.addr.port();
    let catalogs = format!("{UC}/catalogs");
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "tarn.example.com".to_string(),
    ] {
        let answer = request(server.addr, "GET", &catalogs, &[("Host", &host)], None);
        assert_eq!(answer.status, 200, "{host}: {}", answer.text());
    }
    // A page on attacker.example whose name now points at 127.0.0.1.
    for host in [
        format!("attacker.example:{port}"),
        format!("localhost.attacker.example:{port}"),
        "127.0.0.1".to_string(),
    ] {
        let answer = request(server.addr, "GET", &catalogs, &[("Host", &host)], None);
        assert_eq!(answer.status, 403, "{host}: {}", answer.text());
        let message = answer.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains("DNS rebinding"), "{message}");
        let posted = request(
            server.addr,
            "POST",
            &catalogs,
            &[("Host", &host), ("Content-Type", "application/json")],
            Some(br#"{"name":"evil"}"#),
        );
        assert_eq!(posted.status, 403);
    }
    assert_eq!(
        wh_json(&wh, &["catalog", "list"]).as_array().unwrap().len(),
        1,
        "no catalog was created"
    );
    // With tokens the name is not checked (a proxy may use any): the token is.
    let with_tokens = Server::start(&wh, &[], &[]);
    let answer = request(
        with_tokens.addr,
        "GET",
        &catalogs,
        &[("Host", "tarn.internal:443")],
        None,
    );
    assert_eq!(answer.status, 401, "{}", answer.text());
}
