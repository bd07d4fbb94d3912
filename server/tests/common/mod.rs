//! What the router tests share: a catalog with schemas and tokens, one request through the
//! router, and the body of a managed table.

// Each test file uses its own subset.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tarn_catalog::{
    hash_token, open_store, CatalogStore, NewCatalog, NewSchema, Scope, SqlCatalogStore,
};
use tarn_server::{app, AppState};
use tower::ServiceExt;

pub const UC: &str = "/api/2.1/unity-catalog";

/// A SQLite catalog under `warehouse` with the catalog `main`, its `schemas`, and a token
/// `secret-NAME` for each of `tokens`.
pub async fn catalog(
    warehouse: &std::path::Path,
    schemas: &[&str],
    tokens: &[(&str, Scope)],
) -> SqlCatalogStore {
    let store = open_store(&warehouse.join("catalog.db").to_string_lossy())
        .await
        .unwrap();
    store
        .create_catalog(NewCatalog::named("main"))
        .await
        .unwrap();
    for schema in schemas {
        store
            .create_schema(NewSchema::named("main", schema))
            .await
            .unwrap();
    }
    for (name, scope) in tokens {
        store
            .create_token(name, &hash_token(&format!("secret-{name}")), *scope, None)
            .await
            .unwrap();
    }
    store
}

/// `method uri` through the router, as `token` (`secret-TOKEN`) with a JSON `body`: the
/// status and the JSON answer (`Null` when the answer is not JSON).
pub async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer secret-{t}"));
    }
    let req = match body {
        Some(b) => req
            .header("Content-Type", "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The Unity Catalog body that creates the managed table `main.shop.NAME` (id, amount, tags).
pub fn managed(name: &str) -> Value {
    json!({"name": name, "catalog_name": "main", "schema_name": "shop", "table_type": "MANAGED",
           "data_source_format": "DELTA",
           "columns": [{"name": "id", "type_text": "bigint", "nullable": false},
                       {"name": "amount", "type_text": "decimal(12,2)"},
                       {"name": "tags", "type_text": "array<string>"}]})
}
