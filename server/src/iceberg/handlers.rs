//! The Iceberg REST handlers: config, namespaces (Tarn schemas, one level), tables, and
//! load table, which answers the Delta table's derived Iceberg metadata.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;
use tarn_catalog::{SchemaName, TableName};

use super::wire::{CatalogConfig, ListNamespaces, ListTables, Namespace, TableIdentifier};
use super::ENDPOINTS;
use crate::error::{ApiError, ErrorKind};
use crate::pagination::{paginate, Page};
use crate::AppState;

type ApiResult<T> = Result<Json<T>, ApiError>;

#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct ConfigQuery {
    /// A catalog name; absent: the only catalog.
    warehouse: Option<String>,
}

/// `GET /v1/config[?warehouse=W]`: the catalog `W` (or the only one) as the prefix.
pub(super) async fn config(
    State(s): State<AppState>,
    Query(q): Query<ConfigQuery>,
) -> ApiResult<CatalogConfig> {
    let catalog = match q.warehouse.filter(|w| !w.is_empty()) {
        Some(w) => match s.store.get_catalog(&w).await {
            Ok(c) => c.name,
            Err(e) if e.kind() == tarn_catalog::ErrorKind::NotFound => {
                return Err(ApiError::invalid(format!(
                    "warehouse `{w}` is not a catalog of this server"
                )))
            }
            Err(e) => return Err(e.into()),
        },
        None => {
            let catalogs = s.store.list_catalogs().await?;
            match catalogs.as_slice() {
                [only] => only.name.clone(),
                [] => return Err(ApiError::invalid("this server has no catalog yet")),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "this server has {} catalogs: name one as the warehouse",
                        catalogs.len()
                    )))
                }
            }
        }
    };
    Ok(Json(CatalogConfig {
        defaults: BTreeMap::new(),
        overrides: BTreeMap::from([("prefix".to_string(), catalog)]),
        endpoints: ENDPOINTS.iter().map(|e| e.to_string()).collect(),
    }))
}

fn no_namespace(message: String) -> ApiError {
    ApiError::not_found(message).with_subtype("NoSuchNamespaceException")
}

/// The catalog named by the route's prefix, or 404.
async fn catalog(s: &AppState, prefix: &str) -> Result<String, ApiError> {
    match s.store.get_catalog(prefix).await {
        Ok(c) => Ok(c.name),
        Err(e) if e.kind() == tarn_catalog::ErrorKind::NotFound => {
            Err(no_namespace(format!("catalog `{prefix}` does not exist")))
        }
        Err(e) => Err(e.into()),
    }
}

/// The schema a namespace names: one level only (a multi-level one names nothing here).
async fn schema(s: &AppState, prefix: &str, namespace: &str) -> Result<SchemaName, ApiError> {
    let catalog = catalog(s, prefix).await?;
    let missing = || {
        no_namespace(format!(
            "namespace `{}` does not exist",
            namespace.replace('\u{1f}', ".")
        ))
    };
    if namespace.is_empty() || namespace.contains('\u{1f}') || namespace.contains('.') {
        return Err(missing());
    }
    let name = SchemaName {
        catalog,
        schema: namespace.to_string(),
    };
    match s.store.get_schema(&name).await {
        Ok(_) => Ok(name),
        Err(e) if e.kind() == tarn_catalog::ErrorKind::NotFound => Err(missing()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct ListQuery {
    /// A parent namespace (none are nested).
    parent: Option<String>,
    /// `next-page-token` of the previous page.
    #[serde(rename = "pageToken")]
    page_token: Option<String>,
    /// Page size.
    #[serde(rename = "pageSize")]
    #[schemars(with = "Option<i64>")]
    page_size: Option<String>,
}

fn page(q: &ListQuery) -> Result<Page, ApiError> {
    let size = match q.page_size.as_deref().filter(|s| !s.is_empty()) {
        None => usize::MAX,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(ApiError::invalid(format!(
                    "pageSize `{text}` is not a positive number"
                )))
            }
        },
    };
    Ok(Page {
        size,
        after: q.page_token.clone().filter(|t| !t.is_empty()),
    })
}

/// `GET /v1/{prefix}/namespaces`: the catalog's schemas (none below a schema).
pub(super) async fn list_namespaces(
    State(s): State<AppState>,
    Path(prefix): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<ListNamespaces> {
    let page = page(&q)?;
    if let Some(parent) = q.parent.as_deref().filter(|p| !p.is_empty()) {
        schema(&s, &prefix, parent).await?;
        return Ok(Json(ListNamespaces {
            namespaces: vec![],
            next_page_token: None,
        }));
    }
    let catalog = catalog(&s, &prefix).await?;
    let (items, next_page_token) = paginate(s.store.list_schemas(&catalog).await?, &page, |c| {
        c.name.clone()
    });
    Ok(Json(ListNamespaces {
        namespaces: items.into_iter().map(|sc| vec![sc.name]).collect(),
        next_page_token,
    }))
}

/// `GET /v1/{prefix}/namespaces/{namespace}`.
pub(super) async fn get_namespace(
    State(s): State<AppState>,
    Path((prefix, namespace)): Path<(String, String)>,
) -> ApiResult<Namespace> {
    let name = schema(&s, &prefix, &namespace).await?;
    let info = s.store.get_schema(&name).await?;
    let mut properties = info.properties;
    if let Some(c) = info.comment {
        properties.insert("comment".into(), c);
    }
    Ok(Json(Namespace {
        namespace: vec![info.name],
        properties,
    }))
}

/// `HEAD /v1/{prefix}/namespaces/{namespace}`: 204 or 404.
pub(super) async fn namespace_exists(
    State(s): State<AppState>,
    Path((prefix, namespace)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    schema(&s, &prefix, &namespace).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/{prefix}/namespaces/{namespace}/tables`: every Delta table of the schema
/// (whether one can be read as Iceberg is decided when it is loaded).
pub(super) async fn list_tables(
    State(s): State<AppState>,
    Path((prefix, namespace)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<ListTables> {
    let page = page(&q)?;
    let name = schema(&s, &prefix, &namespace).await?;
    let tables = s.store.list_tables(&name).await?;
    let (items, next_page_token) = paginate(tables, &page, |t| t.name.clone());
    Ok(Json(ListTables {
        identifiers: items
            .into_iter()
            .map(|t| TableIdentifier {
                namespace: vec![t.schema_name],
                name: t.name,
            })
            .collect(),
        next_page_token,
    }))
}

/// The catalog entry of a table, or 404 (`NoSuchNamespaceException` /
/// `NoSuchTableException`).
async fn table(
    s: &AppState,
    prefix: &str,
    namespace: &str,
    table: &str,
) -> Result<tarn_catalog::TableInfo, ApiError> {
    let schema = schema(s, prefix, namespace).await?;
    let missing = || {
        ApiError::not_found(format!("table `{namespace}.{table}` does not exist"))
            .with_subtype("NoSuchTableException")
    };
    let Ok(name) = TableName::new(&schema.catalog, &schema.schema, table) else {
        return Err(missing());
    };
    match s.store.get_table(&name).await {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == tarn_catalog::ErrorKind::NotFound => Err(missing()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct LoadQuery {
    /// `all` (default) or `refs`.
    snapshots: Option<String>,
}

/// `GET /v1/{prefix}/namespaces/{namespace}/tables/{table}[?snapshots=all|refs]`.
pub(super) async fn load_table(
    State(s): State<AppState>,
    Path((prefix, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<LoadQuery>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::{header, HeaderValue};
    use axum::response::IntoResponse;
    let current_only = match q.snapshots.as_deref() {
        None | Some("all") => false,
        Some("refs") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "snapshots must be `all` or `refs`, not `{other}`"
            )))
        }
    };
    let info = table(&s, &prefix, &namespace, &name).await?;
    if !info.data_source_format.eq_ignore_ascii_case("DELTA") {
        return Err(ApiError::new(
            ErrorKind::Unsupported,
            format!("table `{namespace}.{name}` is not a Delta table"),
        ));
    }
    let location = s.location(&info.storage_location)?;
    let metadata_root = match &s.iceberg_metadata {
        Some(root) => Some(s.location(root)?),
        None => None,
    };
    let gzip = accepts_gzip(&headers);
    let answer = s
        .iceberg
        .load(
            &s.opens,
            &location,
            metadata_root.as_ref(),
            current_only,
            gzip,
        )
        .await
        .map_err(|e| {
            if e.kind() == ErrorKind::Unsupported {
                ApiError::new(
                    ErrorKind::Unsupported,
                    format!("table `{namespace}.{name}`: {}", e.message()),
                )
            } else {
                e
            }
        })?;
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
        ],
        answer.body,
    )
        .into_response();
    if answer.gzip {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

/// Whether the request's `Accept-Encoding` takes gzip (`gzip`, `x-gzip` or `*`, with a
/// quality above 0).
fn accepts_gzip(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            !zero
                && ["gzip", "x-gzip", "*"]
                    .iter()
                    .any(|g| name.eq_ignore_ascii_case(g))
        })
}

/// `HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}`: whether the name exists
/// (no Delta work).
pub(super) async fn table_exists(
    State(s): State<AppState>,
    Path((prefix, namespace, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    table(&s, &prefix, &namespace, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
