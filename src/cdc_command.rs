//! `tarn import --cdc`: change data capture options to [`tarn_import::cdc`], the tables
//! (one per source), SIGTERM / Ctrl-C for `--follow`, a progress line with changes/s and
//! lag, the report, and `--drop`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tarn_import::cdc::{
    CdcOptions, CdcProgress, CdcTable, BEHIND_CHECK, BEHIND_WARN_BYTES, PART_CHANGES, SPILL_BYTES,
};
use tarn_service::NewManagedTable;
use tarn_table::TableLocation;

use crate::cli::{ImportArgs, OutputFormat};
use crate::context::Context;
use crate::import_command::resolve_into;
use crate::output::print_report;
use crate::{Failure, Result};

/// Whether `into` names a catalog schema (`catalog.schema`), for several source tables.
fn catalog_schema(into: &str) -> bool {
    !into.contains('/')
        && !into.contains("://")
        && !into.contains('\\')
        && !std::path::Path::new(into).exists()
        && into.split('.').count() == 2
        && into.split('.').all(|p| !p.is_empty())
}

pub async fn run(args: ImportArgs, ctx: &Context, format: OutputFormat) -> Result<()> {
    let Some(sources) = &args.source else {
        return Err(Failure(
            "--cdc follows tables: give --source TABLE[,TABLE...]".into(),
        ));
    };
    if !args.url.starts_with("postgres://") && !args.url.starts_with("postgresql://") {
        return Err(Failure(
            "--cdc reads PostgreSQL's logical replication: the source must be postgres://..."
                .into(),
        ));
    }
    // --mode overwrite: a new copy (and slot), even though the tables hold a position.
    let recopy = match args.mode {
        None => false,
        Some(crate::cli::ImportMode::Overwrite) => true,
        Some(crate::cli::ImportMode::Append) => {
            return Err(Failure(
                "--cdc applies changes by key: --mode append does not apply (--mode overwrite makes a new copy)".into(),
            ))
        }
    };
    if !(0.0..=3600.0).contains(&args.batch_seconds) {
        return Err(Failure("--batch-seconds must be between 0 and 3600".into()));
    }
    let sources: Vec<String> = sources
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    // One table per source: --into itself, or, for several, a table per source under it.
    let mut tables = Vec::new();
    let mut new_named: Vec<Option<NewManagedTable>> = Vec::new();
    let target_id;
    if sources.len() == 1 {
        let (location, named) = resolve_into(ctx, &args.into).await?;
        target_id = match &named {
            Some(_) => crate::context::catalog_name(&args.into)
                .map(|name| name.to_string())
                .unwrap_or_else(|| args.into.clone()),
            None if crate::context::catalog_name(&args.into).is_some() => args.into.clone(),
            None => location.url().to_string(),
        };
        tables.push(CdcTable {
            source: sources[0].clone(),
            target: location,
        });
        new_named.push(named);
    } else {
        let schema = catalog_schema(&args.into);
        target_id = if schema {
            args.into.clone()
        } else {
            TableLocation::parse(&args.into)?.url().to_string()
        };
        for s in &sources {
            let leaf = s.rsplit('.').next().unwrap_or(s);
            let into = if schema {
                format!("{}.{leaf}", args.into)
            } else {
                format!("{}/{leaf}", args.into.trim_end_matches('/'))
            };
            let (location, named) = resolve_into(ctx, &into).await?;
            tables.push(CdcTable {
                source: s.clone(),
                target: location,
            });
            new_named.push(named);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(CdcProgress::default());
    let (copied_tx, mut copied_rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = CdcOptions {
        url: args.url.clone(),
        tables: tables.clone(),
        target_id,
        slot: args.slot.clone(),
        publication: args.publication.clone(),
        follow: args.follow,
        recopy,
        batch_interval: Duration::from_secs_f64(args.batch_seconds),
        batch_changes: args.batch_changes,
        timestamp_ntz: args.timestamp_ntz,
        connect_timeout: Duration::from_secs(args.connect_timeout),
        stop: stop.clone(),
        progress: progress.clone(),
        behind_warn_bytes: std::env::var("TARN_CDC_BEHIND_WARN_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(BEHIND_WARN_BYTES),
        behind_check: std::env::var("TARN_CDC_BEHIND_CHECK_SECONDS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(BEHIND_CHECK),
        spill_bytes: std::env::var("TARN_CDC_SPILL_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(SPILL_BYTES),
        part_changes: std::env::var("TARN_CDC_PART_CHANGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(PART_CHANGES),
        copied: Some(copied_tx),
    };
    if args.drop_slot {
        let report = tarn_import::cdc::drop_slot(&opts)
            .await
            .map_err(|e| Failure(e.to_string()))?;
        return print_report(format, &report, || {
            if !report.dropped_slot && !report.dropped_publication {
                format!(
                    "nothing to drop: no replication slot {} (publication {} is not this target's or does not exist)",
                    report.slot, report.publication
                )
            } else {
                format!(
                    "dropped {}{}",
                    if report.dropped_slot {
                        format!("replication slot {}", report.slot)
                    } else {
                        "no slot".into()
                    },
                    if report.dropped_publication {
                        format!(" and publication {}", report.publication)
                    } else {
                        String::new()
                    }
                )
            }
        });
    }
    // SIGTERM and Ctrl-C stop the run cleanly (what is buffered is committed).
    let signals = {
        let stop = stop.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    // New catalog names are registered as soon as their copy has committed.
    let registrations = {
        let mut pending: Vec<Option<NewManagedTable>> = new_named;
        async move {
            let mut out: Vec<Option<NewManagedTable>> = Vec::new();
            while let Some(i) = copied_rx.recv().await {
                if let Some(n) = pending.get_mut(i).and_then(Option::take) {
                    let registered = match ctx.store().await {
                        Ok(store) => n
                            .register(store.as_ref())
                            .await
                            .map(|_| ())
                            .map_err(|e| e.detail()),
                        Err(e) => {
                            n.abandon();
                            Err(e.0)
                        }
                    };
                    if let Err(e) = registered {
                        eprintln!("warning: {e}");
                    }
                }
            }
            out.extend(pending);
            out
        }
    };
    let started = Instant::now();
    let bar = (!args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .then(|| spawn_progress(progress.clone(), started));
    let running = async {
        let r = tarn_import::cdc::run(&opts).await;
        drop(opts);
        r
    };
    let (result, unregistered) = tokio::join!(running, registrations);
    signals.abort();
    if let Some((bar, task)) = bar {
        task.abort();
        bar.finish_and_clear();
    }
    // Names whose table was never made are not kept.
    for n in unregistered.into_iter().flatten() {
        n.abandon();
    }
    // Warnings went to stderr when they arose, whatever the format (they are in the JSON
    // report too).
    let report = result.map_err(|e| Failure(e.to_string()))?;
    print_report(format, &report, || {
        let per_table: Vec<String> = report
            .tables
            .iter()
            .map(|t| {
                let copy = t
                    .snapshot_rows
                    .map(|n| format!("copied {n} rows, "))
                    .unwrap_or_default();
                format!(
                    "`{}` <- {}: {copy}{} inserted, {} updated, {} deleted{} (version {}, {})",
                    t.table,
                    t.source,
                    t.inserted,
                    t.updated,
                    t.deleted,
                    if t.truncated { ", truncated" } else { "" },
                    t.version
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into()),
                    t.lsn
                )
            })
            .collect();
        format!(
            "{} {} changes from {} (slot {}, publication {}) in {:.1} s ({:.0} changes/s); confirmed {}\n{}",
            if report.stopped == "signal" { "stopped after" } else { "caught up:" },
            report.changes,
            report.source,
            report.slot,
            report.publication,
            report.seconds,
            report.changes_per_second,
            report.confirmed_lsn,
            per_table.join("\n")
        )
    })
}

fn spawn_progress(
    progress: Arc<CdcProgress>,
    started: Instant,
) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = indicatif::ProgressBar::new_spinner();
    let b = bar.clone();
    let task = tokio::spawn(async move {
        let (mut last, mut last_at) = (0u64, Instant::now());
        let mut rate = 0.0;
        loop {
            let changes = progress.changes.load(Ordering::Relaxed);
            if last_at.elapsed() >= Duration::from_secs(1) {
                rate = (changes - last) as f64 / last_at.elapsed().as_secs_f64();
                (last, last_at) = (changes, Instant::now());
            }
            let copied = progress.copied.rows.load(Ordering::Relaxed);
            let lag_ms = progress.lag_millis.load(Ordering::Relaxed);
            let lag_bytes = progress.lag_bytes.load(Ordering::Relaxed);
            let lsn = tarn_import::cdc::Lsn(progress.durable.load(Ordering::Relaxed));
            b.set_message(format!(
                "{copied} rows copied · {changes} changes · {rate:.0} changes/s · lag {:.1} s ({:.1} MiB) · {lsn} · {:.0} s",
                lag_ms as f64 / 1000.0,
                lag_bytes as f64 / 1048576.0,
                started.elapsed().as_secs_f64()
            ));
            b.tick();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (bar, task)
}
