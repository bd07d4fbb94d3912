//! The HTTP API driven through the router (`oneshot`) and once over a real socket.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{call, managed, UC};
use serde_json::{json, Value};
use tarn_catalog::{CatalogStore, NewCatalog, Scope};
use tarn_server::{AppState, AuthMode};

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    root: std::path::PathBuf,
}

async fn fixture(auth: AuthMode) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let tokens = [
        ("reader", Scope::Read),
        ("writer", Scope::Write),
        ("admin", Scope::Admin),
    ];
    let store = common::catalog(&warehouse, &["shop"], &tokens).await;
    let allowed = dir.path().join("lake");
    std::fs::create_dir_all(&allowed).unwrap();
    let state = AppState::new(
        Arc::new(store),
        warehouse,
        vec![allowed.to_string_lossy().to_string()],
        auth,
    )
    .unwrap();
    Fixture {
        root: dir.path().to_path_buf(),
        _dir: dir,
        state,
    }
}

#[tokio::test]
async fn tables_are_created_listed_and_described_with_spark_types() {
    let f = fixture(AuthMode::Tokens).await;
    let (status, t) = call(
        &f.state,
        "POST",
        &format!("{UC}/tables"),
        Some("writer"),
        Some(managed("orders")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["table_type"], "MANAGED");
    assert!(t["storage_location"]
        .as_str()
        .unwrap()
        .starts_with("file:///"));
    let cols = t["columns"].as_array().unwrap();
    assert_eq!(cols[0]["type_text"], "bigint");
    assert_eq!(cols[0]["type_name"], "LONG");
    assert_eq!(cols[0]["nullable"], false);
    assert_eq!(cols[1]["type_text"], "decimal(12,2)");
    assert_eq!(
        (
            cols[1]["type_precision"].as_i64(),
            cols[1]["type_scale"].as_i64()
        ),
        (Some(12), Some(2))
    );
    assert_eq!(cols[2]["type_text"], "array<string>");
    assert_eq!(cols[2]["position"], 2);
    let type_json: Value = serde_json::from_str(cols[0]["type_json"].as_str().unwrap()).unwrap();
    assert_eq!(
        type_json,
        json!({"name": "id", "type": "long", "nullable": false, "metadata": {}})
    );

    let (status, list) = call(
        &f.state,
        "GET",
        &format!("{UC}/tables?catalog_name=main&schema_name=shop"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["tables"][0]["name"], "orders");
    let (status, got) = call(
        &f.state,
        "GET",
        &format!("{UC}/tables/main.shop.orders"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        (status, got["table_id"].clone()),
        (StatusCode::OK, t["table_id"].clone())
    );

    let (status, creds) = call(
        &f.state,
        "POST",
        &format!("{UC}/temporary-table-credentials"),
        Some("reader"),
        Some(json!({"table_id": t["table_id"], "operation": "READ"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(creds["expiration_time"].as_i64().unwrap() > 0);
    assert_eq!(creds["url"], t["storage_location"]);
}

#[tokio::test]
async fn errors_use_the_unity_catalog_shape_and_change_nothing() {
    let f = fixture(AuthMode::Tokens).await;
    let (status, e) = call(
        &f.state,
        "GET",
        &format!("{UC}/tables/main.shop.nope"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(e["error_code"], "NOT_FOUND");
    assert!(e["message"].as_str().unwrap().contains("main.shop.nope"));

    call(
        &f.state,
        "POST",
        &format!("{UC}/tables"),
        Some("writer"),
        Some(managed("orders")),
    )
    .await;
    let (status, e) = call(
        &f.state,
        "POST",
        &format!("{UC}/tables"),
        Some("writer"),
        Some(managed("orders")),
    )
    .await;
    assert_eq!(
        (status, e["error_code"].as_str()),
        (StatusCode::CONFLICT, Some("ALREADY_EXISTS"))
    );
    let (status, _) = call(
        &f.state,
        "POST",
        &format!("{UC}/catalogs"),
        Some("admin"),
        Some(json!({"name": "main"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, e) = call(
        &f.state,
        "POST",
        &format!("{UC}/catalogs"),
        Some("admin"),
        Some(json!({"name": "a/b"})),
    )
    .await;
    assert_eq!(
        (status, e["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALID_ARGUMENT"))
    );
    let (status, _) = call(
        &f.state,
        "POST",
        &format!("{UC}/catalogs"),
        Some("admin"),
        Some(json!({"nom": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut bad = managed("typo");
    bad["columns"][0]["type_text"] = json!("bigintt");
    let (status, e) = call(
        &f.state,
        "POST",
        &format!("{UC}/tables"),
        Some("writer"),
        Some(bad),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    let (_, list) = call(
        &f.state,
        "GET",
        &format!("{UC}/tables?catalog_name=main&schema_name=shop"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(
        list["tables"].as_array().unwrap().len(),
        1,
        "failed creations left nothing behind"
    );
    let leftovers = std::fs::read_dir(f.state.warehouse.join("main/shop"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 1, "no half-created table directory");

    let big = "x".repeat(tarn_server::MAX_BODY_BYTES + 10);
    let (status, _) = call(
        &f.state,
        "POST",
        &format!("{UC}/catalogs"),
        Some("admin"),
        Some(json!({"name": big})),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn tokens_and_scopes_are_enforced() {
    let f = fixture(AuthMode::Tokens).await;
    let (status, e) = call(&f.state, "GET", &format!("{UC}/catalogs"), None, None).await;
    assert_eq!(
        (status, e["error_code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED"))
    );
    let (status, _) = call(
        &f.state,
        "GET",
        &format!("{UC}/catalogs"),
        Some("forged"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &f.state,
        "GET",
        &format!("{UC}/catalogs"),
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &f.state,
        "POST",
        &format!("{UC}/tables"),
        Some("reader"),
        Some(managed("t")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &f.state,
        "POST",
        &format!("{UC}/catalogs"),
        Some("writer"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&f.state, "GET", "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, doc) = call(&f.state, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/api/2.1/unity-catalog/tables"].is_object());
}

/// Every operation of the generated OpenAPI document reaches a handler: none answers 405
/// or falls through to the "no such endpoint" fallback.
#[tokio::test]
async fn every_documented_operation_is_served() {
    let f = fixture(AuthMode::Disabled).await;
    let doc = serde_json::to_value(tarn_server::openapi::spec()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let uri: Vec<&str> = path
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect();
            let body = (method == "post").then(|| json!({}));
            let (status, answer) =
                call(&f.state, &method.to_uppercase(), &uri.join("/"), None, body).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            let message = answer["message"]
                .as_str()
                .or(answer["error"]["message"].as_str());
            assert!(
                !matches!(
                    message,
                    Some("no such endpoint" | "no such Iceberg REST endpoint")
                ),
                "{method} {path}: {status} {answer}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 34);
}

#[tokio::test]
async fn external_tables_must_be_delta_tables_under_an_allowed_root() {
    let f = fixture(AuthMode::Disabled).await;
    let external = |loc: String| {
        json!({"name": "ext", "catalog_name": "main", "schema_name": "shop",
        "table_type": "EXTERNAL", "data_source_format": "DELTA", "storage_location": loc, "columns": []})
    };
    // A real Delta table outside the allowed roots is refused, also through `..` and symlinks.
    let outside = f.root.join("outside/t");
    let loc = tarn_table::TableLocation::parse(&outside.to_string_lossy()).unwrap();
    tarn_table::Table::create(
        &loc,
        tarn_table::CreateOptions::new(tarn_table::parse_columns("id int").unwrap()),
    )
    .await
    .unwrap();
    for attempt in [
        outside.to_string_lossy().to_string(),
        format!("{}/lake/../outside/t", f.root.display()),
        "/etc".to_string(),
    ] {
        let (status, e) = call(
            &f.state,
            "POST",
            &format!("{UC}/tables"),
            None,
            Some(external(attempt.clone())),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{attempt}: {e}");
    }
    std::os::unix::fs::symlink(&outside, f.root.join("lake/link")).unwrap();
    let (status, _) = call(
        &f.state,
        "POST",
        &format!("{UC}/tables"),
        None,
        Some(external(
            f.root.join("lake/link").to_string_lossy().to_string(),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Under the root but not a Delta table.
    std::fs::create_dir_all(f.root.join("lake/empty")).unwrap();
    let (status, e) = call(
        &f.state,
        "POST",
        &format!("{UC}/tables"),
        None,
        Some(external(
            f.root.join("lake/empty").to_string_lossy().to_string(),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    // A real table under the root is registered.
    let inside = f.root.join("lake/t");
    let loc = tarn_table::TableLocation::parse(&inside.to_string_lossy()).unwrap();
    tarn_table::Table::create(
        &loc,
        tarn_table::CreateOptions::new(tarn_table::parse_columns("id int").unwrap()),
    )
    .await
    .unwrap();
    let (status, t) = call(
        &f.state,
        "POST",
        &format!("{UC}/tables"),
        None,
        Some(external(inside.to_string_lossy().to_string())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["columns"][0]["type_text"], "int");
    // Deleting an external table keeps its data.
    let (status, _) = call(
        &f.state,
        "DELETE",
        &format!("{UC}/tables/main.shop.ext"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(inside.join("_delta_log").is_dir());
}

#[tokio::test]
async fn query_strings_and_paths_the_router_cannot_read_answer_in_each_protocols_shape() {
    // axum answers these itself, in text/plain, unless the protocol's routes reshape them.
    let f = fixture(AuthMode::Tokens).await;
    for uri in [
        format!("{UC}/catalogs?max_results=abc"),
        format!("{UC}/catalogs/%FF"),
        format!("{UC}/schemas?catalog_name=main&catalog_name=x"),
    ] {
        let (status, e) = call(&f.state, "GET", &uri, Some("reader"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(e["error_code"], "INVALID_ARGUMENT", "{uri}: {e}");
        assert!(!e["message"].as_str().unwrap().is_empty(), "{e}");
    }
    let (status, e) = call(
        &f.state,
        "GET",
        "/iceberg/v1/config?warehouse=main&warehouse=x",
        Some("reader"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["type"], "BadRequestException", "{e}");
    assert_eq!(e["error"]["code"], 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate field `warehouse`"),
        "{e}"
    );
}

#[tokio::test]
async fn pagination_follows_page_tokens_and_returns_everything_without_max_results() {
    let f = fixture(AuthMode::Disabled).await;
    for name in ["c1", "c2", "c3"] {
        f.state
            .store
            .create_catalog(NewCatalog::named(name))
            .await
            .unwrap();
    }
    let (_, all) = call(&f.state, "GET", &format!("{UC}/catalogs"), None, None).await;
    assert_eq!(all["catalogs"].as_array().unwrap().len(), 4);
    let (_, p1) = call(
        &f.state,
        "GET",
        &format!("{UC}/catalogs?max_results=3"),
        None,
        None,
    )
    .await;
    assert_eq!(p1["catalogs"].as_array().unwrap().len(), 3);
    let token = p1["next_page_token"].as_str().unwrap().to_string();
    let (_, p2) = call(
        &f.state,
        "GET",
        &format!("{UC}/catalogs?max_results=3&page_token={token}"),
        None,
        None,
    )
    .await;
    assert_eq!(p2["catalogs"][0]["name"], "main");
    assert!(p2["next_page_token"].is_null());
    let (status, _) = call(
        &f.state,
        "GET",
        &format!("{UC}/catalogs?max_results=-1"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn serves_over_a_real_socket() {
    let f = fixture(AuthMode::Disabled).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(tarn_server::serve(listener, f.state.clone()));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Without tokens, the Host must name the server (see hosts.rs).
    stream
        .write_all(
            format!(
                "GET /api/2.1/unity-catalog/catalogs HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"name\":\"main\""), "{text}");
}

#[tokio::test]
async fn columns_follow_the_latest_commit() {
    let f = fixture(AuthMode::Tokens).await;
    let (status, t) = call(
        &f.state,
        "POST",
        &format!("{UC}/tables"),
        Some("writer"),
        Some(managed("evolving")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let uri = format!("{UC}/tables/main.shop.evolving");
    let get = || call(&f.state, "GET", &uri, Some("reader"), None);
    let (_, before) = get().await;
    assert_eq!(before["columns"].as_array().unwrap().len(), 3);
    // Asked twice with no commit in between: the same answer (served from the cache).
    assert_eq!(get().await.1["columns"], before["columns"]);
    // A commit made behind the server's back (e.g. by the CLI) shows on the next request.
    let location =
        tarn_table::TableLocation::parse(t["storage_location"].as_str().unwrap()).unwrap();
    let table = tarn_table::Table::open(&location, &Default::default())
        .await
        .unwrap();
    table
        .add_columns(tarn_table::parse_columns("note string").unwrap())
        .await
        .unwrap();
    let (_, after) = get().await;
    let names: Vec<&str> = after["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "amount", "tags", "note"]);
}

/// Many list-tables requests on a cold columns cache all answer. Each request checks 16
/// tables at once and opening a table parks a thread of tokio's blocking pool while its
/// reads need other threads of that pool: 64 requests used to open 1,024 tables at once,
/// take all 512 threads, and wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_list_tables_at_once_on_a_cold_cache_all_answer() {
    let f = fixture(AuthMode::Disabled).await;
    for i in 0..20 {
        let (status, body) = call(
            &f.state,
            "POST",
            &format!("{UC}/tables"),
            None,
            Some(managed(&format!("t{i:02}"))),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // A new server state over the same catalog: nothing cached yet.
    let cold = AppState::new(
        f.state.store.clone(),
        f.root.join("wh"),
        vec![f.root.join("lake").to_string_lossy().to_string()],
        AuthMode::Disabled,
    )
    .unwrap();
    let requests: Vec<_> = (0..64)
        .map(|_| {
            let state = cold.clone();
            tokio::spawn(async move {
                call(
                    &state,
                    "GET",
                    &format!("{UC}/tables?catalog_name=main&schema_name=shop"),
                    None,
                    None,
                )
                .await
            })
        })
        .collect();
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        futures::future::join_all(requests),
    )
    .await
    .expect("every request answers within 2 minutes");
    for answer in answered {
        let (status, body) = answer.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let tables = body["tables"].as_array().unwrap();
        assert_eq!(tables.len(), 20);
        assert_eq!(tables[0]["columns"].as_array().unwrap().len(), 3, "{body}");
    }
}

#[tokio::test]
async fn the_remote_client_reads_the_servers_answers_and_refuses_malformed_ones() {
    use tarn_catalog::TableName;
    use tarn_server::RemoteCatalogStore;

    // Against the real server: what the handlers write, the client reads back whole.
    let f = fixture(AuthMode::Disabled).await;
    let (status, created) = call(
        &f.state,
        "POST",
        &format!("{UC}/tables"),
        None,
        Some(managed("orders")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(tarn_server::serve(listener, f.state.clone()));
    let remote = RemoteCatalogStore::new(&format!("http://{addr}"), None);
    let name: TableName = "main.shop.orders".parse().unwrap();
    let table = remote.get_table(&name).await.unwrap();
    assert_eq!(table.id, created["table_id"].as_str().unwrap());
    assert_eq!(table, f.state.store.get_table(&name).await.unwrap());
    let catalogs = remote.list_catalogs().await.unwrap();
    assert_eq!(catalogs, f.state.store.list_catalogs().await.unwrap());

    // Against a server whose answers lack fields: a clear error, never a default.
    let broken = axum::Router::new()
        .route(
            "/api/2.1/unity-catalog/tables/{name}",
            axum::routing::get(|| async {
                axum::Json(json!({"name": "orders", "catalog_name": "main"}))
            }),
        )
        .route(
            "/api/2.1/unity-catalog/catalogs",
            axum::routing::get(|| async { axum::Json(json!({"items": []})) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, broken).await });
    let remote = RemoteCatalogStore::new(&format!("http://{addr}"), None);
    let err = remote.get_table(&name).await.unwrap_err();
    assert!(
        err.message()
            .contains("malformed answer to GET /api/2.1/unity-catalog/tables/main.shop.orders")
            && err.message().contains("missing field `schema_name`"),
        "{}",
        err.message()
    );
    let err = remote.list_catalogs().await.unwrap_err();
    assert!(
        err.message().contains("missing field `catalogs`"),
        "{}",
        err.message()
    );
}
