//! The one conformance suite every `CatalogStore` backend passes: SQLite (always) and
//! PostgreSQL (at `TARN_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`;
//! start one with `pg_ctlcluster 15 main start` or any PostgreSQL you can reach, or set
//! `TARN_TEST_POSTGRES=skip` to skip it on a machine without one).

use std::sync::Arc;

use tarn_catalog::{
    hash_token, open_store, CatalogStore, ErrorKind, NewCatalog, NewSchema, NewTable, SchemaName,
    Scope, TableName, TableType,
};

fn new_table(catalog: &str, schema: &str, name: &str, location: &str) -> NewTable {
    NewTable {
        id: None,
        catalog_name: catalog.into(),
        schema_name: schema.into(),
        name: name.into(),
        table_type: TableType::External,
        storage_location: location.into(),
        comment: Some("c".into()),
        properties: [("k".to_string(), "v".to_string())].into(),
        owner: None,
    }
}

async fn conformance(store: Arc<dyn CatalogStore>) {
    // Catalogs.
    let main = store
        .create_catalog(NewCatalog::named("main"))
        .await
        .unwrap();
    assert_eq!(store.get_catalog("main").await.unwrap(), main);
    assert_eq!(
        store
            .create_catalog(NewCatalog::named("main"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        store
            .create_catalog(NewCatalog::named("a.b"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        store
            .create_catalog(NewCatalog::named(""))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    store
        .create_catalog(NewCatalog::named("aux"))
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_catalogs()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["aux", "main"]);
    assert_eq!(
        store.get_catalog("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Schemas.
    let shop: SchemaName = "main.shop".parse().unwrap();
    store
        .create_schema(NewSchema::named("main", "shop"))
        .await
        .unwrap();
    assert_eq!(
        store
            .create_schema(NewSchema::named("main", "shop"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        store
            .create_schema(NewSchema::named("nope", "shop"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store
            .create_schema(NewSchema::named("main", "sh/op"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(store.get_schema(&shop).await.unwrap().catalog_name, "main");
    assert_eq!(store.list_schemas("main").await.unwrap().len(), 1);
    assert_eq!(
        store.list_schemas("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Tables.
    let orders: TableName = "main.shop.orders".parse().unwrap();
    let t = store
        .create_table(new_table("main", "shop", "orders", "file:///data/orders/"))
        .await
        .unwrap();
    assert_eq!(store.get_table(&orders).await.unwrap(), t);
    assert_eq!(store.get_table_by_id(&t.id).await.unwrap(), t);
    assert_eq!(t.properties.get("k").map(String::as_str), Some("v"));
    let dup = store
        .create_table(new_table("main", "shop", "orders", "file:///other/"))
        .await
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        store.get_table(&orders).await.unwrap().storage_location,
        "file:///data/orders/",
        "duplicate changed nothing"
    );
    assert_eq!(
        store
            .create_table(new_table("main", "nope", "t", "file:///x/"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store
            .create_table(new_table("main", "shop", "", "file:///x/"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    store
        .create_table(new_table(
            "main",
            "shop",
            "customers",
            "file:///data/customers/",
        ))
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_tables(&shop)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["customers", "orders"]);

    // Non-empty parents are kept unless forced.
    assert_eq!(
        store.delete_schema(&shop, false).await.unwrap_err().kind(),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        store
            .delete_catalog("main", false)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(store.list_tables(&shop).await.unwrap().len(), 2);
    let dropped = store.delete_table(&orders).await.unwrap();
    assert_eq!(dropped.id, t.id);
    assert_eq!(
        store.delete_table(&orders).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    store.delete_catalog("main", true).await.unwrap();
    assert_eq!(
        store.get_schema(&shop).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(store.list_catalogs().await.unwrap().len(), 1);

    // Tokens are found by the hash of their secret only.
    let token = store
        .create_token("ci", &hash_token("secret-1"), Scope::Write, None)
        .await
        .unwrap();
    assert_eq!(
        store.find_token(&hash_token("secret-1")).await.unwrap(),
        token
    );
    assert_eq!(
        store
            .find_token(&hash_token("secret-2"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store
            .create_token("ci", &hash_token("secret-3"), Scope::Read, None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyExists
    );
    store.delete_token("ci").await.unwrap();
    assert_eq!(
        store
            .find_token(&hash_token("secret-1"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn sqlite_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/catalog.db");
    let store = open_store(&path.to_string_lossy()).await.unwrap();
    conformance(Arc::new(store)).await;
    // Reopening migrates nothing twice and keeps the data.
    let again = open_store(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert_eq!(again.list_catalogs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn postgres_store_passes_the_conformance_suite() {
    let base = std::env::var("TARN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    if base == "skip" {
        eprintln!("TARN_TEST_POSTGRES=skip: not testing the PostgreSQL backend");
        return;
    }
    // A fresh database per run, so runs never see each other's rows.
    let db = format!("tarn_test_{}", uuid_suffix());
    let admin = open_store(&base).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {base} is needed for this test ({e}); set TARN_TEST_POSTGRES")
    });
    drop(admin);
    run_psql(&base, &format!("CREATE DATABASE {db}")).await;
    let url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    let store = open_store(&url).await.unwrap();
    conformance(Arc::new(store.clone())).await;
    // A second store on the same database (another server replica) sees the same catalog.
    let replica = open_store(&url).await.unwrap();
    assert_eq!(replica.list_catalogs().await.unwrap().len(), 1);
    drop(store);
    drop(replica);
    run_psql(&base, &format!("DROP DATABASE {db} WITH (FORCE)")).await;
}

fn uuid_suffix() -> String {
    format!("{}_{}", std::process::id(), chrono_like_now())
}

fn chrono_like_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn run_psql(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::Executor::execute(&mut conn, sql).await.unwrap();
}
