//! tarn-service: the steps on named tables that touch both the catalog (tarn-catalog) and
//! the table itself (tarn-table) — create a MANAGED table, register an EXTERNAL one, drop
//! one (deleting its files with purge), finish what a crash left half-done — in one place
//! for the `tarn` CLI and every protocol of `tarn serve`. Nothing here knows HTTP: each
//! step returns [`Error`], whose [`Error::kind`] the CLI and each protocol map at their own
//! edge, and whose [`Error::detail`] holds the whole chain of causes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tarn_catalog::{CatalogStore, NewCatalog, NewSchema, TableName};
//! use tarn_table::{parse_columns, CreateOptions};
//!
//! let warehouse = std::path::Path::new("/tmp/wh");
//! let store = tarn_catalog::open_store("/tmp/wh/catalog.db").await?;
//! store.create_catalog(NewCatalog::named("main")).await?;
//! store.create_schema(NewSchema::named("main", "shop")).await?;
//! let name: TableName = "main.shop.orders".parse()?;
//! let options = CreateOptions::new(parse_columns("id bigint, amount double")?);
//! match tarn_service::create_managed_table(&store, warehouse, &name, options, vec![]).await {
//!     Ok((info, _table)) => println!("created at {}", info.storage_location),
//!     Err(e) => eprintln!("error: {}", e.detail()),
//! }
//! tarn_service::drop_table(&store, warehouse, &name, true).await?;
//! # Ok(()) }
//! ```

pub mod error;
pub mod faults;
pub mod locations;
pub mod tables;

pub use error::{Error, ErrorKind, Result};
pub use locations::AllowedLocations;
pub use tables::{
    create_managed_table, drop_table, finish_pending, managed_location, register_external_table,
    NewManagedTable,
};
