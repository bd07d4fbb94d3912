//! tarn-catalog: names to tables. A three-level namespace — catalogs, schemas, tables
//! (`main.shop.orders`) — plus the server's access tokens, behind one [`CatalogStore`]
//! trait with an embedded SQLite backend (the default) and a PostgreSQL backend (for
//! several server replicas). Both pass the same conformance suite.
//!
//! ```no_run
//! # async fn demo() -> tarn_catalog::Result<()> {
//! use tarn_catalog::{open_store, CatalogStore, NewCatalog};
//! let store = open_store("sqlite:///tmp/wh/catalog.db").await?;
//! store.create_catalog(NewCatalog::named("main")).await?;
//! assert_eq!(store.list_catalogs().await?.len(), 1);
//! # Ok(()) }
//! ```

mod error;
mod model;
mod names;
mod pg_reads;
mod pg_tokens;
mod sharing;
mod sql;
mod sql_sharing;
mod sqlite_reads;
mod store;
mod token;

pub use error::{Error, ErrorKind, Result};
pub use model::{
    CatalogInfo, NewCatalog, NewSchema, NewTable, SchemaInfo, TableInfo, TableType, TokenInfo,
};
pub use names::{validate_name, SchemaName, TableName};
pub use sharing::{NewSharedTable, RecipientInfo, ShareInfo, SharedTable, SharingStore};
pub use sql::{open_store, SqlCatalogStore, ACQUIRE_TIMEOUT};
pub use store::{CatalogStore, TableReservation};
pub use token::{hash_token, new_token_secret, Scope};
