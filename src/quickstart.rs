//! `tarn quickstart`: builds a small warehouse with `users` and `orders` over several commits,
//! then shows the history, a time-travel query and the monthly-revenue dashboard query.

use std::fmt::Write as _;
use std::path::Path;

use tarn_table::{
    parse_columns, CreateOptions, Error, InputSource, QueryTable, Table, TableLocation, TimeTravel,
    WriteMode, WriteOptions,
};

use crate::cli::OutputFormat;
use crate::output::{print_records, print_rows};
use crate::Result;

/// The dashboard query the quickstart (and the docs) run.
pub const DASHBOARD_SQL: &str = "SELECT DATE_TRUNC('month', o.created_at) AS month, u.country, \
COUNT(*) AS orders, AVG(o.amount) AS avg_amount, SUM(o.amount) AS revenue \
FROM orders o JOIN users u ON u.id = o.user_id \
GROUP BY 1, 2 ORDER BY 1, 2";

const COUNTRIES: [&str; 4] = ["DE", "FR", "US", "JP"];

pub async fn run(dir: &Path) -> Result<()> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::invalid(format!(
            "`{}` is not empty: pick another --dir",
            dir.display()
        ))
        .into());
    }
    let scratch = tempfile::tempdir()
        .map_err(|e| Error::invalid(format!("cannot create a temporary directory: {e}")))?;
    let users = TableLocation::parse(&dir.join("users").to_string_lossy())?;
    let orders = TableLocation::parse(&dir.join("orders").to_string_lossy())?;

    println!("Creating a warehouse in {}\n", dir.display());
    Table::create(
        &users,
        CreateOptions::new(parse_columns(
            "id bigint not null, name string, country string, signed_up timestamp",
        )?),
    )
    .await?;
    let mut csv = String::from("id,name,country,signed_up\n");
    for id in 1..=20 {
        let _ = writeln!(
            csv,
            "{id},user{id},{},2026-01-{:02}T09:00:00Z",
            COUNTRIES[id % 4],
            1 + id % 28
        );
    }
    let (_, r) = Table::write(
        &users,
        vec![input(scratch.path(), "users.csv", &csv)?],
        WriteOptions::default(),
    )
    .await?;
    println!("users:  wrote {} rows (version {})", r.rows, r.version);

    let mut options = CreateOptions::new(parse_columns(
        "id bigint not null, user_id bigint not null, amount decimal(12,2), created_at timestamp",
    )?);
    options.comment = Some("Orders, one row per order".into());
    Table::create(&orders, options).await?;
    let mut next_id = 1;
    for month in 1..=3 {
        let mut csv = String::from("id,user_id,amount,created_at\n");
        for i in 0..30 {
            let _ = writeln!(
                csv,
                "{next_id},{},{}.{:02},2026-{month:02}-{:02}T{:02}:30:00Z",
                1 + (next_id * 7) % 20,
                10 + (next_id * 37) % 190,
                (next_id * 13) % 100,
                1 + i % 28,
                8 + i % 10
            );
            next_id += 1;
        }
        let name = format!("orders-2026-{month:02}.csv");
        let (_, r) = Table::write(
            &orders,
            vec![input(scratch.path(), &name, &csv)?],
            WriteOptions::default(),
        )
        .await?;
        println!(
            "orders: wrote {} rows from {name} (version {})",
            r.rows, r.version
        );
    }
    let fix = "id,user_id,amount,created_at\n5,2,999.00,2026-01-05T10:30:00Z\n91,3,42.50,2026-03-30T12:00:00Z\n";
    let (_, r) = Table::write(
        &orders,
        vec![input(scratch.path(), "corrections.csv", fix)?],
        WriteOptions {
            upsert_on: vec!["id".into()],
            mode: WriteMode::Append,
            ..WriteOptions::default()
        },
    )
    .await?;
    println!(
        "orders: upserted corrections on id ({} updated, {} inserted; version {})\n",
        r.updated.unwrap_or(0),
        r.inserted.unwrap_or(0),
        r.version
    );

    let table = Table::open(&orders, &TimeTravel::Latest).await?;
    println!("$ tarn history {}", orders.display_name());
    let commits = table.history(None).await?;
    print_records(
        OutputFormat::Table,
        &["version", "timestamp", "operation"],
        &commits,
        |c| {
            vec![
                c.version.to_string(),
                tarn_table::format_timestamp(&c.timestamp),
                c.operation.clone(),
            ]
        },
    )?;

    let both = [
        QueryTable {
            name: "orders".into(),
            location: orders.clone(),
        },
        QueryTable {
            name: "users".into(),
            location: users.clone(),
        },
    ];
    let sql = "SELECT COUNT(*) AS orders, SUM(amount) AS revenue FROM orders";
    println!(
        "\n$ tarn query \"{sql}\" --table {} --version 1",
        orders.display_name()
    );
    print_rows(
        Table::query(sql, &both[..1], &TimeTravel::Version(1)).await?,
        OutputFormat::Table,
    )
    .await?;
    println!("\n$ tarn query \"{sql}\" --table {}", orders.display_name());
    print_rows(
        Table::query(sql, &both[..1], &TimeTravel::Latest).await?,
        OutputFormat::Table,
    )
    .await?;

    println!("\nMonthly revenue by country (the dashboard query):");
    println!(
        "$ tarn query \"{DASHBOARD_SQL}\" --table {} --table {}",
        orders.display_name(),
        users.display_name()
    );
    print_rows(
        Table::query(DASHBOARD_SQL, &both, &TimeTravel::Latest).await?,
        OutputFormat::Table,
    )
    .await?;
    println!(
        "\nNext: tarn describe {} ; tarn --help",
        orders.display_name()
    );
    Ok(())
}

fn input(dir: &Path, name: &str, content: &str) -> Result<InputSource> {
    let path = dir.join(name);
    std::fs::write(&path, content)
        .map_err(|e| Error::invalid(format!("cannot write {}: {e}", path.display())))?;
    Ok(InputSource::file(path, None)?)
}
