//! `tarn share` and `tarn recipient`: who may read which tables over Delta Sharing.

use std::io::Write as _;
use std::path::Path;

use serde_json::json;
use tarn_catalog::{hash_token, new_token_secret, NewSharedTable, SharingStore, TableName};
use tarn_table::Table;

use crate::cli::{OutputFormat, RecipientCommand, ShareCommand};
use crate::context::Context;
use crate::output::{print_records, print_report, time};
use crate::{Failure, Result};

async fn with_sharing<T>(
    ctx: &Context,
    run: impl AsyncFnOnce(&dyn SharingStore) -> Result<T>,
) -> Result<T> {
    let store = ctx.store().await?;
    let sharing = store.sharing().ok_or_else(|| {
        Failure(
            "shares and recipients are managed on the catalog itself: run this where the catalog is (--warehouse or --catalog), not with --server".into(),
        )
    })?;
    run(sharing).await
}

pub async fn share(command: ShareCommand, ctx: &Context, format: OutputFormat) -> Result<()> {
    let store = ctx.store().await?;
    match command {
        ShareCommand::Create { name, comment } => {
            let s =
                with_sharing(ctx, async |sh| Ok(sh.create_share(&name, comment).await?)).await?;
            print_report(format, &s, || format!("created share `{}`", s.name))
        }
        ShareCommand::Add {
            share,
            table,
            alias,
            history,
        } => {
            let name: TableName = table.parse().map_err(|_| {
                Failure(format!(
                    "`{table}` is not a catalog table name: give catalog.schema.table (register a path first with `tarn register`)"
                ))
            })?;
            let info = store.get_table(&name).await?;
            let location = ctx.location(&info.storage_location)?;
            if Table::open_if_exists(&location).await?.is_none() {
                return Err(Failure(format!(
                    "`{table}` has no Delta table at {}: write to it before sharing it",
                    info.storage_location
                )));
            }
            let (schema_name, table_name) = match &alias {
                None => (info.schema_name.clone(), info.name.clone()),
                Some(a) => match a.split_once('.') {
                    Some((s, t)) if !s.is_empty() && !t.is_empty() && !t.contains('.') => {
                        (s.to_string(), t.to_string())
                    }
                    _ => {
                        return Err(Failure(format!(
                            "--as `{a}` must be SCHEMA.TABLE, the name recipients will see"
                        )))
                    }
                },
            };
            let added = with_sharing(ctx, async |sh| {
                Ok(sh
                    .add_shared_table(NewSharedTable {
                        share_name: share.clone(),
                        schema_name,
                        name: table_name,
                        table_id: info.id.clone(),
                        history,
                    })
                    .await?)
            })
            .await?;
            print_report(format, &added, || {
                format!(
                    "shared `{table}` as `{share}.{}.{}`{}",
                    added.schema_name,
                    added.name,
                    if history {
                        " with its history"
                    } else {
                        " (latest version only; --history shares older versions too)"
                    }
                )
            })
        }
        ShareCommand::Remove { share, table } => {
            let (schema_name, table_name) = table.split_once('.').ok_or_else(|| {
                Failure(format!(
                    "`{table}` must be SCHEMA.TABLE as recipients see it (see `tarn share list {share}`)"
                ))
            })?;
            with_sharing(ctx, async |sh| {
                Ok(sh
                    .remove_shared_table(&share, schema_name, table_name)
                    .await?)
            })
            .await?;
            print_report(format, &json!({"share": share, "removed": table}), || {
                format!("removed `{table}` from share `{share}`")
            })
        }
        ShareCommand::List { share: None } => {
            let shares = with_sharing(ctx, async |sh| Ok(sh.list_shares().await?)).await?;
            let mut rows = Vec::new();
            for s in &shares {
                let tables =
                    with_sharing(ctx, async |sh| Ok(sh.list_shared_tables(&s.name).await?)).await?;
                rows.push(json!({
                    "name": s.name, "tables": tables.len(), "comment": s.comment,
                    "created_at": time(s.created_at),
                }));
            }
            print_records(
                format,
                &["name", "tables", "comment", "created_at"],
                &rows,
                |r| {
                    ["name", "tables", "comment", "created_at"]
                        .iter()
                        .map(|k| match &r[*k] {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Null => String::new(),
                            v => v.to_string(),
                        })
                        .collect()
                },
            )
        }
        ShareCommand::List { share: Some(share) } => {
            let tables =
                with_sharing(ctx, async |sh| Ok(sh.list_shared_tables(&share).await?)).await?;
            let mut rows = Vec::new();
            for t in &tables {
                let source = match store.get_table_by_id(&t.table_id).await {
                    Ok(info) => info.full_name(),
                    Err(_) => "(dropped)".into(),
                };
                rows.push(json!({
                    "name": format!("{share}.{}.{}", t.schema_name, t.name),
                    "table": source,
                    "history": t.history,
                }));
            }
            print_records(format, &["name", "table", "history"], &rows, |r| {
                vec![
                    r["name"].as_str().unwrap_or_default().to_string(),
                    r["table"].as_str().unwrap_or_default().to_string(),
                    r["history"].to_string(),
                ]
            })
        }
        ShareCommand::Drop { name } => {
            with_sharing(ctx, async |sh| Ok(sh.delete_share(&name).await?)).await?;
            print_report(format, &json!({"dropped": name}), || {
                format!("dropped share `{name}` (its recipients lost access to it)")
            })
        }
    }
}

/// Parses `--expires`: `90d`, `12h`, `30m`, or a time; must be in the future.
fn parse_expiry(text: &str, now_ms: i64) -> Result<i64> {
    let t = text.trim();
    let unit = |suffix: char, ms: i64| -> Option<i64> {
        t.strip_suffix(suffix)
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n > 0)
            .and_then(|n| n.checked_mul(ms))
            .map(|d| now_ms.saturating_add(d))
    };
    let at = unit('d', 86_400_000)
        .or_else(|| unit('h', 3_600_000))
        .or_else(|| unit('m', 60_000));
    let at = match at {
        Some(at) => at,
        None => tarn_table::parse_timestamp(t)
            .map_err(|_| {
                Failure(format!(
                    "--expires `{t}`: give a duration (90d, 12h, 30m) or a time (2027-01-01, RFC 3339)"
                ))
            })?
            .timestamp_millis(),
    };
    if at <= now_ms {
        return Err(Failure(format!("--expires `{t}` is in the past")));
    }
    Ok(at)
}

fn default_endpoint(ctx: &Context) -> String {
    let base = ctx
        .server_url()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    format!("{}/delta-sharing", base.trim_end_matches('/'))
}

fn check_endpoint(endpoint: &str) -> Result<String> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| Failure(format!("--endpoint `{endpoint}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Failure(format!(
            "--endpoint `{endpoint}` must be an http(s) URL like https://tarn.example.com/delta-sharing"
        )));
    }
    Ok(endpoint.trim_end_matches('/').to_string())
}

/// Creates `path` for writing (never overwriting), readable by its owner only.
fn create_private_file(path: &Path) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure(format!(
                "profile file `{}` already exists: choose another path (a profile holds a secret token; Tarn never overwrites one)",
                path.display()
            ))
        } else {
            Failure(format!(
                "cannot create the profile file `{}`: {e}",
                path.display()
            ))
        }
    })
}

pub async fn recipient(
    command: RecipientCommand,
    ctx: &Context,
    format: OutputFormat,
) -> Result<()> {
    match command {
        RecipientCommand::Create {
            name,
            shares,
            expires,
            profile,
            endpoint,
        } => {
            let now = chrono::Utc::now().timestamp_millis();
            let expires_at = expires
                .as_deref()
                .map(|e| parse_expiry(e, now))
                .transpose()?;
            let endpoint = check_endpoint(&endpoint.unwrap_or_else(|| default_endpoint(ctx)))?;
            // Reserve the profile path first: a recipient whose token was never written
            // anywhere would be useless, so a bad path must stop everything.
            let mut file = create_private_file(&profile)?;
            let secret = new_token_secret();
            let created = with_sharing(ctx, async |sh| {
                Ok(sh
                    .create_recipient(&name, &hash_token(&secret), expires_at, &shares)
                    .await?)
            })
            .await;
            let info = match created {
                Ok(info) => info,
                Err(e) => {
                    drop(file);
                    let _ = std::fs::remove_file(&profile);
                    return Err(e);
                }
            };
            let mut body = json!({
                "shareCredentialsVersion": 1,
                "endpoint": endpoint,
                "bearerToken": secret,
            });
            if let Some(at) = expires_at {
                body["expirationTime"] = json!(time(at));
            }
            let text = serde_json::to_string_pretty(&body).expect("json") + "\n";
            if let Err(e) = file
                .write_all(text.as_bytes())
                .and_then(|_| file.sync_all())
            {
                // The token is lost with the file: take the recipient back out.
                let _ = with_sharing(ctx, async |sh| Ok(sh.revoke_recipient(&name).await?)).await;
                let _ = std::fs::remove_file(&profile);
                return Err(Failure(format!(
                    "cannot write the profile file `{}`: {e} (recipient `{name}` was revoked)",
                    profile.display()
                )));
            }
            print_report(
                format,
                &json!({
                    "name": info.name, "shares": info.shares, "profile": profile,
                    "endpoint": endpoint, "expires_at": info.expires_at.map(time),
                }),
                || {
                    format!(
                        "created recipient `{name}` with access to {}; profile written to {} (endpoint {endpoint}{})\nhand that file to the recipient: it holds their token, which Tarn does not keep",
                        info.shares.join(", "),
                        profile.display(),
                        info.expires_at
                            .map(|t| format!(", expires {}", time(t)))
                            .unwrap_or_default()
                    )
                },
            )
        }
        RecipientCommand::Grant { name, share } => {
            let r = with_sharing(ctx, async |sh| Ok(sh.grant_share(&name, &share).await?)).await?;
            print_report(format, &r, || {
                format!("`{name}` now reads: {}", r.shares.join(", "))
            })
        }
        RecipientCommand::Revoke {
            name,
            share: Some(share),
        } => {
            let r = with_sharing(ctx, async |sh| Ok(sh.revoke_share(&name, &share).await?)).await?;
            print_report(format, &r, || {
                format!("took share `{share}` back from `{name}`")
            })
        }
        RecipientCommand::Revoke { name, share: None } => {
            let r = with_sharing(ctx, async |sh| Ok(sh.revoke_recipient(&name).await?)).await?;
            print_report(format, &r, || {
                format!("revoked recipient `{name}`: its token no longer works")
            })
        }
        RecipientCommand::List => {
            let all = with_sharing(ctx, async |sh| Ok(sh.list_recipients().await?)).await?;
            print_records(
                format,
                &["name", "shares", "status", "created_at", "expires_at"],
                &all,
                |r| {
                    let now = chrono::Utc::now().timestamp_millis();
                    let status = if r.revoked_at.is_some() {
                        "revoked"
                    } else if !r.is_active(now) {
                        "expired"
                    } else {
                        "active"
                    };
                    vec![
                        r.name.clone(),
                        r.shares.join(","),
                        status.into(),
                        time(r.created_at),
                        r.expires_at.map(time).unwrap_or_default(),
                    ]
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_takes_durations_and_times() {
        let now = 1_000_000;
        assert_eq!(parse_expiry("2d", now).unwrap(), now + 2 * 86_400_000);
        assert_eq!(parse_expiry("12h", now).unwrap(), now + 12 * 3_600_000);
        assert_eq!(parse_expiry("30m", now).unwrap(), now + 30 * 60_000);
        assert!(parse_expiry("2099-01-01", now).is_ok());
        assert!(parse_expiry("1970-01-01", now).is_err());
        assert!(parse_expiry("soon", now).is_err());
        assert!(parse_expiry("0d", now).is_err());
    }
}
