//! What the catalog stores: catalogs, schemas, tables and access tokens.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::token::Scope;

/// A catalog (the first level of `catalog.schema.table`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogInfo {
    /// Stable id (UUID).
    pub id: String,
    /// Name.
    pub name: String,
    /// Free text.
    pub comment: Option<String>,
    /// Key-value properties.
    pub properties: BTreeMap<String, String>,
    /// Who created it.
    pub owner: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

/// A schema within a catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaInfo {
    /// Stable id (UUID).
    pub id: String,
    /// The catalog it belongs to.
    pub catalog_name: String,
    /// Name.
    pub name: String,
    /// Free text.
    pub comment: Option<String>,
    /// Key-value properties.
    pub properties: BTreeMap<String, String>,
    /// Who created it.
    pub owner: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

/// Who owns a table's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TableType {
    /// Tarn owns the location (under the warehouse); dropping with purge deletes the data.
    Managed,
    /// Registered at an existing location; dropping never deletes data.
    External,
}

impl TableType {
    /// `MANAGED` or `EXTERNAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            TableType::Managed => "MANAGED",
            TableType::External => "EXTERNAL",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "MANAGED" => Some(TableType::Managed),
            "EXTERNAL" => Some(TableType::External),
            _ => None,
        }
    }
}

/// A table registered in a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    /// Stable id (UUID).
    pub id: String,
    /// The catalog.
    pub catalog_name: String,
    /// The schema.
    pub schema_name: String,
    /// Name.
    pub name: String,
    /// Managed or external.
    pub table_type: TableType,
    /// Always `DELTA` for now.
    pub data_source_format: String,
    /// The table's URL (`file:///...`, `s3://...`), ending in `/`.
    pub storage_location: String,
    /// Free text.
    pub comment: Option<String>,
    /// Key-value properties.
    pub properties: BTreeMap<String, String>,
    /// Who created it.
    pub owner: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

impl TableInfo {
    /// `catalog.schema.table`.
    pub fn full_name(&self) -> String {
        format!("{}.{}.{}", self.catalog_name, self.schema_name, self.name)
    }
}

/// A catalog to create.
#[derive(Debug, Clone, Default)]
pub struct NewCatalog {
    /// Name.
    pub name: String,
    /// Free text.
    pub comment: Option<String>,
    /// Properties.
    pub properties: BTreeMap<String, String>,
    /// Owner.
    pub owner: Option<String>,
}

impl NewCatalog {
    /// Just a name.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// A schema to create.
#[derive(Debug, Clone, Default)]
pub struct NewSchema {
    /// The catalog it goes in.
    pub catalog_name: String,
    /// Name.
    pub name: String,
    /// Free text.
    pub comment: Option<String>,
    /// Properties.
    pub properties: BTreeMap<String, String>,
    /// Owner.
    pub owner: Option<String>,
}

impl NewSchema {
    /// Just a name in a catalog.
    pub fn named(catalog: &str, name: &str) -> Self {
        Self {
            catalog_name: catalog.into(),
            name: name.into(),
            ..Self::default()
        }
    }
}

/// A table to register.
#[derive(Debug, Clone)]
pub struct NewTable {
    /// The id to use (so a managed table's location can contain it), or `None` for a new one.
    pub id: Option<String>,
    /// The catalog.
    pub catalog_name: String,
    /// The schema.
    pub schema_name: String,
    /// Name.
    pub name: String,
    /// Managed or external.
    pub table_type: TableType,
    /// The table's URL.
    pub storage_location: String,
    /// Free text.
    pub comment: Option<String>,
    /// Properties.
    pub properties: BTreeMap<String, String>,
    /// Owner.
    pub owner: Option<String>,
}

/// An access token as stored (the secret itself is never stored, only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Stable id.
    pub id: String,
    /// A label for people.
    pub name: String,
    /// What it allows.
    pub scope: Scope,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Expiry, ms since the epoch, if any.
    pub expires_at: Option<i64>,
}
