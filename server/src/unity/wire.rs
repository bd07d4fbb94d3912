//! Unity Catalog's request and answer bodies (field names and types from Unity Catalog's
//! `api/all.yaml`), shared by the handlers, which answer with them, and the remote client
//! ([`crate::client`]), which reads them: a field missing from an answer is an error there,
//! never a default.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tarn_catalog::{CatalogInfo, SchemaInfo, TableInfo, TableType};

/// A catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "CatalogInfo")]
pub struct Catalog {
    /// Its name.
    pub name: String,
    /// A comment.
    pub comment: Option<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// Who owns it.
    pub owner: Option<String>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Last changed, ms since the epoch.
    pub updated_at: i64,
    /// Stable id (UUID).
    pub id: String,
}

impl From<CatalogInfo> for Catalog {
    fn from(c: CatalogInfo) -> Self {
        Catalog {
            name: c.name,
            comment: c.comment,
            properties: c.properties,
            owner: c.owner,
            created_at: c.created_at,
            updated_at: c.updated_at,
            id: c.id,
        }
    }
}

impl From<Catalog> for CatalogInfo {
    fn from(c: Catalog) -> Self {
        CatalogInfo {
            id: c.id,
            name: c.name,
            comment: c.comment,
            properties: c.properties,
            owner: c.owner,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "SchemaInfo")]
pub struct Schema {
    /// Its name.
    pub name: String,
    /// Its catalog.
    pub catalog_name: String,
    /// `catalog.schema`.
    pub full_name: String,
    /// A comment.
    pub comment: Option<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// Who owns it.
    pub owner: Option<String>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Last changed, ms since the epoch.
    pub updated_at: i64,
    /// Stable id (UUID).
    pub schema_id: String,
}

impl From<SchemaInfo> for Schema {
    fn from(s: SchemaInfo) -> Self {
        Schema {
            full_name: format!("{}.{}", s.catalog_name, s.name),
            name: s.name,
            catalog_name: s.catalog_name,
            comment: s.comment,
            properties: s.properties,
            owner: s.owner,
            created_at: s.created_at,
            updated_at: s.updated_at,
            schema_id: s.id,
        }
    }
}

impl From<Schema> for SchemaInfo {
    fn from(s: Schema) -> Self {
        SchemaInfo {
            id: s.schema_id,
            catalog_name: s.catalog_name,
            name: s.name,
            comment: s.comment,
            properties: s.properties,
            owner: s.owner,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A column of a table, from its current Delta schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "ColumnInfo")]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type as Spark type text (`bigint`, `decimal(10,2)`, `array<string>`...).
    pub type_text: String,
    /// Its Delta schema field, as JSON text.
    pub type_json: String,
    /// `LONG`, `STRING`, `DECIMAL`, `STRUCT`...
    pub type_name: String,
    /// A decimal's precision (0 otherwise).
    pub type_precision: i64,
    /// A decimal's scale (0 otherwise).
    pub type_scale: i64,
    /// Its place in the schema, from 0.
    pub position: usize,
    /// Whether it may hold nulls.
    pub nullable: bool,
    /// Its place among the partition columns, for a partition column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_index: Option<usize>,
}

/// A table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TableInfo")]
pub struct Table {
    /// Its name.
    pub name: String,
    /// Its catalog.
    pub catalog_name: String,
    /// Its schema.
    pub schema_name: String,
    /// `catalog.schema.table`.
    pub full_name: String,
    /// `MANAGED` or `EXTERNAL`.
    #[schemars(schema_with = "table_type_schema")]
    pub table_type: TableType,
    /// Always `DELTA`.
    pub data_source_format: String,
    /// Its columns (empty when its data cannot be read).
    pub columns: Vec<Column>,
    /// Its URL (`file:///...`, `s3://...`).
    pub storage_location: String,
    /// A comment.
    pub comment: Option<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// Who owns it.
    pub owner: Option<String>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Last changed, ms since the epoch.
    pub updated_at: i64,
    /// Stable id (UUID).
    pub table_id: String,
}

impl Table {
    /// The answer for `t` with `columns`.
    pub fn new(t: TableInfo, columns: Vec<Column>) -> Self {
        Table {
            full_name: t.full_name(),
            name: t.name,
            catalog_name: t.catalog_name,
            schema_name: t.schema_name,
            table_type: t.table_type,
            data_source_format: t.data_source_format,
            columns,
            storage_location: t.storage_location,
            comment: t.comment,
            properties: t.properties,
            owner: t.owner,
            created_at: t.created_at,
            updated_at: t.updated_at,
            table_id: t.id,
        }
    }
}

impl From<Table> for TableInfo {
    fn from(t: Table) -> Self {
        TableInfo {
            id: t.table_id,
            catalog_name: t.catalog_name,
            schema_name: t.schema_name,
            name: t.name,
            table_type: t.table_type,
            data_source_format: t.data_source_format,
            storage_location: t.storage_location,
            comment: t.comment,
            properties: t.properties,
            owner: t.owner,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A page of catalogs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "ListCatalogsResponse")]
pub struct ListCatalogs {
    /// The catalogs, by name.
    pub catalogs: Vec<Catalog>,
    /// Pass as `page_token` for the next page; `null` on the last.
    pub next_page_token: Option<String>,
}

/// A page of schemas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "ListSchemasResponse")]
pub struct ListSchemas {
    /// The schemas, by name.
    pub schemas: Vec<Schema>,
    /// Pass as `page_token` for the next page; `null` on the last.
    pub next_page_token: Option<String>,
}

/// A page of tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "ListTablesResponse")]
pub struct ListTables {
    /// The tables, by name.
    pub tables: Vec<Table>,
    /// Pass as `page_token` for the next page; `null` on the last.
    pub next_page_token: Option<String>,
}

/// The answer to a delete: `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "DeleteResponse", deny_unknown_fields)]
pub struct Deleted {}

/// The body of a create-catalog request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateCatalog {
    /// Its name.
    pub name: String,
    /// A comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// User properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// The body of a create-schema request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateSchema {
    /// Its name.
    pub name: String,
    /// Its catalog.
    pub catalog_name: String,
    /// A comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// User properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// A column of a create-table request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateColumn {
    /// Its name.
    pub name: String,
    /// Its type as Spark type text.
    pub type_text: String,
    /// Whether it may hold nulls (default: yes).
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Its place; columns keep the order they are given in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
}

fn yes() -> bool {
    true
}

/// The schema of a table type: the names [`TableType`] serializes to.
fn table_type_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    let names = [TableType::Managed, TableType::External].map(|t| t.as_str().into());
    schemars::schema::SchemaObject {
        instance_type: Some(schemars::schema::InstanceType::String.into()),
        enum_values: Some(names.to_vec()),
        ..Default::default()
    }
    .into()
}

/// The body of a create-table request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateTable {
    /// Its name.
    pub name: String,
    /// Its catalog.
    pub catalog_name: String,
    /// Its schema.
    pub schema_name: String,
    /// `MANAGED` (the server makes it under its warehouse) or `EXTERNAL` (registered at
    /// `storage_location`).
    #[schemars(schema_with = "table_type_schema")]
    pub table_type: String,
    /// `DELTA`, if given.
    #[serde(default)]
    pub data_source_format: Option<String>,
    /// A MANAGED table's columns.
    #[serde(default)]
    pub columns: Vec<CreateColumn>,
    /// An EXTERNAL table's location.
    #[serde(default)]
    pub storage_location: Option<String>,
    /// A comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Table properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// The body of a temporary-table-credentials request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "GenerateTemporaryTableCredential")]
pub struct TableCredentialRequest {
    /// The table's id.
    pub table_id: String,
    /// `READ` or `READ_WRITE`.
    #[serde(default)]
    pub operation: Option<String>,
}

/// The body of a temporary-path-credentials request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "GenerateTemporaryPathCredential")]
pub struct PathCredentialRequest {
    /// The location.
    pub url: String,
    /// `PATH_READ`, `PATH_READ_WRITE` or `PATH_CREATE_TABLE`.
    #[serde(default)]
    pub operation: Option<String>,
}

/// Temporary credentials: Tarn vends no cloud keys, only the location and an expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TemporaryCredentials {
    /// Until when clients may cache the answer, ms since the epoch.
    pub expiration_time: i64,
    /// The location.
    pub url: String,
}

/// The workspace's default namespace setting (Databricks' settings API, asked by some
/// clients): always `default`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DefaultNamespace {
    /// Always `default`.
    pub setting_name: String,
    /// The namespace.
    pub namespace: NamespaceValue,
}

/// The value of [`DefaultNamespace`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NamespaceValue {
    /// Always `default`.
    pub value: String,
}
