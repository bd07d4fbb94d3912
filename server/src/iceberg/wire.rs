//! The JSON answers of the Iceberg REST catalog (`open-api/rest-catalog-open-api.yaml`):
//! config, namespaces, table identifiers, and a loaded table.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// `GET /v1/config`: the `prefix` to use and the endpoints this catalog serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogConfig {
    /// Defaults for client properties (none).
    pub defaults: BTreeMap<String, String>,
    /// Properties that override the client's: `prefix` (the catalog name).
    pub overrides: BTreeMap<String, String>,
    /// Every route served, as `"GET /v1/{prefix}/namespaces"`.
    pub endpoints: Vec<String>,
}

/// `GET /v1/{prefix}/namespaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListNamespaces {
    /// Each namespace as its parts (one here: the schema name).
    pub namespaces: Vec<Vec<String>>,
    /// The token of the next page, if more follow.
    #[serde(rename = "next-page-token")]
    pub next_page_token: Option<String>,
}

/// `GET /v1/{prefix}/namespaces/{namespace}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    /// The namespace's parts.
    pub namespace: Vec<String>,
    /// Its properties (the schema's, and `comment`).
    pub properties: BTreeMap<String, String>,
}

/// A table's name in a namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableIdentifier {
    /// The namespace's parts.
    pub namespace: Vec<String>,
    /// The table name.
    pub name: String,
}

/// `GET /v1/{prefix}/namespaces/{namespace}/tables`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListTables {
    /// The tables.
    pub identifiers: Vec<TableIdentifier>,
    /// The token of the next page, if more follow.
    #[serde(rename = "next-page-token")]
    pub next_page_token: Option<String>,
}

/// `GET /v1/{prefix}/namespaces/{namespace}/tables/{table}` (`LoadTableResult`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadTable {
    /// Where the metadata JSON is (its scheme picks the reader's file IO).
    #[serde(rename = "metadata-location")]
    pub metadata_location: String,
    /// The table metadata (format version 2).
    pub metadata: Arc<serde_json::Value>,
    /// Table configuration for the client: empty (Tarn vends no credentials).
    pub config: BTreeMap<String, String>,
}
