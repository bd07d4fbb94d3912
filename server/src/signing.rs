//! Pre-signed file URLs for Delta Sharing: a ticket (which shared table, which recipient,
//! which file, until when) encoded in the URL and signed with HMAC-SHA256 under a secret
//! kept in the catalog, so every server replica accepts it and restarts do not void it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a file URL grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTicket {
    /// The id of the shared table (the sharing, not the catalog table).
    pub shared_table: String,
    /// The recipient it was issued to.
    pub recipient: String,
    /// The file, relative to the table root.
    pub path: String,
    /// Expiry, ms since the epoch.
    pub expires_at: i64,
}

/// Why a ticket is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketError {
    /// Not one we signed (or altered since).
    Invalid,
    /// Past its expiry.
    Expired,
}

fn mac(secret: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    mac
}

/// The URL-safe token for `ticket`.
pub fn sign(secret: &[u8], ticket: &FileTicket) -> String {
    let body = serde_json::json!([
        ticket.shared_table,
        ticket.recipient,
        ticket.path,
        ticket.expires_at
    ]);
    let payload = URL_SAFE_NO_PAD.encode(body.to_string());
    let signature = URL_SAFE_NO_PAD.encode(mac(secret, &payload).finalize().into_bytes());
    format!("{payload}.{signature}")
}

/// The ticket in `token`, if we signed it and it has not expired at `now_ms`.
pub fn verify(secret: &[u8], token: &str, now_ms: i64) -> Result<FileTicket, TicketError> {
    let (payload, signature) = token.split_once('.').ok_or(TicketError::Invalid)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TicketError::Invalid)?;
    // Constant-time comparison.
    mac(secret, payload)
        .verify_slice(&signature)
        .map_err(|_| TicketError::Invalid)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TicketError::Invalid)?;
    let (shared_table, recipient, path, expires_at): (String, String, String, i64) =
        serde_json::from_slice(&json).map_err(|_| TicketError::Invalid)?;
    if expires_at <= now_ms {
        return Err(TicketError::Expired);
    }
    Ok(FileTicket {
        shared_table,
        recipient,
        path,
        expires_at,
    })
}

/// Seals `body` into a URL-safe token that only a holder of `secret` can have made, for
/// `purpose` (a token sealed for one purpose never opens for another, nor as a file URL).
pub fn seal(secret: &[u8], purpose: &str, body: &serde_json::Value) -> String {
    let payload = URL_SAFE_NO_PAD.encode(body.to_string());
    let signature = URL_SAFE_NO_PAD.encode(
        mac(secret, &format!("{purpose}.{payload}"))
            .finalize()
            .into_bytes(),
    );
    format!("{payload}.{signature}")
}

/// The body of a token [`seal`]ed with `secret` for `purpose`; `None` for anything else.
pub fn unseal(secret: &[u8], purpose: &str, token: &str) -> Option<serde_json::Value> {
    let (payload, signature) = token.split_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    mac(secret, &format!("{purpose}.{payload}"))
        .verify_slice(&signature)
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> FileTicket {
        FileTicket {
            shared_table: "st".into(),
            recipient: "r".into(),
            path: "region=EU/part-0.parquet".into(),
            expires_at: 2_000,
        }
    }

    #[test]
    fn a_signed_ticket_verifies_until_it_expires() {
        let token = sign(b"secret", &ticket());
        assert_eq!(verify(b"secret", &token, 1_999), Ok(ticket()));
        assert_eq!(verify(b"secret", &token, 2_000), Err(TicketError::Expired));
    }

    #[test]
    fn tampering_or_another_secret_is_refused() {
        let token = sign(b"secret", &ticket());
        assert_eq!(verify(b"other", &token, 0), Err(TicketError::Invalid));
        let (payload, sig) = token.split_once('.').unwrap();
        let mut forged = ticket();
        forged.path = "../other/part-0.parquet".into();
        let forged_payload = sign(b"attacker", &forged);
        let forged_payload = forged_payload.split_once('.').unwrap().0;
        assert_eq!(
            verify(b"secret", &format!("{forged_payload}.{sig}"), 0),
            Err(TicketError::Invalid)
        );
        assert_eq!(verify(b"secret", payload, 0), Err(TicketError::Invalid));
        assert_eq!(verify(b"secret", "", 0), Err(TicketError::Invalid));
        assert_eq!(verify(b"secret", "a.b.c", 0), Err(TicketError::Invalid));
    }

    #[test]
    fn a_sealed_token_opens_only_for_its_purpose_and_secret() {
        let body = serde_json::json!({"v": 3});
        let token = seal(b"secret", "page", &body);
        assert_eq!(unseal(b"secret", "page", &token), Some(body));
        assert_eq!(unseal(b"secret", "other", &token), None);
        assert_eq!(unseal(b"other", "page", &token), None);
        // A file URL's token is not a page token, nor the other way round.
        let file = sign(b"secret", &ticket());
        assert_eq!(unseal(b"secret", "page", &file), None);
        assert_eq!(verify(b"secret", &token, 0), Err(TicketError::Invalid));
    }
}
