//! The Unity Catalog REST API (`/api/2.1/unity-catalog`): catalogs, schemas, tables,
//! temporary credentials. [`routes`] maps paths to the handlers in `handlers`; the
//! request and answer bodies are the serde types of [`wire`] (shared with the remote
//! client); `columns` come from each table's current Delta schema. Errors are
//! [`ApiError`]s in Unity Catalog's shape (`{"error_code", "message"}`).

mod columns;
mod handlers;
pub mod wire;

use axum::http::Method;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use schemars::JsonSchema;
use serde::Deserialize;

pub(crate) use columns::ColumnsCache;

use crate::error::{ApiError, ErrorKind};
use crate::openapi::{Api, Operation};
use crate::pagination::Page;
use crate::{AppState, Endpoint};

/// Where the protocol lives.
pub const PREFIX: &str = "/api/2.1/unity-catalog";

/// Every route of this protocol, the one table [`routes`] builds the router from (and the
/// OpenAPI document is checked against).
pub(crate) fn endpoints() -> Vec<Endpoint> {
    use handlers::*;
    let uc = |path: &str| format!("{PREFIX}{path}");
    let op = |id, summary| Operation::new(Api::Unity, id, summary);
    let catalog = |o: Operation| o.path("name", "Catalog name", 1, "main");
    let schema = |o: Operation| o.path("full_name", "catalog.schema", 2, "main.shop");
    let table = |o: Operation| o.path("full_name", "catalog.schema.table", 3, "main.shop.orders");
    vec![
        Endpoint::new(
            Method::GET,
            uc("/catalogs"),
            get(list_catalogs),
            op("listCatalogs", "List catalogs")
                .query::<PageQuery>()
                .answers::<wire::ListCatalogs>(),
        ),
        Endpoint::new(
            Method::POST,
            uc("/catalogs"),
            post(create_catalog),
            op("createCatalog", "Create a catalog (admin)")
                .body::<wire::CreateCatalog>()
                .answers::<wire::Catalog>(),
        ),
        Endpoint::new(
            Method::GET,
            uc("/catalogs/{name}"),
            get(get_catalog),
            catalog(op("getCatalog", "Get a catalog")).answers::<wire::Catalog>(),
        ),
        Endpoint::new(
            Method::DELETE,
            uc("/catalogs/{name}"),
            delete(delete_catalog),
            catalog(op("deleteCatalog", "Delete a catalog (admin)"))
                .query::<Force>()
                .answers::<wire::Deleted>(),
        ),
        Endpoint::new(
            Method::GET,
            uc("/schemas"),
            get(list_schemas),
            op("listSchemas", "List the schemas of a catalog")
                .query::<SchemaQuery>()
                .answers::<wire::ListSchemas>(),
        ),
        Endpoint::new(
            Method::POST,
            uc("/schemas"),
            post(create_schema),
            op("createSchema", "Create a schema (admin)")
                .body::<wire::CreateSchema>()
                .answers::<wire::Schema>(),
        ),
        Endpoint::new(
            Method::GET,
            uc("/schemas/{full_name}"),
            get(get_schema),
            schema(op("getSchema", "Get a schema")).answers::<wire::Schema>(),
        ),
        Endpoint::new(
            Method::DELETE,
            uc("/schemas/{full_name}"),
            delete(delete_schema),
            schema(op("deleteSchema", "Delete a schema (admin)"))
                .query::<Force>()
                .answers::<wire::Deleted>(),
        ),
        Endpoint::new(
            Method::GET,
            uc("/tables"),
            get(list_tables),
            op("listTables", "List the tables of a schema")
                .query::<TableQuery>()
                .answers::<wire::ListTables>(),
        ),
        Endpoint::new(
            Method::POST,
            uc("/tables"),
            post(create_table),
            op(
                "createTable",
                "Create a MANAGED table or register an EXTERNAL one (write)",
            )
            .body::<wire::CreateTable>()
            .answers::<wire::Table>(),
        ),
        Endpoint::new(
            Method::GET,
            uc("/tables/{full_name}"),
            get(get_table),
            table(op("getTable", "Get a table with its current columns")).answers::<wire::Table>(),
        ),
        Endpoint::new(
            Method::DELETE,
            uc("/tables/{full_name}"),
            delete(delete_table),
            table(op(
                "deleteTable",
                "Unregister a table (write); its data is kept, unless purge=true: then a \
                 MANAGED table's files are deleted, only at its managed location under the \
                 server's warehouse",
            ))
            .query::<Purge>()
            .answers::<wire::Deleted>(),
        ),
        Endpoint::new(
            Method::POST,
            uc("/temporary-table-credentials"),
            post(table_credentials),
            op(
                "generateTemporaryTableCredentials",
                "Where to read or write a table",
            )
            .body::<wire::TableCredentialRequest>()
            .answers::<wire::TemporaryCredentials>(),
        ),
        Endpoint::new(
            Method::POST,
            uc("/temporary-path-credentials"),
            post(path_credentials),
            op(
                "generateTemporaryPathCredentials",
                "Where to read or write a path",
            )
            .body::<wire::PathCredentialRequest>()
            .answers::<wire::TemporaryCredentials>(),
        ),
        Endpoint::new(
            Method::GET,
            "/api/2.0/settings/types/default_namespace_ws/names/default".into(),
            get(default_namespace),
            op("getDefaultNamespace", "The default schema setting")
                .answers::<wire::DefaultNamespace>(),
        ),
    ]
}

/// The routes of this protocol.
pub fn routes() -> Router<AppState> {
    Endpoint::router(endpoints()).layer(axum::middleware::map_response(crate::error::unity_shaped))
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A JSON body, with a 400 in Unity Catalog's shape when it does not parse.
pub struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    Err(ApiError::new(ErrorKind::TooLarge, "request body too large"))
                } else {
                    Err(ApiError::invalid(format!(
                        "malformed request body: {}",
                        rejection.body_text()
                    )))
                }
            }
        }
    }
}

/// The paging parameters of a list: all of it without `max_results` (or with 0), else
/// `max_results` names after `page_token` (the last name of the previous page).
///
/// Query strings cannot use `#[serde(flatten)]` for numbers, so each list's query repeats
/// these two fields and hands them to [`page`].
#[derive(Debug, Deserialize, JsonSchema)]
struct PageQuery {
    /// Page size; 0 or absent: everything.
    max_results: Option<i64>,
    /// `next_page_token` of the previous page.
    page_token: Option<String>,
}

/// A [`Page`] from Unity Catalog's `max_results` and `page_token`.
fn page(max_results: Option<i64>, page_token: Option<String>) -> Result<Page, ApiError> {
    let size = match max_results {
        Some(n) if n < 0 => {
            return Err(ApiError::invalid(
                "max_results must be greater than or equal to 0",
            ))
        }
        Some(0) | None => usize::MAX,
        Some(n) => n as usize,
    };
    Ok(Page {
        size,
        after: page_token.filter(|t| !t.is_empty()),
    })
}
