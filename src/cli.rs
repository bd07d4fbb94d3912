//! Command-line arguments: every `tarn` subcommand and option, with the help text users read.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Tarn: versioned Delta Lake tables on local disk or object storage.

Every change is one atomic commit; any past version can be queried.
Tables are addressed by path or URL (./wh/orders, file:///data/orders, s3://bucket/orders)
or by catalog name (main.shop.orders), resolved in the catalog of --warehouse/--catalog.";

const EXAMPLES: &str = "Examples:
  tarn create ./wh/orders --schema \"id bigint not null, customer string, amount decimal(12,2), created_at timestamp\"
  tarn write ./wh/orders orders.csv
  tarn query \"SELECT customer, SUM(amount) FROM orders GROUP BY customer\" --table ./wh/orders
  tarn query \"SELECT COUNT(*) FROM orders\" --table ./wh/orders --as-of \"2026-01-31 23:59:59\"
  tarn history ./wh/orders
  tarn quickstart";

/// The `tarn` command line.
#[derive(Debug, Parser)]
#[command(name = "tarn", version, about = ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// Object-store option passed to the storage backend, e.g.
    /// `aws_endpoint=http://127.0.0.1:9000` or `aws_region=eu-west-1`. Repeatable.
    /// `AWS_*`, `GOOGLE_*` and `AZURE_*` environment variables are read too.
    #[arg(long = "storage-option", value_name = "KEY=VALUE", global = true, value_parser = parse_key_value)]
    pub storage_options: Vec<(String, String)>,

    /// Warehouse directory: managed tables and the embedded SQLite catalog live here.
    #[arg(
        long,
        global = true,
        env = "TARN_WAREHOUSE",
        default_value = "./tarn-warehouse",
        value_name = "DIR"
    )]
    pub warehouse: PathBuf,

    /// Catalog database: `postgres://user@host/db` (shared by several servers), or an SQLite
    /// file. Default: `<warehouse>/catalog.db`.
    #[arg(long, global = true, env = "TARN_CATALOG", value_name = "URL")]
    pub catalog: Option<String>,

    /// Use the catalog of a running `tarn serve` instead of the local one.
    #[arg(long, global = true, env = "TARN_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Bearer token for --server (from `tarn token create` on the server's machine).
    #[arg(
        long,
        global = true,
        env = "TARN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Output format. `table` is for people, `csv` and `json` are for scripts.
    #[arg(long, value_enum, global = true, env = "TARN_FORMAT", default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text table.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// JSON: one array of objects for rows, one object for reports.
    Json,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an empty table with a schema.
    #[command(after_help = "Examples:
  tarn create ./wh/orders --schema \"id bigint not null, customer string, amount decimal(12,2), created_at timestamp\"
  tarn create s3://bucket/events --schema \"ts timestamp, day date, kind string\" --partition-by day

Types: boolean, tinyint, smallint, int, bigint, float, double, decimal(p,s), string,
binary, date, timestamp (UTC), timestamp_ntz, array<T>, map<K,V>, struct<a:T,...>.")]
    Create(CreateArgs),

    /// Write CSV, newline-delimited JSON or Parquet files into a table as one commit.
    #[command(after_help = "Examples:
  tarn write ./wh/orders orders-2026-01.csv
  tarn write ./wh/orders batch.parquet --mode overwrite
  tarn write ./wh/orders new-columns.json --merge-schema
  tarn write ./wh/orders changes.csv --upsert-on id
  tarn write ./wh/orders january.csv --replace-where \"created_at < '2026-02-01'\"
  cat rows.jsonl | tarn write ./wh/events - --input-format json --create

All the files go into one commit: if any file fails to read, nothing is written.
The new table version is printed on success.")]
    Write(WriteArgs),

    /// Delete the rows matching a predicate (one commit).
    #[command(after_help = "Example:
  tarn delete ./wh/orders --where \"created_at < '2025-01-01'\"")]
    Delete(DeleteArgs),

    /// Update the rows matching a predicate (one commit).
    #[command(after_help = "Example:
  tarn update ./wh/orders --set \"amount = amount * 1.1\" --set \"customer = upper(customer)\" --where \"id = 42\"")]
    Update(UpdateArgs),

    /// Run SQL over one consistent snapshot of each table.
    #[command(after_help = "Examples:
  tarn query \"SELECT COUNT(*) FROM orders\" --table ./wh/orders
  tarn query \"SELECT * FROM o JOIN u ON u.id = o.user_id\" --table o=./wh/orders --table u=./wh/users
  tarn query \"SELECT SUM(amount) FROM orders\" --table ./wh/orders --version 3
  tarn query \"SELECT SUM(amount) FROM orders\" --table ./wh/orders --as-of 2026-01-31T12:00:00Z --format csv

--table TABLE registers a table under its last path segment (./wh/orders -> orders);
--table NAME=TABLE picks the name. --version and --as-of apply to every table.")]
    Query(QueryArgs),

    /// Show a table's commits, newest first.
    #[command(after_help = "Example:
  tarn history ./wh/orders --limit 10")]
    History(HistoryArgs),

    /// Show a table's schema, partitioning, properties, protocol, version and size.
    #[command(after_help = "Examples:
  tarn describe ./wh/orders
  tarn describe ./wh/orders --version 2 --format json")]
    Describe(DescribeArgs),

    /// Change a table's schema or properties.
    #[command(after_help = "Examples:
  tarn alter ./wh/orders add-column \"discount decimal(5,2)\"
  tarn alter ./wh/orders set-property delta.checkpointInterval=50")]
    Alter(AlterArgs),

    /// Make an earlier version the current one again (a new commit; history is kept).
    #[command(after_help = "Examples:
  tarn restore ./wh/orders --version 3
  tarn restore ./wh/orders --as-of \"2026-01-31 12:00:00\"")]
    Restore(RestoreArgs),

    /// Compact small files (and optionally Z-order) without changing the data.
    #[command(after_help = "Examples:
  tarn optimize ./wh/orders
  tarn optimize ./wh/orders --zorder customer,created_at")]
    Optimize(OptimizeArgs),

    /// Delete data files no longer referenced by versions within the retention window.
    #[command(after_help = "Examples:
  tarn vacuum ./wh/orders --dry-run
  tarn vacuum ./wh/orders --retain-hours 168

Time travel to versions older than the retention window stops working after a vacuum.
Retention below the table's delta.deletedFileRetentionDuration (7 days by default)
is refused unless --force is given.")]
    Vacuum(VacuumArgs),

    /// Write a checkpoint of the current version (Tarn also does this every 100 commits).
    Checkpoint(TableArg),

    /// Manage catalogs (the first level of catalog.schema.table).
    #[command(
        subcommand,
        after_help = "Examples:
  tarn catalog create main
  tarn catalog list
  tarn catalog drop main --force"
    )]
    Catalog(CatalogCommand),

    /// Manage schemas (catalog.schema).
    #[command(
        subcommand,
        after_help = "Examples:
  tarn schema create main.shop
  tarn schema list main"
    )]
    Schema(SchemaCommand),

    /// List tables in the catalog.
    #[command(
        subcommand,
        after_help = "Examples:
  tarn table list
  tarn table list main.shop"
    )]
    Table(TableCommand),

    /// Register an existing Delta table under a name (EXTERNAL: Tarn never deletes its data).
    #[command(after_help = "Example:
  tarn register main.shop.events s3://bucket/events")]
    Register(RegisterArgs),

    /// Remove a table's name from the catalog; its data stays.
    Unregister(NameArg),

    /// Drop a named table: unregister it, and with --purge delete a MANAGED table's data.
    #[command(after_help = "Example:
  tarn drop main.shop.orders --purge")]
    Drop(DropArgs),

    /// Manage the server's access tokens.
    #[command(
        subcommand,
        after_help = "Examples:
  tarn token create ci --scope read
  tarn token list
  tarn token revoke ci"
    )]
    Token(TokenCommand),

    /// Share catalog tables with outside readers over Delta Sharing.
    #[command(
        subcommand,
        after_help = "Examples:
  tarn share create partners
  tarn share add partners main.shop.orders --as sales.orders --history
  tarn share list
  tarn share list partners
  tarn recipient create acme --share partners --expires 90d --profile acme.share

Recipients read shares through `tarn serve` (Delta Sharing at /delta-sharing) with the
profile file, e.g. in Python: delta_sharing.load_as_pandas(\"acme.share#partners.sales.orders\")."
    )]
    Share(ShareCommand),

    /// Manage Delta Sharing recipients: their tokens, profile files and granted shares.
    #[command(
        subcommand,
        after_help = "Examples:
  tarn recipient create acme --share partners --profile acme.share
  tarn recipient create acme --share partners --expires 2027-01-01 --profile acme.share \\
       --endpoint https://tarn.example.com/delta-sharing
  tarn recipient grant acme --share finance
  tarn recipient revoke acme --share finance   # takes one share back
  tarn recipient revoke acme                   # the token stops working at once
  tarn recipient list"
    )]
    Recipient(RecipientCommand),

    /// Serve the catalog over the Unity Catalog REST API and Delta Sharing.
    #[command(after_help = "Examples:
  tarn serve                                   # 127.0.0.1:8080, tokens required
  tarn serve --no-auth                         # loopback only
  tarn serve --bind 0.0.0.0:8080 --allow-location s3://bucket/lake
  tarn serve --catalog postgres://tarn@db/tarn # several replicas, one catalog
  tarn serve --bind 0.0.0.0:8080 --public-url https://tarn.example.com")]
    Serve(ServeArgs),

    /// Copy a table or query from PostgreSQL or MySQL/MariaDB into a Tarn table: in full,
    /// then incrementally, exactly once.
    #[command(after_help = "Examples:
  tarn import postgres://app@db/shop --source public.orders --into main.shop.orders \\
       --key id --cursor updated_at
  tarn import mysql://app@db/shop --source orders --into ./wh/orders --key id --cursor updated_at
  tarn import postgres://app@db/shop --query \"SELECT id, total FROM orders WHERE total > 0\" \\
       --into ./wh/big_orders --mode overwrite
  tarn import postgres://app@db/shop --source orders --into ./wh/orders --key id --cursor updated_at --dry-run

The first run copies everything (one consistent snapshot of the source) and creates the
table. With --cursor, later runs copy only rows whose cursor is beyond the last imported
value (the watermark, recorded in the table's commit), upserted on --key. Each run is one
commit: a run that fails or is killed changes nothing, and running it again imports every
row exactly once. Types are mapped faithfully or refused (see docs/import.md).")]
    Import(ImportArgs),

    /// Build a sample warehouse with `users` and `orders` and show what Tarn does.
    #[command(after_help = "Example:
  tarn quickstart --dir ./tarn-quickstart")]
    Quickstart(QuickstartArgs),
}

/// A table given by path or URL.
#[derive(Debug, Args)]
pub struct TableArg {
    /// Table path or URL (./wh/orders, file:///..., s3://bucket/orders).
    pub table: String,
}

/// `tarn create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Table path or URL.
    pub table: String,
    /// Columns as `name type [not null]`, comma-separated.
    #[arg(long, value_name = "COLUMNS")]
    pub schema: String,
    /// Partition column. Repeatable, or comma-separated.
    #[arg(long = "partition-by", value_name = "COL", value_delimiter = ',')]
    pub partition_by: Vec<String>,
    /// A description stored in the table metadata.
    #[arg(long)]
    pub comment: Option<String>,
    /// Table property, e.g. `delta.checkpointInterval=50` (Tarn creates tables with 10). Repeatable.
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,
}

/// Where `tarn write` puts the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WriteMode {
    /// Add the rows to the table.
    Append,
    /// Replace all rows (or those matching --replace-where).
    Overwrite,
}

/// Input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// CSV with a header line.
    Csv,
    /// Newline-delimited JSON objects.
    Json,
    /// Apache Parquet.
    Parquet,
}

/// `tarn write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Table path or URL.
    pub table: String,
    /// Input files (`-` reads standard input).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Append (default) or overwrite.
    #[arg(long, value_enum, default_value_t = WriteMode::Append)]
    pub mode: WriteMode,
    /// Add new columns found in the input to the table (as nullable columns).
    #[arg(long)]
    pub merge_schema: bool,
    /// Merge on these key columns: update matching rows, insert the others.
    #[arg(long, value_name = "KEY[,KEY]", value_delimiter = ',', conflicts_with_all = ["replace_where", "mode"])]
    pub upsert_on: Vec<String>,
    /// With --mode overwrite: replace only the rows matching this predicate;
    /// every written row must match it.
    #[arg(long, value_name = "PRED")]
    pub replace_where: Option<String>,
    /// Create the table from the input's schema when it does not exist.
    #[arg(long)]
    pub create: bool,
    /// With --create: partition column(s).
    #[arg(
        long = "partition-by",
        value_name = "COL",
        value_delimiter = ',',
        requires = "create"
    )]
    pub partition_by: Vec<String>,
    /// Input format, when the file extension does not say (always needed for `-`).
    #[arg(long, value_enum)]
    pub input_format: Option<InputFormat>,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// `tarn delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Table path or URL.
    pub table: String,
    /// SQL predicate selecting the rows to delete.
    #[arg(long = "where", value_name = "PRED")]
    pub predicate: String,
}

/// `tarn update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Table path or URL.
    pub table: String,
    /// `column = expression`. Repeatable.
    #[arg(long = "set", value_name = "COL = EXPR", required = true)]
    pub assignments: Vec<String>,
    /// SQL predicate selecting the rows to update (all rows when omitted).
    #[arg(long = "where", value_name = "PRED")]
    pub predicate: Option<String>,
}

/// Which version of a table to read.
#[derive(Debug, Args, Clone, Default)]
pub struct TimeTravelArgs {
    /// Read this table version.
    #[arg(long, conflicts_with = "as_of")]
    pub version: Option<u64>,
    /// Read the latest version committed at or before this time
    /// (RFC 3339, or `YYYY-MM-DD[ HH:MM:SS]` in UTC).
    #[arg(long, value_name = "TIMESTAMP")]
    pub as_of: Option<String>,
}

/// `tarn query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL statement.
    pub sql: String,
    /// `NAME=TABLE`, or `TABLE` (named after its last path segment). Repeatable.
    #[arg(long = "table", value_name = "[NAME=]TABLE")]
    pub tables: Vec<String>,
    #[command(flatten)]
    pub time_travel: TimeTravelArgs,
}

/// `tarn history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Table path or URL.
    pub table: String,
    /// Show at most this many commits.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `tarn describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Table path or URL.
    pub table: String,
    #[command(flatten)]
    pub time_travel: TimeTravelArgs,
}

/// `tarn alter`.
#[derive(Debug, Args)]
pub struct AlterArgs {
    /// Table path or URL.
    pub table: String,
    #[command(subcommand)]
    pub change: AlterChange,
}

/// What `tarn alter` changes.
#[derive(Debug, Subcommand)]
pub enum AlterChange {
    /// Add nullable columns, e.g. "discount decimal(5,2), note string".
    AddColumn {
        /// Columns as `name type`, comma-separated.
        columns: String,
    },
    /// Set table properties, e.g. delta.checkpointInterval=50.
    SetProperty {
        /// `KEY=VALUE` pairs.
        #[arg(required = true, value_parser = parse_key_value)]
        properties: Vec<(String, String)>,
    },
}

/// `tarn restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Table path or URL.
    pub table: String,
    #[command(flatten)]
    pub time_travel: TimeTravelArgs,
}

/// `tarn optimize`.
#[derive(Debug, Args)]
pub struct OptimizeArgs {
    /// Table path or URL.
    pub table: String,
    /// Z-order the data by these columns.
    #[arg(long, value_name = "COL[,COL]", value_delimiter = ',')]
    pub zorder: Vec<String>,
    /// Target file size in bytes (default: the table's delta.targetFileSize or 100 MiB).
    #[arg(long, value_name = "BYTES")]
    pub target_size: Option<u64>,
}

/// `tarn vacuum`.
#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Table path or URL.
    pub table: String,
    /// Keep files needed by versions from the last H hours (default: the table's
    /// delta.deletedFileRetentionDuration, 168 hours).
    #[arg(long, value_name = "H")]
    pub retain_hours: Option<u64>,
    /// List the files that would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a retention shorter than the table's configured minimum.
    #[arg(long)]
    pub force: bool,
}

/// A catalog name.
#[derive(Debug, Args)]
pub struct NameArg {
    /// catalog.schema.table
    pub name: String,
}

/// `tarn catalog ...`.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Create a catalog.
    Create {
        /// Catalog name.
        name: String,
        /// A description.
        #[arg(long)]
        comment: Option<String>,
    },
    /// List catalogs.
    List,
    /// Drop a catalog (with --force, also its schemas and table names; never table data).
    Drop {
        /// Catalog name.
        name: String,
        /// Drop even if it has schemas.
        #[arg(long)]
        force: bool,
    },
}

/// `tarn schema ...`.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Create a schema.
    Create {
        /// catalog.schema
        name: String,
        /// A description.
        #[arg(long)]
        comment: Option<String>,
    },
    /// List the schemas of a catalog.
    List {
        /// Catalog name.
        catalog: String,
    },
    /// Drop a schema (with --force, also its table names; never table data).
    Drop {
        /// catalog.schema
        name: String,
        /// Drop even if it has tables.
        #[arg(long)]
        force: bool,
    },
}

/// `tarn table ...`.
#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// List tables (of one schema, or of every schema).
    List {
        /// catalog.schema
        schema: Option<String>,
    },
}

/// `tarn register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// catalog.schema.table
    pub name: String,
    /// Where the Delta table is (path or URL).
    pub location: String,
    /// A description.
    #[arg(long)]
    pub comment: Option<String>,
}

/// `tarn drop`.
#[derive(Debug, Args)]
pub struct DropArgs {
    /// catalog.schema.table
    pub name: String,
    /// Also delete the data of a MANAGED table.
    #[arg(long)]
    pub purge: bool,
}

/// Token scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// List and read tables.
    Read,
    /// Also create, change and drop tables.
    Write,
    /// Also manage catalogs and schemas.
    Admin,
}

/// `tarn token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        /// A label for the token.
        name: String,
        /// What it allows.
        #[arg(long, value_enum, default_value_t = ScopeArg::Read)]
        scope: ScopeArg,
        /// Expire after this many days.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// List tokens (never their secrets).
    List,
    /// Delete a token.
    Revoke {
        /// Token name or id.
        name: String,
    },
}

/// `tarn serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback requires tokens.
    #[arg(long, default_value = "127.0.0.1:8080", env = "TARN_BIND")]
    pub bind: String,
    /// Allow registering EXTERNAL tables under this root (path or URL). Repeatable; the
    /// warehouse is always allowed.
    #[arg(long = "allow-location", value_name = "ROOT")]
    pub allow_locations: Vec<String>,
    /// Serve without tokens (only on a loopback address). Delta Sharing always needs a
    /// recipient's token.
    #[arg(long)]
    pub no_auth: bool,
    /// The URL clients reach this server at (e.g. behind a proxy), used in the file URLs
    /// Delta Sharing hands out. Default: http:// plus the Host of each request.
    #[arg(long, value_name = "URL", env = "TARN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Keep the derived Iceberg metadata (metadata JSON, manifest lists, manifests) under
    /// this root (path or URL), a folder per table, instead of in each table's
    /// `_tarn_iceberg/` folder: for tables on storage this server may read but not write.
    /// Default: beside each table.
    #[arg(long, value_name = "ROOT", env = "TARN_ICEBERG_METADATA")]
    pub iceberg_metadata: Option<String>,
    /// Serve at most this many connections at once; past it, each new client takes the place
    /// of the connection idle longest. Lowered to fit the process's open-file limit.
    #[arg(long, value_name = "N", env = "TARN_MAX_CONNECTIONS", default_value_t = tarn_server::ServerLimits::default().max_connections as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Close a connection whose request line and headers take longer than this to arrive
    /// (counted from the connection's start for its first request, from the first byte
    /// for later ones).
    #[arg(long, value_name = "SECONDS", env = "TARN_HEADER_READ_TIMEOUT", default_value_t = tarn_server::ServerLimits::default().header_read_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout: u64,
    /// Answer 408 to a request whose body takes longer than this to arrive.
    #[arg(long, value_name = "SECONDS", env = "TARN_BODY_READ_TIMEOUT", default_value_t = tarn_server::ServerLimits::default().body_read_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_read_timeout: u64,
    /// Close a connection that has no request in flight for this long between requests,
    /// or whose client reads nothing of its answer for this long.
    #[arg(long, value_name = "SECONDS", env = "TARN_IDLE_TIMEOUT", default_value_t = tarn_server::ServerLimits::default().idle_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: u64,
}

/// `tarn share ...`.
#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Create an empty share.
    Create {
        /// Share name.
        name: String,
        /// A description.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Add a catalog table to a share.
    Add {
        /// Share name.
        share: String,
        /// The catalog table (catalog.schema.table).
        table: String,
        /// The name recipients see, SCHEMA.TABLE (default: the table's own schema.table).
        #[arg(long = "as", value_name = "SCHEMA.TABLE")]
        alias: Option<String>,
        /// Also let recipients read older versions, version ranges and the change feed
        /// (otherwise only the latest version).
        #[arg(long)]
        history: bool,
    },
    /// Take a table out of a share (recipients lose it at once).
    Remove {
        /// Share name.
        share: String,
        /// The table as recipients see it: SCHEMA.TABLE.
        table: String,
    },
    /// List shares, or the tables of one share.
    List {
        /// Share name: list its tables.
        share: Option<String>,
    },
    /// Delete a share and its grants (table data is untouched).
    Drop {
        /// Share name.
        name: String,
    },
}

/// `tarn recipient ...`.
#[derive(Debug, Subcommand)]
pub enum RecipientCommand {
    /// Create a recipient and write its profile file (endpoint + token), shown only there.
    Create {
        /// Recipient name.
        name: String,
        /// A share to grant (repeatable).
        #[arg(long = "share", value_name = "SHARE", required = true)]
        shares: Vec<String>,
        /// When the token expires: a duration (90d, 12h, 30m) or a time (2027-01-01).
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// Where to write the profile file (must not exist; written with mode 0600).
        #[arg(long, value_name = "FILE")]
        profile: PathBuf,
        /// The Delta Sharing endpoint recipients reach. Default: the --server URL, or
        /// http://127.0.0.1:8080, plus /delta-sharing.
        #[arg(long, value_name = "URL", env = "TARN_SHARING_ENDPOINT")]
        endpoint: Option<String>,
    },
    /// Grant one more share to a recipient.
    Grant {
        /// Recipient name.
        name: String,
        /// Share name.
        #[arg(long, value_name = "SHARE")]
        share: String,
    },
    /// Revoke a recipient's token for good, or with --share take back one share.
    Revoke {
        /// Recipient name.
        name: String,
        /// Only take back this share.
        #[arg(long, value_name = "SHARE")]
        share: Option<String>,
    },
    /// List recipients and their shares (never their tokens).
    List,
}

/// `tarn import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The source database: postgres://user[:password]@host[:port]/db or mysql://... (also
    /// mariadb://). Passwords never appear in output.
    #[arg(env = "TARN_IMPORT_URL", hide_env_values = true)]
    pub url: String,
    /// The source table (`orders` or `schema.orders`).
    #[arg(
        long,
        value_name = "TABLE",
        conflicts_with = "query",
        required_unless_present = "query"
    )]
    pub source: Option<String>,
    /// A SELECT query to import instead of a table.
    #[arg(long, value_name = "SQL")]
    pub query: Option<String>,
    /// The Tarn table: a path or URL, or catalog.schema.table (created as a managed table
    /// on the first run).
    #[arg(long, value_name = "TABLE")]
    pub into: String,
    /// Key column(s), comma-separated or repeated: rows are upserted on it.
    #[arg(long, value_name = "COLUMN", value_delimiter = ',')]
    pub key: Vec<String>,
    /// Incremental cursor column (integer, decimal, date or timestamp that grows): later
    /// runs import only rows beyond the last imported value.
    #[arg(long, value_name = "COLUMN")]
    pub cursor: Option<String>,
    /// Without --cursor/--key: replace the table's rows, or add every row again.
    #[arg(long, value_enum)]
    pub mode: Option<ImportMode>,
    /// Add source columns the table does not have yet (otherwise a new column is an error).
    #[arg(long)]
    pub merge_schema: bool,
    /// Keep `timestamp without time zone` (PostgreSQL) / DATETIME (MySQL) naive as
    /// timestamp_ntz, instead of reading it as UTC. Some engines (e.g. DuckDB's Unity
    /// Catalog reader) cannot read timestamp_ntz yet.
    #[arg(long)]
    pub timestamp_ntz: bool,
    /// Leave a column out (repeatable), e.g. one whose type has no faithful mapping.
    #[arg(long = "exclude-column", value_name = "COLUMN")]
    pub exclude_columns: Vec<String>,
    /// Give up connecting (and logging in) to the source after this many seconds. Once
    /// connected, queries take as long as they take.
    #[arg(long, value_name = "SECONDS", default_value_t = tarn_import::CONNECT_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub connect_timeout: u64,
    /// Show the mapped schema, the row estimate and the watermark; import nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Change data capture (PostgreSQL, wal_level = logical): the first run creates a
    /// publication and a replication slot and copies the tables from the slot's snapshot;
    /// every run applies the inserts, updates, deletes and truncates since, by primary key,
    /// exactly once, and exits when caught up. --source takes several tables
    /// (comma-separated); --into is then a directory or a catalog schema (catalog.schema).
    #[arg(long, conflicts_with_all = ["query", "key", "cursor", "dry_run"])]
    pub cdc: bool,
    /// With --cdc: keep applying changes until SIGTERM or Ctrl-C (which commit what is
    /// buffered, confirm it to the slot and exit 0).
    #[arg(long, requires = "cdc")]
    pub follow: bool,
    /// With --cdc: remove the target's replication slot and publication (the tables stay).
    /// A slot that is not read any more makes PostgreSQL keep WAL until its disk fills.
    #[arg(long = "drop", requires = "cdc", conflicts_with = "follow")]
    pub drop_slot: bool,
    /// With --cdc: the replication slot's name (default: tarn_<target>_<hash>, printed).
    #[arg(long, value_name = "NAME", requires = "cdc")]
    pub slot: Option<String>,
    /// With --cdc: the publication's name (default: the slot's). Give one the tables' owner
    /// created when the importing role does not own them.
    #[arg(long, value_name = "NAME", requires = "cdc")]
    pub publication: Option<String>,
    /// With --cdc: commit a batch once it is this many seconds old.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, requires = "cdc")]
    pub batch_seconds: f64,
    /// With --cdc: commit a batch once it holds this many changes.
    #[arg(long, value_name = "N", default_value_t = 500_000, requires = "cdc")]
    pub batch_changes: u64,
}

/// `tarn import --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportMode {
    /// Add every row read.
    Append,
    /// Replace the table's rows with the rows read.
    Overwrite,
}

/// `tarn quickstart`.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Directory for the sample warehouse (must be empty or absent).
    #[arg(long, default_value = "./tarn-quickstart")]
    pub dir: PathBuf,
}

/// Parses `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}
