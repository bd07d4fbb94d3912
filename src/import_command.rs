//! `tarn import`: options to [`tarn_import`], a progress line with rows/s, the report, and
//! the catalog registration of a new named table.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tarn_import::{ImportOptions, Mode, Source};
use tarn_service::NewManagedTable;
use tarn_table::{Progress, TableLocation};

use crate::cli::{ImportArgs, ImportMode, OutputFormat};
use crate::context::{catalog_name, Context};
use crate::output::print_report;
use crate::{Failure, Result};

pub async fn run(args: ImportArgs, ctx: &Context, format: OutputFormat) -> Result<()> {
    if args.cdc {
        return crate::cdc_command::run(args, ctx, format).await;
    }
    let source = match (&args.source, &args.query) {
        (Some(t), None) => Source::Table(t.clone()),
        (None, Some(q)) => Source::Query(q.clone()),
        _ => return Err(Failure("give --source TABLE or --query SQL".into())),
    };
    let (target, new_named) = resolve_into(ctx, &args.into).await?;
    let progress = Arc::new(Progress::default());
    let opts = ImportOptions {
        url: args.url.clone(),
        source,
        target,
        key: args.key.clone(),
        cursor: args.cursor.clone(),
        mode: args.mode.map(|m| match m {
            ImportMode::Append => Mode::Append,
            ImportMode::Overwrite => Mode::Overwrite,
        }),
        merge_schema: args.merge_schema,
        timestamp_ntz: args.timestamp_ntz,
        exclude: args.exclude_columns.clone(),
        progress: Some(progress.clone()),
        connect_timeout: Duration::from_secs(args.connect_timeout),
    };
    if args.dry_run {
        let plan = tarn_import::dry_run(&opts)
            .await
            .map_err(|e| Failure(e.to_string()))?;
        return print_report(format, &plan, || {
            let mut text = format!(
                "would {} `{}` from {}: about {} rows{}\ncolumns:",
                plan.mode,
                args.into,
                plan.source,
                plan.estimated_rows,
                plan.watermark
                    .as_ref()
                    .map(|w| format!(" beyond watermark {w}"))
                    .unwrap_or_default()
            );
            for c in &plan.columns {
                text.push_str(&format!(
                    "\n  {} {} -> {}",
                    c["name"].as_str().unwrap_or_default(),
                    c["source_type"].as_str().unwrap_or_default(),
                    c["type"].as_str().unwrap_or_default()
                ));
            }
            text
        });
    }
    let started = Instant::now();
    let bar = (!args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .then(|| spawn_rows_progress(progress.clone(), started));
    let result = tarn_import::run(&opts).await;
    if let Some((bar, task)) = bar {
        task.abort();
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(new) = new_named {
                new.abandon();
            }
            return Err(Failure(e.to_string()));
        }
    };
    if let (Some(new), true) = (new_named, report.committed) {
        new.register(ctx.store().await?.as_ref()).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut value = serde_json::to_value(&report).map_err(|e| Failure(e.to_string()))?;
    value["table"] = json!(args.into);
    value["seconds"] = json!((seconds * 1000.0).round() / 1000.0);
    print_report(format, &value, || {
        if !report.committed {
            return format!(
                "nothing new in {} beyond watermark {}: `{}` stays at version {}",
                report.source,
                report.previous_watermark.as_deref().unwrap_or("-"),
                args.into,
                report.version.map(|v| v.to_string()).unwrap_or_default()
            );
        }
        let rate = if seconds > 0.0 {
            report.rows_read as f64 / seconds
        } else {
            0.0
        };
        let what = match report.mode.as_str() {
            "upsert" => format!(
                "upserted {} rows ({} inserted, {} updated)",
                report.rows_read, report.inserted, report.updated
            ),
            "create" => format!("imported {} rows (table created)", report.rows_read),
            "overwrite" => format!("replaced the table's rows with {} rows", report.rows_read),
            _ => format!("appended {} rows", report.rows_read),
        };
        format!(
            "{what} into `{}` from {}: version {} in {seconds:.1} s ({rate:.0} rows/s){}",
            args.into,
            report.source,
            report.version.map(|v| v.to_string()).unwrap_or_default(),
            report
                .watermark
                .as_ref()
                .map(|w| format!("; watermark {w}"))
                .unwrap_or_default()
        )
    })
}

/// The table `into` names: a catalog name (registered, or a new managed table, planned
/// here and registered once its first commit exists) or a path/URL.
pub(crate) async fn resolve_into(
    ctx: &Context,
    into: &str,
) -> Result<(TableLocation, Option<NewManagedTable>)> {
    // A catalog name that is not registered yet becomes a managed table on the first run.
    let Some(name) = catalog_name(into) else {
        return Ok((ctx.locate(into).await?, None));
    };
    let store = ctx.store().await?;
    match store.get_table(&name).await {
        Ok(info) => Ok((ctx.location(&info.storage_location)?, None)),
        Err(e) if e.kind() == tarn_catalog::ErrorKind::NotFound => {
            if ctx.remote().is_some() {
                return Err(Failure(format!(
                    "table `{name}` does not exist: create it first (tarn create), or import into a path"
                )));
            }
            let new = NewManagedTable::plan(store.as_ref(), &ctx.warehouse_dir()?, &name).await?;
            Ok((new.location().clone(), Some(new)))
        }
        Err(e) => Err(e.into()),
    }
}

fn spawn_rows_progress(
    progress: Arc<Progress>,
    started: Instant,
) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = indicatif::ProgressBar::new_spinner();
    let b = bar.clone();
    let task = tokio::spawn(async move {
        loop {
            let rows = progress.rows.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64().max(0.001);
            b.set_message(format!(
                "{rows} rows read ({:.0} rows/s)",
                rows as f64 / secs
            ));
            b.tick();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (bar, task)
}
