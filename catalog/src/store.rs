//! The [`CatalogStore`] trait: the contract every catalog backend keeps.
//!
//! Every method is atomic: it either applies fully or leaves the catalog unchanged.
//! Lists are sorted by name. Names are validated before anything is stored.

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{
    CatalogInfo, NewCatalog, NewSchema, NewTable, SchemaInfo, TableInfo, TokenInfo,
};
use crate::names::{SchemaName, TableName};
use crate::sharing::SharingStore;
use crate::token::Scope;

/// A catalog backend.
#[async_trait]
pub trait CatalogStore: Send + Sync + std::fmt::Debug {
    /// Creates a catalog. `AlreadyExists` if the name is taken.
    async fn create_catalog(&self, new: NewCatalog) -> Result<CatalogInfo>;
    /// The catalog named `name`, or `NotFound`.
    async fn get_catalog(&self, name: &str) -> Result<CatalogInfo>;
    /// All catalogs, by name.
    async fn list_catalogs(&self) -> Result<Vec<CatalogInfo>>;
    /// Deletes a catalog. With schemas in it: `FailedPrecondition` unless `force`, which
    /// deletes its schemas and table registrations too (never table data).
    async fn delete_catalog(&self, name: &str, force: bool) -> Result<()>;

    /// Creates a schema. `NotFound` if the catalog does not exist, `AlreadyExists` if taken.
    async fn create_schema(&self, new: NewSchema) -> Result<SchemaInfo>;
    /// The schema, or `NotFound`.
    async fn get_schema(&self, name: &SchemaName) -> Result<SchemaInfo>;
    /// The schemas of a catalog (`NotFound` if the catalog does not exist).
    async fn list_schemas(&self, catalog: &str) -> Result<Vec<SchemaInfo>>;
    /// Deletes a schema. With tables in it: `FailedPrecondition` unless `force`.
    async fn delete_schema(&self, name: &SchemaName, force: bool) -> Result<()>;

    /// Registers a table. `NotFound` if the schema does not exist, `AlreadyExists` if taken.
    async fn create_table(&self, new: NewTable) -> Result<TableInfo>;
    /// The table, or `NotFound`.
    async fn get_table(&self, name: &TableName) -> Result<TableInfo>;
    /// The table with this id, or `NotFound`.
    async fn get_table_by_id(&self, id: &str) -> Result<TableInfo>;
    /// The tables of a schema (`NotFound` if the schema does not exist).
    async fn list_tables(&self, schema: &SchemaName) -> Result<Vec<TableInfo>>;
    /// Removes a table's registration and returns what it was (data is the caller's business).
    async fn delete_table(&self, name: &TableName) -> Result<TableInfo>;

    /// Stores a token (by the hash of its secret) and returns its record.
    async fn create_token(
        &self,
        name: &str,
        secret_hash: &str,
        scope: Scope,
        expires_at: Option<i64>,
    ) -> Result<TokenInfo>;
    /// The token whose secret hashes to `secret_hash`, or `NotFound`.
    async fn find_token(&self, secret_hash: &str) -> Result<TokenInfo>;
    /// All tokens, by name.
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>>;
    /// Deletes a token by id or name.
    async fn delete_token(&self, id_or_name: &str) -> Result<()>;

    /// Shares and recipients (Delta Sharing), when this backend keeps them. The SQL
    /// catalog does; a remote catalog reached over HTTP does not.
    fn sharing(&self) -> Option<&dyn SharingStore> {
        None
    }
}
