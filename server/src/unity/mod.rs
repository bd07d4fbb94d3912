//! The Unity Catalog REST API (`/api/2.1/unity-catalog`): catalogs, schemas, tables,
//! temporary credentials. [`routes`] maps paths to the handlers in `handlers`; the
//! request and answer bodies are the serde types of [`wire`] (shared with the remote
//! client); `columns` come from each table's current Delta schema. Errors are
//! [`ApiError`]s in Unity Catalog's shape (`{"error_code", "message"}`).

mod columns;
mod handlers;
pub mod wire;

use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

pub(crate) use columns::ColumnsCache;

use crate::error::{ApiError, ErrorKind};
use crate::pagination::Page;
use crate::AppState;

/// Where the protocol lives.
pub const PREFIX: &str = "/api/2.1/unity-catalog";

/// The routes of this protocol.
pub fn routes() -> Router<AppState> {
    use handlers::*;
    Router::new()
        .route(
            &format!("{PREFIX}/catalogs"),
            get(list_catalogs).post(create_catalog),
        )
        .route(
            &format!("{PREFIX}/catalogs/{{name}}"),
            get(get_catalog).delete(delete_catalog),
        )
        .route(
            &format!("{PREFIX}/schemas"),
            get(list_schemas).post(create_schema),
        )
        .route(
            &format!("{PREFIX}/schemas/{{full_name}}"),
            get(get_schema).delete(delete_schema),
        )
        .route(
            &format!("{PREFIX}/tables"),
            get(list_tables).post(create_table),
        )
        .route(
            &format!("{PREFIX}/tables/{{full_name}}"),
            get(get_table).delete(delete_table),
        )
        .route(
            &format!("{PREFIX}/temporary-table-credentials"),
            post(table_credentials),
        )
        .route(
            &format!("{PREFIX}/temporary-path-credentials"),
            post(path_credentials),
        )
        .route(
            "/api/2.0/settings/types/default_namespace_ws/names/default",
            get(default_namespace),
        )
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
#[derive(Debug, Deserialize)]
struct PageQuery {
    max_results: Option<i64>,
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
