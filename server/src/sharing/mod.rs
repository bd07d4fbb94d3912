//! The Delta Sharing protocol (delta-io/delta-sharing `PROTOCOL.md`) under `/delta-sharing`:
//! recipients list the shares granted to them and read shared tables at any version the
//! share allows. Tarn serves the data files itself at pre-signed, expiring URLs
//! (`/delta-sharing/files/...`, see [`crate::signing`]) that answer `HEAD` and `Range`.
//!
//! Recipients authenticate with their own bearer tokens (not catalog tokens, see
//! [`recipient`]). A share that is not granted to the caller, a schema or table not in the
//! share: all answer 404 alike, so nothing reveals what exists. Errors are [`ApiError`]s
//! in Delta Sharing's shape (`{"errorCode", "message"}`): [`routes`] wraps every route in
//! [`crate::error::shaped`].
//!
//! | module | what |
//! |---|---|
//! | [`wire`] | the JSON answers: list pages and the NDJSON lines |
//! | `recipient` | the `Recipient` extractor |
//! | `lists` | shares, schemas, tables |
//! | `resolve` | a shared table resolved for a request, and its versions |
//! | `format` | `parquet` or `delta`, from the client's capabilities |
//! | `lines` | the NDJSON lines of a version and its files, from `tarn_table`'s types |
//! | `ndjson` | NDJSON answers, whole or streamed |
//! | `signer` | the pre-signed file URLs of one answer |
//! | `pages` | `maxFiles` and the sealed page tokens |
//! | `query` | version, metadata and query of a snapshot |
//! | `history` | a version range commit by commit: query with `startingVersion`, changes |
//! | `files` | the file endpoint (`HEAD`, `Range`) |

mod files;
mod format;
mod history;
mod lines;
mod lists;
mod ndjson;
mod pages;
mod query;
mod recipient;
mod resolve;
mod signer;
pub mod wire;

use axum::http::Method;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use tarn_catalog::SharingStore;

pub use pages::PAGE_TOKEN_TTL_MS;
pub use recipient::Recipient;

use crate::error::{ApiError, ErrorShape};
use crate::openapi::{Api, Operation};
use crate::{AppState, Endpoint};

/// Where the protocol lives; a profile's `endpoint` is the server URL plus this.
pub const PREFIX: &str = "/delta-sharing";

/// What the `delta-sharing-capabilities` header of an NDJSON answer says.
const FORMAT_ANSWERED: &str =
    "The answer's format: `responseformat=parquet|delta`, `;includeendstreamaction=true`";

/// How long a pre-signed file URL stays valid.
pub const URL_TTL_MS: i64 = 60 * 60 * 1000;

/// Every route of this protocol, the one table [`routes`] builds the router from (and the
/// OpenAPI document is checked against).
pub(crate) fn endpoints() -> Vec<Endpoint> {
    use wire::{GetShare, Line, ListPage, Schema, Share, Table};
    let ds = |path: &str| format!("{PREFIX}{path}");
    let t = |path: &str| {
        ds(&format!(
            "/shares/{{share}}/schemas/{{schema}}/tables/{{table}}{path}"
        ))
    };
    let op = |id, summary| Operation::new(Api::Sharing, id, summary);
    let share = |o: Operation| o.path("share", "Share name", 1, "partners");
    let schema = |o: Operation| share(o).path("schema", "Schema name within the share", 1, "sales");
    let table = |o: Operation| schema(o).path("table", "Table name within the schema", 1, "orders");
    let capabilities = |o: Operation| {
        o.header(
            format::CAPABILITIES,
            "`responseformat=parquet|delta;readerfeatures=...`",
        )
    };
    let lines = "Newline-delimited JSON: `protocol`, `metaData`, then the files";
    vec![
        Endpoint::new(
            Method::GET,
            ds("/shares"),
            get(lists::list_shares),
            op("sharingListShares", "List the shares granted to the caller")
                .query::<lists::PageQuery>()
                .answers::<ListPage<Share>>(),
        ),
        Endpoint::new(
            Method::GET,
            ds("/shares/{share}"),
            get(lists::get_share),
            share(op("sharingGetShare", "Get a share")).answers::<GetShare>(),
        ),
        Endpoint::new(
            Method::GET,
            ds("/shares/{share}/schemas"),
            get(lists::list_schemas),
            share(op("sharingListSchemas", "List the schemas of a share"))
                .query::<lists::PageQuery>()
                .answers::<ListPage<Schema>>(),
        ),
        Endpoint::new(
            Method::GET,
            ds("/shares/{share}/schemas/{schema}/tables"),
            get(lists::list_tables),
            schema(op("sharingListTables", "List the tables of a schema"))
                .query::<lists::PageQuery>()
                .answers::<ListPage<Table>>(),
        ),
        Endpoint::new(
            Method::GET,
            ds("/shares/{share}/all-tables"),
            get(lists::list_all_tables),
            share(op("sharingListAllTables", "List all the tables of a share"))
                .query::<lists::PageQuery>()
                .answers::<ListPage<Table>>(),
        ),
        Endpoint::new(
            Method::GET,
            t("/version"),
            get(query::table_version),
            table(op(
                "sharingGetTableVersion",
                "The table's version (at startingTimestamp)",
            ))
            .query::<query::VersionParams>()
            .answers_nothing(200, "The version is in the header")
            .answer_header(ndjson::TABLE_VERSION, "The version"),
        ),
        Endpoint::new(
            Method::GET,
            t("/metadata"),
            get(query::table_metadata),
            capabilities(table(op(
                "sharingGetTableMetadata",
                "The table's protocol and metadata",
            )))
            .answers_lines::<Line>("Newline-delimited JSON: `protocol`, then `metaData`")
            .answer_header(ndjson::TABLE_VERSION, "The version described")
            .answer_header(format::CAPABILITIES, FORMAT_ANSWERED),
        ),
        Endpoint::new(
            Method::POST,
            t("/query"),
            post(query::query_table),
            capabilities(table(op(
                "sharingQueryTable",
                "The table's files (a version, a timestamp or a range of versions)",
            )))
            .optional_body::<query::QueryBody>()
            .answers_lines::<Line>(lines)
            .answer_header(ndjson::TABLE_VERSION, "The version read")
            .answer_header(format::CAPABILITIES, FORMAT_ANSWERED),
        ),
        Endpoint::new(
            Method::GET,
            t("/changes"),
            get(history::table_changes),
            capabilities(table(op(
                "sharingGetTableChanges",
                "The table's change data feed",
            )))
            .query::<history::ChangesParams>()
            .answers_lines::<Line>(lines)
            .answer_header(ndjson::TABLE_VERSION, "The first version of the range")
            .answer_header(format::CAPABILITIES, FORMAT_ANSWERED),
        ),
        Endpoint::new(
            Method::GET,
            ds("/files/{token}"),
            get(files::serve_file),
            op(
                "sharingGetFile",
                "A data file at a pre-signed URL (the URL is the credential)",
            )
            .without_token()
            .path("token", "The signed file ticket", 0, "")
            .header("Range", "`bytes=start-end`")
            .answers_bytes(200, "The file")
            .answers_bytes(206, "Part of the file")
            .error(416),
        ),
    ]
}

/// The routes of this protocol, every error in Delta Sharing's shape.
pub fn routes() -> Router<AppState> {
    Endpoint::router(endpoints()).layer(axum::middleware::map_response(sharing_errors))
}

/// Every error of these routes in Delta Sharing's shape.
async fn sharing_errors(response: axum::response::Response) -> axum::response::Response {
    crate::error::shaped(ErrorShape::Sharing, response).await
}

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The catalog's shares, or 404 when the catalog keeps none.
fn sharing_of(state: &AppState) -> Result<&dyn SharingStore> {
    state
        .store
        .sharing()
        .ok_or_else(|| ApiError::not_found("this server does not share tables"))
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A time a request gives (RFC 3339 or `YYYY-MM-DD[ HH:MM:SS]`), or 400.
fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    tarn_table::parse_timestamp(text).map_err(|e| ApiError::invalid(e.message()))
}
