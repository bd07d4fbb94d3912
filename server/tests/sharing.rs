//! Delta Sharing through the router: what the signed file URLs guarantee (tampering,
//! expiry, revocation, a key that survives restarts), expired tokens, paging, version
//! ranges and `startingTimestamp`. The python client drives the rest (tests/interop).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tarn_catalog::{hash_token, open_store, NewCatalog, NewSchema, NewSharedTable, TableName};
use tarn_server::signing::{self, FileTicket};
use tarn_server::{app, AppState, AuthMode};
use tarn_table::{parse_columns, CreateOptions, InputSource, Table, WriteOptions};
use tower::ServiceExt;

const T: &str = "/delta-sharing/shares/s/schemas/sales/tables/orders";

struct Fixture {
    dir: tempfile::TempDir,
    state: AppState,
}

async fn state_for(dir: &std::path::Path) -> AppState {
    let store = open_store(&dir.join("wh/catalog.db").to_string_lossy())
        .await
        .unwrap();
    AppState::new(Arc::new(store), dir.join("wh"), vec![], AuthMode::Tokens).unwrap()
}

/// main.shop.orders with 3 versions (create, 2 appends), shared as s.sales.orders with
/// history; recipients `good` (token `good`) and `late` (expired).
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let state = state_for(dir.path()).await;
    let store = state.store.clone();
    store
        .create_catalog(NewCatalog::named("main"))
        .await
        .unwrap();
    store
        .create_schema(NewSchema::named("main", "shop"))
        .await
        .unwrap();
    let name: TableName = "main.shop.orders".parse().unwrap();
    let (info, _) = tarn_service::create_managed_table(
        store.as_ref(),
        &state.warehouse,
        &name,
        CreateOptions::new(parse_columns("id bigint, region string").unwrap()),
        vec![],
    )
    .await
    .unwrap();
    let location = tarn_table::TableLocation::parse(&info.storage_location).unwrap();
    for (i, rows) in ["id,region\n1,EU\n2,US\n", "id,region\n3,EU\n"]
        .iter()
        .enumerate()
    {
        let csv = dir.path().join(format!("{i}.csv"));
        std::fs::write(&csv, rows).unwrap();
        Table::write(
            &location,
            vec![InputSource::file(&csv, None).unwrap()],
            WriteOptions::default(),
        )
        .await
        .unwrap();
        // Commit times a few ms apart, so every version has its own time.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let sharing = store.sharing().unwrap();
    sharing.create_share("s", None).await.unwrap();
    sharing
        .add_shared_table(NewSharedTable {
            share_name: "s".into(),
            schema_name: "sales".into(),
            name: "orders".into(),
            table_id: info.id.clone(),
            history: true,
        })
        .await
        .unwrap();
    sharing
        .create_recipient("good", &hash_token("good"), None, &["s".into()])
        .await
        .unwrap();
    sharing
        .create_recipient("late", &hash_token("late"), Some(1), &["s".into()])
        .await
        .unwrap();
    Fixture { dir, state }
}

async fn send(
    state: &AppState,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
    range: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("Host", "tarn.test");
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let req = req
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .unwrap();
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, bytes)
}

fn lines(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn file_urls(state: &AppState, body: Value) -> Vec<String> {
    let (status, _, raw) = send(
        state,
        "POST",
        &format!("{T}/query"),
        Some("good"),
        Some(body),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&raw));
    lines(&raw)
        .into_iter()
        .filter_map(|l| {
            l.get("file")
                .map(|f| f["url"].as_str().unwrap().to_string())
        })
        .collect()
}

fn path_of(url: &str) -> &str {
    url.strip_prefix("http://tarn.test")
        .expect("URL on the request's host")
}

#[tokio::test]
async fn signed_urls_serve_ranges_and_refuse_tampering_expiry_and_revocation() {
    let f = fixture().await;
    let urls = file_urls(&f.state, json!({})).await;
    assert_eq!(urls.len(), 2);
    let url = path_of(&urls[0]);
    let (status, headers, body) = send(&f.state, "HEAD", url, None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    let size: u64 = headers["content-length"].to_str().unwrap().parse().unwrap();
    let (status, headers, body) = send(&f.state, "GET", url, None, None, Some("bytes=-4")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, b"PAR1");
    assert_eq!(
        headers["content-range"],
        format!("bytes {}-{}/{size}", size - 4, size - 1).as_str()
    );
    let (status, _, _) = send(
        &f.state,
        "GET",
        url,
        None,
        None,
        Some(&format!("bytes={size}-")),
    )
    .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);

    // A ticket for another path, or expired, signed with the server's own key: still
    // refused if forged without it, and refused when expired with it.
    let secret = f
        .state
        .store
        .sharing()
        .unwrap()
        .secret("delta-sharing-url-key")
        .await
        .unwrap();
    let token = url.rsplit('/').next().unwrap();
    let ticket = signing::verify(&secret, token, 0).unwrap();
    let expired = signing::sign(
        &secret,
        &FileTicket {
            expires_at: 1,
            ..ticket.clone()
        },
    );
    let (status, _, body) = send(
        &f.state,
        "GET",
        &format!("/delta-sharing/files/{expired}"),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("expired"));
    let escape = FileTicket {
        path: "../../catalog.db".into(),
        ..ticket.clone()
    };
    for forged in [
        signing::sign(b"not the key", &escape),
        signing::sign(b"not the key", &ticket),
    ] {
        let (status, _, _) = send(
            &f.state,
            "GET",
            &format!("/delta-sharing/files/{forged}"),
            None,
            None,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // Even a correctly signed path that leaves the table is refused.
    let escaping = signing::sign(&secret, &escape);
    let (status, _, body) = send(
        &f.state,
        "GET",
        &format!("/delta-sharing/files/{escaping}"),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );

    // The key lives in the catalog: a restarted server (a new state on the same catalog)
    // serves the same URL.
    let restarted = state_for(f.dir.path()).await;
    let (status, _, body) = send(&restarted, "GET", url, None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len() as u64, size);

    // Taking the table out of the share, or revoking the recipient, voids its URLs.
    let sharing = f.state.store.sharing().unwrap();
    sharing.revoke_recipient("good").await.unwrap();
    let (status, _, _) = send(&f.state, "GET", url, None, None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = send(
        &f.state,
        "GET",
        "/delta-sharing/shares",
        Some("good"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["errorCode"],
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn expired_tokens_and_unknown_tokens_are_401() {
    let f = fixture().await;
    for token in [Some("late"), Some("nope"), None] {
        let (status, _, body) =
            send(&f.state, "GET", "/delta-sharing/shares", token, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["errorCode"], "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn a_query_string_the_router_cannot_read_is_a_sharing_error() {
    // axum answers such requests itself, in text/plain, unless the protocol reshapes them.
    let f = fixture().await;
    for uri in [
        "/delta-sharing/shares?maxResults=1&maxResults=2",
        "/delta-sharing/shares/s/schemas/sales/tables/orders/version?startingTimestamp=a&startingTimestamp=b",
    ] {
        let (status, headers, body) = send(&f.state, "GET", uri, Some("good"), None, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(headers["content-type"], "application/json", "{uri}");
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["errorCode"], "INVALID_PARAMETER_VALUE", "{uri}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains("duplicate field"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn lists_page_and_versions_resolve_times_and_ranges() {
    let f = fixture().await;
    let sharing = f.state.store.sharing().unwrap();
    sharing.create_share("t", None).await.unwrap();
    sharing.grant_share("good", "t").await.unwrap();
    let (status, _, body) = send(
        &f.state,
        "GET",
        "/delta-sharing/shares?maxResults=1",
        Some("good"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        page["items"],
        json!([{"name": "s", "id": sharing.get_share("s").await.unwrap().id}])
    );
    let next = page["nextPageToken"].as_str().unwrap();
    let (_, _, body) = send(
        &f.state,
        "GET",
        &format!("/delta-sharing/shares?maxResults=1&pageToken={next}"),
        Some("good"),
        None,
        None,
    )
    .await;
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["items"][0]["name"], "t");
    assert!(page.get("nextPageToken").is_none());
    let (status, _, _) = send(
        &f.state,
        "GET",
        "/delta-sharing/shares?pageToken=%25%25",
        Some("good"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // startingTimestamp: the first version committed at or after it.
    let table = Table::open(
        &tarn_table::TableLocation::parse(
            &f.state
                .store
                .get_table(&"main.shop.orders".parse().unwrap())
                .await
                .unwrap()
                .storage_location,
        )
        .unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let t1 = table.commit_time(1).await.unwrap();
    let at = tarn_table::format_timestamp(&(t1 - chrono::Duration::milliseconds(1)));
    let (status, headers, _) = send(
        &f.state,
        "GET",
        &format!("{T}/version?startingTimestamp={at}"),
        Some("good"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["delta-table-version"], "1");
    let (status, _, body) = send(
        &f.state,
        "GET",
        &format!("{T}/version?startingTimestamp=2999-01-01T00:00:00Z"),
        Some("good"),
        None,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );

    // startingVersion..endingVersion: the files each commit added, stamped with it.
    let (status, headers, body) = send(
        &f.state,
        "POST",
        &format!("{T}/query"),
        Some("good"),
        Some(json!({"startingVersion": 1, "endingVersion": 2})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["delta-table-version"], "1");
    let adds: Vec<u64> = lines(&body)
        .iter()
        .filter_map(|l| l.get("add").map(|a| a["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(adds, [1, 2]);
    let (status, _, body) = send(
        &f.state,
        "POST",
        &format!("{T}/query"),
        Some("good"),
        Some(json!({"startingVersion": 2, "endingVersion": 1})),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, _) = send(
        &f.state,
        "POST",
        &format!("{T}/query"),
        Some("good"),
        Some(json!({"endingVersion": 1})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Copies a table of tests/data into `dir`, registers it as EXTERNAL `main.shop.<name>` and
/// shares it as `s.sales.<name>`.
async fn share_copy_of(f: &Fixture, source: &str, name: &str) -> std::path::PathBuf {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(source);
    let to = f.dir.path().join(name);
    copy_dir(&from, &to);
    share_table_at(f, &to, name).await;
    to
}

/// Registers the table at `dir` as EXTERNAL `main.shop.<name>` and shares it as
/// `s.sales.<name>`.
async fn share_table_at(f: &Fixture, dir: &std::path::Path, name: &str) {
    let store = f.state.store.clone();
    let location = tarn_table::TableLocation::parse(&dir.to_string_lossy()).unwrap();
    let info = tarn_service::register_external_table(
        store.as_ref(),
        &tarn_service::AllowedLocations::anywhere(),
        &format!("main.shop.{name}").parse().unwrap(),
        &location,
        None,
        Default::default(),
    )
    .await
    .unwrap();
    store
        .sharing()
        .unwrap()
        .add_shared_table(NewSharedTable {
            share_name: "s".into(),
            schema_name: "sales".into(),
            name: name.into(),
            table_id: info.id,
            history: true,
        })
        .await
        .unwrap();
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

async fn delta_query(state: &AppState, table: &str) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder()
        .method("POST")
        .uri(format!(
            "/delta-sharing/shares/s/schemas/sales/tables/{table}/query"
        ))
        .header("Host", "tarn.test")
        .header("Authorization", "Bearer good")
        .header("delta-sharing-capabilities", "responseformat=delta");
    req = req.header("content-type", "application/json");
    let resp = app(state.clone())
        .oneshot(req.body(Body::from("{}")).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, body)
}

/// In the `delta` format a reader replays the `deltaSingleAction`s as a log: a file's
/// deletion vector must be there (else deleted rows come back), its file as a pre-signed
/// URL that serves the vector's bytes; and a vector outside the table is refused.
#[tokio::test]
async fn the_delta_format_hands_out_deletion_vectors() {
    let f = fixture().await;
    let dir = share_copy_of(&f, "databricks/table-with-dv-small", "dv").await;
    let (status, raw) = delta_query(&f.state, "dv").await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&raw));
    let adds: Vec<Value> = lines(&raw)
        .into_iter()
        .filter_map(|l| l.pointer("/file/deltaSingleAction/add").cloned())
        .collect();
    assert_eq!(adds.len(), 1, "{adds:?}");
    let dv = &adds[0]["deletionVector"];
    assert_eq!(dv["storageType"], "p", "{dv}");
    assert_eq!(dv["cardinality"], 2);
    assert_eq!(dv["offset"], 1);
    assert_eq!(dv["sizeInBytes"], 36);
    let url = dv["pathOrInlineDv"].as_str().unwrap();
    let (status, _, bytes) = send(&f.state, "GET", path_of(url), None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    let on_disk =
        std::fs::read(dir.join("deletion_vector_61d16c75-6994-46b7-a15b-8b538852e50e.bin"))
            .unwrap();
    assert_eq!(bytes, on_disk);
    // The parquet format cannot say which rows are deleted.
    let (status, _, raw) = send(
        &f.state,
        "POST",
        "/delta-sharing/shares/s/schemas/sales/tables/dv/query",
        Some("good"),
        Some(json!({})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&raw).contains("deletion vectors"));

    // A log that names a vector outside the table (an absolute path, or a prefix that
    // climbs out) gets a 400, not a URL to the file.
    for (storage_type, path) in [
        ("p", "file:///etc/passwd"),
        ("u", "../../../..vBn[lx{q8@P<9BNH/isA"),
    ] {
        let log = dir.join("_delta_log/00000000000000000001.json");
        let text = std::fs::read_to_string(&log).unwrap();
        let changed = text
            .replace(
                "\"storageType\":\"u\"",
                &format!("\"storageType\":\"{storage_type}\""),
            )
            .replace(
                "\"pathOrInlineDv\":\"vBn[lx{q8@P<9BNH/isA\"",
                &format!("\"pathOrInlineDv\":{}", json!(path)),
            );
        assert_ne!(changed, text);
        let name = format!("dv{storage_type}");
        let hostile = f.dir.path().join(&name);
        copy_dir(&dir, &hostile);
        std::fs::write(
            hostile.join("_delta_log/00000000000000000001.json"),
            changed,
        )
        .unwrap();
        share_table_at(&f, &hostile, &name).await;
        let (status, raw) = delta_query(&f.state, &name).await;
        let text = String::from_utf8_lossy(&raw);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{storage_type}: {text}");
        assert!(
            text.contains("deletion vector outside its location"),
            "{text}"
        );
    }
}

/// Change data in the `delta` format is the Delta action `cdc` (the reader replays the
/// actions as a log, where `cdf` means nothing).
#[tokio::test]
async fn change_data_in_the_delta_format_is_a_cdc_action() {
    let f = fixture().await;
    let name: TableName = "main.shop.feed".parse().unwrap();
    let mut options = CreateOptions::new(parse_columns("id bigint, v string").unwrap());
    options
        .properties
        .insert("delta.enableChangeDataFeed".into(), "true".into());
    let (info, _) = tarn_service::create_managed_table(
        f.state.store.as_ref(),
        &f.state.warehouse,
        &name,
        options,
        vec![],
    )
    .await
    .unwrap();
    let location = tarn_table::TableLocation::parse(&info.storage_location).unwrap();
    let csv = f.dir.path().join("feed.csv");
    std::fs::write(&csv, "id,v\n1,a\n2,b\n").unwrap();
    Table::write(
        &location,
        vec![InputSource::file(&csv, None).unwrap()],
        WriteOptions::default(),
    )
    .await
    .unwrap();
    Table::open(&location, &tarn_table::TimeTravel::Latest)
        .await
        .unwrap()
        .delete_where("id = 1")
        .await
        .unwrap();
    f.state
        .store
        .sharing()
        .unwrap()
        .add_shared_table(NewSharedTable {
            share_name: "s".into(),
            schema_name: "sales".into(),
            name: "feed".into(),
            table_id: info.id,
            history: true,
        })
        .await
        .unwrap();
    let req = Request::builder()
        .uri("/delta-sharing/shares/s/schemas/sales/tables/feed/changes?startingVersion=1")
        .header("Host", "tarn.test")
        .header("Authorization", "Bearer good")
        .header("delta-sharing-capabilities", "responseformat=delta")
        .body(Body::empty())
        .unwrap();
    let resp = app(f.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let raw = resp.into_body().collect().await.unwrap().to_bytes();
    let kinds: Vec<String> = lines(&raw)
        .iter()
        .filter_map(|l| l.pointer("/file/deltaSingleAction"))
        .flat_map(|a| a.as_object().unwrap().keys().cloned().collect::<Vec<_>>())
        .collect();
    assert!(kinds.contains(&"cdc".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"add".to_string()), "{kinds:?}");
    assert!(!kinds.contains(&"cdf".to_string()), "{kinds:?}");
}
