//! A minimal PostgreSQL client for the data streams of an import: connect (trust, password,
//! MD5 or SCRAM-SHA-256), run simple statements, and receive `COPY ... TO STDOUT` through a
//! 1 MiB read buffer, handing each CopyData message to the caller where it lies. For change
//! data capture it also opens `replication=database` connections ([`Target::for_replication`]):
//! rows of a simple query as text, and the CopyBoth stream of `START_REPLICATION`, read with
//! timeouts that leave a partly read message in the buffer.
//!
//! sqlx reads its socket 8 KiB at a time and wraps every CopyData message (one per row) in
//! a stream item; for a million-row import that was 8,500 `recvfrom` calls and about a
//! tenth of the samples (docs/performance.md). Everything else about a run (the snapshot,
//! the checks, the watermark) stays on sqlx; when this client cannot connect the way sqlx
//! did (an authentication method it lacks), the run falls back to sqlx for the data too.
//!
//! TLS is the URL's, as libpq reads it (`sslmode`, `sslrootcert`), through tarn-pgtls: the
//! same settings and rustls configuration as the run's sqlx connections.
//!
//! The protocol itself is `postgres-protocol`'s, which does no I/O of its own: the messages
//! sent are written by its `frontend` module, MD5 and SCRAM-SHA-256 are its `authentication`,
//! and messages received are framed by its `backend::Header` and parsed by
//! `backend::Message`, all but CopyData: its body is handed over where it lies in the read
//! buffer (`Message::parse` wants the message in a `BytesMut` of its own, which a blocking
//! read cannot fill without zeroing or copying it first).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::{self, Message};
use postgres_protocol::message::frontend;
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
    /// The server's ErrorResponse: its SQLSTATE and its message.
    Server {
        code: String,
        message: String,
    },
    Io(String),
    /// A read gave up after the timeout the caller set ([`WireConn::next_copy_data`]);
    /// the connection stays usable.
    Timeout,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Connect(m) | WireError::Server { message: m, .. } | WireError::Io(m) => {
                f.write_str(m)
            }
            WireError::Timeout => f.write_str("no message from the source in time"),
        }
    }
}

impl std::error::Error for WireError {}

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
    /// What was read: unread messages lie in `start..end`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Messages to send, written by `frontend`.
    out: BytesMut,
    /// The read timeout set by [`WireConn::next_copy_data`], if any.
    read_timeout: Option<std::time::Duration>,
}

/// A whole message in the read buffer: its type byte, and where the message (from its type
/// byte) and its body lie.
struct Frame {
    tag: u8,
    whole: std::ops::Range<usize>,
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
                Err(WireError::Server { message, .. }) if i + 1 < attempts.len() => {
                    refused_in_clear = Some(message)
                }
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
            out: BytesMut::new(),
            read_timeout: None,
        };
        conn.startup(target)?;
        conn.socket.set_timeouts(None).map_err(io_error)?;
        Ok(conn)
    }

    /// The startup message, authentication, and the server's parameters up to its first
    /// ReadyForQuery.
    fn startup(&mut self, target: &Target) -> WireResult<()> {
        let mut params = vec![("user", target.user.as_str())];
        if let Some(db) = &target.database {
            params.push(("database", db.as_str()));
        }
        params.push(("client_encoding", "UTF8"));
        params.push(("application_name", "tarn import"));
        if target.replication {
            params.push(("replication", "database"));
        }
        if let Some(options) = &target.options {
            params.push(("options", options.as_str()));
        }
        frontend::startup_message(params, &mut self.out).map_err(unsendable)?;
        self.send()?;

        let mut scram: Option<ScramSha256> = None;
        loop {
            let frame = self.frame()?;
            match self.parse(&frame)? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    let password = self.password(target)?;
                    frontend::password_message(password.as_bytes(), &mut self.out)
                        .map_err(unsendable)?;
                    self.send()?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let password = self.password(target)?;
                    let hash = md5_hash(target.user.as_bytes(), password.as_bytes(), body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.out)
                        .map_err(unsendable)?;
                    self.send()?;
                }
                Message::AuthenticationSasl(body) => {
                    let offered = body
                        .mechanisms()
                        .any(|m| Ok(m == SCRAM_SHA_256))
                        .map_err(malformed)?;
                    if !offered {
                        return Err(WireError::Connect(
                            "the source offers no SASL mechanism this client knows".into(),
                        ));
                    }
                    // Without channel binding ("n,,"), as before: over TLS too, the server
                    // then runs plain SCRAM-SHA-256.
                    let password = self.password(target)?;
                    let s = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut self.out)
                        .map_err(unsendable)?;
                    self.send()?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| out_of_turn("SASL exchange"))?;
                    s.update(body.data()).map_err(scram_failure)?;
                    frontend::sasl_response(s.message(), &mut self.out).map_err(unsendable)?;
                    self.send()?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let s = scram.as_mut().ok_or_else(|| out_of_turn("SASL exchange"))?;
                    // The server proves it knows the password too.
                    s.finish(body.data()).map_err(scram_failure)?;
                }
                Message::AuthenticationGss
                | Message::AuthenticationKerberosV5
                | Message::AuthenticationScmCredential
                | Message::AuthenticationSspi
                | Message::AuthenticationGssContinue(_) => {
                    return Err(WireError::Connect(
                        "the source asks for an authentication method this client lacks".into(),
                    ))
                }
                Message::ErrorResponse(body) => return Err(server_error(&body)),
                Message::ReadyForQuery(_) => return Ok(()),
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
            let frame = self.frame()?;
            match frame.tag {
                backend::ERROR_RESPONSE_TAG => failure = Some(self.server_error(&frame)?),
                backend::READY_FOR_QUERY_TAG => return failure.map_or(Ok(()), Err),
                _ => {}
            }
        }
    }

    /// Runs `COPY ... TO STDOUT` and hands each CopyData message's bytes to `sink`, where
    /// they lie in the read buffer. An error of `sink` ends the COPY (the connection is then
    /// unusable; drop it).
    pub(crate) fn copy_out<E>(
        &mut self,
        sql: &str,
        mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), CopyError<E>> {
        self.query(sql).map_err(CopyError::Wire)?;
        let mut failure = None;
        loop {
            let frame = self.frame().map_err(CopyError::Wire)?;
            match frame.tag {
                backend::COPY_DATA_TAG => sink(&self.buf[frame.body]).map_err(CopyError::Sink)?,
                backend::ERROR_RESPONSE_TAG => {
                    failure = Some(self.server_error(&frame).map_err(CopyError::Wire)?)
                }
                backend::READY_FOR_QUERY_TAG => {
                    return failure.map_or(Ok(()), |e| Err(CopyError::Wire(e)))
                }
                // CopyOutResponse, CopyDone, CommandComplete, notices.
                _ => {}
            }
        }
    }

    fn query(&mut self, sql: &str) -> WireResult<()> {
        frontend::query(sql, &mut self.out).map_err(unsendable)?;
        self.send()
    }

    /// Sends what `out` holds.
    fn send(&mut self) -> WireResult<()> {
        let sent = self.socket.write_all(&self.out);
        self.out.clear();
        sent.map_err(io_error)?;
        self.socket.flush().map_err(io_error)
    }

    /// The next whole message in the buffer, reading as needed.
    fn frame(&mut self) -> WireResult<Frame> {
        self.fill(5)?;
        let header = backend::Header::parse(&self.buf[self.start..self.end])
            .map_err(malformed)?
            .expect("5 bytes are a header");
        let (tag, len) = (header.tag(), header.len() as usize);
        // As libpq: only these types of message may be long (and none over PostgreSQL's
        // 1 GiB allocation limit). Anything else is not PostgreSQL talking, e.g. another
        // service on the port, whose first bytes must not be taken for a length to read.
        if (len > 30_000 && !b"TDdVENA".contains(&tag)) || len > MAX_MESSAGE {
            return Err(WireError::Io(
                "the source sent a malformed message: is it a PostgreSQL server?".into(),
            ));
        }
        self.fill(1 + len)?;
        let frame = Frame {
            tag,
            whole: self.start..self.start + 1 + len,
            body: self.start + 5..self.start + 1 + len,
        };
        self.start += 1 + len;
        Ok(frame)
    }

    /// `frame` parsed by `backend::Message` (from a copy: for the few messages that are not
    /// CopyData).
    fn parse(&self, frame: &Frame) -> WireResult<Message> {
        let mut bytes = BytesMut::from(&self.buf[frame.whole.clone()]);
        match Message::parse(&mut bytes).map_err(malformed)? {
            Some(message) => Ok(message),
            None => Err(malformed("a short message")),
        }
    }

    /// The server's error in `frame` (an ErrorResponse), as a [`WireError::Server`].
    fn server_error(&self, frame: &Frame) -> WireResult<WireError> {
        match self.parse(frame)? {
            Message::ErrorResponse(body) => Ok(server_error(&body)),
            _ => Err(malformed("an error")),
        }
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
            let frame = self.frame()?;
            match frame.tag {
                backend::DATA_ROW_TAG => match self.parse(&frame)? {
                    Message::DataRow(body) => rows.push(data_row(&body)?),
                    _ => return Err(malformed("a data row")),
                },
                backend::ERROR_RESPONSE_TAG => failure = Some(self.server_error(&frame)?),
                backend::READY_FOR_QUERY_TAG => return failure.map_or(Ok(rows), Err),
                // RowDescription, CommandComplete, notices.
                _ => {}
            }
        }
    }

    /// Sends `sql` (`START_REPLICATION ...`) and waits for the CopyBothResponse.
    ///
    /// `backend::Message` does not know CopyBothResponse (`W`): it is recognised by its
    /// tag here and never handed to the parser.
    pub(crate) fn start_copy_both(&mut self, sql: &str) -> WireResult<()> {
        self.set_read_timeout(None)?;
        self.query(sql)?;
        loop {
            let frame = self.frame()?;
            match frame.tag {
                COPY_BOTH_RESPONSE_TAG => return Ok(()),
                backend::ERROR_RESPONSE_TAG => {
                    let failure = self.server_error(&frame)?;
                    // Up to ReadyForQuery, so the connection can still be used.
                    while self.frame()?.tag != backend::READY_FOR_QUERY_TAG {}
                    return Err(failure);
                }
                _ => {}
            }
        }
    }

    /// The next CopyData payload of the stream, waiting at most `timeout`. A message cut
    /// short by the timeout stays in the buffer, and the next call goes on from it.
    pub(crate) fn next_copy_data(
        &mut self,
        timeout: std::time::Duration,
    ) -> WireResult<CopyEvent<'_>> {
        self.set_read_timeout(Some(timeout.max(std::time::Duration::from_millis(1))))?;
        loop {
            let frame = match self.frame() {
                Ok(frame) => frame,
                Err(WireError::Timeout) => return Ok(CopyEvent::Idle),
                Err(e) => return Err(e),
            };
            match frame.tag {
                backend::COPY_DATA_TAG => return Ok(CopyEvent::Data(&self.buf[frame.body])),
                backend::COPY_DONE_TAG | backend::COMMAND_COMPLETE_TAG => {
                    return Ok(CopyEvent::End)
                }
                backend::ERROR_RESPONSE_TAG => return Err(self.server_error(&frame)?),
                // Notices, ParameterStatus.
                _ => {}
            }
        }
    }

    /// Sends one CopyData message.
    pub(crate) fn send_copy_data(&mut self, payload: &[u8]) -> WireResult<()> {
        frontend::CopyData::new(payload)
            .map_err(unsendable)?
            .write(&mut self.out);
        self.send()
    }

    /// Ends the stream from our side (CopyDone) and reads up to ReadyForQuery, for at most
    /// `timeout`.
    pub(crate) fn copy_done(&mut self, timeout: std::time::Duration) -> WireResult<()> {
        frontend::copy_done(&mut self.out);
        self.send()?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(WireError::Timeout);
            }
            self.set_read_timeout(Some(left))?;
            if self.frame()?.tag == backend::READY_FOR_QUERY_TAG {
                return self.set_read_timeout(None);
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

/// CopyBothResponse's type byte (START_REPLICATION), which `backend` does not define.
const COPY_BOTH_RESPONSE_TAG: u8 = b'W';

/// The values of a DataRow message, as text.
fn data_row(body: &backend::DataRowBody) -> WireResult<Vec<Option<String>>> {
    let buffer = body.buffer();
    body.ranges()
        .map(|range| Ok(range.map(|r| String::from_utf8_lossy(&buffer[r]).into_owned())))
        .collect::<Vec<_>>()
        .map_err(malformed)
}

impl Drop for WireConn {
    fn drop(&mut self) {
        // Terminate; the server ends the session (and any open transaction) either way.
        self.out.clear();
        frontend::terminate(&mut self.out);
        let _ = self.socket.write_all(&self.out);
        let _ = self.socket.flush();
    }
}

/// A failed COPY: the connection or server, or the caller's sink.
pub(crate) enum CopyError<E> {
    Wire(WireError),
    Sink(E),
}

/// A message this client could not write (a statement or parameter with a NUL byte).
fn unsendable(e: std::io::Error) -> WireError {
    WireError::Io(format!("cannot send to the source: {e}"))
}

/// A message from the source that does not parse.
fn malformed(e: impl std::fmt::Display) -> WireError {
    WireError::Io(format!("malformed message from the source: {e}"))
}

fn out_of_turn(what: &str) -> WireError {
    WireError::Connect(format!("the source sent a {what} message out of turn"))
}

/// A SCRAM message of the server's that does not parse, or a signature that does not prove
/// it knows the password.
fn scram_failure(e: std::io::Error) -> WireError {
    WireError::Connect(format!(
        "SCRAM-SHA-256 authentication with the source failed: {e}"
    ))
}

/// An ErrorResponse as a [`WireError::Server`]: its `C` (SQLSTATE) and `M` (message) fields.
fn server_error(body: &backend::ErrorResponseBody) -> WireError {
    let mut fields = body.fields();
    let (mut code, mut message) = (None, None);
    while let Ok(Some(field)) = fields.next() {
        let text = || String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'C' => code = Some(text()),
            b'M' => message = Some(text()),
            _ => {}
        }
    }
    WireError::Server {
        code: code.unwrap_or_default(),
        message: message.unwrap_or_else(|| "the source reported an error".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            matches!(&err, WireError::Server { code, message }
                if code == "42P01" && message.contains("wire_no_such_table")),
            "{err}"
        );
        match conn.copy_out::<()>(
            "COPY (SELECT 1 / (g - 500) FROM generate_series(1, 1000) g) TO STDOUT",
            |_| Ok(()),
        ) {
            Err(CopyError::Wire(WireError::Server { code, message })) => {
                assert_eq!(code, "22012");
                assert!(message.contains("division by zero"), "{message}")
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

    /// As the roles of tests/run.sh that log in with a password (skipped when they are not
    /// set up): SCRAM-SHA-256, MD5 and a password in the clear, each in the clear and over
    /// TLS, and a wrong password refused with the server's words.
    #[test]
    fn logs_in_with_scram_md5_and_a_clear_password() {
        let Some(admin) = test_target() else { return };
        let timeout = std::time::Duration::from_secs(10);
        let mut conn = WireConn::connect(&admin, timeout).unwrap();
        let mut rules = Vec::new();
        conn.copy_out::<()>(
            "COPY (SELECT auth_method FROM pg_hba_file_rules \
              WHERE user_name && ARRAY['tarn_scram', 'tarn_md5', 'tarn_password'] \
              AND address = '127.0.0.1' ORDER BY line_number) TO STDOUT",
            |m| {
                rules.extend_from_slice(m);
                Ok(())
            },
        )
        .unwrap_or_else(|_| panic!("COPY failed"));
        if rules.is_empty() {
            eprintln!("skipped: no roles tarn_scram, tarn_md5, tarn_password (tests/run.sh sets them up as root)");
            return;
        }
        assert_eq!(
            String::from_utf8_lossy(&rules),
            "scram-sha-256\nmd5\npassword\n"
        );
        let as_role = |role: &str, password: &str, mode: &str| {
            Target::from_url(&format!(
                "postgres://{role}:{password}@127.0.0.1:{}/test?sslmode={mode}",
                admin.port
            ))
            .unwrap()
        };
        for role in ["tarn_scram", "tarn_md5", "tarn_password"] {
            for mode in ["disable", "require"] {
                let mut conn =
                    WireConn::connect(&as_role(role, &format!("{role}-pw"), mode), timeout)
                        .unwrap_or_else(|e| panic!("{role} with sslmode={mode}: {e}"));
                let mut seen = Vec::new();
                conn.copy_out::<()>(
                    "COPY (SELECT current_user || ' ' || ssl FROM pg_stat_ssl \
                      WHERE pid = pg_backend_pid()) TO STDOUT",
                    |m| {
                        seen.extend_from_slice(m);
                        Ok(())
                    },
                )
                .unwrap_or_else(|_| panic!("COPY failed"));
                let tls = mode == "require";
                assert_eq!(String::from_utf8_lossy(&seen), format!("{role} {tls}\n"));
            }
            match WireConn::connect(&as_role(role, "wrong", "disable"), timeout) {
                Err(WireError::Connect(m)) => {
                    assert!(m.contains("password authentication failed"), "{role}: {m}")
                }
                _ => panic!("{role}: a wrong password is refused"),
            }
            let mut without = as_role(role, "x", "disable");
            without.password = None;
            match WireConn::connect(&without, timeout) {
                Err(WireError::Connect(m)) => assert_eq!(m, "the source asks for a password"),
                _ => panic!("{role}: no password is refused"),
            }
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
