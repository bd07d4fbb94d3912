//! The catalog commands: catalogs, schemas, table names, tokens, and `tarn serve`.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tarn_catalog::{
    hash_token, new_token_secret, NewCatalog, NewSchema, SchemaName, Scope, TableName,
};
use tarn_server::{AppState, AuthMode, ServerLimits};
use tarn_service::AllowedLocations;

use crate::cli::{
    CatalogCommand, OutputFormat, RegisterArgs, SchemaCommand, ScopeArg, ServeArgs, TableCommand,
    TokenCommand,
};
use crate::context::Context;
use crate::output::{print_records, print_report, time};
use crate::{Failure, Result};

pub async fn catalog(command: CatalogCommand, ctx: &Context, format: OutputFormat) -> Result<()> {
    let store = ctx.store().await?;
    match command {
        CatalogCommand::Create { name, comment } => {
            let c = store
                .create_catalog(NewCatalog {
                    name,
                    comment,
                    ..NewCatalog::default()
                })
                .await?;
            print_report(format, &c, || format!("created catalog `{}`", c.name))
        }
        CatalogCommand::List => {
            let all = store.list_catalogs().await?;
            print_records(format, &["name", "comment", "created_at"], &all, |c| {
                vec![
                    c.name.clone(),
                    c.comment.clone().unwrap_or_default(),
                    time(c.created_at),
                ]
            })
        }
        CatalogCommand::Drop { name, force } => {
            store.delete_catalog(&name, force).await?;
            print_report(format, &json!({"dropped": name}), || {
                format!("dropped catalog `{name}`")
            })
        }
    }
}

pub async fn schema(command: SchemaCommand, ctx: &Context, format: OutputFormat) -> Result<()> {
    let store = ctx.store().await?;
    match command {
        SchemaCommand::Create { name, comment } => {
            let n: SchemaName = name.parse()?;
            let s = store
                .create_schema(NewSchema {
                    catalog_name: n.catalog,
                    name: n.schema,
                    comment,
                    ..NewSchema::default()
                })
                .await?;
            print_report(format, &s, || format!("created schema `{name}`"))
        }
        SchemaCommand::List { catalog } => {
            let all = store.list_schemas(&catalog).await?;
            print_records(format, &["name", "comment", "created_at"], &all, |s| {
                vec![
                    format!("{}.{}", s.catalog_name, s.name),
                    s.comment.clone().unwrap_or_default(),
                    time(s.created_at),
                ]
            })
        }
        SchemaCommand::Drop { name, force } => {
            store.delete_schema(&name.parse()?, force).await?;
            print_report(format, &json!({"dropped": name}), || {
                format!("dropped schema `{name}`")
            })
        }
    }
}

pub async fn table(command: TableCommand, ctx: &Context, format: OutputFormat) -> Result<()> {
    let store = ctx.store().await?;
    let TableCommand::List { schema } = command;
    let schemas: Vec<SchemaName> = match schema {
        Some(s) => vec![s.parse()?],
        None => {
            let mut all = Vec::new();
            for c in store.list_catalogs().await? {
                for s in store.list_schemas(&c.name).await? {
                    all.push(SchemaName {
                        catalog: s.catalog_name,
                        schema: s.name,
                    });
                }
            }
            all
        }
    };
    let mut tables = Vec::new();
    for s in &schemas {
        tables.extend(store.list_tables(s).await?);
    }
    print_records(format, &["name", "type", "location"], &tables, |t| {
        vec![
            t.full_name(),
            t.table_type.as_str().to_string(),
            t.storage_location.clone(),
        ]
    })
}

pub async fn register(args: RegisterArgs, ctx: &Context, format: OutputFormat) -> Result<()> {
    let store = ctx.store().await?;
    let name: TableName = args.name.parse()?;
    let location = ctx.location(&args.location)?;
    let info = tarn_service::register_external_table(
        store.as_ref(),
        &AllowedLocations::anywhere(),
        &name,
        &location,
        args.comment,
        Default::default(),
    )
    .await?;
    print_report(format, &info, || {
        format!(
            "registered `{name}` at {} (EXTERNAL)",
            info.storage_location
        )
    })
}

pub async fn drop(
    name: &str,
    purge: bool,
    keep_data_always: bool,
    ctx: &Context,
    format: OutputFormat,
) -> Result<()> {
    let n: TableName = name.parse()?;
    let purged = purge && !keep_data_always;
    // With --server, the server deletes the files (under its own warehouse): this machine
    // never deletes a path a remote catalog names.
    let info = match ctx.remote() {
        Some(remote) => remote.drop_table(&n, purged).await?,
        None if purged => {
            let store = ctx.store().await?;
            tarn_service::drop_table(store.as_ref(), &ctx.warehouse_dir()?, &n, true).await?
        }
        None => {
            let store = ctx.store().await?;
            tarn_service::drop_table(store.as_ref(), &ctx.warehouse, &n, false).await?
        }
    };
    print_report(
        format,
        &json!({"dropped": name, "purged": purged, "location": info.storage_location}),
        || {
            if purged {
                format!(
                    "dropped `{name}` and deleted its data at {}",
                    info.storage_location
                )
            } else {
                format!(
                    "dropped `{name}`; its data stays at {}",
                    info.storage_location
                )
            }
        },
    )
}

pub async fn token(command: TokenCommand, ctx: &Context, format: OutputFormat) -> Result<()> {
    let store = ctx.store().await?;
    match command {
        TokenCommand::Create {
            name,
            scope,
            expires_in_days,
        } => {
            let scope = match scope {
                ScopeArg::Read => Scope::Read,
                ScopeArg::Write => Scope::Write,
                ScopeArg::Admin => Scope::Admin,
            };
            let secret = new_token_secret();
            let expires_at = expires_in_days
                .map(|d| chrono::Utc::now().timestamp_millis() + i64::from(d) * 86_400_000);
            let info = store
                .create_token(&name, &hash_token(&secret), scope, expires_at)
                .await?;
            print_report(
                format,
                &json!({"name": info.name, "scope": info.scope, "token": secret, "expires_at": info.expires_at}),
                || {
                    format!(
                        "{secret}\n(token `{name}`, scope {}: shown once, store it now)",
                        scope.as_str()
                    )
                },
            )
        }
        TokenCommand::List => {
            let all = store.list_tokens().await?;
            print_records(
                format,
                &["name", "scope", "created_at", "expires_at"],
                &all,
                |t| {
                    vec![
                        t.name.clone(),
                        t.scope.as_str().into(),
                        time(t.created_at),
                        t.expires_at.map(time).unwrap_or_default(),
                    ]
                },
            )
        }
        TokenCommand::Revoke { name } => {
            store.delete_token(&name).await?;
            print_report(format, &json!({"revoked": name}), || {
                format!("revoked token `{name}`")
            })
        }
    }
}

pub async fn serve(args: ServeArgs, ctx: &Context) -> Result<()> {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("TARN_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,buoyant_kernel=warn,deltalake_core=warn")
    });
    // sqlx warns about a URL parameter it does not know with the parameter's value, which
    // may be a password (`?sslpassword=`): never logged, whatever TARN_LOG says.
    for quiet in [
        "sqlx_postgres::options::parse=error",
        "sqlx_mysql::options::parse=error",
    ] {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
    let addr: SocketAddr = args.bind.parse().map_err(|_| {
        Failure(format!(
            "--bind `{}` is not an address like 127.0.0.1:8080",
            args.bind
        ))
    })?;
    if args.no_auth && !addr.ip().is_loopback() {
        return Err(Failure(format!(
            "refusing to serve without tokens on {addr}: --no-auth is only allowed on a loopback address (127.0.0.1, ::1)"
        )));
    }
    if ctx.remote().is_some() {
        return Err(Failure(
            "tarn serve uses a local catalog (--warehouse/--catalog), not --server".into(),
        ));
    }
    let limits = server_limits(&args);
    let store = ctx.store().await?;
    // Drops and creates a crash interrupted are finished before the first request.
    let finished = tarn_service::finish_pending(store.as_ref(), &ctx.warehouse_dir()?).await?;
    if !finished.is_empty() {
        eprintln!(
            "note: finished {} table step(s) a crash had interrupted",
            finished.len()
        );
    }
    let auth = if args.no_auth {
        AuthMode::Disabled
    } else {
        AuthMode::Tokens
    };
    let state = AppState::new(
        store.clone(),
        ctx.warehouse_dir()?,
        args.allow_locations,
        auth,
    )
    .and_then(|s| s.with_public_url(args.public_url.clone()))
    .and_then(|s| s.with_iceberg_metadata(args.iceberg_metadata.as_deref()))
    .map_err(Failure)?
    .with_storage_options(ctx.storage_options());
    let listener =
        tarn_server::bind(addr).map_err(|e| Failure(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().map_err(|e| Failure(e.to_string()))?;
    if auth == AuthMode::Tokens && store.list_tokens().await?.is_empty() {
        eprintln!(
            "note: no tokens exist yet; create one with `tarn token create NAME --scope read`"
        );
    }
    let token = if auth == AuthMode::Tokens {
        "<token>"
    } else {
        "none"
    };
    // The banner is advice: a closed stdout (`tarn serve | head -1`) must not stop the server.
    let banner = format!(
        "tarn serving the catalog at http://{local} (Unity Catalog API at /api/2.1/unity-catalog)\n\
         attach from DuckDB (unity_catalog extension):\n\
         \x20 CREATE SECRET (TYPE UC, TOKEN '{token}', ENDPOINT 'http://{local}', AWS_REGION 'us-east-1');\n\
         \x20 ATTACH 'main' AS uc (TYPE UC_CATALOG);\n\
         \x20 SHOW ALL TABLES;\n\
         Iceberg REST catalog at http://{local}/iceberg (warehouse = catalog name), from pyiceberg:\n\
         \x20 load_catalog(\"tarn\", type=\"rest\", uri=\"http://{local}/iceberg\", warehouse=\"main\", token=\"{token}\")\n\
         and from DuckDB (iceberg extension):\n\
         \x20 CREATE SECRET (TYPE iceberg, TOKEN '{token}');\n\
         \x20 ATTACH 'main' AS ice (TYPE iceberg, ENDPOINT 'http://{local}/iceberg');\n\
         Delta Sharing endpoint (for `tarn recipient create --endpoint`): {sharing}/delta-sharing\n",
        sharing = args
            .public_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{local}"))
    );
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|_| out.flush());
    std::mem::drop(out);
    tarn_server::serve_with(listener, state, limits)
        .await
        .map_err(|e| Failure(format!("server error: {e}")))
}

/// The connection limits of `tarn serve`, with `--max-connections` lowered to what the
/// process's open-file limit allows (after raising that limit as far as it may go).
fn server_limits(args: &ServeArgs) -> ServerLimits {
    let mut max_connections = args.max_connections as usize;
    if let Some(files) = raise_open_file_limit() {
        // Table files, the catalog database and logs need descriptors too.
        let room = files.saturating_sub(FILES_KEPT_FOR_THE_SERVER).max(1);
        if (room as usize) < max_connections {
            eprintln!(
                "note: serving at most {room} connections, not {max_connections}: the open-file limit is {files} (raise it with `ulimit -n`)"
            );
            max_connections = room as usize;
        }
    }
    ServerLimits {
        max_connections,
        header_read_timeout: Duration::from_secs(args.header_read_timeout),
        body_read_timeout: Duration::from_secs(args.body_read_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
    }
}

/// File descriptors `tarn serve` keeps for everything but client connections.
const FILES_KEPT_FOR_THE_SERVER: u64 = 64;

/// Raises the soft open-file limit to the hard one and returns it (`None` where unknown).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is 32 bits on some targets
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn raise_open_file_limit() -> Option<u64> {
    None
}
