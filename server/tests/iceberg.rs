//! The Iceberg REST catalog (`/iceberg`) driven through the router: config, namespaces,
//! tables, load table, and its errors in Iceberg's shape.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{call, managed, UC};
use serde_json::{json, Value};
use tarn_catalog::{NewCatalog, Scope};
use tarn_server::{AppState, AuthMode};

const ICE: &str = "/iceberg/v1";

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    let tokens = [("reader", Scope::Read), ("writer", Scope::Write)];
    let store = common::catalog(&warehouse, &["shop", "zoo"], &tokens).await;
    let state = AppState::new(Arc::new(store), warehouse, vec![], AuthMode::Tokens).unwrap();
    Fixture { _dir: dir, state }
}

async fn create_table(state: &AppState, name: &str) {
    let (status, e) = call(
        state,
        "POST",
        &format!("{UC}/tables"),
        Some("writer"),
        Some(managed(name)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{e}");
}

fn iceberg_error(body: &Value) -> (&str, u64) {
    (
        body["error"]["type"].as_str().unwrap_or("<none>"),
        body["error"]["code"].as_u64().unwrap_or(0),
    )
}

#[tokio::test]
async fn config_names_the_catalog_as_prefix_and_lists_only_read_endpoints() {
    let f = fixture().await;
    let (status, config) = call(
        &f.state,
        "GET",
        &format!("{ICE}/config?warehouse=main"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["overrides"]["prefix"], "main");
    assert_eq!(config["defaults"], json!({}));
    let endpoints = config["endpoints"].as_array().unwrap();
    assert!(endpoints.contains(&json!(
        "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}"
    )));
    assert!(endpoints.iter().all(
        |e| e.as_str().unwrap().starts_with("GET ") || e.as_str().unwrap().starts_with("HEAD ")
    ));
    // The only catalog without a warehouse.
    let (status, config) = call(
        &f.state,
        "GET",
        &format!("{ICE}/config"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (status, config["overrides"]["prefix"].as_str()),
        (StatusCode::OK, Some("main"))
    );
    let (status, e) = call(
        &f.state,
        "GET",
        &format!("{ICE}/config?warehouse=nope"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (status, iceberg_error(&e)),
        (StatusCode::BAD_REQUEST, ("BadRequestException", 400))
    );
    assert!(e["error"]["message"].as_str().unwrap().contains("nope"));
    // Two catalogs: the warehouse must be named.
    f.state
        .store
        .create_catalog(NewCatalog::named("other"))
        .await
        .unwrap();
    let (status, e) = call(
        &f.state,
        "GET",
        &format!("{ICE}/config"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (status, iceberg_error(&e)),
        (StatusCode::BAD_REQUEST, ("BadRequestException", 400))
    );
}

#[tokio::test]
async fn namespaces_and_tables_are_listed_paged_and_probed() {
    let f = fixture().await;
    create_table(&f.state, "orders").await;
    create_table(&f.state, "items").await;
    let (status, list) = call(
        &f.state,
        "GET",
        &format!("{ICE}/main/namespaces"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["namespaces"], json!([["shop"], ["zoo"]]));
    let (_, page) = call(
        &f.state,
        "GET",
        &format!("{ICE}/main/namespaces?pageSize=1"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(page["namespaces"], json!([["shop"]]));
    let token = page["next-page-token"].as_str().unwrap().to_string();
    let (_, page) = call(
        &f.state,
        "GET",
        &format!("{ICE}/main/namespaces?pageSize=1&pageToken={token}"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (page["namespaces"].clone(), page["next-page-token"].clone()),
        (json!([["zoo"]]), Value::Null)
    );
    let (_, children) = call(
        &f.state,
        "GET",
        &format!("{ICE}/main/namespaces?parent=shop"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(children["namespaces"], json!([]));

    let (status, tables) = call(
        &f.state,
        "GET",
        &format!("{ICE}/main/namespaces/shop/tables"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        tables["identifiers"],
        json!([{"namespace": ["shop"], "name": "items"}, {"namespace": ["shop"], "name": "orders"}])
    );
    let (status, ns) = call(
        &f.state,
        "GET",
        &format!("{ICE}/main/namespaces/shop"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (status, ns["namespace"].clone()),
        (StatusCode::OK, json!(["shop"]))
    );
    for (uri, want) in [
        (
            format!("{ICE}/main/namespaces/shop"),
            StatusCode::NO_CONTENT,
        ),
        (format!("{ICE}/main/namespaces/nope"), StatusCode::NOT_FOUND),
        (
            format!("{ICE}/main/namespaces/shop/tables/orders"),
            StatusCode::NO_CONTENT,
        ),
        (
            format!("{ICE}/main/namespaces/shop/tables/nope"),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, _) = call(&f.state, "HEAD", &uri, Some("reader"), None).await;
        assert_eq!(status, want, "HEAD {uri}");
    }
}

#[tokio::test]
async fn errors_have_the_iceberg_shape_and_types() {
    let f = fixture().await;
    create_table(&f.state, "orders").await;
    let (status, e) = call(
        &f.state,
        "GET",
        &format!("{ICE}/main/namespaces/shop/tables/nope"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (status, iceberg_error(&e)),
        (StatusCode::NOT_FOUND, ("NoSuchTableException", 404))
    );
    assert_eq!(e["error"]["message"], "table `shop.nope` does not exist");
    let (status, e) = call(
        &f.state,
        "GET",
        &format!("{ICE}/main/namespaces/nope/tables/orders"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (status, iceberg_error(&e)),
        (StatusCode::NOT_FOUND, ("NoSuchNamespaceException", 404))
    );
    // A multi-level namespace names nothing here.
    let (status, e) = call(
        &f.state,
        "GET",
        &format!("{ICE}/main/namespaces/shop%1Fx/tables"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (status, iceberg_error(&e)),
        (StatusCode::NOT_FOUND, ("NoSuchNamespaceException", 404))
    );
    let (status, e) = call(
        &f.state,
        "GET",
        &format!("{ICE}/nope/namespaces"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (status, iceberg_error(&e)),
        (StatusCode::NOT_FOUND, ("NoSuchNamespaceException", 404))
    );
    let (status, e) = call(
        &f.state,
        "GET",
        &format!("{ICE}/main/namespaces"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, iceberg_error(&e)),
        (StatusCode::UNAUTHORIZED, ("NotAuthorizedException", 401))
    );
    let (status, e) = call(
        &f.state,
        "GET",
        &format!("{ICE}/main/namespaces"),
        Some("forged"),
        None,
    )
    .await;
    assert_eq!(
        (status, iceberg_error(&e)),
        (StatusCode::UNAUTHORIZED, ("NotAuthorizedException", 401))
    );
    // Writes: a read token gets the meaningful 406.
    let (status, e) = call(
        &f.state,
        "POST",
        &format!("{ICE}/main/namespaces/shop/tables"),
        Some("reader"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(
        (status, iceberg_error(&e)),
        (
            StatusCode::NOT_ACCEPTABLE,
            ("UnsupportedOperationException", 406)
        )
    );
    let (status, e) = call(
        &f.state,
        "DELETE",
        &format!("{ICE}/main/namespaces/shop/tables/orders"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (status, iceberg_error(&e)),
        (
            StatusCode::NOT_ACCEPTABLE,
            ("UnsupportedOperationException", 406)
        )
    );
    let (status, e) = call(
        &f.state,
        "GET",
        "/iceberg/v2/whatever",
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (status, iceberg_error(&e)),
        (StatusCode::NOT_FOUND, ("NotFoundException", 404))
    );
    // Other protocols keep their own shape.
    let (status, e) = call(&f.state, "GET", &format!("{UC}/catalogs"), None, None).await;
    assert_eq!(
        (status, e["error_code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED"))
    );
    // Nothing was created.
    let (_, tables) = call(
        &f.state,
        "GET",
        &format!("{ICE}/main/namespaces/shop/tables"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(tables["identifiers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn load_table_derives_metadata_with_field_ids_and_writes_it_under_the_table() {
    let f = fixture().await;
    create_table(&f.state, "orders").await;
    let uri = format!("{ICE}/main/namespaces/shop/tables/orders");
    let (status, loaded) = call(&f.state, "GET", &uri, Some("reader"), None).await;
    assert_eq!(status, StatusCode::OK, "{loaded}");
    let m = &loaded["metadata"];
    assert_eq!(m["format-version"], 2);
    assert_eq!(
        m["current-snapshot-id"], 1,
        "snapshot id = Delta version + 1"
    );
    assert_eq!(m["snapshots"][0]["summary"]["delta-version"], "0");
    assert_eq!(m["snapshots"][0]["summary"]["operation"], "append");
    assert_eq!(
        m["schemas"][0]["fields"],
        json!([
            {"id": 1, "name": "id", "required": true, "type": "long"},
            {"id": 2, "name": "amount", "required": false, "type": "decimal(12,2)"},
            {"id": 3, "name": "tags", "required": false,
             "type": {"type": "list", "element-id": 4, "element": "string", "element-required": false}}])
    );
    assert_eq!(m["last-column-id"], 4);
    assert_eq!(m["partition-specs"], json!([{"spec-id": 0, "fields": []}]));
    let location = loaded["metadata-location"].as_str().unwrap();
    let path = location.strip_prefix("file://").unwrap();
    assert!(path.contains("/_tarn_iceberg/"), "{path}");
    let on_disk: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(&on_disk, m);
    let list = m["snapshots"][0]["manifest-list"].as_str().unwrap();
    assert!(std::fs::read(list.strip_prefix("file://").unwrap())
        .unwrap()
        .starts_with(b"Obj\x01"));
    // Again: the same answer (kept in memory, nothing derived again).
    let (_, again) = call(&f.state, "GET", &uri, Some("reader"), None).await;
    assert_eq!(again, loaded);
    let (status, refs) = call(
        &f.state,
        "GET",
        &format!("{uri}?snapshots=refs"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (
            status,
            refs["metadata"]["snapshots"].as_array().map(Vec::len)
        ),
        (StatusCode::OK, Some(1))
    );
}
