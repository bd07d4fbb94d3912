//! The JSON answers of the Iceberg REST catalog (`open-api/rest-catalog-open-api.yaml`):
//! config, namespaces, table identifiers, and a loaded table.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `GET /v1/config`: the `prefix` to use and the endpoints this catalog serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "IcebergCatalogConfig")]
pub struct CatalogConfig {
    /// Defaults for client properties (none).
    pub defaults: BTreeMap<String, String>,
    /// Properties that override the client's: `prefix` (the catalog name).
    pub overrides: BTreeMap<String, String>,
    /// Every route served, as `"GET /v1/{prefix}/namespaces"`.
    pub endpoints: Vec<String>,
}

/// `GET /v1/{prefix}/namespaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "IcebergListNamespacesResponse")]
pub struct ListNamespaces {
    /// Each namespace as its parts (one here: the schema name).
    pub namespaces: Vec<Vec<String>>,
    /// The token of the next page, if more follow.
    #[serde(rename = "next-page-token")]
    pub next_page_token: Option<String>,
}

/// `GET /v1/{prefix}/namespaces/{namespace}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "IcebergGetNamespaceResponse")]
pub struct Namespace {
    /// The namespace's parts.
    pub namespace: Vec<String>,
    /// Its properties (the schema's, and `comment`).
    pub properties: BTreeMap<String, String>,
}

/// A table's name in a namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "IcebergTableIdentifier")]
pub struct TableIdentifier {
    /// The namespace's parts.
    pub namespace: Vec<String>,
    /// The table name.
    pub name: String,
}

/// `GET /v1/{prefix}/namespaces/{namespace}/tables`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "IcebergListTablesResponse")]
pub struct ListTables {
    /// The tables.
    pub identifiers: Vec<TableIdentifier>,
    /// The token of the next page, if more follow.
    #[serde(rename = "next-page-token")]
    pub next_page_token: Option<String>,
}

/// `GET /v1/{prefix}/namespaces/{namespace}/tables/{table}` (`LoadTableResult`). The
/// handler writes this shape from the metadata text it keeps ([`load_table_body`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "IcebergLoadTableResult")]
pub struct LoadTable {
    /// Where the metadata JSON is (its scheme picks the reader's file IO).
    #[serde(rename = "metadata-location")]
    pub metadata_location: String,
    /// The table metadata (format version 2).
    #[schemars(with = "TableMetadata")]
    pub metadata: serde_json::Value,
    /// Table configuration for the client: empty (Tarn vends no credentials).
    pub config: BTreeMap<String, String>,
}

/// The shape of [`LoadTable::metadata`] for the OpenAPI document: the fields of the
/// spec's `TableMetadata` that `tarn_iceberg` writes (and readers need), each described to
/// its first level. The handler passes the projection's JSON through unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(rename = "IcebergTableMetadata")]
pub struct TableMetadata {
    /// Always 2.
    pub format_version: i32,
    /// The table's UUID.
    pub table_uuid: String,
    /// The table's root location.
    pub location: String,
    /// The current snapshot's sequence number.
    pub last_sequence_number: i64,
    /// When the current snapshot was made, ms since the epoch.
    pub last_updated_ms: i64,
    /// The highest field id given.
    pub last_column_id: i32,
    /// Every schema the table had.
    pub schemas: Vec<serde_json::Value>,
    /// The current schema.
    pub current_schema_id: i32,
    /// Every partition spec the table had.
    pub partition_specs: Vec<serde_json::Value>,
    /// The current partition spec.
    pub default_spec_id: i32,
    /// The highest partition field id given.
    pub last_partition_id: i32,
    /// The sort orders (one, unsorted).
    pub sort_orders: Vec<serde_json::Value>,
    /// The current sort order.
    pub default_sort_order_id: i32,
    /// Table properties (`schema.name-mapping.default`, `tarn.source`, `comment`...).
    pub properties: BTreeMap<String, String>,
    /// The current snapshot (`null` for none).
    pub current_snapshot_id: Option<i64>,
    /// Named references: `main`.
    pub refs: BTreeMap<String, serde_json::Value>,
    /// One snapshot per Delta version it can serve (see docs/server.md, "What is not
    /// served").
    pub snapshots: Vec<serde_json::Value>,
    /// When each snapshot became current.
    pub snapshot_log: Vec<serde_json::Value>,
    /// Earlier metadata files (none).
    pub metadata_log: Vec<serde_json::Value>,
}

/// The JSON text of a [`LoadTable`] with `metadata_json` (already serialized) as its
/// metadata: a repeated load copies the kept text instead of serializing the history.
pub fn load_table_body(metadata_location: &str, metadata_json: &str) -> String {
    let location = serde_json::Value::String(metadata_location.to_string());
    format!("{{\"metadata-location\":{location},\"metadata\":{metadata_json},\"config\":{{}}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_body_is_a_load_table() {
        let body = load_table_body("file:///a \"b\"/m.json", r#"{"format-version":2}"#);
        let t: LoadTable = serde_json::from_str(&body).unwrap();
        assert_eq!(t.metadata_location, "file:///a \"b\"/m.json");
        assert_eq!(t.metadata["format-version"], 2);
        assert!(t.config.is_empty());
    }

    /// The metadata the projection writes has the shape the OpenAPI document gives it.
    #[test]
    fn the_documented_metadata_fields_are_required() {
        let schema = schemars::schema_for!(TableMetadata);
        let required = &schema.schema.object.as_ref().unwrap().required;
        for field in [
            "format-version",
            "table-uuid",
            "schemas",
            "snapshots",
            "refs",
        ] {
            assert!(required.contains(field), "{field}");
        }
        assert!(!required.contains("current-snapshot-id"));
    }
}
