//! The Unity Catalog REST API (`/api/2.1/unity-catalog`): catalogs, schemas, tables,
//! temporary credentials. Wire types follow Unity Catalog's `api/all.yaml`; `columns` come
//! from each table's current Delta schema.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tarn_catalog::{
    CatalogInfo, NewCatalog, NewSchema, SchemaInfo, SchemaName, TableInfo, TableName,
};
use tarn_table::deltalake::kernel::{DataType, PrimitiveType};
use tarn_table::{CreateOptions, Table, TableLocation, TimeTravel};

use crate::error::ApiError;
use crate::limits::TableOpens;
use crate::AppState;

const PREFIX: &str = "/api/2.1/unity-catalog";

/// The routes of this module.
pub fn routes() -> Router<AppState> {
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
                    Err(ApiError::new(
                        rejection.status(),
                        "RESOURCE_EXHAUSTED",
                        "request body too large",
                    ))
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

#[derive(Debug, Deserialize)]
struct Page {
    max_results: Option<i64>,
    page_token: Option<String>,
}

/// Pages a name-sorted list: all of it without `max_results` (or with 0), else `max_results`
/// names after `page_token`.
fn paginate<T>(
    mut items: Vec<T>,
    page: &Page,
    name: impl Fn(&T) -> &str,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    // Page tokens compare names bytewise: sort the same way, whatever the database collation.
    items.sort_by(|a, b| name(a).cmp(name(b)));
    let size = match page.max_results {
        Some(n) if n < 0 => {
            return Err(ApiError::invalid(
                "max_results must be greater than or equal to 0",
            ))
        }
        Some(0) | None => usize::MAX,
        Some(n) => n as usize,
    };
    let mut rest: Vec<T> = match &page.page_token {
        Some(token) if !token.is_empty() => items
            .into_iter()
            .filter(|i| name(i) > token.as_str())
            .collect(),
        _ => items,
    };
    let more = rest.len() > size;
    rest.truncate(size);
    let next = if more {
        rest.last().map(|i| name(i).to_string())
    } else {
        None
    };
    Ok((rest, next))
}

// ---- catalogs ----------------------------------------------------------------------------

fn catalog_json(c: &CatalogInfo) -> Value {
    json!({
        "name": c.name, "comment": c.comment, "properties": c.properties, "owner": c.owner,
        "created_at": c.created_at, "updated_at": c.updated_at, "id": c.id,
    })
}

#[derive(Debug, Deserialize)]
struct CreateCatalog {
    name: String,
    comment: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

async fn create_catalog(
    State(s): State<AppState>,
    Body(body): Body<CreateCatalog>,
) -> ApiResult<Value> {
    let c = s
        .store
        .create_catalog(NewCatalog {
            name: body.name,
            comment: body.comment,
            properties: body.properties,
            owner: None,
        })
        .await?;
    Ok(Json(catalog_json(&c)))
}

async fn list_catalogs(State(s): State<AppState>, Query(page): Query<Page>) -> ApiResult<Value> {
    let (items, next) = paginate(s.store.list_catalogs().await?, &page, |c| &c.name)?;
    Ok(Json(
        json!({"catalogs": items.iter().map(catalog_json).collect::<Vec<_>>(), "next_page_token": next}),
    ))
}

async fn get_catalog(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Value> {
    Ok(Json(catalog_json(&s.store.get_catalog(&name).await?)))
}

#[derive(Debug, Deserialize)]
struct Force {
    #[serde(default)]
    force: bool,
}

async fn delete_catalog(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(f): Query<Force>,
) -> ApiResult<Value> {
    s.store.delete_catalog(&name, f.force).await?;
    Ok(Json(json!({})))
}

// ---- schemas -----------------------------------------------------------------------------

fn schema_json(sc: &SchemaInfo) -> Value {
    json!({
        "name": sc.name, "catalog_name": sc.catalog_name, "full_name": format!("{}.{}", sc.catalog_name, sc.name),
        "comment": sc.comment, "properties": sc.properties, "owner": sc.owner,
        "created_at": sc.created_at, "updated_at": sc.updated_at, "schema_id": sc.id,
    })
}

#[derive(Debug, Deserialize)]
struct CreateSchema {
    name: String,
    catalog_name: String,
    comment: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

async fn create_schema(
    State(s): State<AppState>,
    Body(body): Body<CreateSchema>,
) -> ApiResult<Value> {
    let sc = s
        .store
        .create_schema(NewSchema {
            catalog_name: body.catalog_name,
            name: body.name,
            comment: body.comment,
            properties: body.properties,
            owner: None,
        })
        .await?;
    Ok(Json(schema_json(&sc)))
}

// Query strings cannot use `#[serde(flatten)]` for numbers, so the paging fields repeat.
#[derive(Debug, Deserialize)]
struct SchemaQuery {
    catalog_name: Option<String>,
    max_results: Option<i64>,
    page_token: Option<String>,
}

async fn list_schemas(State(s): State<AppState>, Query(q): Query<SchemaQuery>) -> ApiResult<Value> {
    let catalog = q
        .catalog_name
        .ok_or_else(|| ApiError::invalid("catalog_name is required"))?;
    let (items, next) = paginate(
        s.store.list_schemas(&catalog).await?,
        &Page {
            max_results: q.max_results,
            page_token: q.page_token,
        },
        |c| &c.name,
    )?;
    Ok(Json(
        json!({"schemas": items.iter().map(schema_json).collect::<Vec<_>>(), "next_page_token": next}),
    ))
}

async fn get_schema(State(s): State<AppState>, Path(full_name): Path<String>) -> ApiResult<Value> {
    let name: SchemaName = full_name.parse()?;
    Ok(Json(schema_json(&s.store.get_schema(&name).await?)))
}

async fn delete_schema(
    State(s): State<AppState>,
    Path(full_name): Path<String>,
    Query(f): Query<Force>,
) -> ApiResult<Value> {
    let name: SchemaName = full_name.parse()?;
    s.store.delete_schema(&name, f.force).await?;
    Ok(Json(json!({})))
}

// ---- tables ------------------------------------------------------------------------------

/// Unity Catalog's `type_name` for a Delta type.
fn type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Primitive(p) => match p {
            PrimitiveType::String => "STRING",
            PrimitiveType::Long => "LONG",
            PrimitiveType::Integer => "INT",
            PrimitiveType::Short => "SHORT",
            PrimitiveType::Byte => "BYTE",
            PrimitiveType::Float => "FLOAT",
            PrimitiveType::Double => "DOUBLE",
            PrimitiveType::Boolean => "BOOLEAN",
            PrimitiveType::Binary => "BINARY",
            PrimitiveType::Date => "DATE",
            PrimitiveType::Timestamp => "TIMESTAMP",
            PrimitiveType::TimestampNtz => "TIMESTAMP_NTZ",
            PrimitiveType::Decimal(_) => "DECIMAL",
            _ => "USER_DEFINED_TYPE",
        },
        DataType::Array(_) => "ARRAY",
        DataType::Map(_) => "MAP",
        DataType::Struct(_) => "STRUCT",
        DataType::Variant(_) => "VARIANT",
    }
}

/// The table's columns from its current Delta schema.
fn columns_json(table: &Table) -> Result<Vec<Value>, ApiError> {
    let schema = table.schema()?;
    let partitions = table.partition_columns()?;
    Ok(schema
        .fields()
        .enumerate()
        .map(|(position, f)| {
            let (precision, scale) = match f.data_type() {
                DataType::Primitive(PrimitiveType::Decimal(d)) => {
                    (d.precision() as i64, d.scale() as i64)
                }
                _ => (0, 0),
            };
            let mut column = json!({
                "name": f.name(),
                "type_text": tarn_table::type_text(f.data_type()),
                "type_json": serde_json::to_string(f).unwrap_or_default(),
                "type_name": type_name(f.data_type()),
                "type_precision": precision,
                "type_scale": scale,
                "position": position,
                "nullable": f.is_nullable(),
            });
            if let Some(i) = partitions.iter().position(|p| p == f.name()) {
                column["partition_index"] = json!(i);
            }
            column
        })
        .collect())
}

/// Each table's columns as of its latest version, kept until a newer commit appears: a
/// request then costs one metadata lookup (is there a commit after the cached version?)
/// instead of a replay of the log. Tables are opened under the server-wide bound
/// ([`crate::limits::MAX_TABLE_OPENS`]).
#[derive(Debug, Default)]
pub struct ColumnsCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, CachedColumns>>,
}

/// A table's version and its columns at that version.
type CachedColumns = (u64, std::sync::Arc<Vec<Value>>);

impl ColumnsCache {
    async fn columns(
        &self,
        opens: &TableOpens,
        location: &TableLocation,
    ) -> Result<std::sync::Arc<Vec<Value>>, ApiError> {
        let key = location.url().to_string();
        if let Some(columns) = self.current(location, &key).await? {
            return Ok(columns);
        }
        let _permit = opens.permit().await;
        // Another request may have opened the table while this one waited.
        if let Some(columns) = self.current(location, &key).await? {
            return Ok(columns);
        }
        let table = Table::open(location, &TimeTravel::Latest).await?;
        let columns = std::sync::Arc::new(columns_json(&table)?);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key, (table.version(), columns.clone()));
        }
        Ok(columns)
    }

    /// The cached columns of the table at `location`, if no commit came after them.
    async fn current(
        &self,
        location: &TableLocation,
        key: &str,
    ) -> Result<Option<std::sync::Arc<Vec<Value>>>, ApiError> {
        let cached = self.entries.lock().ok().and_then(|e| e.get(key).cloned());
        let Some((version, columns)) = cached else {
            return Ok(None);
        };
        // Both lookups at once: on an object store each is a request.
        let (still_there, newer) = futures::try_join!(
            Table::has_commit(location, version),
            Table::has_commit(location, version + 1)
        )?;
        Ok((still_there && !newer).then_some(columns))
    }
}

async fn table_json(s: &AppState, t: &TableInfo) -> Value {
    let columns = match s.location(&t.storage_location) {
        Ok(location) => match s.columns.columns(&s.opens, &location).await {
            Ok(columns) => columns.as_ref().clone(),
            Err(e) => {
                tracing::warn!(table = %t.full_name(), "cannot read the table's schema: {}", e.message());
                Vec::new()
            }
        },
        Err(_) => Vec::new(),
    };
    json!({
        "name": t.name, "catalog_name": t.catalog_name, "schema_name": t.schema_name,
        "full_name": t.full_name(), "table_type": t.table_type.as_str(),
        "data_source_format": t.data_source_format, "columns": columns,
        "storage_location": t.storage_location, "comment": t.comment, "properties": t.properties,
        "owner": t.owner, "created_at": t.created_at, "updated_at": t.updated_at, "table_id": t.id,
    })
}

/// How many tables list-tables checks at once.
const LIST_CONCURRENCY: usize = 16;

#[derive(Debug, Deserialize)]
struct TableQuery {
    catalog_name: Option<String>,
    schema_name: Option<String>,
    max_results: Option<i64>,
    page_token: Option<String>,
}

async fn list_tables(State(s): State<AppState>, Query(q): Query<TableQuery>) -> ApiResult<Value> {
    let (Some(catalog), Some(schema)) = (q.catalog_name, q.schema_name) else {
        return Err(ApiError::invalid(
            "catalog_name and schema_name are required",
        ));
    };
    let name: SchemaName = format!("{catalog}.{schema}").parse()?;
    let (items, next) = paginate(
        s.store.list_tables(&name).await?,
        &Page {
            max_results: q.max_results,
            page_token: q.page_token,
        },
        |t| &t.name,
    )?;
    // The tables are checked several at a time (on an object store each check is a
    // request or two); the answer keeps the catalog's order.
    let checks: Vec<_> = items.iter().map(|t| table_json(&s, t)).collect();
    let tables: Vec<Value> = futures::stream::iter(checks)
        .buffered(LIST_CONCURRENCY)
        .collect()
        .await;
    Ok(Json(json!({"tables": tables, "next_page_token": next})))
}

async fn get_table(State(s): State<AppState>, Path(full_name): Path<String>) -> ApiResult<Value> {
    let name: TableName = full_name.parse()?;
    Ok(Json(table_json(&s, &s.store.get_table(&name).await?).await))
}

#[derive(Debug, Deserialize)]
struct CreateColumn {
    name: String,
    type_text: String,
    #[serde(default = "yes")]
    nullable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct CreateTable {
    name: String,
    catalog_name: String,
    schema_name: String,
    table_type: String,
    data_source_format: Option<String>,
    #[serde(default)]
    columns: Vec<CreateColumn>,
    storage_location: Option<String>,
    comment: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

async fn create_table(
    State(s): State<AppState>,
    Body(body): Body<CreateTable>,
) -> ApiResult<Value> {
    let name = TableName::new(&body.catalog_name, &body.schema_name, &body.name)?;
    if let Some(format) = &body.data_source_format {
        if !format.eq_ignore_ascii_case("DELTA") {
            return Err(ApiError::invalid(format!(
                "data_source_format `{format}` is not supported (only DELTA)"
            )));
        }
    }
    let info = match body.table_type.as_str() {
        "MANAGED" => {
            if body.storage_location.is_some() {
                return Err(ApiError::invalid(
                    "a MANAGED table gets its location from the server: omit storage_location",
                ));
            }
            let mut columns = Vec::with_capacity(body.columns.len());
            for c in &body.columns {
                tarn_catalog::validate_name("column", &c.name)?;
                let t = tarn_table::parse_type(&c.type_text).map_err(|e| {
                    ApiError::invalid(format!("column `{}`: {}", c.name, e.message()))
                })?;
                columns.push(tarn_table::deltalake::kernel::StructField::new(
                    c.name.clone(),
                    t,
                    c.nullable,
                ));
            }
            if columns.is_empty() {
                return Err(ApiError::invalid("a MANAGED table needs columns"));
            }
            let options = CreateOptions {
                columns,
                partition_by: vec![],
                comment: body.comment,
                properties: body.properties.into_iter().collect(),
            };
            // Creating runs the Delta kernel like opening does: under the same bound.
            let _permit = s.opens.permit().await;
            tarn_service::create_managed_table(
                s.store.as_ref(),
                &s.warehouse,
                &name,
                options,
                s.storage_options.to_vec(),
            )
            .await?
            .0
        }
        "EXTERNAL" => {
            let location = body
                .storage_location
                .ok_or_else(|| ApiError::invalid("an EXTERNAL table needs storage_location"))?;
            let location = s.location(&location)?;
            let _permit = s.opens.permit().await;
            tarn_service::register_external_table(
                s.store.as_ref(),
                &s.allowed,
                &name,
                &location,
                body.comment,
                body.properties,
            )
            .await?
        }
        other => {
            return Err(ApiError::invalid(format!(
                "table_type `{other}` is not supported (MANAGED or EXTERNAL)"
            )))
        }
    };
    Ok(Json(table_json(&s, &info).await))
}

#[derive(Debug, Deserialize)]
struct Purge {
    /// Tarn's own: also delete a MANAGED table's files (only at its managed location under
    /// the warehouse).
    #[serde(default)]
    purge: bool,
}

async fn delete_table(
    State(s): State<AppState>,
    Path(full_name): Path<String>,
    Query(p): Query<Purge>,
) -> ApiResult<Value> {
    let name: TableName = full_name.parse()?;
    tarn_service::drop_table(s.store.as_ref(), &s.warehouse, &name, p.purge).await?;
    Ok(Json(json!({})))
}

// ---- credentials -------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct TableCredentialRequest {
    table_id: String,
    operation: Option<String>,
}

#[derive(Debug, Serialize)]
struct TemporaryCredentials {
    expiration_time: i64,
    url: String,
}

fn credentials_for(url: String) -> TemporaryCredentials {
    // Tarn serves local tables and tables on stores its clients already hold keys for:
    // no vended cloud credentials, only the location and an expiry clients may cache to.
    TemporaryCredentials {
        expiration_time: chrono::Utc::now().timestamp_millis() + 3_600_000,
        url,
    }
}

async fn table_credentials(
    State(s): State<AppState>,
    Body(body): Body<TableCredentialRequest>,
) -> ApiResult<TemporaryCredentials> {
    match body.operation.as_deref() {
        None | Some("READ") | Some("READ_WRITE") => {}
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "unknown operation `{other}` (READ or READ_WRITE)"
            )))
        }
    }
    let table = s.store.get_table_by_id(&body.table_id).await?;
    Ok(Json(credentials_for(table.storage_location)))
}

#[derive(Debug, Deserialize)]
struct PathCredentialRequest {
    url: String,
    operation: Option<String>,
}

async fn path_credentials(
    State(s): State<AppState>,
    Body(body): Body<PathCredentialRequest>,
) -> ApiResult<TemporaryCredentials> {
    match body.operation.as_deref() {
        None | Some("PATH_READ") | Some("PATH_READ_WRITE") | Some("PATH_CREATE_TABLE") => {}
        Some(other) => return Err(ApiError::invalid(format!("unknown operation `{other}`"))),
    }
    let location = s.location(&body.url)?;
    if !s.allowed.allows(location.url()) {
        return Err(ApiError::forbidden(format!(
            "`{}` is outside the allowed locations",
            body.url
        )));
    }
    Ok(Json(credentials_for(location.url().to_string())))
}

async fn default_namespace() -> Json<Value> {
    Json(json!({"setting_name": "default", "namespace": {"value": "default"}}))
}
