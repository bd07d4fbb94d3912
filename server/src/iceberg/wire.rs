//! The JSON answers of the Iceberg REST catalog (`open-api/rest-catalog-open-api.yaml`):
//! config, namespaces, table identifiers, and a loaded table.

use std::collections::BTreeMap;

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

/// `GET /v1/{prefix}/namespaces/{namespace}/tables/{table}` (`LoadTableResult`). The
/// handler writes this shape from the metadata text it keeps ([`load_table_body`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadTable {
    /// Where the metadata JSON is (its scheme picks the reader's file IO).
    #[serde(rename = "metadata-location")]
    pub metadata_location: String,
    /// The table metadata (format version 2).
    pub metadata: serde_json::Value,
    /// Table configuration for the client: empty (Tarn vends no credentials).
    pub config: BTreeMap<String, String>,
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
}
