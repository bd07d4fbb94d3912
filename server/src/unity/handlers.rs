//! The Unity Catalog handlers: each reads its request (path, query, [`Body`]), calls the
//! catalog, the table library or `tarn_service`, and answers with a [`wire`] type.

use axum::extract::{Path, Query, State};
use axum::Json;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use tarn_catalog::{NewCatalog, NewSchema, SchemaName, TableInfo, TableName};
use tarn_table::CreateOptions;

use super::wire::{
    self, Catalog, CreateCatalog, CreateSchema, CreateTable, DefaultNamespace, Deleted,
    ListCatalogs, ListSchemas, ListTables, NamespaceValue, PathCredentialRequest, Schema,
    TableCredentialRequest, TemporaryCredentials,
};
use super::{page, ApiResult, Body, PageQuery};
use crate::error::ApiError;
use crate::pagination::paginate;
use crate::AppState;

// ---- catalogs ----------------------------------------------------------------------------

pub(super) async fn create_catalog(
    State(s): State<AppState>,
    Body(body): Body<CreateCatalog>,
) -> ApiResult<Catalog> {
    let c = s
        .store
        .create_catalog(NewCatalog {
            name: body.name,
            comment: body.comment,
            properties: body.properties,
            owner: None,
        })
        .await?;
    Ok(Json(c.into()))
}

pub(super) async fn list_catalogs(
    State(s): State<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<ListCatalogs> {
    let page = page(q.max_results, q.page_token)?;
    let (items, next_page_token) =
        paginate(s.store.list_catalogs().await?, &page, |c| c.name.clone());
    Ok(Json(ListCatalogs {
        catalogs: items.into_iter().map(Catalog::from).collect(),
        next_page_token,
    }))
}

pub(super) async fn get_catalog(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Catalog> {
    Ok(Json(s.store.get_catalog(&name).await?.into()))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct Force {
    /// Delete even when not empty.
    #[serde(default)]
    force: bool,
}

pub(super) async fn delete_catalog(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(f): Query<Force>,
) -> ApiResult<Deleted> {
    s.store.delete_catalog(&name, f.force).await?;
    Ok(Json(Deleted {}))
}

// ---- schemas -----------------------------------------------------------------------------

pub(super) async fn create_schema(
    State(s): State<AppState>,
    Body(body): Body<CreateSchema>,
) -> ApiResult<Schema> {
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
    Ok(Json(sc.into()))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct SchemaQuery {
    /// The catalog.
    #[schemars(
        required,
        regex(pattern = r"^[A-Za-z0-9_@-]+$"),
        example = "main_catalog"
    )]
    catalog_name: Option<String>,
    /// Page size; 0 or absent: everything.
    max_results: Option<i64>,
    /// `next_page_token` of the previous page.
    page_token: Option<String>,
}

pub(super) async fn list_schemas(
    State(s): State<AppState>,
    Query(q): Query<SchemaQuery>,
) -> ApiResult<ListSchemas> {
    let catalog = q
        .catalog_name
        .ok_or_else(|| ApiError::invalid("catalog_name is required"))?;
    let page = page(q.max_results, q.page_token)?;
    let (items, next_page_token) = paginate(s.store.list_schemas(&catalog).await?, &page, |c| {
        c.name.clone()
    });
    Ok(Json(ListSchemas {
        schemas: items.into_iter().map(Schema::from).collect(),
        next_page_token,
    }))
}

pub(super) async fn get_schema(
    State(s): State<AppState>,
    Path(full_name): Path<String>,
) -> ApiResult<Schema> {
    let name: SchemaName = full_name.parse()?;
    Ok(Json(s.store.get_schema(&name).await?.into()))
}

pub(super) async fn delete_schema(
    State(s): State<AppState>,
    Path(full_name): Path<String>,
    Query(f): Query<Force>,
) -> ApiResult<Deleted> {
    let name: SchemaName = full_name.parse()?;
    s.store.delete_schema(&name, f.force).await?;
    Ok(Json(Deleted {}))
}

// ---- tables ------------------------------------------------------------------------------

/// The answer for table `t`, with its columns (none, and a warning in the log, when its
/// data cannot be read).
async fn table_answer(s: &AppState, t: TableInfo) -> wire::Table {
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
    wire::Table::new(t, columns)
}

/// How many tables list-tables checks at once.
const LIST_CONCURRENCY: usize = 16;

#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct TableQuery {
    /// The catalog.
    #[schemars(
        required,
        regex(pattern = r"^[A-Za-z0-9_@-]+$"),
        example = "main_catalog"
    )]
    catalog_name: Option<String>,
    /// The schema.
    #[schemars(
        required,
        regex(pattern = r"^[A-Za-z0-9_@-]+$"),
        example = "shop_schema"
    )]
    schema_name: Option<String>,
    /// Page size; 0 or absent: everything.
    max_results: Option<i64>,
    /// `next_page_token` of the previous page.
    page_token: Option<String>,
}

/// The example catalog name (the fuzzer's fixture has it).
fn main_catalog() -> &'static str {
    "main"
}

/// The example schema name.
fn shop_schema() -> &'static str {
    "shop"
}

pub(super) async fn list_tables(
    State(s): State<AppState>,
    Query(q): Query<TableQuery>,
) -> ApiResult<ListTables> {
    let (Some(catalog), Some(schema)) = (q.catalog_name, q.schema_name) else {
        return Err(ApiError::invalid(
            "catalog_name and schema_name are required",
        ));
    };
    let name: SchemaName = format!("{catalog}.{schema}").parse()?;
    let page = page(q.max_results, q.page_token)?;
    let (items, next_page_token) =
        paginate(s.store.list_tables(&name).await?, &page, |t| t.name.clone());
    // The tables are checked several at a time (on an object store each check is a
    // request or two); the answer keeps the catalog's order.
    let checks: Vec<_> = items.into_iter().map(|t| table_answer(&s, t)).collect();
    let tables = futures::stream::iter(checks)
        .buffered(LIST_CONCURRENCY)
        .collect()
        .await;
    Ok(Json(ListTables {
        tables,
        next_page_token,
    }))
}

pub(super) async fn get_table(
    State(s): State<AppState>,
    Path(full_name): Path<String>,
) -> ApiResult<wire::Table> {
    let name: TableName = full_name.parse()?;
    let info = s.store.get_table(&name).await?;
    Ok(Json(table_answer(&s, info).await))
}

pub(super) async fn create_table(
    State(s): State<AppState>,
    Body(body): Body<CreateTable>,
) -> ApiResult<wire::Table> {
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
    Ok(Json(table_answer(&s, info).await))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct Purge {
    /// Tarn's own: also delete a MANAGED table's files (only at its managed location under
    /// the warehouse).
    #[serde(default)]
    purge: bool,
}

pub(super) async fn delete_table(
    State(s): State<AppState>,
    Path(full_name): Path<String>,
    Query(p): Query<Purge>,
) -> ApiResult<Deleted> {
    let name: TableName = full_name.parse()?;
    tarn_service::drop_table(s.store.as_ref(), &s.warehouse, &name, p.purge).await?;
    Ok(Json(Deleted {}))
}

// ---- credentials -------------------------------------------------------------------------

fn credentials_for(url: String) -> TemporaryCredentials {
    // Tarn serves local tables and tables on stores its clients already hold keys for:
    // no vended cloud credentials, only the location and an expiry clients may cache to.
    TemporaryCredentials {
        expiration_time: chrono::Utc::now().timestamp_millis() + 3_600_000,
        url,
    }
}

pub(super) async fn table_credentials(
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

pub(super) async fn path_credentials(
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

pub(super) async fn default_namespace() -> Json<DefaultNamespace> {
    Json(DefaultNamespace {
        setting_name: "default".into(),
        namespace: NamespaceValue {
            value: "default".into(),
        },
    })
}
