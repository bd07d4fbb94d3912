//! The [`CatalogStore`] trait: the contract every catalog backend keeps.
//!
//! Every method is atomic: it either applies fully or leaves the catalog unchanged.
//! Lists are sorted by name. Names are validated before anything is stored. The database
//! keeps every table under an existing schema and every schema under an existing catalog,
//! even when a create races a drop of its parent: one of the two wins, and the other fails
//! (`NotFound` for the create, `FailedPrecondition` for a drop without force).
//!
//! A step that changes both a name and a table's files (creating a MANAGED table, dropping
//! one with its data) goes through a row that is not in use yet or any more: reads never
//! see it, and its name stays taken. [`CatalogStore::reserve_table`] and
//! [`CatalogStore::begin_drop`] make one; [`CatalogStore::pending_drops`] finds those a
//! crash left behind, so the files can be deleted and the row removed.

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
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

    /// Reserves a table's name while its files are made: the row is stored, invisible to
    /// every read (`get_table`, `list_tables`, `get_table_by_id`), and held until the
    /// reservation is committed (the table is then in use) or abandoned (the row is
    /// removed). Errors as [`CatalogStore::create_table`]. If the process holding it dies
    /// (or loses its connection), [`CatalogStore::pending_drops`] takes the row back.
    async fn reserve_table(&self, new: NewTable) -> Result<Box<dyn TableReservation>> {
        let _ = new;
        Err(local_only())
    }
    /// Marks the table `name` with id `id` as being dropped with its data and returns it:
    /// from now on reads do not see it and its name stays taken, until
    /// [`CatalogStore::finish_drop`]. `NotFound` if no table in use has that name and id.
    async fn begin_drop(&self, name: &TableName, id: &str) -> Result<TableInfo> {
        let _ = (name, id);
        Err(local_only())
    }
    /// Every table whose drop has begun and not finished, including the reservations no
    /// live process holds any more (they become drops here). For each, the caller deletes
    /// the files, then calls [`CatalogStore::finish_drop`]. Safe to call at any time, from
    /// several processes at once.
    async fn pending_drops(&self) -> Result<Vec<TableInfo>> {
        Ok(Vec::new())
    }
    /// Removes the row of a table whose drop has begun (and its shares). Removing one that
    /// is already gone is not an error.
    async fn finish_drop(&self, id: &str) -> Result<()> {
        let _ = id;
        Err(local_only())
    }

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

/// A table name held by [`CatalogStore::reserve_table`] while the table's files are made.
/// Dropping it without `commit` or `abandon` leaves the row for
/// [`CatalogStore::pending_drops`].
#[async_trait]
pub trait TableReservation: Send {
    /// The row as it will be once in use.
    fn table(&self) -> &TableInfo;
    /// Puts the table in use. `FailedPrecondition` if the catalog took the name back
    /// meanwhile (see [`CatalogStore::pending_drops`]): then the caller deletes the files.
    async fn commit(self: Box<Self>) -> Result<TableInfo>;
    /// Removes the row (the caller has removed whatever files it made).
    async fn abandon(self: Box<Self>) -> Result<()>;
}

fn local_only() -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        "this step needs the catalog database itself (not a server's catalog over HTTP)",
    )
}
