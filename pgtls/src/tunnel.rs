//! sqlx's connections over Tarn's TLS: sqlx connects in the clear to a Unix socket in a
//! private directory (mode 0700), and each connection accepted there is carried to the
//! server over a TLS connection Tarn opened ([`PgTls::dial`]). When that cannot be opened,
//! the tunnel answers sqlx's start-up message with PostgreSQL's own ErrorResponse, so the
//! reason reaches the user as the server's message would.

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
        let dir = tempfile::Builder::new().prefix("tarn-pg-").tempdir()?;
        let listener = UnixListener::bind(dir.path().join(format!(".s.PGSQL.{}", tls.inner.port)))?;
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
