//! The one conformance suite every `CatalogStore` backend passes: SQLite (always) and
//! PostgreSQL (at `TARN_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`;
//! start one with `pg_ctlcluster 15 main start` or any PostgreSQL you can reach, or set
//! `TARN_TEST_POSTGRES=skip` to skip it on a machine without one).

use std::sync::Arc;

use tarn_catalog::{
    hash_token, open_store, CatalogStore, ErrorKind, NewCatalog, NewSchema, NewSharedTable,
    NewTable, SchemaName, Scope, TableName, TableType,
};

/// Rounds of each race in [`races_leave_no_orphans`].
const RACE_ROUNDS: usize = 80;

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
    let missing: SchemaName = "main.nowhere".parse().unwrap();
    let err = store.list_tables(&missing).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.message().contains("`main.nowhere`"),
        "{}",
        err.message()
    );

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

/// Shares, shared tables, recipients and secrets, on a fresh store.
async fn sharing_conformance(store: Arc<dyn CatalogStore>) {
    let sharing = store.sharing().expect("the SQL catalog keeps shares");
    store.create_catalog(NewCatalog::named("c")).await.unwrap();
    store
        .create_schema(NewSchema::named("c", "s"))
        .await
        .unwrap();
    let t1 = store
        .create_table(new_table("c", "s", "t1", "file:///tmp/t1/"))
        .await
        .unwrap();
    let t2 = store
        .create_table(new_table("c", "s", "t2", "file:///tmp/t2/"))
        .await
        .unwrap();

    let share = sharing
        .create_share("partners", Some("for partners".into()))
        .await
        .unwrap();
    assert_eq!(sharing.get_share("partners").await.unwrap(), share);
    let err = sharing.create_share("partners", None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        sharing.create_share("a b", None).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        sharing.get_share("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    sharing.create_share("other", None).await.unwrap();
    let names: Vec<_> = sharing
        .list_shares()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["other", "partners"]);

    let add = |schema: &str, name: &str, table_id: &str, share: &str| NewSharedTable {
        share_name: share.into(),
        schema_name: schema.into(),
        name: name.into(),
        table_id: table_id.into(),
        history: true,
    };
    let st1 = sharing
        .add_shared_table(add("sales", "orders", &t1.id, "partners"))
        .await
        .unwrap();
    assert!(st1.history);
    assert_eq!(sharing.get_shared_table(&st1.id).await.unwrap(), st1);
    sharing
        .add_shared_table(add("sales", "customers", &t2.id, "partners"))
        .await
        .unwrap();
    let dup = sharing
        .add_shared_table(add("sales", "orders", &t2.id, "partners"))
        .await;
    assert_eq!(dup.unwrap_err().kind(), ErrorKind::AlreadyExists);
    let missing = sharing
        .add_shared_table(add("sales", "x", "no-such-id", "partners"))
        .await;
    assert_eq!(missing.unwrap_err().kind(), ErrorKind::NotFound);
    let no_share = sharing
        .add_shared_table(add("sales", "x", &t1.id, "nope"))
        .await;
    assert_eq!(no_share.unwrap_err().kind(), ErrorKind::NotFound);
    let listed: Vec<_> = sharing
        .list_shared_tables("partners")
        .await
        .unwrap()
        .into_iter()
        .map(|t| format!("{}.{}", t.schema_name, t.name))
        .collect();
    assert_eq!(listed, ["sales.customers", "sales.orders"]);
    sharing
        .remove_shared_table("partners", "sales", "customers")
        .await
        .unwrap();
    let again = sharing
        .remove_shared_table("partners", "sales", "customers")
        .await;
    assert_eq!(again.unwrap_err().kind(), ErrorKind::NotFound);

    // Recipients: atomic creation (an unknown share creates nothing), grants, revocation.
    let bad = sharing
        .create_recipient("acme", "h1", None, &["partners".into(), "nope".into()])
        .await;
    assert_eq!(bad.unwrap_err().kind(), ErrorKind::NotFound);
    assert!(sharing.list_recipients().await.unwrap().is_empty());
    let acme = sharing
        .create_recipient("acme", "h1", Some(i64::MAX), &["partners".into()])
        .await
        .unwrap();
    assert_eq!(acme.shares, ["partners"]);
    assert!(acme.is_active(0));
    assert_eq!(sharing.find_recipient("h1").await.unwrap(), acme);
    assert_eq!(sharing.get_recipient(&acme.id).await.unwrap(), acme);
    assert_eq!(
        sharing.find_recipient("h2").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let dup = sharing.create_recipient("acme", "h9", None, &[]).await;
    assert_eq!(dup.unwrap_err().kind(), ErrorKind::AlreadyExists);
    let granted = sharing.grant_share("acme", "other").await.unwrap();
    assert_eq!(granted.shares, ["other", "partners"]);
    assert_eq!(
        sharing
            .grant_share("acme", "other")
            .await
            .unwrap()
            .shares
            .len(),
        2
    );
    let taken = sharing.revoke_share("acme", "other").await.unwrap();
    assert_eq!(taken.shares, ["partners"]);
    let revoked = sharing.revoke_recipient("acme").await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(!revoked.is_active(0));
    assert_eq!(
        sharing.revoke_recipient("acme").await.unwrap_err().kind(),
        ErrorKind::FailedPrecondition
    );

    // Dropping a table takes it out of every share; dropping a share takes its grants.
    store
        .delete_table(&TableName::new("c", "s", "t1").unwrap())
        .await
        .unwrap();
    assert!(sharing
        .list_shared_tables("partners")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        sharing.get_shared_table(&st1.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    sharing.delete_share("partners").await.unwrap();
    assert!(sharing
        .find_recipient("h1")
        .await
        .unwrap()
        .shares
        .is_empty());

    // The signing secret is created once and then always the same.
    let secret = sharing.secret("sharing").await.unwrap();
    assert!(secret.len() >= 32);
    assert_eq!(sharing.secret("sharing").await.unwrap(), secret);
    assert_ne!(sharing.secret("other").await.unwrap(), secret);
}

/// A create racing a drop of its parent, for real: `RACE_ROUNDS` pairs run at once (on
/// PostgreSQL over several connections; SQLite serializes writers). Each pair ends as if
/// one ran before the other: never both a forced-less drop and the create, never a table
/// whose schema is gone or a schema whose catalog is gone (checked in the database itself
/// at `url`).
async fn races_leave_no_orphans(store: Arc<dyn CatalogStore>, url: &str) {
    store
        .create_catalog(NewCatalog::named("race"))
        .await
        .unwrap();
    for i in 0..RACE_ROUNDS {
        store
            .create_schema(NewSchema::named("race", &format!("s{i}")))
            .await
            .unwrap();
        store
            .create_catalog(NewCatalog::named(&format!("race{i}")))
            .await
            .unwrap();
    }
    let mut rounds = Vec::new();
    for i in 0..RACE_ROUNDS {
        let force = i % 2 == 0;
        let (a, b) = (store.clone(), store.clone());
        let create = tokio::spawn(async move {
            a.create_table(new_table(
                "race",
                &format!("s{i}"),
                "t",
                "file:///tmp/race/t/",
            ))
            .await
            .map(|_| ())
        });
        let drop = tokio::spawn(async move {
            let schema = SchemaName {
                catalog: "race".into(),
                schema: format!("s{i}"),
            };
            b.delete_schema(&schema, force).await
        });
        let (a, b) = (store.clone(), store.clone());
        let create_schema = tokio::spawn(async move {
            a.create_schema(NewSchema::named(&format!("race{i}"), "s"))
                .await
                .map(|_| ())
        });
        let drop_catalog =
            tokio::spawn(async move { b.delete_catalog(&format!("race{i}"), force).await });
        rounds.push((i, force, create, drop, create_schema, drop_catalog));
    }
    for (i, force, create, drop, create_schema, drop_catalog) in rounds {
        for (child, parent, what) in [
            (
                create.await.unwrap(),
                drop.await.unwrap(),
                "table vs schema",
            ),
            (
                create_schema.await.unwrap(),
                drop_catalog.await.unwrap(),
                "schema vs catalog",
            ),
        ] {
            if let Err(e) = &child {
                assert_eq!(e.kind(), ErrorKind::NotFound, "round {i}, {what}: {e}");
            }
            if let Err(e) = &parent {
                assert!(!force, "round {i}, {what}: a forced drop failed: {e}");
                assert_eq!(
                    e.kind(),
                    ErrorKind::FailedPrecondition,
                    "round {i}, {what}: {e}"
                );
            }
            assert!(
                child.is_err() || parent.is_err() || force,
                "round {i}, {what}: the create and the drop (without force) both succeeded"
            );
        }
        let schema = SchemaName {
            catalog: "race".into(),
            schema: format!("s{i}"),
        };
        let table = TableName::new("race", &format!("s{i}"), "t").unwrap();
        if store.get_schema(&schema).await.is_err() {
            assert_eq!(
                store.get_table(&table).await.unwrap_err().kind(),
                ErrorKind::NotFound,
                "round {i}: a table outlived its schema"
            );
        }
    }
    assert_eq!(orphans(url).await, 0, "rows left without their parent");
}

/// Tables whose schema is gone plus schemas whose catalog is gone, counted in the database.
async fn orphans(url: &str) -> i64 {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM tables t WHERE NOT EXISTS (SELECT 1 FROM schemas s \
           WHERE s.catalog_name = t.catalog_name AND s.name = t.schema_name)) \
         + (SELECT COUNT(*) FROM schemas s WHERE NOT EXISTS (SELECT 1 FROM catalogs c \
           WHERE c.name = s.catalog_name)) AS n",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    row.try_get::<i64, _>("n").unwrap()
}

/// The database itself refuses a row without its parent, whoever writes it.
async fn database_refuses_orphans(url: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let table = sqlx::query(
        "INSERT INTO tables (id, catalog_name, schema_name, name, table_type, data_source_format, \
         storage_location, properties, created_at, updated_at) \
         VALUES ('x', 'nowhere', 'nothing', 't', 'EXTERNAL', 'DELTA', 'file:///x/', '{}', 0, 0)",
    )
    .execute(&mut conn)
    .await;
    assert!(table.is_err(), "a table row without its schema was stored");
    let schema = sqlx::query(
        "INSERT INTO schemas (id, catalog_name, name, properties, created_at, updated_at) \
         VALUES ('y', 'nowhere', 's', '{}', 0, 0)",
    )
    .execute(&mut conn)
    .await;
    assert!(
        schema.is_err(),
        "a schema row without its catalog was stored"
    );
}

/// Reservations (a name held while a table's files are made) and drops in progress: neither
/// is seen by reads, both keep the name taken, and the ones left by a holder that went away
/// come back from `pending_drops`. `other_writers`: whether another write may run while a
/// reservation is held (PostgreSQL; on SQLite the holder keeps the write lock, so another
/// writer waits for it).
async fn pending_steps(store: Arc<dyn CatalogStore>, other_writers: bool) {
    store
        .create_catalog(NewCatalog::named("steps"))
        .await
        .unwrap();
    store
        .create_schema(NewSchema::named("steps", "s"))
        .await
        .unwrap();
    let schema: SchemaName = "steps.s".parse().unwrap();
    let name = TableName::new("steps", "s", "made").unwrap();
    let held = store
        .reserve_table(new_table("steps", "s", "made", "file:///tmp/steps/made/"))
        .await
        .unwrap();
    let id = held.table().id.clone();
    assert_eq!(
        store.get_table(&name).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.get_table_by_id(&id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(store.list_tables(&schema).await.unwrap().is_empty());
    if other_writers {
        assert_eq!(
            store
                .create_table(new_table("steps", "s", "made", "file:///tmp/other/"))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::AlreadyExists,
            "a reserved name is taken"
        );
        assert!(
            store.pending_drops().await.unwrap().is_empty(),
            "a held reservation is not taken back"
        );
    }
    let made = held.commit().await.unwrap();
    assert_eq!(store.get_table(&name).await.unwrap(), made);

    // Abandoned: the row goes.
    let held = store
        .reserve_table(new_table("steps", "s", "given_up", "file:///tmp/steps/g/"))
        .await
        .unwrap();
    held.abandon().await.unwrap();
    store
        .create_table(new_table("steps", "s", "given_up", "file:///tmp/steps/g/"))
        .await
        .unwrap();

    // A holder that went away without a word: its reservation becomes a drop (the holder
    // is gone when its connection is; that can take a moment on PostgreSQL).
    let held = store
        .reserve_table(new_table("steps", "s", "lost", "file:///tmp/steps/lost/"))
        .await
        .unwrap();
    let lost = held.table().id.clone();
    drop(held);
    let mut pending = Vec::new();
    for _ in 0..100 {
        pending = store.pending_drops().await.unwrap();
        if !pending.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        pending.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        [lost.as_str()]
    );
    store.finish_drop(&lost).await.unwrap();
    store.finish_drop(&lost).await.unwrap();

    // A drop in progress: unseen, name kept, listed as pending until finished.
    assert_eq!(
        store
            .begin_drop(&name, "not-its-id")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    let dropping = store.begin_drop(&name, &made.id).await.unwrap();
    assert_eq!(dropping.id, made.id);
    assert_eq!(
        store.get_table(&name).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.begin_drop(&name, &made.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.delete_table(&name).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let pending = store.pending_drops().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].storage_location, "file:///tmp/steps/made/");
    store.finish_drop(&made.id).await.unwrap();
    assert!(store.pending_drops().await.unwrap().is_empty());
    let names: Vec<String> = store
        .list_tables(&schema)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["given_up"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_keeps_names_whole_under_races_and_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = Arc::new(open_store(&path.to_string_lossy()).await.unwrap());
    let url = format!("sqlite://{}", path.display());
    database_refuses_orphans(&url).await;
    races_leave_no_orphans(store.clone(), &url).await;
    pending_steps(store, false).await;
}

#[tokio::test]
async fn sqlite_store_passes_the_sharing_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("c.db").to_string_lossy())
        .await
        .unwrap();
    sharing_conformance(Arc::new(store)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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
    // The sharing suite needs its own catalog names: run it on a second fresh database.
    let sharing_db = format!("{db}_sharing");
    run_psql(&base, &format!("CREATE DATABASE {sharing_db}")).await;
    let sharing_url = format!("{}/{sharing_db}", base.rsplit_once('/').unwrap().0);
    let sharing_store = open_store(&sharing_url).await.unwrap();
    sharing_conformance(Arc::new(sharing_store.clone())).await;
    drop(sharing_store);
    run_psql(&base, &format!("DROP DATABASE {sharing_db} WITH (FORCE)")).await;
    // A second store on the same database (another server replica) sees the same catalog.
    let replica = open_store(&url).await.unwrap();
    assert_eq!(replica.list_catalogs().await.unwrap().len(), 1);
    reads_survive_lost_connections(&store, &base, &db).await;
    // Races and crashes, on their own database (their own catalog names).
    let races_db = format!("{db}_races");
    run_psql(&base, &format!("CREATE DATABASE {races_db}")).await;
    let races_url = format!("{}/{races_db}", base.rsplit_once('/').unwrap().0);
    let races = Arc::new(open_store(&races_url).await.unwrap());
    database_refuses_orphans(&races_url).await;
    races_leave_no_orphans(races.clone(), &races_url).await;
    pending_steps(races.clone(), true).await;
    drop(races);
    run_psql(&base, &format!("DROP DATABASE {races_db} WITH (FORCE)")).await;
    drop(store);
    drop(replica);
    run_psql(&base, &format!("DROP DATABASE {db} WITH (FORCE)")).await;
}

/// A catalog made before the database kept names whole (migration step 3), with rows a
/// lost race left without their parent: migrating restores the parents, so every name is
/// still reachable and droppable, and from then on the database refuses such rows.
#[tokio::test]
async fn migrating_restores_the_parents_of_rows_left_by_a_race() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        for statement in [
            "CREATE TABLE catalogs (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, comment TEXT, properties TEXT NOT NULL, owner TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
            "CREATE TABLE schemas (id TEXT PRIMARY KEY, catalog_name TEXT NOT NULL, name TEXT NOT NULL, comment TEXT, properties TEXT NOT NULL, owner TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, UNIQUE (catalog_name, name))",
            "CREATE TABLE tables (id TEXT PRIMARY KEY, catalog_name TEXT NOT NULL, schema_name TEXT NOT NULL, name TEXT NOT NULL, table_type TEXT NOT NULL, data_source_format TEXT NOT NULL, storage_location TEXT NOT NULL, comment TEXT, properties TEXT NOT NULL, owner TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, UNIQUE (catalog_name, schema_name, name))",
            "CREATE TABLE tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, secret_hash TEXT NOT NULL UNIQUE, scope TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT)",
            "CREATE TABLE shares (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, comment TEXT, created_at BIGINT NOT NULL)",
            "CREATE TABLE share_tables (id TEXT PRIMARY KEY, share_id TEXT NOT NULL, schema_name TEXT NOT NULL, name TEXT NOT NULL, table_id TEXT NOT NULL, history BIGINT NOT NULL, created_at BIGINT NOT NULL, UNIQUE (share_id, schema_name, name))",
            "CREATE TABLE recipients (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL, expires_at BIGINT, revoked_at BIGINT)",
            "CREATE TABLE recipient_shares (recipient_id TEXT NOT NULL, share_id TEXT NOT NULL, PRIMARY KEY (recipient_id, share_id))",
            "CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL, created_at BIGINT NOT NULL)",
            "CREATE TABLE tarn_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            "INSERT INTO tarn_migrations VALUES (0, 0), (1, 0), (2, 0)",
            "INSERT INTO catalogs VALUES ('c1', 'kept', NULL, '{}', NULL, 0, 0)",
            "INSERT INTO tables VALUES ('t1', 'kept', 'lost', 'orphan', 'EXTERNAL', 'DELTA', 'file:///x/', NULL, '{}', NULL, 0, 0)",
            "INSERT INTO schemas VALUES ('s2', 'gone', 'left', NULL, '{}', NULL, 0, 0)",
        ] {
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
    }
    let store = open_store(&path.to_string_lossy()).await.unwrap();
    let orphan = TableName::new("kept", "lost", "orphan").unwrap();
    assert_eq!(store.get_table(&orphan).await.unwrap().id, "t1");
    let restored = store.get_schema(&orphan.schema_name()).await.unwrap();
    assert!(restored.comment.unwrap().contains("restored"));
    assert!(store.get_catalog("gone").await.is_ok());
    assert_eq!(store.list_schemas("gone").await.unwrap()[0].name, "left");
    assert_eq!(orphans(&format!("sqlite://{}", path.display())).await, 0);
    database_refuses_orphans(&format!("sqlite://{}", path.display())).await;
    store.delete_catalog("kept", true).await.unwrap();
}

/// The per-request reads keep connections open between requests. When PostgreSQL ends
/// them (a restart, `pg_terminate_backend`), the next reads still answer, on new connections.
async fn reads_survive_lost_connections(
    store: &tarn_catalog::SqlCatalogStore,
    base: &str,
    db: &str,
) {
    store
        .create_catalog(NewCatalog::named("lost"))
        .await
        .unwrap();
    store
        .create_schema(NewSchema::named("lost", "s"))
        .await
        .unwrap();
    store
        .create_table(new_table("lost", "s", "t", "file:///tmp/lost/t"))
        .await
        .unwrap();
    let token = store
        .create_token("lost", &hash_token("lost-secret"), Scope::Read, None)
        .await
        .unwrap();
    let name = TableName::new("lost", "s", "t").unwrap();
    // Several reads at once, so that several connections are kept.
    reads_at_once(store, &name, 6).await;
    run_psql(
        base,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{db}'"
        ),
    )
    .await;
    // As many reads at once as there were kept connections, so each dead one is taken.
    reads_at_once(store, &name, 8).await;
    for _ in 0..10 {
        assert_eq!(store.get_table(&name).await.unwrap().name, "t");
        assert_eq!(
            store.find_token(&hash_token("lost-secret")).await.unwrap(),
            token
        );
    }
    assert_eq!(
        store
            .find_token(&hash_token("not-a-secret"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

/// `n` tasks at once, each reading the table `name` and the token "lost-secret" together.
async fn reads_at_once(store: &tarn_catalog::SqlCatalogStore, name: &TableName, n: usize) {
    let reads: Vec<_> = (0..n)
        .map(|_| {
            let (store, name) = (store.clone(), name.clone());
            tokio::spawn(async move {
                let hash = hash_token("lost-secret");
                let (table, found) = tokio::join!(store.get_table(&name), store.find_token(&hash));
                (table.unwrap().name, found.unwrap().name)
            })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap(), ("t".to_string(), "lost".to_string()));
    }
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
