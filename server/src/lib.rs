//! tarn-server: HTTP access to Tarn's catalog. [`app`] builds the axum `Router`; each
//! protocol is one folder split by concern (routes, wire types, handlers): [`unity`] (the
//! Unity Catalog REST API under `/api/2.1/unity-catalog`), [`sharing`] (Delta Sharing
//! under `/delta-sharing`) and [`iceberg`] (the Iceberg REST catalog under `/iceberg`). What they share is written once: errors become HTTP answers in
//! one place ([`error`], with each protocol's body shape), lists page the same way
//! ([`pagination`]), bearer tokens are read in one place and catalog tokens with scopes
//! guard every Unity route ([`auth`]), and tables are opened under one bound ([`limits`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let store = tarn_catalog::open_store("/tmp/wh/catalog.db").await?;
//! let state = tarn_server::AppState::new(Arc::new(store), "/tmp/wh".into(), vec![], tarn_server::AuthMode::Disabled)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! tarn_server::serve(listener, state).await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod client;
pub mod error;
pub mod hosts;
pub mod iceberg;
pub mod limits;
mod listen;
pub mod openapi;
pub mod pagination;
pub mod predicate;
pub mod sharing;
pub mod signing;
pub mod unity;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use tarn_catalog::CatalogStore;
use tarn_table::TableLocation;

use openapi::{Api, Operation};

pub use auth::AuthMode;
pub use client::RemoteCatalogStore;
pub use error::ApiError;
pub use hosts::AllowedHosts;
pub use limits::{ServerLimits, TableOpens, MAX_TABLE_OPENS};
pub use listen::{bind, LISTEN_BACKLOG};
pub use tarn_service::AllowedLocations;

/// Requests larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The catalog.
    pub store: Arc<dyn CatalogStore>,
    /// Where managed tables live.
    pub warehouse: PathBuf,
    /// Where external tables may be registered (the warehouse is always allowed).
    pub allowed: Arc<AllowedLocations>,
    /// Token checking.
    pub auth: AuthMode,
    /// The URL clients reach this server at, for the file URLs Delta Sharing hands out
    /// (`None`: taken from each request's `Host`).
    pub public_url: Option<String>,
    secret: Arc<tokio::sync::OnceCell<Vec<u8>>>,
    /// Tables' columns, until their next commit.
    pub(crate) columns: Arc<unity::ColumnsCache>,
    /// Tables' derived Iceberg histories, kept between Iceberg requests.
    pub(crate) iceberg: Arc<iceberg::Projections>,
    /// Where the derived Iceberg files go when not beside each table (a URL; `tarn serve
    /// --iceberg-metadata`).
    pub(crate) iceberg_metadata: Option<String>,
    /// The bound on tables opened at once, shared by every protocol.
    pub(crate) opens: Arc<TableOpens>,
    /// When set, only requests whose `Host` names this server are answered (see
    /// [`hosts`]); [`serve`] sets it for a server without tokens.
    pub(crate) hosts: Option<Arc<AllowedHosts>>,
    /// Object-store options (endpoint, region, ...) for every table location the server
    /// reads or registers: `tarn --storage-option KEY=VALUE serve`.
    storage_options: Arc<Vec<(String, String)>>,
}

impl AppState {
    /// How many table snapshots this server has opened (through [`TableOpens`]).
    pub fn tables_opened(&self) -> u64 {
        self.opens.opened()
    }

    /// State for a server over `store`, with managed tables under `warehouse` and external
    /// tables allowed under `allow` (plus the warehouse).
    pub fn new(
        store: Arc<dyn CatalogStore>,
        warehouse: PathBuf,
        allow: Vec<String>,
        auth: AuthMode,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(&warehouse)
            .map_err(|e| format!("cannot create the warehouse `{}`: {e}", warehouse.display()))?;
        let warehouse = warehouse.canonicalize().map_err(|e| {
            format!(
                "cannot resolve the warehouse `{}`: {e}",
                warehouse.display()
            )
        })?;
        let mut roots = vec![warehouse.to_string_lossy().to_string()];
        roots.extend(allow);
        let allowed = AllowedLocations::new(&roots)?;
        Ok(Self {
            store,
            warehouse,
            allowed: Arc::new(allowed),
            auth,
            public_url: None,
            secret: Arc::new(tokio::sync::OnceCell::new()),
            columns: Arc::new(unity::ColumnsCache::default()),
            iceberg: Arc::new(iceberg::Projections::default()),
            iceberg_metadata: None,
            opens: Arc::new(TableOpens::default()),
            hosts: None,
            storage_options: Arc::new(Vec::new()),
        })
    }

    /// Sets the object-store options applied to every table location (see
    /// [`AppState::location`]).
    pub fn with_storage_options(mut self, options: Vec<(String, String)>) -> Self {
        self.storage_options = Arc::new(options);
        self
    }

    /// A table location from the catalog or a request, with the server's storage options.
    pub fn location(&self, url: &str) -> Result<TableLocation, tarn_table::Error> {
        Ok(TableLocation::parse(url)?.with_storage_options(self.storage_options.iter().cloned()))
    }

    /// Keeps the derived Iceberg metadata under `root` (a path or URL), in a folder per
    /// table, instead of under each table's `_tarn_iceberg/`: for tables on storage the
    /// server may read but not write. A local root is created if missing.
    pub fn with_iceberg_metadata(mut self, root: Option<&str>) -> Result<Self, String> {
        // Projections kept so far write elsewhere.
        self.iceberg = Arc::new(iceberg::Projections::default());
        let Some(root) = root else {
            self.iceberg_metadata = None;
            return Ok(self);
        };
        let location = TableLocation::parse(root)
            .map_err(|e| format!("--iceberg-metadata `{root}`: {}", e.message()))?;
        let url = match location.local_path() {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| {
                    format!(
                        "cannot create the Iceberg metadata root `{}`: {e}",
                        dir.display()
                    )
                })?;
                let dir = dir.canonicalize().map_err(|e| {
                    format!(
                        "cannot resolve the Iceberg metadata root `{}`: {e}",
                        dir.display()
                    )
                })?;
                dir.to_string_lossy().to_string()
            }
            None => location.url().to_string(),
        };
        self.iceberg_metadata = Some(url);
        Ok(self)
    }

    /// Sets the URL clients reach this server at (`http://host:port`, no path), used in
    /// the pre-signed file URLs of Delta Sharing.
    pub fn with_public_url(mut self, url: Option<String>) -> Result<Self, String> {
        if let Some(u) = &url {
            let parsed =
                url::Url::parse(u).map_err(|e| format!("--public-url `{u}` is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(format!(
                    "--public-url `{u}` must be an http(s) URL like https://tarn.example.com"
                ));
            }
        }
        self.public_url = url.map(|u| u.trim_end_matches('/').to_string());
        Ok(self)
    }

    /// Answers only requests whose `Host` is one of `hosts` (DNS-rebinding protection).
    pub fn with_allowed_hosts(mut self, hosts: AllowedHosts) -> Self {
        self.hosts = Some(Arc::new(hosts));
        self
    }

    /// The key that signs Delta Sharing file URLs: kept in the catalog, so it survives
    /// restarts and every replica on the same catalog shares it.
    pub(crate) async fn sharing_secret(&self) -> Result<Vec<u8>, ApiError> {
        let store = self.store.clone();
        self.secret
            .get_or_try_init(|| async move {
                match store.sharing() {
                    Some(s) => s.secret("delta-sharing-url-key").await.map_err(Into::into),
                    None => Err(ApiError::from(tarn_catalog::Error::new(
                        tarn_catalog::ErrorKind::NotFound,
                        "this server does not share tables",
                    ))),
                }
            })
            .await
            .cloned()
    }
}

/// The answer of `GET /health`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// One route: a method on a path, its handler, and its OpenAPI operation. Each protocol
/// lists its routes as endpoints and builds its router from them ([`Endpoint::router`]);
/// the OpenAPI document is generated from the same list ([`openapi::spec`]), so no route
/// goes undocumented.
pub(crate) struct Endpoint {
    /// The method (`GET` also answers `HEAD`): the handler says it to the router; the
    /// document lists the operation under it.
    pub(crate) method: Method,
    /// The path, with `{name}` parameters.
    pub(crate) path: String,
    /// The handler, for `method` only.
    pub(crate) handler: MethodRouter<AppState>,
    /// What the document says of it: parameters, body, answers (by their types).
    pub(crate) operation: Operation,
}

impl Endpoint {
    pub(crate) fn new(
        method: Method,
        path: String,
        handler: MethodRouter<AppState>,
        operation: Operation,
    ) -> Self {
        Self {
            method,
            path,
            handler,
            operation,
        }
    }

    /// A router serving `endpoints` (several methods of one path are merged).
    pub(crate) fn router(endpoints: Vec<Endpoint>) -> Router<AppState> {
        endpoints
            .into_iter()
            .fold(Router::new(), |router, e| router.route(&e.path, e.handler))
    }
}

/// The server's own routes: health and the API description.
fn server_endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(
            Method::GET,
            "/health".into(),
            get(|| async {
                Json(Health {
                    status: "ok".into(),
                })
            }),
            Operation::new(Api::Server, "health", "Liveness").answers::<Health>(),
        ),
        Endpoint::new(
            Method::GET,
            "/openapi.json".into(),
            get(openapi::document),
            Operation::new(Api::Server, "openapi", "This document").answers::<openapi::Document>(),
        ),
    ]
}

/// Every route the server answers, protocol by protocol.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    let mut all = server_endpoints();
    all.extend(unity::endpoints());
    all.extend(sharing::endpoints());
    all.extend(iceberg::endpoints());
    all
}

/// The whole HTTP API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(
            Endpoint::router(server_endpoints())
                .layer(axum::middleware::map_response(error::unity_shaped)),
        )
        .merge(unity::routes())
        .merge(sharing::routes())
        .merge(iceberg::routes())
        .fallback(|uri: axum::http::Uri| async move {
            use axum::response::IntoResponse;
            if iceberg::owns(uri.path()) {
                iceberg::no_route().into_response_shaped(error::ErrorShape::Iceberg)
            } else {
                ApiError::not_found("no such endpoint").into_response()
            }
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            hosts::check_host,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves [`app`] on `listener` with the default [`ServerLimits`] until Ctrl-C or SIGTERM,
/// then finishes the requests in flight.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    serve_with(listener, state, ServerLimits::default()).await
}

/// Serves [`app`] on `listener` within `limits` until Ctrl-C or SIGTERM, then stops
/// accepting and finishes the requests in flight. A server without tokens answers only
/// requests addressed to it by name (see [`hosts`]).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: ServerLimits,
) -> std::io::Result<()> {
    let state = if state.auth == AuthMode::Disabled && state.hosts.is_none() {
        let hosts = AllowedHosts::for_server(listener.local_addr()?, state.public_url.as_deref());
        state.with_allowed_hosts(hosts)
    } else {
        state
    };
    listen::serve_connections(listener, app(state), limits, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
