//! TLS on a blocking socket, for Tarn's own COPY client: the SSLRequest, the handshake,
//! and a stream that reads the socket in large pieces (rustls asks for 4 KiB at a time).

use std::io::{Read, Write};
use std::net::TcpStream;

use rustls::{ClientConnection, StreamOwned};

use crate::{Attempt, Error, PgTls, Result, SSL_REQUEST};

/// Bytes read from the socket at most at a time under TLS.
const READ_BUFFER: usize = 256 * 1024;

/// A connected socket after negotiation: in the clear, or TLS.
pub enum Negotiated {
    /// In the clear: the server did not offer TLS and the mode allows that, or TLS is off.
    Plain(TcpStream),
    /// TLS, handshake done.
    Tls(Box<TlsSocket>),
}

/// A TLS connection on a blocking TCP socket.
pub struct TlsSocket {
    stream: StreamOwned<ClientConnection, Buffered>,
}

impl TlsSocket {
    /// The TCP socket underneath (for timeouts).
    pub fn tcp(&self) -> &TcpStream {
        &self.stream.sock.tcp
    }
}

impl Read for TlsSocket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for TlsSocket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// The TCP socket with a read buffer (writes go straight through).
struct Buffered {
    tcp: TcpStream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Read for Buffered {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.start == self.end {
            // A failed read (e.g. a read timeout) leaves the buffer empty, not holding the
            // bytes already handed out.
            let read = self.tcp.read(&mut self.buf)?;
            self.start = 0;
            self.end = read;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

impl Write for Buffered {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

impl PgTls {
    /// Starts a connection on `tcp` (just connected, with the read and write timeouts the
    /// caller wants for the handshake) as `attempt` says: the SSLRequest and the TLS
    /// handshake, or nothing for [`Attempt::Plain`].
    pub fn negotiate_blocking(&self, mut tcp: TcpStream, attempt: Attempt) -> Result<Negotiated> {
        if attempt == Attempt::Plain {
            return Ok(Negotiated::Plain(tcp));
        }
        let io = |e: std::io::Error| Error(format!("TLS request to the server failed: {e}"));
        tcp.write_all(&SSL_REQUEST).map_err(io)?;
        // Exactly one byte: anything the server sends after it belongs to the handshake,
        // where an injected byte fails it (libpq's CVE-2021-23222).
        let mut answer = [0u8];
        let byte = match tcp.read(&mut answer) {
            Ok(0) => None,
            Ok(_) => Some(answer[0]),
            Err(e) => return Err(io(e)),
        };
        if !self.answer(attempt, byte)? {
            return Ok(Negotiated::Plain(tcp));
        }
        let (config, name) = self.config()?;
        let mut conn = ClientConnection::new(config, name)
            .map_err(|e| Error(format!("TLS set-up failed: {e}")))?;
        let mut sock = Buffered {
            tcp,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        };
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).map_err(|e| self.describe(&e))?;
        }
        Ok(Negotiated::Tls(Box::new(TlsSocket {
            stream: StreamOwned::new(conn, sock),
        })))
    }
}
