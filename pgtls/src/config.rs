//! The rustls client configuration of a [`crate::PgTls`]: trusted CAs, what is checked of
//! the server's certificate, the client certificate, and how a failed handshake is worded.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::{Check, Error, Result};

/// Where the trusted CAs come from.
pub(crate) enum Roots {
    /// A PEM file (`sslrootcert=FILE`, or libpq's `~/.postgresql/root.crt`).
    File(PathBuf),
    /// The system's trusted CAs (`sslrootcert=system`).
    System,
}

impl Roots {
    pub(crate) fn describe(&self) -> String {
        match self {
            Roots::File(path) => format!("sslrootcert {}", path.display()),
            Roots::System => "the system's trusted CAs (sslrootcert=system)".into(),
        }
    }

    fn load(&self) -> Result<RootCertStore> {
        let mut store = RootCertStore::empty();
        match self {
            Roots::File(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    Error(format!("cannot read sslrootcert {}: {e}", path.display()))
                })?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| {
                        Error(format!(
                            "sslrootcert {} is not a PEM certificate file: {e}",
                            path.display()
                        ))
                    })?;
                    store.add(cert).map_err(|e| {
                        Error(format!(
                            "sslrootcert {} holds a certificate rustls cannot use: {e}",
                            path.display()
                        ))
                    })?;
                }
                if store.is_empty() {
                    return Err(Error(format!(
                        "sslrootcert {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        path.display()
                    )));
                }
            }
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(Error(
                        "sslrootcert=system: no trusted CA certificates were found on this system"
                            .into(),
                    ));
                }
            }
        }
        Ok(store)
    }
}

/// ring, named here: the tree has two providers, and rustls's process-wide default panics
/// when it cannot choose.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The configuration for `check` with the CAs of `roots` and an optional client
/// certificate (`sslcert`, `sslkey`).
pub(crate) fn client_config(
    check: Check,
    roots: Option<&Roots>,
    client: Option<(PathBuf, PathBuf)>,
) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error(format!("TLS set-up failed: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (check, roots) {
        (Check::Nothing, _) => Arc::new(AnyCertificate { provider }),
        (check, Some(roots)) => {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots.load()?), provider)
                    .build()
                    .map_err(|e| Error(format!("TLS set-up failed: {e}")))?;
            if check == Check::Chain {
                Arc::new(ChainOnly { webpki })
            } else {
                webpki
            }
        }
        (_, None) => return Err(Error("no trusted CAs to check the server against".into())),
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let read = |what: &str, path: &PathBuf| {
                std::fs::read(path)
                    .map_err(|e| Error(format!("cannot read {what} {}: {e}", path.display())))
            };
            let chain = CertificateDer::pem_slice_iter(&read("sslcert", &cert)?)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| {
                    Error(format!(
                        "sslcert {} is not a PEM certificate file: {e}",
                        cert.display()
                    ))
                })?;
            if chain.is_empty() {
                return Err(Error(format!(
                    "sslcert {} holds no PEM certificate",
                    cert.display()
                )));
            }
            let private = PrivateKeyDer::from_pem_slice(&read("sslkey", &key)?).map_err(|e| {
                Error(format!(
                    "sslkey {} holds no unencrypted PEM private key: {e}",
                    key.display()
                ))
            })?;
            builder.with_client_auth_cert(chain, private).map_err(|e| {
                Error(format!(
                    "sslcert {} and sslkey {} do not make a client certificate: {e}",
                    cert.display(),
                    key.display()
                ))
            })?
        }
    };
    // As libpq 17: servers that negotiate the application protocol expect this one.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Arc::new(config))
}

/// `require` without a root certificate: any certificate (the connection is encrypted, the
/// server not authenticated), but the handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca`: the chain up to a trusted CA, whatever name the certificate gives. webpki
/// checks the name last, once the chain is good, so a wrong name means a good chain.
#[derive(Debug)]
struct ChainOnly {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// What PostgreSQL users are told to do about a certificate for another host.
pub(crate) const PG_NAME_HINT: &str =
    "sslmode=verify-full checks the host name: connect by a name the certificate lists, or use sslmode=verify-ca";

/// A failed handshake with `host`, in one line saying why; `name_hint` follows a
/// certificate for another host.
pub(crate) fn describe(
    e: &std::io::Error,
    host: &str,
    roots: Option<&str>,
    name_hint: &str,
) -> String {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => {
                format!("the server closed the connection during the TLS handshake ({e})")
            }
            _ => format!("TLS handshake with the server failed: {e}"),
        };
    };
    let date = |t: &UnixTime| {
        chrono::DateTime::from_timestamp(t.as_secs() as i64, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "?".into())
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => {
            let why = match cert {
                CertificateError::NotValidForNameContext { presented, .. } => {
                    let names: Vec<String> = presented.iter().map(|n| bare_name(n)).collect();
                    let named = if names.is_empty() {
                        "names no host".to_string()
                    } else {
                        format!("is for {}", names.join(", "))
                    };
                    return format!(
                        "certificate verification failed: the server's certificate {named}, not {host} ({name_hint})"
                    );
                }
                CertificateError::NotValidForName => {
                    return format!(
                        "certificate verification failed: the server's certificate is not for {host} ({name_hint})"
                    )
                }
                CertificateError::UnknownIssuer => match roots {
                    Some(roots) => {
                        format!("the server's certificate is not signed by a CA of {roots}")
                    }
                    None => "the server's certificate is not signed by a trusted CA".into(),
                },
                CertificateError::ExpiredContext { not_after, .. } => {
                    format!("the server's certificate expired on {}", date(not_after))
                }
                CertificateError::Expired => "the server's certificate has expired".into(),
                CertificateError::NotValidYetContext { not_before, .. } => format!(
                    "the server's certificate is not valid before {}",
                    date(not_before)
                ),
                CertificateError::NotValidYet => {
                    "the server's certificate is not valid yet".into()
                }
                CertificateError::BadSignature => {
                    "the server's certificate has a bad signature".into()
                }
                CertificateError::Revoked => "the server's certificate is revoked".into(),
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                    "the server's certificate is not meant for a TLS server".into()
                }
                other => format!("the server's certificate is not acceptable: {other}"),
            };
            format!("certificate verification failed: {why}")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the server refused the TLS handshake (alert: {alert:?})")
        }
        other => format!("TLS handshake with the server failed: {other}"),
    }
}

/// `DnsName("db.example.com")` (webpki's wording of a name) as `db.example.com`.
fn bare_name(name: &str) -> String {
    let inner = name
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(name);
    inner.trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shown_bare() {
        assert_eq!(bare_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(bare_name("DirectoryName"), "DirectoryName");
    }
}
