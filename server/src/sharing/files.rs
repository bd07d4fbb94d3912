//! The file endpoint: a data file at a pre-signed URL, checked against the recipient's
//! grants at every request, answering `HEAD` and single `Range`s.

use std::ops::Range;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use tarn_table::Table;

use super::{now_ms, sharing_of, Result};
use crate::error::{ApiError, ErrorKind};
use crate::signing::{self, TicketError};
use crate::AppState;

/// The byte range a `Range` header asks for, within a file of `size` bytes. `Ok(None)`: the
/// whole file; `Err(())`: unsatisfiable.
fn requested_range(header: Option<&str>, size: u64) -> std::result::Result<Option<Range<u64>>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Several ranges: answer with the whole file, which HTTP allows.
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        size.saturating_sub(n)..size
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            size
        } else {
            b.parse::<u64>()
                .map_err(|_| ())?
                .saturating_add(1)
                .min(size)
        };
        if start >= size || end <= start {
            return Err(());
        }
        start..end
    };
    Ok(Some(range))
}

pub(super) async fn serve_file(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response> {
    let secret = state.sharing_secret().await?;
    let ticket = signing::verify(&secret, &token, now_ms()).map_err(|e| match e {
        TicketError::Invalid => ApiError::forbidden("invalid file URL"),
        TicketError::Expired => {
            ApiError::forbidden("this file URL has expired: query the table again")
        }
    })?;
    let sharing = sharing_of(&state)?;
    let denied = || ApiError::forbidden("this file URL is no longer valid");
    let recipient = sharing
        .get_recipient(&ticket.recipient)
        .await
        .map_err(|_| denied())?;
    if !recipient.is_active(now_ms()) {
        return Err(denied());
    }
    let shared = sharing
        .get_shared_table(&ticket.shared_table)
        .await
        .map_err(|_| denied())?;
    if !recipient.shares.contains(&shared.share_name) {
        return Err(denied());
    }
    let info = state
        .store
        .get_table_by_id(&shared.table_id)
        .await
        .map_err(|_| denied())?;
    let location = state.location(&info.storage_location)?;
    let file = Table::open_file(&location, &ticket.path)
        .await
        .map_err(|e| {
            if e.kind() == tarn_table::ErrorKind::NotFound {
                // A vacuumed file, or a link out of the table's directory: worth a look.
                tracing::warn!(
                    table = %format!("{}.{}.{}", shared.share_name, shared.schema_name, shared.name),
                    "refused a file URL: {}",
                    e.message()
                );
            }
            ApiError::from(e)
        })?;
    let size = file.size;
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range = match requested_range(range_header, size) {
        Ok(r) => r,
        Err(()) => {
            let mut response = ApiError::new(
                ErrorKind::RangeNotSatisfiable,
                format!("unsatisfiable range for a file of {size} bytes"),
            )
            .into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
            );
            return Ok(response);
        }
    };
    let (status, span) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.clone()),
        None => (StatusCode::OK, 0..size),
    };
    let body = if method == Method::HEAD || span.is_empty() {
        Body::empty()
    } else {
        let stream = file.read(span.clone()).await?;
        Body::from_stream(stream.map_err(std::io::Error::other))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(span.end - span.start),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if range.is_some() {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!(
                "bytes {}-{}/{size}",
                span.start,
                span.end.saturating_sub(1)
            ))
            .expect("ascii"),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_http_semantics() {
        assert_eq!(requested_range(None, 100), Ok(None));
        assert_eq!(requested_range(Some("bytes=0-9"), 100), Ok(Some(0..10)));
        assert_eq!(requested_range(Some("bytes=90-"), 100), Ok(Some(90..100)));
        assert_eq!(requested_range(Some("bytes=-10"), 100), Ok(Some(90..100)));
        assert_eq!(
            requested_range(Some("bytes=50-500"), 100),
            Ok(Some(50..100))
        );
        assert_eq!(requested_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(requested_range(Some("bytes=9-3"), 100), Err(()));
        assert_eq!(requested_range(Some("bytes=x-3"), 100), Err(()));
        assert_eq!(requested_range(Some("bytes=0-1,5-6"), 100), Ok(None));
    }
}
