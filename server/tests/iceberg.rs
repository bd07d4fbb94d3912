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

/// The storage location of `main.shop.<name>`, as the Unity Catalog API gives it.
async fn table_location(state: &AppState, name: &str) -> tarn_table::TableLocation {
    let (_, info) = call(
        state,
        "GET",
        &format!("{UC}/tables/main.shop.{name}"),
        Some("reader"),
        None,
    )
    .await;
    tarn_table::TableLocation::parse(info["storage_location"].as_str().unwrap()).unwrap()
}

/// Appends `ids` to the table at `location` (a `tarn write` of a CSV file).
async fn append(location: &tarn_table::TableLocation, dir: &std::path::Path, ids: &[i64]) {
    let csv = dir.join("rows.csv");
    let rows: String = ids.iter().map(|i| format!("{i},{i}.50\n")).collect();
    std::fs::write(&csv, format!("id,amount\n{rows}")).unwrap();
    let input = tarn_table::InputSource::file(&csv, None).unwrap();
    tarn_table::Table::write(location, vec![input], tarn_table::WriteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn new_versions_are_derived_from_their_commits_alone_as_a_fresh_server_derives_them() {
    let f = fixture().await;
    create_table(&f.state, "orders").await;
    let uri = format!("{ICE}/main/namespaces/shop/tables/orders");
    let (status, first) = call(&f.state, "GET", &uri, Some("reader"), None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let location = table_location(&f.state, "orders").await;
    let dir = f._dir.path();
    for k in 0..3 {
        append(&location, dir, &[3 * k, 3 * k + 1, 3 * k + 2]).await;
    }
    let table = tarn_table::Table::open(&location, &tarn_table::TimeTravel::Latest)
        .await
        .unwrap();
    table.delete_where("id = 4").await.unwrap();

    // Versions 1 to 4 are derived from their commits: no snapshot of the table is opened.
    let opened = f.state.tables_opened();
    let (status, fast) = call(&f.state, "GET", &uri, Some("reader"), None).await;
    assert_eq!(status, StatusCode::OK, "{fast}");
    assert_eq!(f.state.tables_opened(), opened, "a table was opened");
    assert_eq!(fast["metadata"]["current-snapshot-id"], 5);
    assert_eq!(
        fast["metadata"]["snapshots"][4]["summary"]["delta-operation"],
        "DELETE"
    );

    // A new server derives the whole history from the table: the same answer.
    let store = tarn_catalog::open_store(&dir.join("wh/catalog.db").to_string_lossy())
        .await
        .unwrap();
    let fresh = AppState::new(Arc::new(store), dir.join("wh"), vec![], AuthMode::Tokens).unwrap();
    let (status, again) = call(&fresh, "GET", &uri, Some("reader"), None).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert!(fresh.tables_opened() > 0);
    assert_eq!(again, fast);

    // The table replaced at its location by one with more versions: its commits after
    // version 4 are not a continuation of what was derived; the history starts over.
    let old_uuid = fast["metadata"]["table-uuid"].clone();
    std::fs::remove_dir_all(location.local_path().unwrap()).unwrap();
    tarn_table::Table::create(
        &location,
        tarn_table::CreateOptions::new(
            tarn_table::parse_columns("id bigint, amount decimal(12,2), tags array<string>")
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    for k in 0..6 {
        append(&location, dir, &[100 + k]).await;
    }
    let (status, replaced) = call(&f.state, "GET", &uri, Some("reader"), None).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    let m = &replaced["metadata"];
    assert_ne!(
        m["table-uuid"], old_uuid,
        "the old table's history was continued"
    );
    assert_eq!(m["current-snapshot-id"], 7);
    assert_eq!(m["snapshots"].as_array().unwrap().len(), 7);
    assert_eq!(m["snapshots"][6]["summary"]["total-records"], "6");
}

/// A `snapshots=refs` answer names the same metadata file as the full one, written before
/// the answer (a client may read the file): the first load of a table and the first load
/// after a new version alike. The answers kept between loads follow new versions.
#[tokio::test]
async fn a_refs_load_names_a_metadata_file_that_exists_with_every_snapshot() {
    let f = fixture().await;
    create_table(&f.state, "orders").await;
    let uri = format!("{ICE}/main/namespaces/shop/tables/orders");
    let location = table_location(&f.state, "orders").await;
    let dir = f._dir.path();
    append(&location, dir, &[1, 2]).await;
    for round in 0..2 {
        let refs_uri = format!("{uri}?snapshots=refs");
        let (status, refs) = call(&f.state, "GET", &refs_uri, Some("reader"), None).await;
        assert_eq!(status, StatusCode::OK, "{refs}");
        let m = &refs["metadata"];
        assert_eq!(m["current-snapshot-id"], 2 + round);
        assert_eq!(m["snapshots"].as_array().map(Vec::len), Some(1));
        let path = refs["metadata-location"].as_str().unwrap();
        let path = path.strip_prefix("file://").unwrap();
        let file = std::fs::read(path).unwrap_or_else(|e| panic!("round {round}: {path}: {e}"));
        let on_disk: Value = serde_json::from_slice(&file).unwrap();
        assert_eq!(on_disk["current-snapshot-id"], 2 + round);
        assert_eq!(
            on_disk["snapshots"].as_array().map(Vec::len),
            Some(2 + round as usize)
        );
        let (status, all) = call(&f.state, "GET", &uri, Some("reader"), None).await;
        assert_eq!(status, StatusCode::OK, "{all}");
        assert_eq!(all["metadata-location"], refs["metadata-location"]);
        assert_eq!(all["metadata"], on_disk);
        let (_, again) = call(&f.state, "GET", &refs_uri, Some("reader"), None).await;
        assert_eq!(again, refs);
        append(&location, dir, &[10 + round]).await;
    }
}

/// A GET of `uri` as the reader, with `accept` as its `Accept-Encoding`: the
/// `Content-Encoding` of the answer and its bytes.
async fn get_encoded(
    state: &AppState,
    uri: &str,
    accept: Option<&str>,
) -> (Option<String>, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder()
        .uri(uri)
        .header("Authorization", "Bearer secret-reader");
    if let Some(a) = accept {
        req = req.header("Accept-Encoding", a);
    }
    let req = req.body(axum::body::Body::empty()).unwrap();
    let resp = tarn_server::app(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["vary"], "accept-encoding");
    let encoding = resp
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (encoding, bytes.to_vec())
}

/// A large loadTable answer goes gzipped to the clients that accept gzip, and plain to the
/// others; a small answer always goes plain.
#[tokio::test]
async fn a_large_load_answer_is_gzipped_for_clients_that_accept_it() {
    use std::io::Read;
    let f = fixture().await;
    create_table(&f.state, "orders").await;
    let uri = format!("{ICE}/main/namespaces/shop/tables/orders");
    let (encoding, small) = get_encoded(&f.state, &uri, Some("gzip, deflate")).await;
    assert_eq!(encoding, None, "a small answer is sent plain");
    assert!(small.len() < 16 * 1024);

    // A history long enough for an answer over 16 KiB.
    let location = table_location(&f.state, "orders").await;
    for k in 0..40 {
        append(&location, f._dir.path(), &[k]).await;
    }
    let (encoding, plain) = get_encoded(&f.state, &uri, None).await;
    assert_eq!(encoding, None);
    assert!(plain.len() > 16 * 1024, "{}", plain.len());
    let loaded: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(loaded["metadata"]["current-snapshot-id"], 41);
    for accept in ["gzip, deflate", "br;q=1.0, GZIP;q=0.5", "*"] {
        let (encoding, zipped) = get_encoded(&f.state, &uri, Some(accept)).await;
        assert_eq!(encoding.as_deref(), Some("gzip"), "{accept}");
        assert!(zipped.len() < plain.len() / 4, "{accept}: {}", zipped.len());
        let mut unzipped = vec![];
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert!(unzipped == plain, "{accept}: not the plain answer");
    }
    for accept in ["gzip;q=0", "deflate, br", "identity"] {
        let (encoding, body) = get_encoded(&f.state, &uri, Some(accept)).await;
        assert_eq!((encoding, body == plain), (None, true), "{accept}");
    }
}

/// Every file under `dir`, relative to it, sorted.
fn walkdir(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// What a failed listing or write of the Iceberg files beside a table suggests.
const HINT: &str = "tarn serve --iceberg-metadata ROOT";

/// Opens tables for a projection, without a bound.
struct Opens;

impl tarn_iceberg::OpenTable for Opens {
    fn open<'a>(
        &'a self,
        location: &'a tarn_table::TableLocation,
        at: &'a tarn_table::TimeTravel,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = tarn_table::Result<tarn_table::Table>> + Send + 'a>,
    > {
        Box::pin(tarn_table::Table::open(location, at))
    }
}

#[tokio::test]
async fn metadata_goes_under_the_iceberg_metadata_root_when_the_table_cannot_take_it() {
    let f = fixture().await;
    create_table(&f.state, "orders").await;
    let uri = format!("{ICE}/main/namespaces/shop/tables/orders");
    let location = table_location(&f.state, "orders").await;
    let table_dir = location.local_path().unwrap();
    // The table's storage cannot take the folder (here: a file in its place).
    std::fs::write(table_dir.join("_tarn_iceberg"), b"not a folder").unwrap();
    let (status, e) = call(&f.state, "GET", &uri, Some("reader"), None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{e}");
    // The logged cause names the folder and the way out.
    let latest = tarn_table::Table::open(&location, &tarn_table::TimeTravel::Latest)
        .await
        .unwrap();
    let err = tarn_iceberg::Projection::new(&latest, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/_tarn_iceberg/") && err.contains(HINT),
        "{err}"
    );
    // A write that fails says the same: here the folder of the manifests is a file.
    std::fs::remove_file(table_dir.join("_tarn_iceberg")).unwrap();
    let (status, _) = call(&f.state, "GET", &uri, Some("reader"), None).await;
    assert_eq!(status, StatusCode::OK);
    append(&location, f._dir.path(), &[7]).await;
    let manifests = walkdir(&table_dir)
        .into_iter()
        .find(|p| p.contains("/versions/"))
        .map(|p| {
            table_dir
                .join(p)
                .parent()
                .unwrap()
                .with_file_name("manifests")
        })
        .unwrap();
    let _ = std::fs::remove_dir_all(&manifests);
    std::fs::write(&manifests, b"not a folder").unwrap();
    let latest = tarn_table::Table::open(&location, &tarn_table::TimeTravel::Latest)
        .await
        .unwrap();
    let mut p = tarn_iceberg::Projection::new(&latest, None).await.unwrap();
    let err = p.catch_up(&latest, &Opens).await.unwrap_err().to_string();
    assert!(
        err.contains("cannot write the Iceberg metadata file")
            && err.contains("/manifests/")
            && err.contains(HINT),
        "{err}"
    );
    std::fs::remove_dir_all(table_dir.join("_tarn_iceberg")).unwrap();
    std::fs::write(table_dir.join("_tarn_iceberg"), b"not a folder").unwrap();
    let before = walkdir(&table_dir);

    // The same server with a metadata root: the files go there, the table is untouched.
    let root = f._dir.path().join("iceberg-meta");
    let state = f
        .state
        .clone()
        .with_iceberg_metadata(Some(root.to_str().unwrap()))
        .unwrap();
    let (status, loaded) = call(&state, "GET", &uri, Some("reader"), None).await;
    assert_eq!(status, StatusCode::OK, "{loaded}");
    let metadata = loaded["metadata-location"].as_str().unwrap();
    let root = root.canonicalize().unwrap();
    let path = std::path::Path::new(metadata.strip_prefix("file://").unwrap());
    assert!(path.starts_with(&root), "{metadata}");
    let on_disk: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(on_disk, loaded["metadata"]);
    let list = loaded["metadata"]["snapshots"][0]["manifest-list"]
        .as_str()
        .unwrap();
    assert!(std::path::Path::new(list.strip_prefix("file://").unwrap()).starts_with(&root));
    let files = walkdir(&root);
    assert!(
        files.iter().any(|f| f.contains("/manifests/"))
            && files.iter().any(|f| f.contains("/versions/")),
        "{files:?}"
    );
    assert_eq!(walkdir(&table_dir), before, "the table's folder changed");
    // A root that cannot be made is refused up front.
    let bad = f._dir.path().join("wh/catalog.db/sub");
    let refused = f
        .state
        .clone()
        .with_iceberg_metadata(Some(bad.to_str().unwrap()))
        .unwrap_err();
    assert!(
        refused.contains("cannot create the Iceberg metadata root"),
        "{refused}"
    );
}
