//! sqlx's connections over Tarn's TLS: sqlx connects in the clear to a Unix socket in a
//! private directory, and each connection accepted there is carried to the server over a
//! TLS connection Tarn opened ([`PgTls::dial`]). When that cannot be opened, the tunnel
//! answers sqlx's start-up message with PostgreSQL's own ErrorResponse, so the reason
//! reaches the user as the server's message would.
//!
//! Only our own user gets through, whatever the umask: the directory (`$TMPDIR/tarn-pg-*`)
//! is mode 0700 (set explicitly, then checked), the socket in it 0600, and a connection
//! whose peer (`SO_PEERCRED`) is another uid is closed unanswered. Directories that a
//! killed Tarn left behind (ours, whose socket nobody listens on) are removed when the
//! first tunnel of a process starts.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixListener, UnixStream};

use crate::{Attempt, Error, PgTls, Result, SSL_REQUEST};

/// A connection to the server, negotiated.
pub(crate) enum Upstream {
    /// In the clear (the server did not offer TLS, and the attempt allowed that).
    Plain(TcpStream),
    /// TLS, handshake done.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_flush(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Upstream {
    /// Ends the connection before its start-up, quietly: TLS's close_notify, then what the
    /// server still sends (session tickets) is read until it closes, so that neither side
    /// resets the connection (the server would log it).
    pub(crate) async fn close(mut self) {
        let _ = self.shutdown().await;
        let mut sink = [0u8; 4096];
        let drain = async { while matches!(self.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }
}

impl PgTls {
    /// Connects to the server and negotiates as `attempt` says, within `timeout`.
    pub(crate) async fn dial(&self, attempt: Attempt, timeout: Duration) -> Result<Upstream> {
        let (host, port) = (&self.inner.host, self.inner.port);
        match tokio::time::timeout(timeout, self.dial_now(attempt)).await {
            Ok(result) => result,
            Err(_) => Err(Error(format!(
                "no answer from {host}:{port} within {} s",
                timeout.as_secs_f64()
            ))),
        }
    }

    async fn dial_now(&self, attempt: Attempt) -> Result<Upstream> {
        let (host, port) = (self.inner.host.as_str(), self.inner.port);
        let mut tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| Error(format!("cannot connect to {host}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        if attempt == Attempt::Plain {
            return Ok(Upstream::Plain(tcp));
        }
        let io = |e: std::io::Error| Error(format!("TLS request to the server failed: {e}"));
        tcp.write_all(&SSL_REQUEST).await.map_err(io)?;
        // Exactly one byte (see `negotiate_blocking`).
        let mut answer = [0u8];
        let byte = match tcp.read(&mut answer).await {
            Ok(0) => None,
            Ok(_) => Some(answer[0]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => return Err(io(e)),
        };
        if !self.answer(attempt, byte)? {
            return Ok(Upstream::Plain(tcp));
        }
        let (config, name) = self.config()?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| self.describe(&e))?;
        Ok(Upstream::Tls(Box::new(stream)))
    }
}

/// A Unix socket that sqlx connects to in the clear, each connection carried to the server
/// over TLS. Stops accepting when dropped (connections already carried go on).
pub struct Tunnel {
    dir: tempfile::TempDir,
    accepting: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Tunnel {
    /// Listens in a new private directory; the first connection accepted is carried over
    /// `first` if given, each other one over a new TLS connection (set up within `timeout`).
    pub(crate) fn start(
        tls: PgTls,
        first: Option<Upstream>,
        timeout: Duration,
    ) -> std::io::Result<Tunnel> {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| remove_stale_dirs(&std::env::temp_dir()));
        let dir = private_dir()?;
        let socket = dir.path().join(format!(".s.PGSQL.{}", tls.inner.port));
        let listener = UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
        let me = our_uid();
        let accepting = tokio::spawn(async move {
            let mut first = first;
            loop {
                let client = match listener.accept().await {
                    Ok((client, _)) => client,
                    Err(_) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let peer = client.peer_cred().map(|c| c.uid());
                if !peer_allowed(peer.as_ref().ok().copied(), me) {
                    tracing::debug!(
                        "TLS tunnel: refused a connection from uid {peer:?} (only uid {me} may connect)"
                    );
                    drop(client);
                    continue;
                }
                let ready = first.take();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let upstream = match ready {
                        Some(upstream) => Ok(upstream),
                        None => tls.dial(Attempt::Tls, timeout).await,
                    };
                    match upstream {
                        Ok(upstream) => carry(client, upstream).await,
                        Err(e) => refuse(client, &e).await,
                    }
                });
            }
        });
        Ok(Tunnel { dir, accepting })
    }

    /// The directory sqlx is pointed at (its socket is `.s.PGSQL.<port>` inside).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Our effective uid: the only one whose connections the tunnel carries.
fn our_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether a connection whose peer has uid `peer` (`None`: unknown) may use a tunnel of
/// uid `me`: only the same uid.
fn peer_allowed(peer: Option<u32>, me: u32) -> bool {
    peer == Some(me)
}

/// A new `tarn-pg-*` directory in `$TMPDIR`, mode 0700 whatever the umask, checked.
fn private_dir() -> std::io::Result<tempfile::TempDir> {
    let private = std::fs::Permissions::from_mode(0o700);
    let dir = tempfile::Builder::new()
        .prefix("tarn-pg-")
        .permissions(private.clone())
        .tempdir()?;
    // The umask may have taken bits off the mode given at creation (0700 & ~umask).
    std::fs::set_permissions(dir.path(), private)?;
    let meta = std::fs::symlink_metadata(dir.path())?;
    if !meta.is_dir() || meta.mode() & 0o7777 != 0o700 || meta.uid() != our_uid() {
        return Err(std::io::Error::other(format!(
            "{} is not a private directory (mode {:o}, owner uid {})",
            dir.path().display(),
            meta.mode() & 0o7777,
            meta.uid()
        )));
    }
    Ok(dir)
}

/// Removes the `tarn-pg-*` directories in `temp` that a killed Tarn left behind: directories
/// (never symlinks) owned by our uid, holding only a `.s.PGSQL.<port>` socket that refuses
/// connections. Anything else (another user's, a live tunnel, a directory still being set
/// up, or one with other files) is left alone.
fn remove_stale_dirs(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    let me = our_uid();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("tarn-pg-") {
            continue;
        }
        let dir = entry.path();
        // symlink_metadata: a symlink is seen as one, never followed.
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() && meta.uid() == me => {}
            _ => continue,
        }
        if is_stale(&dir) {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::debug!("removed the stale TLS tunnel {}", dir.display()),
                Err(e) => tracing::debug!("cannot remove {}: {e}", dir.display()),
            }
        }
    }
}

/// Whether `dir` holds exactly one entry, a socket named `.s.PGSQL.*` that nobody listens on.
fn is_stale(dir: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let entries: Vec<_> = entries.flatten().collect();
    let [socket] = entries.as_slice() else {
        return false;
    };
    let is_socket = socket.file_type().map(|t| t.is_socket()).unwrap_or(false);
    if !is_socket
        || !socket
            .file_name()
            .to_string_lossy()
            .starts_with(".s.PGSQL.")
    {
        return false;
    }
    matches!(
        std::os::unix::net::UnixStream::connect(socket.path()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Copies both ways until either side ends.
async fn carry(mut client: UnixStream, mut upstream: Upstream) {
    let _ =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, 64 << 10, 64 << 10)
            .await;
    let _ = upstream.shutdown().await;
}

/// Reads sqlx's start-up message and answers it with a FATAL ErrorResponse saying `e`.
async fn refuse(mut client: UnixStream, e: &Error) {
    let read_startup = async {
        let mut len = [0u8; 4];
        client.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len).saturating_sub(4).min(1 << 16) as usize;
        let mut rest = vec![0u8; len];
        client.read_exact(&mut rest).await
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read_startup).await;
    let _ = client.write_all(&error_response(&e.0)).await;
    let _ = client.shutdown().await;
}

/// PostgreSQL's ErrorResponse: FATAL, SQLSTATE 08001 (the client could not establish the
/// connection), `message`.
fn error_response(message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "08001"),
        (b'M', message),
    ] {
        body.push(field);
        body.extend_from_slice(value.replace('\0', " ").as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    /// A connection the tunnel cannot carry (here: nothing listens at the server's address)
    /// reaches sqlx as the server's own refusal would, in one line.
    #[tokio::test]
    async fn what_the_tunnel_cannot_carry_reaches_sqlx_as_an_error_response() {
        let (tls, options) =
            PgTls::from_url("postgres://app:sekret@127.0.0.1:1/shop?sslmode=require").unwrap();
        let tunnel = Tunnel::start(tls, None, Duration::from_secs(5)).unwrap();
        let err = sqlx::PgConnection::connect_with(&options.socket(tunnel.dir()))
            .await
            .expect_err("refused");
        let message = match &err {
            sqlx::Error::Database(d) => d.message().to_string(),
            other => panic!("not the tunnel's answer: {other}"),
        };
        assert!(
            message.starts_with("cannot connect to 127.0.0.1:1: "),
            "{message}"
        );
        assert!(!message.contains("sekret"), "{message}");
    }

    /// What a client of uid `uid` gets from the tunnel socket at `socket`, in a forked child
    /// that takes that uid (only async-signal-safe calls after the fork): 0 the tunnel's
    /// answer (an ErrorResponse), 1 closed unanswered, 4 permission denied at connect, 2/3
    /// another failure.
    fn client_as(uid: u32, socket: &Path) -> i32 {
        use std::os::unix::ffi::OsStrExt;
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let path = socket.as_os_str().as_bytes();
        assert!(path.len() < addr.sun_path.len(), "socket path too long");
        for (d, s) in addr.sun_path.iter_mut().zip(path) {
            *d = *s as libc::c_char;
        }
        // A start-up message: length 8, protocol 3.0.
        let startup = [0u8, 0, 0, 8, 0, 3, 0, 0];
        // SAFETY: the child only makes raw system calls, then _exit.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                if libc::geteuid() != uid && libc::setuid(uid) != 0 {
                    libc::_exit(3);
                }
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                if fd < 0 {
                    libc::_exit(2);
                }
                let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
                if libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len) != 0 {
                    let denied = *libc::__errno_location() == libc::EACCES;
                    libc::_exit(if denied { 4 } else { 2 });
                }
                let sent = libc::send(fd, startup.as_ptr().cast(), 8, libc::MSG_NOSIGNAL);
                let mut byte = 0u8;
                let got = libc::read(fd, (&mut byte as *mut u8).cast(), 1);
                libc::_exit(if sent == 8 && got == 1 && byte == b'E' {
                    0
                } else {
                    1
                });
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(libc::WIFEXITED(status), "the client did not exit: {status}");
            libc::WEXITSTATUS(status)
        }
    }

    /// Another local user gets nothing through the tunnel: the directory (0700) and socket
    /// (0600) keep it out whatever the umask, and even with both opened up, a connection from
    /// another uid is closed unanswered, while our own uid's is carried (here: answered with
    /// the tunnel's ErrorResponse, as nothing listens upstream).
    #[tokio::test(flavor = "multi_thread")]
    async fn another_uid_cannot_use_the_tunnel() {
        assert!(peer_allowed(Some(our_uid()), our_uid()));
        assert!(!peer_allowed(Some(our_uid() + 1), our_uid()));
        assert!(!peer_allowed(None, our_uid()));
        let old = unsafe { libc::umask(0) };
        let (tls, _) = PgTls::from_url("postgres://app@127.0.0.1:1/shop?sslmode=require").unwrap();
        let tunnel = Tunnel::start(tls, None, Duration::from_secs(5));
        unsafe { libc::umask(old) };
        let tunnel = tunnel.unwrap();
        let socket = tunnel.dir().join(".s.PGSQL.1");
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(tunnel.dir()), 0o700);
        assert_eq!(mode(&socket), 0o600);
        if our_uid() != 0 {
            eprintln!("skipped the other-uid client: it needs root to take uid 65534");
            return;
        }
        let other = 65534;
        let run = |uid: u32| {
            let socket = socket.clone();
            tokio::task::spawn_blocking(move || client_as(uid, &socket))
        };
        assert_eq!(run(other).await.unwrap(), 4, "kept out by the modes");
        std::fs::set_permissions(tunnel.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(run(other).await.unwrap(), 1, "closed by the uid check");
        assert_eq!(run(our_uid()).await.unwrap(), 0, "our own uid is carried");
    }

    /// Only our own stale tunnel directories are removed: not a live one, not a symlink to
    /// one, not another uid's, not one with other files, not another name.
    #[test]
    fn stale_tunnel_directories_of_our_uid_are_removed() {
        let temp = tempfile::tempdir().unwrap();
        let make = |name: &str, live: bool| {
            let dir = temp.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            let listener = std::os::unix::net::UnixListener::bind(dir.join(".s.PGSQL.5432"));
            (dir, live.then(|| listener.unwrap()))
        };
        let (stale, _) = make("tarn-pg-stale", false);
        let (live, _listening) = make("tarn-pg-live", true);
        let (other_name, _) = make("other-pg-stale", false);
        let (extra, _) = make("tarn-pg-extra", false);
        std::fs::write(extra.join("keep"), "x").unwrap();
        let target = temp.path().join("target");
        let (target_stale, _) = make("target-inner", false);
        std::fs::rename(&target_stale, &target).unwrap();
        std::os::unix::fs::symlink(&target, temp.path().join("tarn-pg-link")).unwrap();
        let mut kept = vec![live, other_name, extra, target.join(".s.PGSQL.5432")];
        if our_uid() == 0 {
            let (foreign, _) = make("tarn-pg-foreign", false);
            std::os::unix::fs::chown(&foreign, Some(65534), None).unwrap();
            kept.push(foreign);
        }
        remove_stale_dirs(temp.path());
        assert!(!stale.exists(), "the stale directory is removed");
        for path in kept {
            assert!(path.exists(), "{} is kept", path.display());
        }
        assert!(temp.path().join("tarn-pg-link").is_symlink());
    }

    #[test]
    fn error_responses_are_postgresqls() {
        let e = error_response("no");
        assert_eq!(e[0], b'E');
        assert_eq!(
            u32::from_be_bytes(e[1..5].try_into().unwrap()) as usize,
            e.len() - 1
        );
        assert!(e.ends_with(b"Mno\0\0"));
    }
}
