//! The Iceberg REST catalog under `/iceberg` (`open-api/rest-catalog-open-api.yaml`): the
//! same catalogs, schemas and Delta tables, read by Iceberg engines (pyiceberg, DuckDB's
//! `iceberg` extension, Trino, Spark...). A catalog is a `warehouse` (and the `prefix` of
//! every route), a schema a namespace. Loading a table derives its Iceberg metadata from
//! the Delta log (`tarn_iceberg`, one snapshot per Delta version, snapshot id = version
//! plus one) and writes the files under the table's `_tarn_iceberg/` folder, or under
//! the server's metadata root (`tarn serve --iceberg-metadata`).
//!
//! Read-only: every write route answers 406 `UnsupportedOperationException`. Tokens and
//! scopes are the Unity Catalog API's (`read` suffices). Errors are [`ApiError`]s in
//! Iceberg's shape (`{"error": {"message", "type", "code"}}`): [`routes`] wraps every
//! route in [`crate::error::shaped`].
//!
//! | module | what |
//! |---|---|
//! | [`wire`] | the JSON answers |
//! | `handlers` | config, namespaces, tables, load table |
//! | `projections` | each table's derived Iceberg history, kept between requests |

mod handlers;
mod projections;
pub mod wire;

use axum::http::Method;
use axum::routing::{get, head};
use axum::Router;

pub(crate) use projections::Projections;

use crate::error::{ApiError, ErrorKind, ErrorShape};
use crate::openapi::{Api, Operation};
use crate::{AppState, Endpoint};

/// Where the protocol lives: clients use `uri = http://HOST:PORT/iceberg`.
pub const PREFIX: &str = "/iceberg";

/// The routes this catalog serves, as `/v1/config` lists them.
pub const ENDPOINTS: &[&str] = &[
    "GET /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
];

/// Every route of this protocol (the router is built from this list, and the OpenAPI
/// test checks it). Any other method of a path answers 406 (read-only).
pub(crate) fn endpoints() -> Vec<Endpoint> {
    use handlers::*;
    let v1 = format!("{PREFIX}/v1");
    let namespace = format!("{v1}/{{prefix}}/namespaces/{{namespace}}");
    let table = format!("{namespace}/tables/{{table}}");
    let op = |id, summary| Operation::new(Api::Iceberg, id, summary);
    let in_catalog = |o: Operation| {
        o.path(
            "prefix",
            "The catalog (the `prefix` that `/v1/config` gives)",
            1,
            "main",
        )
    };
    let in_namespace = |o: Operation| {
        in_catalog(o).path(
            "namespace",
            "A schema of the catalog (one level)",
            1,
            "shop",
        )
    };
    let of_table =
        |o: Operation| in_namespace(o).path("table", "A table of the namespace", 1, "orders");
    vec![
        Endpoint::new(
            Method::GET,
            format!("{v1}/config"),
            get(config).fallback(read_only),
            op(
                "icebergGetConfig",
                "The catalog's configuration (its `prefix`)",
            )
            .query::<ConfigQuery>()
            .answers::<wire::CatalogConfig>(),
        ),
        Endpoint::new(
            Method::GET,
            format!("{v1}/{{prefix}}/namespaces"),
            get(list_namespaces).fallback(read_only),
            in_catalog(op(
                "icebergListNamespaces",
                "The catalog's schemas as namespaces",
            ))
            .query::<ListQuery>()
            .answers::<wire::ListNamespaces>(),
        ),
        Endpoint::new(
            Method::GET,
            namespace.clone(),
            get(get_namespace).fallback(read_only),
            in_namespace(op("icebergLoadNamespaceMetadata", "A namespace"))
                .answers::<wire::Namespace>(),
        ),
        Endpoint::new(
            Method::HEAD,
            namespace.clone(),
            head(namespace_exists),
            in_namespace(op("icebergNamespaceExists", "Whether a namespace exists"))
                .answers_nothing(204, "It exists"),
        ),
        Endpoint::new(
            Method::GET,
            format!("{namespace}/tables"),
            get(list_tables).fallback(read_only),
            in_namespace(op("icebergListTables", "The namespace's tables"))
                .query::<ListQuery>()
                .answers::<wire::ListTables>(),
        ),
        Endpoint::new(
            Method::GET,
            table.clone(),
            get(load_table).fallback(read_only),
            of_table(op(
                "icebergLoadTable",
                "Load a table: its Iceberg metadata, one snapshot per Delta version it can serve",
            ))
            .query::<LoadQuery>()
            .answers::<wire::LoadTable>(),
        ),
        Endpoint::new(
            Method::HEAD,
            table,
            head(table_exists),
            of_table(op("icebergTableExists", "Whether a table exists"))
                .answers_nothing(204, "It exists"),
        ),
    ]
}

/// The routes of this protocol.
pub fn routes() -> Router<AppState> {
    Endpoint::router(endpoints()).layer(axum::middleware::map_response(iceberg_errors))
}

/// Every error of these routes in Iceberg's shape.
async fn iceberg_errors(response: axum::response::Response) -> axum::response::Response {
    crate::error::shaped(ErrorShape::Iceberg, response).await
}

/// Whether `path` belongs to this protocol (errors answered outside its routes, by the
/// token check or the fallback, take its shape too).
pub fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with(&format!("{PREFIX}/"))
}

/// 406 for a route or method of the spec this catalog does not serve.
async fn read_only() -> ApiError {
    ApiError::new(
        ErrorKind::Unsupported,
        "this Iceberg catalog is read-only; write with tarn or any Delta writer",
    )
}

/// 404 for any other path under [`PREFIX`] (the server's fallback calls it).
pub fn no_route() -> ApiError {
    ApiError::not_found("no such Iceberg REST endpoint")
}
