//! The `tarn` command line: parse arguments, call tarn-table, print results.

mod allocator;
mod catalog_commands;
mod cdc_command;
mod cli;
mod context;
mod encoding;
mod import_command;
mod output;
mod quickstart;
mod sharing_commands;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tarn_table::{
    format_timestamp, parse_columns, Commit, CreateOptions, Error, InputSource, Progress,
    QueryTable, Table, TimeTravel, WriteOptions,
};

use crate::cli::{AlterChange, Cli, Command, OutputFormat, TimeTravelArgs, WriteArgs};
use crate::context::Context;
use crate::output::{print_records, print_report, print_rows};

/// A command's failure: one line for stderr.
#[derive(Debug)]
pub struct Failure(pub String);

/// What commands return.
pub type Result<T, E = Failure> = std::result::Result<T, E>;

impl From<tarn_table::Error> for Failure {
    fn from(e: tarn_table::Error) -> Self {
        Failure(e.message().to_string())
    }
}

impl From<tarn_catalog::Error> for Failure {
    fn from(e: tarn_catalog::Error) -> Self {
        Failure(e.message().to_string())
    }
}

impl From<tarn_table::deltalake::datafusion::error::DataFusionError> for Failure {
    fn from(e: tarn_table::deltalake::datafusion::error::DataFusionError) -> Self {
        tarn_table::Error::from(e).into()
    }
}

impl From<tarn_table::deltalake::arrow::error::ArrowError> for Failure {
    fn from(e: tarn_table::deltalake::arrow::error::ArrowError) -> Self {
        tarn_table::Error::from(e).into()
    }
}

impl From<tarn_service::Error> for Failure {
    /// The message and its causes: the CLI runs the step itself, and has no log to send
    /// them to.
    fn from(e: tarn_service::Error) -> Self {
        Failure(e.detail())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Query(_)) {
        allocator::keep_freed_memory_for_queries();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of the output stopped reading (`tarn query … | head`): not an error.
        Err(_) if output::stdout_closed() => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("error: {}", message.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// Runs one command.
async fn run(cli: Cli) -> Result<()> {
    let format = cli.format;
    let ctx = Context::new(
        cli.warehouse.clone(),
        cli.catalog.clone(),
        cli.storage_options.clone(),
        cli.server.clone(),
        cli.token.clone(),
    );
    match cli.command {
        Command::Create(args) => {
            let options = CreateOptions {
                columns: parse_columns(&args.schema)?,
                partition_by: args.partition_by,
                comment: args.comment,
                properties: args.properties.into_iter().collect(),
            };
            let table = match context::catalog_name(&args.table) {
                Some(name) if ctx.remote().is_some() => {
                    if !options.partition_by.is_empty() || !options.properties.is_empty() {
                        return Err(Failure(
                            "--partition-by and --property are not available with --server yet"
                                .into(),
                        ));
                    }
                    let columns: Vec<(String, String, bool)> = options
                        .columns
                        .iter()
                        .map(|f| {
                            (
                                f.name().clone(),
                                tarn_table::type_text(f.data_type()),
                                f.is_nullable(),
                            )
                        })
                        .collect();
                    let remote = ctx.remote().expect("checked");
                    let info = remote
                        .create_managed_table(&name, &columns, options.comment)
                        .await?;
                    Table::open(&ctx.locate(&info.full_name()).await?, &TimeTravel::Latest).await?
                }
                Some(name) => {
                    let store = ctx.store().await?;
                    let warehouse = ctx.warehouse_dir()?;
                    let storage = ctx.storage_options();
                    tarn_service::create_managed_table(
                        store.as_ref(),
                        &warehouse,
                        &name,
                        options,
                        storage,
                    )
                    .await?
                    .1
                }
                None => Table::create(&ctx.locate(&args.table).await?, options).await?,
            };
            let location = table.location().url().to_string();
            let report = serde_json::json!({"table": args.table, "version": table.version(), "location": location});
            print_report(format, &report, || {
                format!(
                    "created table `{}` at {location} (version {})",
                    args.table,
                    table.version()
                )
            })
        }
        Command::Write(args) => write(args, &ctx, format).await,
        Command::Delete(args) => {
            let table = Table::open(&ctx.locate(&args.table).await?, &TimeTravel::Latest).await?;
            let (_, report) = table.delete_where(&args.predicate).await?;
            print_report(format, &report, || {
                format!(
                    "deleted {} rows from `{}`: version {}",
                    report.rows, report.table, report.version
                )
            })
        }
        Command::Update(args) => {
            let table = Table::open(&ctx.locate(&args.table).await?, &TimeTravel::Latest).await?;
            let assignments = args
                .assignments
                .iter()
                .map(|a| tarn_table::mutate::parse_assignment(a))
                .collect::<tarn_table::Result<Vec<_>>>()?;
            let (_, report) = table
                .update_where(&assignments, args.predicate.as_deref())
                .await?;
            print_report(format, &report, || {
                format!(
                    "updated {} rows in `{}`: version {}",
                    report.rows, report.table, report.version
                )
            })
        }
        Command::Query(args) => {
            let at = time_travel(&args.time_travel)?;
            let mut tables = Vec::new();
            for spec in &args.tables {
                let (name, table) = match spec.split_once('=') {
                    Some((n, t)) if !n.contains("://") && !n.contains('/') => {
                        (Some(n.trim().to_string()), t.trim())
                    }
                    _ => (None, spec.as_str()),
                };
                let location = ctx.locate(table).await?;
                let name = name.unwrap_or_else(|| match context::catalog_name(table) {
                    Some(n) => n.table,
                    None => location.short_name(),
                });
                if name.is_empty() {
                    return Err(
                        Error::invalid(format!("empty table name in --table `{spec}`")).into(),
                    );
                }
                tables.push(QueryTable { name, location });
            }
            let result = Table::query(&args.sql, &tables, &at).await?;
            print_rows(result, format).await.map(|_| ())
        }
        Command::History(args) => {
            let commits = Table::history_of(&ctx.locate(&args.table).await?, args.limit).await?;
            print_records(
                format,
                &["version", "timestamp", "operation", "parameters", "metrics"],
                &commits,
                history_row,
            )
        }
        Command::Describe(args) => {
            let d = Table::describe_at(
                &ctx.locate(&args.table).await?,
                &time_travel(&args.time_travel)?,
            )
            .await?;
            print_report(format, &d, || describe_text(&d))
        }
        Command::Alter(args) => {
            let table = Table::open(&ctx.locate(&args.table).await?, &TimeTravel::Latest).await?;
            let (table, what) = match args.change {
                AlterChange::AddColumn { columns } => {
                    let fields = parse_columns(&columns)?;
                    let names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
                    (
                        table.add_columns(fields).await?,
                        format!("added column(s) {}", names.join(", ")),
                    )
                }
                AlterChange::SetProperty { properties } => {
                    let keys: Vec<String> = properties.iter().map(|(k, _)| k.clone()).collect();
                    let map: HashMap<String, String> = properties.into_iter().collect();
                    (
                        table.set_properties(map).await?,
                        format!("set {}", keys.join(", ")),
                    )
                }
            };
            let report = serde_json::json!({"table": args.table, "version": table.version(), "change": what});
            print_report(format, &report, || {
                format!("{what} on `{}`: version {}", args.table, table.version())
            })
        }
        Command::Restore(args) => {
            let at = time_travel(&args.time_travel)?;
            let table = Table::open(&ctx.locate(&args.table).await?, &TimeTravel::Latest).await?;
            let (_, report) = table.restore(&at).await?;
            print_report(format, &report, || {
                format!(
                    "restored `{}` to the content of version {}: version {}",
                    report.table, report.restored_version, report.version
                )
            })
        }
        Command::Optimize(args) => {
            let table = Table::open(&ctx.locate(&args.table).await?, &TimeTravel::Latest).await?;
            let (_, report) = table.optimize(&args.zorder, args.target_size).await?;
            print_report(format, &report, || {
                format!(
                    "optimized `{}`: {} files rewritten into {} (version {})",
                    report.table, report.files_removed, report.files_added, report.version
                )
            })
        }
        Command::Vacuum(args) => {
            let table = Table::open(&ctx.locate(&args.table).await?, &TimeTravel::Latest).await?;
            let report = table
                .vacuum(args.retain_hours, args.dry_run, args.force)
                .await?;
            print_report(format, &report, || {
                let verb = if report.dry_run {
                    "would delete"
                } else {
                    "deleted"
                };
                let mut text = format!(
                    "{verb} {} file(s) from `{}`",
                    report.files.len(),
                    report.table
                );
                for f in &report.files {
                    text.push_str(&format!("\n  {f}"));
                }
                text
            })
        }
        Command::Checkpoint(args) => {
            let table = Table::open(&ctx.locate(&args.table).await?, &TimeTravel::Latest).await?;
            table.checkpoint().await?;
            let report = serde_json::json!({"table": args.table, "version": table.version()});
            print_report(format, &report, || {
                format!(
                    "checkpoint written for `{}` at version {}",
                    args.table,
                    table.version()
                )
            })
        }
        Command::Quickstart(args) => quickstart::run(&args.dir).await,
        Command::Catalog(c) => catalog_commands::catalog(c, &ctx, format).await,
        Command::Schema(c) => catalog_commands::schema(c, &ctx, format).await,
        Command::Table(c) => catalog_commands::table(c, &ctx, format).await,
        Command::Register(a) => catalog_commands::register(a, &ctx, format).await,
        Command::Unregister(a) => catalog_commands::drop(&a.name, false, true, &ctx, format).await,
        Command::Drop(a) => catalog_commands::drop(&a.name, a.purge, false, &ctx, format).await,
        Command::Token(c) => catalog_commands::token(c, &ctx, format).await,
        Command::Serve(a) => catalog_commands::serve(a, &ctx).await,
        Command::Import(a) => import_command::run(a, &ctx, format).await,
        Command::Share(c) => sharing_commands::share(c, &ctx, format).await,
        Command::Recipient(c) => sharing_commands::recipient(c, &ctx, format).await,
    }
}

async fn write(args: WriteArgs, ctx: &Context, format: OutputFormat) -> Result<()> {
    let location = ctx.locate(&args.table).await?;
    let input_format = args.input_format.map(|f| match f {
        cli::InputFormat::Csv => tarn_table::InputFormat::Csv,
        cli::InputFormat::Json => tarn_table::InputFormat::Json,
        cli::InputFormat::Parquet => tarn_table::InputFormat::Parquet,
    });
    let mut sources = Vec::new();
    for file in &args.files {
        if file.as_os_str() == "-" {
            let f = input_format.ok_or_else(|| {
                Error::invalid("reading standard input needs --input-format csv|json|parquet")
            })?;
            sources.push(InputSource::stdin(f)?);
        } else {
            sources.push(InputSource::file(file, input_format)?);
        }
    }
    let progress = Arc::new(Progress::default());
    let bar = (!args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .then(|| spawn_progress_bar(progress.clone()));
    let options = WriteOptions {
        mode: match args.mode {
            cli::WriteMode::Append => tarn_table::WriteMode::Append,
            cli::WriteMode::Overwrite => tarn_table::WriteMode::Overwrite,
        },
        merge_schema: args.merge_schema,
        upsert_on: args.upsert_on,
        replace_where: args.replace_where,
        create_if_missing: args.create,
        partition_by: args.partition_by,
        progress: Some(progress),
        ..WriteOptions::default()
    };
    let result = Table::write(&location, sources, options).await;
    if let Some((bar, task)) = bar {
        task.abort();
        bar.finish_and_clear();
    }
    let (_, report) = result?;
    print_report(format, &report, || {
        let mut text = match (report.inserted, report.updated) {
            (Some(i), Some(u)) => format!(
                "upserted {} rows into `{}` ({i} inserted, {u} updated): version {}",
                report.rows, report.table, report.version
            ),
            _ => format!(
                "wrote {} rows to `{}`: version {}",
                report.rows, report.table, report.version
            ),
        };
        if report.created {
            text.push_str(" (table created)");
        }
        if !report.added_columns.is_empty() {
            text.push_str(&format!(
                " (added columns: {})",
                report.added_columns.join(", ")
            ));
        }
        text
    })
}

fn spawn_progress_bar(
    progress: Arc<Progress>,
) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:30}] {bytes}/{total_bytes} {msg} ({eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let b = bar.clone();
    let task = tokio::spawn(async move {
        loop {
            b.set_length(progress.bytes_total.load(Ordering::Relaxed));
            b.set_position(progress.bytes_read.load(Ordering::Relaxed));
            b.set_message(format!("{} rows", progress.rows.load(Ordering::Relaxed)));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (bar, task)
}

fn time_travel(args: &TimeTravelArgs) -> Result<TimeTravel> {
    Ok(TimeTravel::from_options(
        args.version,
        args.as_of.as_deref(),
    )?)
}

fn history_row(c: &Commit) -> Vec<String> {
    vec![
        c.version.to_string(),
        format_timestamp(&c.timestamp),
        c.operation.clone(),
        serde_json::Value::Object(c.parameters.clone()).to_string(),
        serde_json::Value::Object(c.metrics.clone()).to_string(),
    ]
}

fn describe_text(d: &tarn_table::TableDescription) -> String {
    let mut t = String::new();
    t.push_str(&format!("location:   {}\n", d.location));
    t.push_str(&format!("version:    {}\n", d.version));
    t.push_str(&format!("id:         {}\n", d.id));
    if let Some(c) = &d.comment {
        t.push_str(&format!("comment:    {c}\n"));
    }
    if let Some(c) = &d.created_at {
        t.push_str(&format!("created:    {c}\n"));
    }
    t.push_str(&format!(
        "files:      {} ({} bytes)\n",
        d.num_files, d.size_bytes
    ));
    t.push_str(&format!(
        "protocol:   reader {}, writer {}",
        d.min_reader_version, d.min_writer_version
    ));
    if !d.writer_features.is_empty() {
        t.push_str(&format!(" (features: {})", d.writer_features.join(", ")));
    }
    t.push('\n');
    t.push_str(&format!(
        "partitions: {}\n",
        if d.partition_columns.is_empty() {
            "(none)".to_string()
        } else {
            d.partition_columns.join(", ")
        }
    ));
    t.push_str("columns:\n");
    for c in &d.schema {
        t.push_str(&format!(
            "  {} {}{}\n",
            c.name,
            c.type_text,
            if c.nullable { "" } else { " not null" }
        ));
    }
    if !d.properties.is_empty() {
        t.push_str("properties:\n");
        for (k, v) in &d.properties {
            t.push_str(&format!("  {k}={v}\n"));
        }
    }
    t.trim_end().to_string()
}
