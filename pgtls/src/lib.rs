//! tarn-pgtls: TLS to PostgreSQL as libpq does it, on every connection Tarn opens.
//!
//! A connection URL's `sslmode` (`disable`, `allow`, `prefer` (the default), `require`,
//! `verify-ca`, `verify-full`), `sslrootcert` (a CA file, or `system`) and `sslcert` /
//! `sslkey` (a client certificate) are read once, into a [`PgTls`] holding the one rustls
//! configuration all connections to that server use:
//!
//! - Tarn's own COPY client negotiates TLS on its blocking socket
//!   ([`PgTls::negotiate_blocking`]);
//! - sqlx, which cannot be handed a TLS configuration, connects in the clear to a
//!   [`Tunnel`]: a Unix socket in a private directory whose every connection Tarn carries to
//!   the server over TLS. Only when nothing is checked of the server's certificate (and no
//!   client certificate is presented) does sqlx use its own TLS instead, which then does the
//!   same: encrypt, accept any certificate, check the handshake's signatures.
//!
//! [`Route::connect`] makes the first connection and settles how every later one goes:
//! `allow` tries in the clear, then over TLS; `prefer` uses TLS whenever the server offers
//! it, and then on every connection (it never falls back to the clear after a failed
//! handshake, as libpq does); `require` and the `verify-*` modes use TLS or fail.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use sqlx::Connection;
//! let url = "postgres://app@db.example.com/shop?sslmode=verify-full&sslrootcert=ca.pem";
//! let (route, mut conn) = tarn_pgtls::Route::connect(url, std::time::Duration::from_secs(30), |route| {
//!     let options = route.options();
//!     async move { sqlx::PgConnection::connect_with(&options).await }
//! })
//! .await?;
//! sqlx::query("SELECT 1").execute(&mut conn).await?;
//! # drop(route);
//! # Ok(())
//! # }
//! ```

mod blocking;
mod config;
mod tunnel;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

pub use blocking::{Negotiated, TlsSocket};
pub use tunnel::Tunnel;

/// The first message of a connection that asks for TLS (PostgreSQL's SSLRequest).
pub(crate) const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// A failure to set up or negotiate TLS: one line for users, never holding a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `sslmode` of a URL, as libpq reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// In the clear; over TLS only if the server refuses that.
    Allow,
    /// TLS when the server offers it (the default).
    Prefer,
    /// TLS or nothing; the certificate is checked only against a given `sslrootcert`.
    Require,
    /// TLS, with a certificate signed by a CA of `sslrootcert`.
    VerifyCa,
    /// As `verify-ca`, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error(format!(
                    "sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )))
            }
        })
    }

    /// The name, as written in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// How one connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// In the clear: no SSLRequest.
    Plain,
    /// Ask for TLS; stay in the clear if the server does not offer it.
    TlsIfOffered,
    /// TLS or nothing.
    Tls,
}

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Nothing (the handshake's signatures only): encryption without authentication.
    Nothing,
    /// The chain up to a trusted CA, not the name.
    Chain,
    /// The chain and the host name.
    ChainAndName,
}

/// The TLS settings of one PostgreSQL URL, and the rustls configuration they make.
#[derive(Clone)]
pub struct PgTls {
    inner: Arc<Settings>,
}

struct Settings {
    mode: SslMode,
    check: Check,
    /// A client certificate is presented.
    client_certificate: bool,
    /// Where the trusted CAs come from, for messages (a file, or "the system's CAs").
    roots: Option<String>,
    host: String,
    port: u16,
    /// A Unix socket: libpq never uses TLS there.
    local: bool,
    server_name: Option<ServerName<'static>>,
    config: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTls")
            .field("mode", &self.inner.mode)
            .field("check", &self.inner.check)
            .field("roots", &self.inner.roots)
            .field("host", &self.inner.host)
            .field("port", &self.inner.port)
            .field("local", &self.inner.local)
            .finish()
    }
}

/// The URL's parameters that concern TLS (sqlx's spellings accepted too).
const SSLMODE_KEYS: &[&str] = &["sslmode", "ssl-mode"];
const SSLROOTCERT_KEYS: &[&str] = &["sslrootcert", "ssl-root-cert", "ssl-ca"];
const SSLCERT_KEYS: &[&str] = &["sslcert", "ssl-cert"];
const SSLKEY_KEYS: &[&str] = &["sslkey", "ssl-key"];

fn param(url: &url::Url, keys: &[&str]) -> Option<String> {
    url.query_pairs()
        .filter(|(k, _)| keys.contains(&k.as_ref()))
        .map(|(_, v)| v.into_owned())
        .last()
}

/// A parameter of the URL, else the libpq environment variable `env`.
fn setting(url: &url::Url, keys: &[&str], env: &str) -> Option<String> {
    param(url, keys).or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
}

/// `~/.postgresql/NAME`, where libpq looks by default, when it exists.
fn default_file(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = Path::new(&home).join(".postgresql").join(name);
    path.exists().then_some(path)
}

impl PgTls {
    /// Reads the TLS settings of `url` (and libpq's `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`,
    /// `PGSSLKEY`, and `~/.postgresql/root.crt`), with sqlx's reading of everything else.
    pub fn from_url(url: &str) -> Result<(PgTls, PgConnectOptions)> {
        let parsed =
            url::Url::parse(url).map_err(|e| Error(format!("not a valid PostgreSQL URL: {e}")))?;
        let given_mode = setting(&parsed, SSLMODE_KEYS, "PGSSLMODE")
            .map(|m| SslMode::parse(&m))
            .transpose()?;
        // sqlx reads host, port, user, password (and ~/.pgpass) as libpq does; TLS is ours.
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error(format!("not a valid PostgreSQL URL: {e}")))?
            .ssl_mode(PgSslMode::Disable);
        let host = options.get_host().to_string();
        let port = options.get_port();
        let local = options.get_socket().is_some() || host.starts_with('/');

        let root_file = setting(&parsed, SSLROOTCERT_KEYS, "PGSSLROOTCERT")
            .map(PathBuf::from)
            .or_else(|| default_file("root.crt"));
        let system = root_file.as_deref() == Some(Path::new("system"));
        let mode = given_mode.unwrap_or(if system {
            SslMode::VerifyFull
        } else {
            SslMode::Prefer
        });
        if system && mode != SslMode::VerifyFull {
            return Err(Error(format!(
                "sslrootcert=system needs sslmode=verify-full, not {} (the system's CAs vouch for host names)",
                mode.as_str()
            )));
        }
        let check = match (mode, &root_file) {
            (SslMode::VerifyFull, Some(_)) => Check::ChainAndName,
            (SslMode::VerifyCa, Some(_)) => Check::Chain,
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(Error(format!(
                    "sslmode={} needs the CA certificate that signed the server's: add sslrootcert=/path/to/ca.pem to the URL (or sslrootcert=system to trust the system's CAs)",
                    mode.as_str()
                )))
            }
            // As libpq: with a root certificate, `require` (and `prefer`, `allow`) check the
            // chain, as verify-ca.
            (_, Some(_)) => Check::Chain,
            (_, None) => Check::Nothing,
        };
        let tls_possible = !local && mode != SslMode::Disable;
        let mut client_certificate = false;
        let (config, server_name, roots) = if tls_possible {
            let roots = match &root_file {
                Some(_) if system => Some(config::Roots::System),
                Some(path) => Some(config::Roots::File(path.clone())),
                None => None,
            };
            let client = client_certificate_files(&parsed)?;
            client_certificate = client.is_some();
            let config = config::client_config(check, roots.as_ref(), client)?;
            let server_name = ServerName::try_from(host.clone())
                .map_err(|_| Error(format!("`{host}` is not a host name TLS can check")))?;
            (Some(config), Some(server_name), roots.map(|r| r.describe()))
        } else {
            (None, None, None)
        };
        Ok((
            PgTls {
                inner: Arc::new(Settings {
                    mode,
                    check,
                    client_certificate,
                    roots,
                    host,
                    port,
                    local,
                    server_name,
                    config,
                }),
            },
            options,
        ))
    }

    /// The `sslmode` in force.
    pub fn mode(&self) -> SslMode {
        self.inner.mode
    }

    /// The ways a first connection is tried, in turn.
    pub fn attempts(&self) -> Vec<Attempt> {
        if self.inner.local {
            return vec![Attempt::Plain];
        }
        match self.inner.mode {
            SslMode::Disable => vec![Attempt::Plain],
            SslMode::Allow => vec![Attempt::Plain, Attempt::Tls],
            SslMode::Prefer => vec![Attempt::TlsIfOffered],
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => vec![Attempt::Tls],
        }
    }

    /// What the server's answer to an SSLRequest means: `Ok(true)` go on with TLS,
    /// `Ok(false)` go on in the clear. `None`: the server closed the connection.
    pub(crate) fn answer(&self, attempt: Attempt, byte: Option<u8>) -> Result<bool> {
        match byte {
            Some(b'S') => Ok(true),
            Some(b'N') if attempt == Attempt::TlsIfOffered => Ok(false),
            Some(b'N') => Err(Error(format!(
                "the server does not offer TLS but sslmode={} (turn ssl on at the server, or use sslmode=prefer or disable)",
                self.inner.mode.as_str()
            ))),
            _ => Err(not_postgres()),
        }
    }

    pub(crate) fn config(&self) -> Result<(Arc<ClientConfig>, ServerName<'static>)> {
        match (&self.inner.config, &self.inner.server_name) {
            (Some(c), Some(n)) => Ok((c.clone(), n.clone())),
            _ => Err(Error(format!(
                "TLS is off for this connection (sslmode={})",
                self.inner.mode.as_str()
            ))),
        }
    }

    /// Words a failed handshake for users (see `config::describe`).
    pub(crate) fn describe(&self, e: &std::io::Error) -> Error {
        Error(config::describe(
            e,
            &self.inner.host,
            self.inner.roots.as_deref(),
            config::PG_NAME_HINT,
        ))
    }
}

/// A TLS handshake that failed in another client of rustls (sqlx's, for MySQL), in the
/// same words as PostgreSQL's: `None` when `e` is not rustls's. `roots` says where the
/// trusted CAs came from; `name_hint` follows a certificate for another host.
pub fn describe_tls_failure(
    e: &std::io::Error,
    host: &str,
    roots: Option<&str>,
    name_hint: &str,
) -> Option<String> {
    e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(config::describe(e, host, roots, name_hint))
}

/// Makes ring rustls's process-wide default provider, unless one is already. Tarn's own
/// configurations name their provider; sqlx's MySQL TLS asks for the default when it checks
/// a certificate without its name (`VERIFY_CA`), which panics when, as here, two providers
/// are compiled in and none was chosen.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `sslcert` and `sslkey` (or libpq's defaults, when both files exist).
fn client_certificate_files(url: &url::Url) -> Result<Option<(PathBuf, PathBuf)>> {
    let cert = setting(url, SSLCERT_KEYS, "PGSSLCERT").map(PathBuf::from);
    let key = setting(url, SSLKEY_KEYS, "PGSSLKEY").map(PathBuf::from);
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (Some(cert), None) => match default_file("postgresql.key") {
            Some(key) => Ok(Some((cert, key))),
            None => Err(Error(
                "sslcert is given without sslkey: add sslkey=/path/to/client.key to the URL".into(),
            )),
        },
        (None, Some(_)) => Err(Error(
            "sslkey is given without sslcert: add sslcert=/path/to/client.crt to the URL".into(),
        )),
        (None, None) => Ok(default_file("postgresql.crt").zip(default_file("postgresql.key"))),
    }
}

/// What a server that is not PostgreSQL gets called.
pub(crate) fn not_postgres() -> Error {
    Error("the server there does not speak PostgreSQL's protocol (is the port right?)".into())
}

/// A failure of a first connection: TLS (or reaching the server), or sqlx's own.
#[derive(Debug)]
pub enum ConnectError {
    /// Reaching the server or setting up TLS failed: one line, for users.
    Tls(Error),
    /// sqlx's connection failed (the server's answer, or sqlx's).
    Sql(sqlx::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Tls(e) => e.fmt(f),
            ConnectError::Sql(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConnectError {}

/// How every connection to one server goes, settled by the first ([`Route::connect`]).
/// Keep it as long as connections made through it: it owns the tunnel sqlx's connections
/// go through.
#[derive(Debug)]
pub struct Route {
    tls: PgTls,
    attempt: Attempt,
    /// The server's options (sqlx's reading of the URL, TLS off).
    server: PgConnectOptions,
    /// What sqlx connects with: `server`, or the tunnel.
    sqlx: PgConnectOptions,
    /// The same as a URL.
    url: String,
    tunnel: Option<Tunnel>,
}

impl Route {
    /// Makes the first connection to `url` with `connect` (given the route to use), trying
    /// the `sslmode`'s attempts in turn, and returns the route every later connection takes.
    /// `timeout` bounds each later connection's TLS set-up (callers bound this call).
    pub async fn connect<T, F, Fut>(
        url: &str,
        timeout: Duration,
        mut connect: F,
    ) -> std::result::Result<(Route, T), ConnectError>
    where
        F: FnMut(&Route) -> Fut,
        Fut: std::future::Future<Output = sqlx::Result<T>>,
    {
        let (tls, server) = PgTls::from_url(url).map_err(ConnectError::Tls)?;
        let attempts = tls.attempts();
        let mut refused_in_clear = None;
        for (i, attempt) in attempts.iter().enumerate() {
            let last = i + 1 == attempts.len();
            let route = match Route::open(&tls, &server, url, *attempt, timeout).await {
                Ok(route) => route,
                // `allow`: the server refused the clear and does not offer TLS either.
                Err(e) => return Err(refused_in_clear.unwrap_or(ConnectError::Tls(e))),
            };
            match connect(&route).await {
                Ok(conn) => return Ok((route, conn)),
                Err(e @ sqlx::Error::Database(_)) if !last => {
                    refused_in_clear = Some(ConnectError::Sql(e))
                }
                Err(e) => return Err(ConnectError::Sql(e)),
            }
        }
        unreachable!("every sslmode has at least one attempt")
    }

    async fn open(
        tls: &PgTls,
        server: &PgConnectOptions,
        url: &str,
        attempt: Attempt,
        timeout: Duration,
    ) -> Result<Route> {
        // TLS attempts connect here first, so that what TLS refuses is worded by us (and
        // `prefer` learns whether the server offers TLS).
        let upstream = match attempt {
            Attempt::Plain => None,
            _ => match tls.dial(attempt, timeout).await? {
                // `prefer`, and the server does not offer TLS: this and every later
                // connection go in the clear.
                tunnel::Upstream::Plain(_) => None,
                tls_stream => Some(tls_stream),
            },
        };
        let direct = |attempt: Attempt, sqlx_mode: PgSslMode, mode: &str| -> Result<Route> {
            Ok(Route {
                tls: tls.clone(),
                attempt,
                server: server.clone(),
                sqlx: server.clone().ssl_mode(sqlx_mode),
                url: rewrite_url(url, None, mode, server.get_port())?,
                tunnel: None,
            })
        };
        let Some(upstream) = upstream else {
            return direct(Attempt::Plain, PgSslMode::Disable, "disable");
        };
        if tls.inner.check == Check::Nothing && !tls.inner.client_certificate {
            // Encryption without checking the certificate: sqlx's own TLS does exactly that
            // (rustls with ring, any certificate, the handshake's signatures checked), without
            // the tunnel's extra hop on every round trip. `require`: never in the clear.
            upstream.close().await;
            return direct(Attempt::Tls, PgSslMode::Require, "require");
        }
        let tunnel = Tunnel::start(tls.clone(), Some(upstream), timeout)
            .map_err(|e| Error(format!("cannot open a local tunnel for TLS: {e}")))?;
        Ok(Route {
            tls: tls.clone(),
            attempt: Attempt::Tls,
            server: server.clone(),
            sqlx: server.clone().socket(tunnel.dir()),
            url: rewrite_url(url, Some(tunnel.dir()), "disable", server.get_port())?,
            tunnel: Some(tunnel),
        })
    }

    /// sqlx's options for another connection along this route.
    pub fn options(&self) -> PgConnectOptions {
        self.sqlx.clone()
    }

    /// The same as a URL (for sqlx's `Any` driver and `PgListener`). It holds the user's
    /// password, if the URL did: never show it.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The server's own options (host, port, user...), as sqlx read them.
    pub fn server(&self) -> &PgConnectOptions {
        &self.server
    }

    /// The TLS settings.
    pub fn tls(&self) -> &PgTls {
        &self.tls
    }

    /// How every later connection starts: [`Attempt::Plain`] or [`Attempt::Tls`].
    pub fn attempt(&self) -> Attempt {
        self.attempt
    }

    /// Whether sqlx's connections go through the TLS tunnel (when the certificate is
    /// checked, or a client certificate presented); otherwise they use sqlx's own TLS for
    /// encryption without checks, or none.
    pub fn tunnelled(&self) -> bool {
        self.tunnel.is_some()
    }
}

/// `url` for sqlx: its TLS settings replaced by `sslmode=MODE`, and pointed at the tunnel in
/// `dir` when there is one.
fn rewrite_url(url: &str, dir: Option<&Path>, mode: &str, port: u16) -> Result<String> {
    let mut parsed =
        url::Url::parse(url).map_err(|e| Error(format!("not a valid PostgreSQL URL: {e}")))?;
    let tls_keys = [SSLMODE_KEYS, SSLROOTCERT_KEYS, SSLCERT_KEYS, SSLKEY_KEYS].concat();
    let moved: &[&str] = if dir.is_some() {
        &["host", "hostaddr", "port"]
    } else {
        &[]
    };
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| !tls_keys.contains(&k.as_ref()) && !moved.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = parsed.query_pairs_mut();
        query.clear();
        query.extend_pairs(kept);
        if let Some(dir) = dir {
            query.append_pair("host", &dir.to_string_lossy());
            query.append_pair("port", &port.to_string());
        }
        query.append_pair("sslmode", mode);
    }
    Ok(parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(url: &str) -> Result<PgTls> {
        PgTls::from_url(url).map(|(t, _)| t)
    }

    #[test]
    fn modes_and_their_attempts_are_libpqs() {
        let base = "postgres://app@db.example.com/shop";
        let cases = [
            ("", SslMode::Prefer, vec![Attempt::TlsIfOffered]),
            ("?sslmode=disable", SslMode::Disable, vec![Attempt::Plain]),
            (
                "?sslmode=allow",
                SslMode::Allow,
                vec![Attempt::Plain, Attempt::Tls],
            ),
            ("?sslmode=require", SslMode::Require, vec![Attempt::Tls]),
            ("?ssl-mode=require", SslMode::Require, vec![Attempt::Tls]),
        ];
        for (query, mode, attempts) in cases {
            let t = tls(&format!("{base}{query}")).unwrap();
            assert_eq!((t.mode(), t.attempts()), (mode, attempts), "{query}");
        }
        // Unix sockets never use TLS.
        let t = tls("postgres://app@%2Fvar%2Frun%2Fpostgresql/shop?sslmode=require").unwrap();
        assert_eq!(t.attempts(), vec![Attempt::Plain]);
    }

    #[test]
    fn bad_settings_are_one_clear_line() {
        let err = tls("postgres://app@db/shop?sslmode=verify").unwrap_err();
        assert!(err.0.contains("sslmode `verify` is not one of"), "{err}");
        let err = tls("postgres://app@db/shop?sslmode=verify-ca").unwrap_err();
        assert!(err.0.contains("add sslrootcert="), "{err}");
        let err = tls("postgres://app@db/shop?sslmode=require&sslrootcert=system").unwrap_err();
        assert!(err.0.contains("needs sslmode=verify-full"), "{err}");
        let err =
            tls("postgres://app:secret@db/shop?sslmode=require&sslrootcert=/nonexistent/ca.pem")
                .unwrap_err();
        assert!(err.0.contains("/nonexistent/ca.pem"), "{err}");
        assert!(!err.0.contains("secret"), "{err}");
        let err = tls("postgres://app@db/shop?sslcert=/tmp/c.crt").unwrap_err();
        assert!(err.0.contains("without sslkey"), "{err}");
    }

    #[test]
    fn a_root_certificate_makes_require_check_the_chain_and_system_means_verify_full() {
        let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
        if !Path::new(snakeoil).exists() {
            return;
        }
        let t = tls(&format!(
            "postgres://app@db/shop?sslmode=require&sslrootcert={snakeoil}"
        ))
        .unwrap();
        assert_eq!(t.inner.check, Check::Chain);
        let t = tls("postgres://app@db/shop?sslrootcert=system").unwrap();
        assert_eq!(
            (t.mode(), t.inner.check),
            (SslMode::VerifyFull, Check::ChainAndName)
        );
    }

    #[test]
    fn urls_for_sqlx_have_tls_off_and_point_at_the_tunnel() {
        let url = "postgres://app:p%40ss@db.example.com:6432/shop?sslmode=require&sslrootcert=/ca.pem&application_name=x";
        let plain = rewrite_url(url, None, "disable", 6432).unwrap();
        assert_eq!(
            plain,
            "postgres://app:p%40ss@db.example.com:6432/shop?application_name=x&sslmode=disable"
        );
        let tunnelled =
            rewrite_url(url, Some(Path::new("/tmp/tarn-pg-x")), "disable", 6432).unwrap();
        assert_eq!(
            tunnelled,
            "postgres://app:p%40ss@db.example.com:6432/shop?application_name=x&host=%2Ftmp%2Ftarn-pg-x&port=6432&sslmode=disable"
        );
        let options = PgConnectOptions::from_str(&tunnelled).unwrap();
        assert_eq!(
            options
                .get_socket()
                .map(|p| p.to_string_lossy().into_owned()),
            Some("/tmp/tarn-pg-x".to_string())
        );
        assert!(matches!(options.get_ssl_mode(), PgSslMode::Disable));
    }
}
