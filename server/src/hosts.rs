//! DNS-rebinding protection for a server without tokens (`tarn serve --no-auth`, loopback
//! only). A web page the user visits can make its browser send requests to
//! `http://attacker.example:PORT/` after pointing that name at 127.0.0.1; the browser then
//! sends `Host: attacker.example:PORT`. Such a server answers only requests whose `Host`
//! names it: `127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`, the address it is bound to,
//! or its `--public-url`.
//!
//! With tokens the check is not made: a page cannot send the bearer token (it is a header,
//! not a cookie), and a server behind a proxy or a load balancer is reached under names it
//! cannot know.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

/// The `Host` values a server without tokens answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    names: Vec<String>,
}

impl AllowedHosts {
    /// The names of a server bound to `bound`, reached at `public_url` too if given.
    pub fn for_server(bound: SocketAddr, public_url: Option<&str>) -> Self {
        let port = bound.port();
        let mut names = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            bound.to_string(),
        ];
        if port == 80 {
            names.extend(["127.0.0.1", "localhost", "[::1]"].map(String::from));
        }
        if let Some(url) = public_url.and_then(|u| url::Url::parse(u).ok()) {
            if let Some(host) = url.host_str() {
                let default_port = url.port_or_known_default();
                match url.port() {
                    Some(p) => names.push(format!("{host}:{p}")),
                    None => {
                        names.push(host.to_string());
                        if let Some(p) = default_port {
                            names.push(format!("{host}:{p}"));
                        }
                    }
                }
            }
        }
        for name in &mut names {
            name.make_ascii_lowercase();
        }
        names.sort();
        names.dedup();
        Self { names }
    }

    /// Whether a request addressed to `host` (its `Host` header) is for this server.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        self.names.contains(&host)
    }

    /// The names, for messages.
    fn describe(&self) -> String {
        self.names.join(", ")
    }
}

/// Axum middleware: refuses (403) a request whose `Host` (or absolute URI) does not name
/// this server, when the state has [`AllowedHosts`]. A request whose name is ambiguous (more
/// than one `Host` header, or an absolute URI naming another host than its `Host` header)
/// is refused with 400: a proxy or a browser may act on one name and the server on another.
pub async fn check_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(allowed) = state.hosts.as_deref() else {
        return next.run(request).await;
    };
    let mut headers = request.headers().get_all(header::HOST).iter();
    let header_host = headers.next();
    if headers.next().is_some() {
        return refuse_ambiguous(allowed, "has more than one Host header");
    }
    let header_host = match header_host.map(|h| h.to_str()) {
        Some(Ok(h)) => Some(h.trim().to_string()),
        Some(Err(_)) => return refuse_ambiguous(allowed, "has a Host header that is not text"),
        None => None,
    };
    let uri_host = request.uri().authority().map(|a| a.as_str().to_string());
    let host = match (uri_host, header_host) {
        (Some(u), Some(h)) if !u.eq_ignore_ascii_case(&h) => {
            return refuse_ambiguous(
                allowed,
                "names one host in its URI and another in its Host header",
            )
        }
        (Some(u), _) => Some(u),
        (None, h) => h,
    };
    match host {
        Some(h) if allowed.allows(&h) => next.run(request).await,
        Some(h) => {
            let shown: String = h.chars().take(100).collect();
            tracing::warn!(
                host = %shown,
                "refused a request for another host name (DNS rebinding?)"
            );
            ApiError::forbidden(format!(
                "this server runs without tokens (--no-auth) and answers only requests addressed to {}; the request was for `{shown}` (a web page trying DNS rebinding?). Use one of those addresses, or run with tokens",
                allowed.describe()
            ))
            .into_response()
        }
        None => ApiError::forbidden(format!(
            "this server runs without tokens (--no-auth) and answers only requests with a Host header naming it ({})",
            allowed.describe()
        ))
        .into_response(),
    }
}

/// 400 for a request that does not say unambiguously which host it is for.
fn refuse_ambiguous(allowed: &AllowedHosts, what: &str) -> Response {
    tracing::warn!("refused a request that {what} (DNS rebinding?)");
    ApiError::invalid(format!(
        "this server runs without tokens (--no-auth) and answers only requests addressed to {}; this request {what}. Send one Host header naming the server",
        allowed.describe()
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_the_public_url_are_allowed_and_nothing_else() {
        let hosts = AllowedHosts::for_server(
            "127.0.0.1:8080".parse().unwrap(),
            Some("https://Tarn.Example.com"),
        );
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
            "tarn.example.com",
            "tarn.example.com:443",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1:8081",
            "localhost",
            "127.0.0.1",
            "localhost.evil.example:8080",
            "tarn.example.com:8080",
            "",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
    }
}
