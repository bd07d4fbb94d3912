//! A minimal PostgreSQL client for the data streams of an import: connect (trust, password,
//! MD5 or SCRAM-SHA-256), run simple statements, and receive `COPY ... TO STDOUT` through a
//! 1 MiB read buffer, handing each CopyData message to the caller where it lies.
//!
//! sqlx reads its socket 8 KiB at a time and wraps every CopyData message (one per row) in
//! a stream item; for a million-row import that was 8,500 `recvfrom` calls and about a
//! tenth of the samples (docs/performance.md). Everything else about a run (the snapshot,
//! the checks, the watermark) stays on sqlx; when this client cannot connect the way sqlx
//! did (an authentication method it lacks), the run falls back to sqlx for the data too.
//!
//! TLS is the URL's, as libpq reads it (`sslmode`, `sslrootcert`), through tarn-pgtls: the
//! same settings and rustls configuration as the run's sqlx connections.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;

use base64::prelude::{Engine as _, BASE64_STANDARD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::ConnectOptions;
use tarn_pgtls::{Attempt, Negotiated, PgTls, TlsSocket};

/// Bytes read from the socket at most at a time (and the buffer's starting size).
const READ_BUFFER: usize = 1 << 20;

/// Where and as whom to connect, as sqlx resolved it from the URL, the `PG*` environment
/// variables and `~/.pgpass`, and the URL's TLS settings.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    socket: Option<String>,
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    database: Option<String>,
    options: Option<String>,
    tls: PgTls,
    /// A logical replication connection (`replication=database`), for change data capture.
    replication: bool,
}

impl Target {
    /// `None` when the URL cannot be read (the run's sqlx connection reports why).
    pub(crate) fn from_url(url: &str) -> Option<Target> {
        let (tls, opts) = PgTls::from_url(url).ok()?;
        let resolved = opts.to_url_lossy();
        let password = resolved.password().and_then(|p| {
            url::form_urlencoded::parse(format!("p={p}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        });
        let port = opts.get_port();
        let socket = match opts.get_socket() {
            Some(dir) => Some(format!("{}/.s.PGSQL.{port}", dir.display())),
            None if opts.get_host().starts_with('/') => {
                Some(format!("{}/.s.PGSQL.{port}", opts.get_host()))
            }
            None => None,
        };
        Some(Target {
            socket,
            host: opts.get_host().to_string(),
            port,
            user: opts.get_username().to_string(),
            password,
            database: opts.get_database().map(str::to_string),
            options: opts.get_options().map(str::to_string),
            tls,
            replication: false,
        })
    }

    /// The same target, as a logical replication connection (`replication=database`):
    /// it takes replication commands and simple-query SQL.
    pub(crate) fn for_replication(mut self) -> Target {
        self.replication = true;
        self
    }
}

/// A failure of this client: `Connect` (the caller may fall back to sqlx) or `Server` /
/// `Io` once connected.
#[derive(Debug)]
pub(crate) enum WireError {
    Connect(String),
    Server(String),
    Io(String),
    /// A read gave up after the timeout the caller set ([`WireConn::next_copy_data`]);
    /// the connection stays usable.
    Timeout,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Connect(m) | WireError::Server(m) | WireError::Io(m) => f.write_str(m),
            WireError::Timeout => f.write_str("no message from the source in time"),
        }
    }
}

type WireResult<T> = Result<T, WireError>;

fn io_error(e: std::io::Error) -> WireError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        WireError::Io("the source closed the connection".into())
    } else {
        WireError::Io(format!("connection to the source: {e}"))
    }
}

enum Socket {
    Tcp(TcpStream),
    Tls(Box<TlsSocket>),
    Unix(UnixStream),
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Tls(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }
}

impl Socket {
    /// Bounds every read and write from now on (`None`: wait as long as it takes).
    fn set_timeouts(&self, timeout: Option<std::time::Duration>) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s
                .set_read_timeout(timeout)
                .and_then(|()| s.set_write_timeout(timeout)),
            Socket::Tls(s) => s
                .tcp()
                .set_read_timeout(timeout)
                .and_then(|()| s.tcp().set_write_timeout(timeout)),
            Socket::Unix(s) => s
                .set_read_timeout(timeout)
                .and_then(|()| s.set_write_timeout(timeout)),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            Socket::Tls(s) => s.write(buf),
            Socket::Unix(s) => s.write(buf),
        }
    }

    /// Sends what TLS holds back (plain sockets write through).
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Socket::Tls(s) => s.flush(),
            Socket::Tcp(_) | Socket::Unix(_) => Ok(()),
        }
    }
}

/// The longest message PostgreSQL sends (its `MaxAllocSize`).
const MAX_MESSAGE: usize = (1 << 30) - 1;

/// One connection, used from one (blocking) thread.
pub(crate) struct WireConn {
    socket: Socket,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The read timeout set by [`WireConn::next_copy_data`], if any.
    read_timeout: Option<std::time::Duration>,
}

/// A message: its type byte and where its body lies in the buffer.
struct Message {
    tag: u8,
    body: std::ops::Range<usize>,
}

impl WireConn {
    /// Connects and authenticates within `timeout`, with TLS as the target's `sslmode`
    /// says; every failure is a [`WireError::Connect`]. Later reads wait as long as a query
    /// takes.
    pub(crate) fn connect(target: &Target, timeout: std::time::Duration) -> WireResult<WireConn> {
        let attempts = target.tls.attempts();
        let mut refused_in_clear = None;
        for (i, attempt) in attempts.iter().enumerate() {
            match WireConn::connect_as(target, *attempt, timeout) {
                Ok(conn) => return Ok(conn),
                // `allow`: the server refused the connection in the clear; try TLS.
                Err(WireError::Server(m)) if i + 1 < attempts.len() => refused_in_clear = Some(m),
                Err(e) => {
                    return Err(WireError::Connect(
                        refused_in_clear.unwrap_or_else(|| e.to_string()),
                    ))
                }
            }
        }
        unreachable!("every sslmode has at least one attempt")
    }

    /// One connection, started as `attempt` says. A refusal by the server is a
    /// [`WireError::Server`].
    fn connect_as(
        target: &Target,
        attempt: Attempt,
        timeout: std::time::Duration,
    ) -> WireResult<WireConn> {
        let socket = match &target.socket {
            Some(path) => {
                let socket = UnixStream::connect(path)
                    .map_err(|e| WireError::Connect(format!("cannot connect to {path}: {e}")))?;
                socket
                    .set_read_timeout(Some(timeout))
                    .and_then(|()| socket.set_write_timeout(Some(timeout)))
                    .map_err(io_error)?;
                Socket::Unix(socket)
            }
            None => {
                let cannot = |e: std::io::Error| {
                    WireError::Connect(format!("cannot connect to {}: {e}", target.host))
                };
                let mut last = None;
                let mut stream = None;
                for addr in (target.host.as_str(), target.port)
                    .to_socket_addrs()
                    .map_err(cannot)?
                {
                    match TcpStream::connect_timeout(&addr, timeout) {
                        Ok(s) => {
                            stream = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let stream = stream.ok_or_else(|| {
                    cannot(last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()))
                })?;
                let _ = stream.set_nodelay(true);
                // The handshake is bounded as the start-up is.
                stream
                    .set_read_timeout(Some(timeout))
                    .and_then(|()| stream.set_write_timeout(Some(timeout)))
                    .map_err(io_error)?;
                match target.tls.negotiate_blocking(stream, attempt) {
                    Ok(Negotiated::Plain(stream)) => Socket::Tcp(stream),
                    Ok(Negotiated::Tls(stream)) => Socket::Tls(stream),
                    Err(e) => return Err(WireError::Connect(e.0)),
                }
            }
        };
        let mut conn = WireConn {
            socket,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            read_timeout: None,
        };
        conn.startup(target)?;
        conn.socket.set_timeouts(None).map_err(io_error)?;
        Ok(conn)
    }

    fn startup(&mut self, target: &Target) -> WireResult<()> {
        let mut body = 196_608_i32.to_be_bytes().to_vec(); // protocol 3.0
        let mut param = |k: &str, v: &str| {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        };
        param("user", &target.user);
        if let Some(db) = &target.database {
            param("database", db);
        }
        param("client_encoding", "UTF8");
        param("application_name", "tarn import");
        if target.replication {
            param("replication", "database");
        }
        if let Some(options) = &target.options {
            param("options", options);
        }
        body.push(0);
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        self.socket.write_all(&packet).map_err(io_error)?;
        self.socket.flush().map_err(io_error)?;

        let mut scram: Option<Scram> = None;
        loop {
            let m = self.message()?;
            let body = self.buf[m.body.clone()].to_vec();
            match m.tag {
                b'R' => {
                    let code = be_i32(&body, 0)?;
                    match code {
                        0 => {}
                        3 => {
                            let password = self.password(target)?;
                            let mut data = password.into_bytes();
                            data.push(0);
                            self.send(b'p', &data)?;
                        }
                        5 => {
                            let password = self.password(target)?;
                            let salt = body.get(4..8).ok_or_else(|| short("MD5 salt"))?;
                            let mut data = md5_password(&target.user, &password, salt).into_bytes();
                            data.push(0);
                            self.send(b'p', &data)?;
                        }
                        10 => {
                            let mechanisms = &body[4..];
                            if !mechanisms.split(|b| *b == 0).any(|m| m == b"SCRAM-SHA-256") {
                                return Err(WireError::Connect(
                                    "the source offers no SASL mechanism this client knows".into(),
                                ));
                            }
                            let password = self.password(target)?;
                            let s = Scram::new("", &password, &nonce()?);
                            let first = s.client_first();
                            let mut data = b"SCRAM-SHA-256\0".to_vec();
                            data.extend_from_slice(&(first.len() as i32).to_be_bytes());
                            data.extend_from_slice(first.as_bytes());
                            self.send(b'p', &data)?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| short("SASL exchange"))?;
                            let reply = s.client_final(&String::from_utf8_lossy(&body[4..]))?;
                            self.send(b'p', reply.as_bytes())?;
                        }
                        12 => {
                            let s = scram.as_ref().ok_or_else(|| short("SASL exchange"))?;
                            s.verify_server(&String::from_utf8_lossy(&body[4..]))?;
                        }
                        other => {
                            return Err(WireError::Connect(format!(
                                "authentication method {other} is not supported by this client"
                            )))
                        }
                    }
                }
                b'E' => return Err(WireError::Server(error_text(&body))),
                b'Z' => return Ok(()),
                // ParameterStatus, BackendKeyData, notices.
                _ => {}
            }
        }
    }

    fn password(&self, target: &Target) -> WireResult<String> {
        target
            .password
            .clone()
            .ok_or_else(|| WireError::Connect("the source asks for a password".into()))
    }

    /// Runs `sql` (one or more statements, no rows expected) to completion.
    #[cfg(test)]
    pub(crate) fn execute(&mut self, sql: &str) -> WireResult<()> {
        self.query(sql)?;
        let mut failure = None;
        loop {
            let m = self.message()?;
            match m.tag {
                b'E' => failure = Some(WireError::Server(error_text(&self.buf[m.body]))),
                b'Z' => return failure.map_or(Ok(()), Err),
                _ => {}
            }
        }
    }

    /// Runs `COPY ... TO STDOUT` and hands each CopyData message's bytes to `sink`. An error
    /// of `sink` ends the COPY (the connection is then unusable; drop it).
    pub(crate) fn copy_out<E>(
        &mut self,
        sql: &str,
        mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), CopyError<E>> {
        self.query(sql).map_err(CopyError::Wire)?;
        let mut failure = None;
        loop {
            let m = self.message().map_err(CopyError::Wire)?;
            match m.tag {
                b'd' => sink(&self.buf[m.body]).map_err(CopyError::Sink)?,
                b'E' => failure = Some(WireError::Server(error_text(&self.buf[m.body]))),
                b'Z' => return failure.map_or(Ok(()), |e| Err(CopyError::Wire(e))),
                // CopyOutResponse, CopyDone, CommandComplete, notices.
                _ => {}
            }
        }
    }

    fn query(&mut self, sql: &str) -> WireResult<()> {
        let mut data = sql.as_bytes().to_vec();
        data.push(0);
        self.send(b'Q', &data)
    }

    fn send(&mut self, tag: u8, body: &[u8]) -> WireResult<()> {
        let mut packet = Vec::with_capacity(body.len() + 5);
        packet.push(tag);
        packet.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        packet.extend_from_slice(body);
        self.socket.write_all(&packet).map_err(io_error)?;
        self.socket.flush().map_err(io_error)
    }

    /// The next whole message in the buffer, reading as needed.
    fn message(&mut self) -> WireResult<Message> {
        self.fill(5)?;
        let tag = self.buf[self.start];
        let len = be_i32(&self.buf[self.start + 1..self.start + 5], 0)?;
        if len < 4 {
            return Err(WireError::Io("malformed message from the source".into()));
        }
        let len = len as usize;
        // As libpq: only these types of message may be long (and none over PostgreSQL's
        // 1 GiB allocation limit). Anything else is not PostgreSQL talking, e.g. another
        // service on the port, whose first bytes must not be taken for a length to read.
        if (len > 30_000 && !b"TDdVENA".contains(&tag)) || len > MAX_MESSAGE {
            return Err(WireError::Io(
                "the source sent a malformed message: is it a PostgreSQL server?".into(),
            ));
        }
        self.fill(1 + len)?;
        let body = self.start + 5..self.start + 1 + len;
        self.start += 1 + len;
        Ok(Message { tag, body })
    }

    /// Makes at least `need` unread bytes available from `start`.
    fn fill(&mut self, need: usize) -> WireResult<()> {
        if self.end - self.start >= need {
            return Ok(());
        }
        if self.start + need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if need > self.buf.len() {
                self.buf.resize(need.next_power_of_two(), 0);
            }
        }
        while self.end - self.start < need {
            let n = match self.socket.read(&mut self.buf[self.end..]) {
                Ok(n) => n,
                // What was read so far stays in the buffer: the next call goes on from it.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) && self.read_timeout.is_some() =>
                {
                    return Err(WireError::Timeout)
                }
                Err(e) => return Err(io_error(e)),
            };
            if n == 0 {
                return Err(io_error(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.end += n;
        }
        Ok(())
    }
}

/// What a replication stream hands over ([`WireConn::next_copy_data`]).
pub(crate) enum CopyEvent<'a> {
    /// One CopyData payload.
    Data(&'a [u8]),
    /// Nothing arrived within the timeout.
    Idle,
    /// The server ended the stream (CopyDone or CommandComplete).
    End,
}

/// The replication side of the client (change data capture): simple queries returning rows
/// as text, and the CopyBoth stream of `START_REPLICATION`.
impl WireConn {
    /// Runs `sql` (simple query; a replication command or SQL) and returns every row of its
    /// results as text (`None` for NULL).
    pub(crate) fn rows(&mut self, sql: &str) -> WireResult<Vec<Vec<Option<String>>>> {
        self.set_read_timeout(None)?;
        self.query(sql)?;
        let (mut rows, mut failure) = (Vec::new(), None);
        loop {
            let m = self.message()?;
            let body = &self.buf[m.body];
            match m.tag {
                b'D' => rows.push(data_row(body)?),
                b'E' => failure = Some(WireError::Server(error_text(body))),
                b'Z' => return failure.map_or(Ok(rows), Err),
                // RowDescription, CommandComplete, notices.
                _ => {}
            }
        }
    }

    /// Sends `sql` (`START_REPLICATION ...`) and waits for the CopyBothResponse.
    pub(crate) fn start_copy_both(&mut self, sql: &str) -> WireResult<()> {
        self.set_read_timeout(None)?;
        self.query(sql)?;
        loop {
            let m = self.message()?;
            match m.tag {
                b'W' => return Ok(()),
                b'E' => {
                    let failure = WireError::Server(error_text(&self.buf[m.body]));
                    // Up to ReadyForQuery, so the connection can still be used.
                    while self.message()?.tag != b'Z' {}
                    return Err(failure);
                }
                _ => {}
            }
        }
    }

    /// The next CopyData payload of the stream, waiting at most `timeout`.
    pub(crate) fn next_copy_data(
        &mut self,
        timeout: std::time::Duration,
    ) -> WireResult<CopyEvent<'_>> {
        self.set_read_timeout(Some(timeout.max(std::time::Duration::from_millis(1))))?;
        loop {
            let m = match self.message() {
                Ok(m) => m,
                Err(WireError::Timeout) => return Ok(CopyEvent::Idle),
                Err(e) => return Err(e),
            };
            match m.tag {
                b'd' => return Ok(CopyEvent::Data(&self.buf[m.body])),
                b'c' | b'C' => return Ok(CopyEvent::End),
                b'E' => return Err(WireError::Server(error_text(&self.buf[m.body]))),
                // Notices, ParameterStatus.
                _ => {}
            }
        }
    }

    /// Sends one CopyData message.
    pub(crate) fn send_copy_data(&mut self, payload: &[u8]) -> WireResult<()> {
        self.send(b'd', payload)
    }

    /// Ends the stream from our side (CopyDone) and reads up to ReadyForQuery, for at most
    /// `timeout`.
    pub(crate) fn copy_done(&mut self, timeout: std::time::Duration) -> WireResult<()> {
        self.send(b'c', &[])?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(WireError::Timeout);
            }
            self.set_read_timeout(Some(left))?;
            match self.message()?.tag {
                b'Z' => return self.set_read_timeout(None),
                _ => continue,
            }
        }
    }

    fn set_read_timeout(&mut self, timeout: Option<std::time::Duration>) -> WireResult<()> {
        if self.read_timeout != timeout {
            let set = match &self.socket {
                Socket::Tcp(s) => s.set_read_timeout(timeout),
                Socket::Tls(s) => s.tcp().set_read_timeout(timeout),
                Socket::Unix(s) => s.set_read_timeout(timeout),
            };
            set.map_err(io_error)?;
            self.read_timeout = timeout;
        }
        Ok(())
    }
}

/// The values of a DataRow message, as text.
fn data_row(body: &[u8]) -> WireResult<Vec<Option<String>>> {
    let bad = || WireError::Io("malformed data row from the source".into());
    let n = body.get(..2).ok_or_else(bad)?;
    let n = i16::from_be_bytes([n[0], n[1]]).max(0) as usize;
    let (mut at, mut values) = (2, Vec::with_capacity(n));
    for _ in 0..n {
        let len = be_i32(body, at)?;
        at += 4;
        if len < 0 {
            values.push(None);
            continue;
        }
        let v = body.get(at..at + len as usize).ok_or_else(bad)?;
        values.push(Some(String::from_utf8_lossy(v).into_owned()));
        at += len as usize;
    }
    Ok(values)
}

impl Drop for WireConn {
    fn drop(&mut self) {
        // Terminate; the server ends the session (and any open transaction) either way.
        let _ = self.socket.write_all(&[b'X', 0, 0, 0, 4]);
        let _ = self.socket.flush();
    }
}

/// A failed COPY: the connection or server, or the caller's sink.
pub(crate) enum CopyError<E> {
    Wire(WireError),
    Sink(E),
}

fn short(what: &str) -> WireError {
    WireError::Connect(format!("malformed {what} from the source"))
}

fn be_i32(data: &[u8], at: usize) -> WireResult<i32> {
    data.get(at..at + 4)
        .map(|b| i32::from_be_bytes(b.try_into().expect("4 bytes")))
        .ok_or_else(|| WireError::Io("malformed message from the source".into()))
}

/// The `M` (message) field of an ErrorResponse.
fn error_text(body: &[u8]) -> String {
    let mut message = None;
    for field in body.split(|b| *b == 0) {
        if let Some((b'M', text)) = field.split_first() {
            message = Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    message.unwrap_or_else(|| "the source reported an error".into())
}

fn md5_password(user: &str, password: &str, salt: &[u8]) -> String {
    let inner = hex::encode(md5::Md5::digest(format!("{password}{user}").as_bytes()));
    let mut outer = md5::Md5::new();
    outer.update(inner.as_bytes());
    outer.update(salt);
    format!("md5{}", hex::encode(outer.finalize()))
}

fn nonce() -> WireResult<String> {
    use rand::RngCore;
    let mut bytes = [0u8; 18];
    rand::thread_rng()
        .try_fill_bytes(&mut bytes)
        .map_err(|e| WireError::Connect(format!("no random nonce: {e}")))?;
    Ok(BASE64_STANDARD.encode(bytes))
}

/// The client side of SCRAM-SHA-256 (RFC 5802/7677) without channel binding, as PostgreSQL
/// runs it (the user name is taken from the startup message).
struct Scram {
    /// The `n=` attribute: empty for PostgreSQL.
    user: String,
    password: String,
    client_nonce: String,
    auth_message: String,
    salted: Vec<u8>,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

impl Scram {
    fn new(user: &str, password: &str, client_nonce: &str) -> Scram {
        Scram {
            user: user.to_string(),
            password: password.to_string(),
            client_nonce: client_nonce.to_string(),
            auth_message: String::new(),
            salted: Vec::new(),
        }
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", self.user, self.client_nonce)
    }

    fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare())
    }

    /// The client-final message for the server-first message `server`.
    fn client_final(&mut self, server: &str) -> WireResult<String> {
        let bad = || WireError::Connect("malformed SCRAM message from the source".into());
        let attr = |name: &str| {
            server
                .split(',')
                .find_map(|a| a.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        };
        let nonce = attr("r").ok_or_else(bad)?;
        if !nonce.starts_with(&self.client_nonce) {
            return Err(bad());
        }
        let salt = BASE64_STANDARD
            .decode(attr("s").ok_or_else(bad)?)
            .map_err(|_| bad())?;
        let iterations: u32 = attr("i")
            .and_then(|i| i.parse().ok())
            .filter(|i| *i > 0)
            .ok_or_else(bad)?;
        // Hi(password, salt, i): PBKDF2 with HMAC-SHA-256, one block.
        let mut block = salt.clone();
        block.extend_from_slice(&1u32.to_be_bytes());
        let mut u = hmac(self.password.as_bytes(), &block);
        let mut salted = u.clone();
        for _ in 1..iterations {
            u = hmac(self.password.as_bytes(), &u);
            salted.iter_mut().zip(&u).for_each(|(s, x)| *s ^= x);
        }
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("{},{server},{without_proof}", self.client_first_bare());
        let signature = hmac(&stored_key, self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        self.salted = salted;
        Ok(format!(
            "{without_proof},p={}",
            BASE64_STANDARD.encode(proof)
        ))
    }

    /// Checks the server-final message (the server proves it knows the password too).
    fn verify_server(&self, server: &str) -> WireResult<()> {
        let server_key = hmac(&self.salted, b"Server Key");
        let expected = BASE64_STANDARD.encode(hmac(&server_key, self.auth_message.as_bytes()));
        match server.strip_prefix("v=") {
            Some(v) if v == expected => Ok(()),
            _ => Err(WireError::Connect(
                "the source's SCRAM signature does not match".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_sha_256_matches_rfc_7677() {
        // RFC 7677, section 3: user "user", password "pencil".
        let mut s = Scram::new("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(s.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            s.client_final(server).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        s.verify_server("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(s
            .verify_server("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=")
            .is_err());
        // A server nonce that does not extend ours is refused.
        assert!(s
            .client_final("r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .is_err());
    }

    #[test]
    fn md5_passwords_are_hashed_as_postgresql_expects() {
        // "md5" || md5(md5("secret" || "alice") || salt), computed with Python's hashlib.
        assert_eq!(
            md5_password("alice", "secret", &[1, 2, 3, 4]),
            "md598a0412b9c31436fc53776e863350083"
        );
    }

    /// The local PostgreSQL of the test suite (`TARN_TEST_POSTGRES`, `skip` to skip).
    fn test_target() -> Option<Target> {
        let url = std::env::var("TARN_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        (url != "skip").then(|| Target::from_url(&url).expect("a PostgreSQL URL"))
    }

    #[test]
    fn copies_rows_and_reports_errors_from_a_real_server() {
        let Some(target) = test_target() else { return };
        let mut conn = WireConn::connect(&target, std::time::Duration::from_secs(10)).unwrap();
        conn.execute("BEGIN; CREATE TEMP TABLE wire_rows (n int, t text)")
            .unwrap();
        conn.execute(
            "INSERT INTO wire_rows SELECT g, repeat('y', g) FROM generate_series(1, 3000) g",
        )
        .unwrap();
        let (mut rows, mut bytes) = (0, 0);
        conn.copy_out::<()>("COPY wire_rows TO STDOUT", |m| {
            rows += 1;
            bytes += m.len();
            Ok(())
        })
        .unwrap_or_else(|_| panic!("COPY failed"));
        // One message per row: "n\tyyy...\n".
        let expected: usize = (1..=3000)
            .map(|g: usize| g.to_string().len() + 1 + g + 1)
            .sum();
        assert_eq!((rows, bytes), (3000, expected));

        // A row larger than the read buffer.
        let mut sizes = Vec::new();
        conn.copy_out::<()>("COPY (SELECT repeat('z', 3000000)) TO STDOUT", |m| {
            sizes.push(m.len());
            Ok(())
        })
        .unwrap_or_else(|_| panic!("COPY failed"));
        assert_eq!(sizes, [3_000_001]);

        // The caller's error stops the COPY.
        let mut seen = 0;
        match conn.copy_out("COPY wire_rows TO STDOUT", |_| {
            seen += 1;
            if seen == 10 {
                Err("enough")
            } else {
                Ok(())
            }
        }) {
            Err(CopyError::Sink("enough")) => {}
            _ => panic!("the sink's error ends the COPY"),
        }
        drop(conn);

        // The server's errors, before and during a COPY, carry its message.
        let mut conn = WireConn::connect(&target, std::time::Duration::from_secs(10)).unwrap();
        let err = conn
            .execute("SELECT * FROM wire_no_such_table")
            .unwrap_err();
        assert!(
            matches!(&err, WireError::Server(m) if m.contains("wire_no_such_table")),
            "{err}"
        );
        match conn.copy_out::<()>(
            "COPY (SELECT 1 / (g - 500) FROM generate_series(1, 1000) g) TO STDOUT",
            |_| Ok(()),
        ) {
            Err(CopyError::Wire(WireError::Server(m))) => {
                assert!(m.contains("division by zero"), "{m}")
            }
            _ => panic!("a failing COPY is an error"),
        }
        // The connection is still usable afterwards.
        conn.execute("SELECT 1").unwrap();

        // Nothing listening, or a database that does not exist: a connect error (the import
        // then falls back to sqlx, which words the error for the user).
        let mut closed = target.clone();
        closed.socket = None;
        closed.host = "127.0.0.1".into();
        closed.port = 1;
        assert!(matches!(
            WireConn::connect(&closed, std::time::Duration::from_secs(10)),
            Err(WireError::Connect(_))
        ));
        let mut unknown = target.clone();
        unknown.database = Some("tarn_no_such_database".into());
        match WireConn::connect(&unknown, std::time::Duration::from_secs(10)) {
            Err(WireError::Connect(m)) => assert!(m.contains("tarn_no_such_database"), "{m}"),
            _ => panic!("an unknown database is a connect error"),
        }
    }

    #[test]
    fn a_server_that_is_not_postgresql_is_refused_at_its_first_bytes() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut startup = [0u8; 512];
            let _ = socket.read(&mut startup);
            // "HTTP" read as a PostgreSQL message: type 'H', length 1,414,811,695.
            socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
        });
        // In the clear, the start-up message's answer is read (with TLS, the SSLRequest's
        // answer is refused first: tarn-pgtls).
        let target = Target::from_url(&format!(
            "postgres://app@127.0.0.1:{port}/shop?sslmode=disable"
        ))
        .unwrap();
        let err = WireConn::connect(&target, std::time::Duration::from_secs(10))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("is it a PostgreSQL server?"), "{err}");
        server.join().unwrap();
    }

    /// As the TLS-only role of tests/run.sh (`tarn_tls`; skipped when it is not set up):
    /// `allow` is refused in the clear and then connects over TLS, `require` over TLS, and
    /// `disable` is refused with the server's words.
    #[test]
    fn allow_tries_the_clear_then_tls_and_require_uses_tls() {
        let Some(admin) = test_target() else { return };
        let role = |mode: &str| {
            Target::from_url(&format!(
                "postgres://tarn_tls@127.0.0.1:{}/test?sslmode={mode}",
                admin.port
            ))
            .unwrap()
        };
        let timeout = std::time::Duration::from_secs(10);
        let Ok(mut conn) = WireConn::connect(&role("require"), timeout) else {
            eprintln!("skipped: no TLS-only role tarn_tls (tests/run.sh sets it up as root)");
            return;
        };
        let mut ssl = Vec::new();
        let mut in_tls = |conn: &mut WireConn| {
            ssl.clear();
            conn.copy_out::<()>(
                "COPY (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) TO STDOUT",
                |m| {
                    ssl.extend_from_slice(m);
                    Ok(())
                },
            )
            .unwrap_or_else(|_| panic!("COPY failed"));
            ssl == b"t\n"
        };
        assert!(in_tls(&mut conn));
        let mut conn = WireConn::connect(&role("allow"), timeout).unwrap();
        assert!(in_tls(&mut conn));
        match WireConn::connect(&role("disable"), timeout) {
            Err(WireError::Connect(m)) => assert!(m.contains("no encryption"), "{m}"),
            _ => panic!("the clear is refused"),
        }
    }

    #[test]
    fn targets_come_from_the_url_as_sqlx_reads_it() {
        let t = Target::from_url("postgres://app:p%40ss@db.example:6432/shop").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("db.example", 6432, "app")
        );
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(t.database.as_deref(), Some("shop"));
        assert!(t.socket.is_none());
        let t = Target::from_url("postgres://app@%2Fvar%2Frun%2Fpostgresql/shop").unwrap();
        assert_eq!(
            t.socket.as_deref(),
            Some("/var/run/postgresql/.s.PGSQL.5432")
        );
        let t = Target::from_url("postgres://app@db/shop?sslmode=require").unwrap();
        assert_eq!(t.tls.attempts(), [Attempt::Tls]);
        assert!(Target::from_url("postgres://app@db/shop?sslmode=sometimes").is_none());
    }
}
