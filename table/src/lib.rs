//! tarn-table: everything about one Delta table — open, create, write, time travel,
//! evolve, maintain, query — on local disk or any object store.
//!
//! Built on the `deltalake` crate. Every operation that changes a table is exactly one
//! commit in the transaction log, or nothing.
//!
//! ```no_run
//! # async fn demo() -> tarn_table::Result<()> {
//! use tarn_table::{CreateOptions, Table, TableLocation, TimeTravel};
//!
//! let location = TableLocation::parse("./wh/orders")?;
//! let options = CreateOptions::new(tarn_table::parse_columns("id bigint not null, amount double")?);
//! let table = Table::create(&location, options).await?;
//! assert_eq!(table.version(), 0);
//! let old = Table::open(&location, &TimeTravel::Version(0)).await?;
//! println!("{} columns", old.describe()?.schema.len());
//! # Ok(()) }
//! ```

mod actions;
mod changes;
mod commit;
mod commit_log;
mod create;
mod csv_parallel;
mod date_trunc;
mod describe;
mod error;
mod evolve;
mod files;
mod input;
mod local_log;
mod location;
mod maintain;
mod mapped;
pub mod mutate;
mod plain_types;
mod query;
mod scan;
mod schema_text;
mod table;
mod time_travel;
mod write;

pub use actions::{
    CommitChanges, DataFile, DeletionVector, FileAction, FileFormat, FileStats, LogAction,
    TableLog, TableMetadata, TableProtocol,
};
pub use changes::{ChangeBatch, ChangeReport, ChangeRows, SPILLING_MERGE_MEMORY};
pub use commit_log::{format_timestamp, parse_timestamp, Commit};
pub use create::{CreateOptions, DEFAULT_CHECKPOINT_INTERVAL};
pub use describe::{ColumnDescription, TableDescription};
pub use error::{one_line, Error, ErrorKind, Result};
pub use files::{is_table_relative, TableFile};
pub use input::{InputFormat, InputSource, Progress};
pub use location::TableLocation;
pub use maintain::{OptimizeReport, RestoreReport, VacuumReport};
pub use mutate::MutationReport;
pub use query::{QueryResult, QueryTable};
pub use schema_text::{parse_columns, parse_type, type_text, MAX_TYPE_NESTING};
pub use table::Table;
pub use time_travel::TimeTravel;
pub use write::{mostly_distinct_columns, WriteMode, WriteOptions, WriteReport};

pub use deltalake;
