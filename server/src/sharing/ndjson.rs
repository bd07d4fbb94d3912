//! NDJSON answers: whole ([`ndjson`]) or sent as they are made ([`ndjson_stream`]), with
//! the headers that state the version and the format.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;

use super::format::{Format, CAPABILITIES};
use super::wire::{EndStreamAction, Line};
use super::Result;

const NDJSON: &str = "application/x-ndjson";

/// The header that states the table version an answer is about.
pub(super) const TABLE_VERSION: &str = "delta-table-version";

fn ndjson_headers(response: &mut Response, version: u64, format: Format, end_stream: bool) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    headers.insert(TABLE_VERSION, HeaderValue::from(version));
    headers.insert(
        CAPABILITIES,
        HeaderValue::from_static(match (format, end_stream) {
            (Format::Parquet, false) => "responseformat=parquet",
            (Format::Delta, false) => "responseformat=delta",
            (Format::Parquet, true) => "responseformat=parquet;includeendstreamaction=true",
            (Format::Delta, true) => "responseformat=delta;includeendstreamaction=true",
        }),
    );
}

/// A whole NDJSON answer about `version`.
pub(super) fn ndjson(lines: Vec<Line>, version: u64, format: Format) -> Response {
    let mut response = encode_lines(&lines).into_response();
    ndjson_headers(&mut response, version, format, false);
    response
}

fn encode_lines(lines: &[Line]) -> Bytes {
    let mut body = Vec::with_capacity(lines.len() * 256);
    for line in lines {
        // Serializing these types into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut body, line);
        body.push(b'\n');
    }
    Bytes::from(body)
}

/// Lines of an answer after its head, made while the answer is sent.
pub(super) type LineStream = futures::stream::BoxStream<'static, Result<Vec<Line>>>;

/// An NDJSON answer sent as it is made: `head` (checked before the `200`), then `rest`,
/// pulled only as fast as the client reads, so no answer is ever held whole in memory. An
/// error after the `200` ends the answer with an `endStreamAction` carrying `errorMessage`
/// and then breaks the connection, so no client takes a cut-off answer for a whole one.
pub(super) fn ndjson_stream(
    head: Vec<Line>,
    rest: LineStream,
    version: u64,
    format: Format,
    end_stream: bool,
) -> Response {
    let head = futures::stream::once(async move { Ok(head) });
    let body = head.chain(rest).flat_map(|lines| {
        let chunks: futures::stream::BoxStream<'static, std::io::Result<Bytes>> = match lines {
            Ok(lines) if lines.is_empty() => futures::stream::empty().boxed(),
            Ok(lines) => futures::stream::once(async move { Ok(encode_lines(&lines)) }).boxed(),
            Err(e) => {
                let message = e.message().to_string();
                let line = encode_lines(&[Line::EndStream(EndStreamAction {
                    error_message: Some(message.clone()),
                    ..EndStreamAction::default()
                })]);
                futures::stream::once(async move { Ok(line) })
                    .chain(futures::stream::once(async move {
                        // Let the server send what it holds before the connection is broken.
                        tokio::task::yield_now().await;
                        Err(std::io::Error::other(message))
                    }))
                    .boxed()
            }
        };
        chunks
    });
    let mut response = Body::from_stream(body).into_response();
    ndjson_headers(&mut response, version, format, end_stream);
    response
}
