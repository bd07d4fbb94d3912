//! MySQL and MariaDB: the source's columns from a probe (`SHOW COLUMNS` of an empty
//! temporary copy, in a transaction rolled back), then one read-only
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT` for the checks, the watermark and the rows,
//! which stream (text protocol, row by row) into Arrow builders.

use futures::StreamExt;
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Executor, Row};
use tarn_table::deltalake::arrow::array::RecordBatch;
use tarn_table::deltalake::arrow::datatypes::SchemaRef;

use crate::types::{finish_batch, parse_decimal, ColBuilder, ColType, Column};
use crate::{db_error, Error, ErrorKind, Result, Source, BATCH_ROWS};

/// The name the source has in every query of a run.
pub(crate) const SOURCE_ALIAS: &str = "tarn_import_source";

/// The session variable an incremental run's queries read the watermark from: it is set
/// with a bound parameter ([`MySqlSession::set_watermark`]), as the rows stream through the
/// text protocol, where statements take no parameters.
pub(crate) const WATERMARK_VARIABLE: &str = "@tarn_import_watermark";

/// The SQL type a watermark of a cursor of type `t` is cast to (`None`: not a cursor type).
pub(crate) fn cast_type(t: &ColType) -> Option<String> {
    Some(match t {
        ColType::Int8 | ColType::Int16 | ColType::Int32 | ColType::Int64 => "SIGNED".into(),
        ColType::Decimal(p, s) => format!("DECIMAL({p},{s})"),
        ColType::Date => "DATE".into(),
        ColType::Timestamp | ColType::TimestampNtz => "DATETIME(6)".into(),
        _ => return None,
    })
}

/// How a column's text values are parsed.
#[derive(Debug, Clone)]
pub(crate) enum Decoder {
    Int,
    Decimal(i8),
    Float,
    Text,
    Bytes,
    Bit,
    Date,
    DateTime,
}

pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A URL parameter (the last of `keys` given).
fn url_param(url: &str, keys: &[&str]) -> Option<String> {
    url::Url::parse(url).ok().and_then(|u| {
        u.query_pairs()
            .filter(|(k, _)| keys.contains(&k.as_ref()))
            .map(|(_, v)| v.into_owned())
            .last()
    })
}

/// The `ssl-mode` a URL asks for, as written (`PREFERRED` when it names none).
pub(crate) fn ssl_mode(url: &str) -> String {
    url_param(url, &["ssl-mode", "sslmode"])
        .map(|m| m.to_uppercase())
        .unwrap_or_else(|| "PREFERRED".into())
}

/// A failed TLS handshake with the server at `url`, in one line (`None`: not one).
pub(crate) fn tls_failure(url: &str, e: &std::io::Error) -> Option<String> {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    // sqlx trusts the system's CAs, and those of ssl-ca.
    let roots = match url_param(url, &["ssl-ca", "sslca"]) {
        Some(ca) => format!("ssl-ca {ca} or the system's trusted CAs"),
        None => "the system's trusted CAs".into(),
    };
    tarn_pgtls::describe_tls_failure(
        e,
        &host,
        Some(&roots),
        "ssl-mode=VERIFY_IDENTITY, and with Tarn's MySQL driver VERIFY_CA too, checks the host name: connect by a name the certificate lists",
    )
}

pub(crate) struct MySqlSession {
    conn: MySqlConnection,
    from: String,
}

impl MySqlSession {
    pub(crate) async fn open(
        url: &str,
        source: &Source,
        timeout: std::time::Duration,
    ) -> Result<Self> {
        let given = url;
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        // sqlx's MySQL TLS (ssl-mode, ssl-ca) would panic for VERIFY_CA without a default.
        tarn_pgtls::install_default_provider();
        let mut conn =
            crate::connect_within(given, timeout, MySqlConnection::connect(&url)).await?;
        let body = match source {
            Source::Table(name) => {
                let parts: Vec<String> = name.split('.').map(quote_ident).collect();
                format!("SELECT * FROM {}", parts.join("."))
            }
            Source::Query(q) => q.trim().trim_end_matches(';').to_string(),
        };
        if let Source::Query(_) = source {
            // A query is the user's text: it must be one statement (a prepared statement
            // holds exactly one, and preparing runs nothing), so nothing in it can end the
            // source's derived table and run a statement of its own where the text protocol
            // (which takes several) carries it.
            conn.prepare(&format!("SELECT * FROM ({body}) AS {SOURCE_ALIAS} LIMIT 0"))
                .await
                .map_err(|e| db_error("--query must be one SELECT statement", e))?;
        }
        // The probe runs the source with LIMIT 0, which may still call its functions, and
        // MariaDB refuses to create a temporary table in a read-only transaction: it runs in
        // a transaction that is rolled back ([`MySqlSession::columns`]).
        sqlx::raw_sql(
            "SET time_zone = '+00:00'; DROP TEMPORARY TABLE IF EXISTS tarn_import_probe; START TRANSACTION",
        )
        .execute(&mut conn)
        .await
        .map_err(|e| db_error("cannot prepare the source", e))?;
        // The probe: an empty temporary copy whose column types SHOW COLUMNS reports.
        sqlx::raw_sql(&format!(
            "CREATE TEMPORARY TABLE tarn_import_probe AS SELECT * FROM ({body}) AS {SOURCE_ALIAS} LIMIT 0"
        ))
        .execute(&mut conn)
        .await
        .map_err(|e| match source {
            Source::Table(name) => db_error(&format!("source table `{name}`"), e),
            Source::Query(_) => db_error("--query", e),
        })?;
        Ok(Self {
            conn,
            from: format!("({body}) AS {SOURCE_ALIAS}"),
        })
    }

    /// What queries read from: the source as a derived table.
    pub(crate) fn from(&self) -> &str {
        &self.from
    }

    pub(crate) async fn columns(
        &mut self,
        timestamp_ntz: bool,
        exclude: &[String],
    ) -> Result<Vec<(Column, Decoder)>> {
        let rows = sqlx::raw_sql("SHOW COLUMNS FROM tarn_import_probe")
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| db_error("cannot read the source's columns", e))?;
        let mut out = Vec::new();
        for row in rows {
            let text = |i: usize| -> String {
                row.try_get_unchecked::<Option<Vec<u8>>, _>(i)
                    .ok()
                    .flatten()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            };
            let name = text(0);
            let type_text = text(1);
            if exclude.iter().any(|x| x == &name) {
                continue;
            }
            let Some((col_type, decoder)) = map_type(&type_text, timestamp_ntz) else {
                return Err(Error::new(ErrorKind::Unsupported, format!(
                    "column `{name}` has type {type_text}, which Tarn cannot import faithfully: skip it with --exclude-column {name}, or cast it in --query"
                )));
            };
            out.push((
                Column {
                    name,
                    source_type: type_text,
                    col_type,
                },
                decoder,
            ));
        }
        if out.is_empty() {
            return Err(Error::invalid("the source has no columns to import"));
        }
        // From here on, one consistent snapshot, read-only.
        sqlx::raw_sql(
            "DROP TEMPORARY TABLE IF EXISTS tarn_import_probe; ROLLBACK; \
             SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
             START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        )
        .execute(&mut self.conn)
        .await
        .map_err(|e| db_error("cannot start a snapshot", e))?;
        Ok(out)
    }

    /// Sets [`WATERMARK_VARIABLE`] to `value`, a bound parameter.
    pub(crate) async fn set_watermark(&mut self, value: &str) -> Result<()> {
        sqlx::query(&format!("SET {WATERMARK_VARIABLE} = ?"))
            .bind(value)
            .execute(&mut self.conn)
            .await
            .map_err(|e| db_error("cannot pass the watermark to the source", e))?;
        Ok(())
    }

    pub(crate) async fn scalar(&mut self, sql: &str) -> Result<Option<String>> {
        let rows = sqlx::raw_sql(sql)
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| db_error("source query failed", e))?;
        Ok(rows.first().and_then(|r| {
            r.try_get_unchecked::<Option<Vec<u8>>, _>(0)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        }))
    }

    /// The row count of `select` (MySQL's own estimates are too rough to show).
    pub(crate) async fn estimate(&mut self, select: &str) -> Result<u64> {
        let n = self
            .scalar(&format!("SELECT COUNT(*) FROM ({select}) AS c"))
            .await?;
        Ok(n.and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    pub(crate) async fn stream(
        mut self,
        select: String,
        decoders: Vec<Decoder>,
        columns: Vec<ColType>,
        schema: SchemaRef,
        tx: tokio::sync::mpsc::Sender<tarn_table::Result<RecordBatch>>,
    ) -> Result<u64> {
        let result = async {
            let mut rows = sqlx::raw_sql(&select).fetch(&mut self.conn);
            let mut builders: Vec<ColBuilder> = columns.iter().map(ColBuilder::new).collect();
            let mut n = 0usize;
            let mut total = 0u64;
            while let Some(row) = rows.next().await {
                let row = row.map_err(|e| db_error("reading from the source failed", e))?;
                for (i, (decoder, builder)) in decoders.iter().zip(builders.iter_mut()).enumerate()
                {
                    let value: Option<&[u8]> = row
                        .try_get_unchecked(i)
                        .map_err(|e| db_error("reading a value", e))?;
                    match value {
                        None => builder.append_null(),
                        Some(v) => decode(decoder, v, builder).map_err(|m| {
                            Error::invalid(format!("column `{}`: {m}", schema.field(i).name()))
                        })?,
                    }
                }
                n += 1;
                total += 1;
                if n == BATCH_ROWS {
                    send_batch(&schema, &mut builders, &tx).await?;
                    n = 0;
                }
            }
            if n > 0 {
                send_batch(&schema, &mut builders, &tx).await?;
            }
            Ok::<u64, Error>(total)
        }
        .await;
        if let Err(e) = &result {
            let _ = tx
                .send(Err(tarn_table::Error::invalid(e.message().to_string())))
                .await;
        }
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await;
        result
    }

    pub(crate) async fn close(mut self) {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await;
    }
}

async fn send_batch(
    schema: &SchemaRef,
    builders: &mut [ColBuilder],
    tx: &tokio::sync::mpsc::Sender<tarn_table::Result<RecordBatch>>,
) -> Result<()> {
    tx.send(Ok(finish_batch(schema, builders)?))
        .await
        .map_err(|_| Error::internal("the table writer stopped"))
}

/// Maps a `SHOW COLUMNS` type (`int(11)`, `decimal(12,2)`, `bigint(20) unsigned`).
fn map_type(type_text: &str, timestamp_ntz: bool) -> Option<(ColType, Decoder)> {
    let t = type_text.to_ascii_lowercase();
    let unsigned = t.contains("unsigned");
    let base = t.split(['(', ' ']).next().unwrap_or_default();
    let args: Vec<i64> = t
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inside, _)| {
            inside
                .split(',')
                .filter_map(|a| a.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    Some(match (base, unsigned) {
        ("tinyint", false) => (ColType::Int8, Decoder::Int),
        ("tinyint", true) | ("smallint", false) | ("year", _) => (ColType::Int16, Decoder::Int),
        ("smallint", true) | ("mediumint", _) | ("int" | "integer", false) => {
            (ColType::Int32, Decoder::Int)
        }
        ("int" | "integer", true) | ("bigint", false) => (ColType::Int64, Decoder::Int),
        ("bigint", true) => (ColType::Decimal(20, 0), Decoder::Decimal(0)),
        ("decimal" | "numeric", _) => {
            let p = *args.first().unwrap_or(&10);
            let s = *args.get(1).unwrap_or(&0);
            if !(1..=38).contains(&p) || s > p {
                return None;
            }
            (
                ColType::Decimal(p as u8, s as i8),
                Decoder::Decimal(s as i8),
            )
        }
        ("float", _) => (ColType::Float32, Decoder::Float),
        ("double" | "real", _) => (ColType::Float64, Decoder::Float),
        (
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "json" | "enum"
            | "set",
            _,
        ) => (ColType::Utf8, Decoder::Text),
        ("binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob", _) => {
            (ColType::Binary, Decoder::Bytes)
        }
        ("bit", _) if args.first() == Some(&1) => (ColType::Bool, Decoder::Bit),
        ("date", _) => (ColType::Date, Decoder::Date),
        // TIMESTAMP is stored in UTC and read with the session at +00:00.
        ("timestamp", _) => (ColType::Timestamp, Decoder::DateTime),
        ("datetime", _) if timestamp_ntz => (ColType::TimestampNtz, Decoder::DateTime),
        ("datetime", _) => (ColType::Timestamp, Decoder::DateTime),
        _ => return None,
    })
}

fn text(v: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(v).map_err(|_| "a text value is not valid UTF-8".to_string())
}

fn decode(
    decoder: &Decoder,
    v: &[u8],
    builder: &mut ColBuilder,
) -> std::result::Result<(), String> {
    let int = |v: &[u8]| -> std::result::Result<i64, String> {
        let t = text(v)?;
        t.parse::<i64>()
            .map_err(|_| format!("`{t}` is not an integer"))
    };
    match (decoder, builder) {
        (Decoder::Int, ColBuilder::Int8(b)) => b.append_value(int(v)? as i8),
        (Decoder::Int, ColBuilder::Int16(b)) => b.append_value(int(v)? as i16),
        (Decoder::Int, ColBuilder::Int32(b)) => b.append_value(int(v)? as i32),
        (Decoder::Int, ColBuilder::Int64(b)) => b.append_value(int(v)?),
        (Decoder::Decimal(s), ColBuilder::Decimal(b, ..)) => {
            b.append_value(parse_decimal(text(v)?, *s)?)
        }
        (Decoder::Float, ColBuilder::Float32(b)) => {
            let t = text(v)?;
            b.append_value(t.parse().map_err(|_| format!("`{t}` is not a number"))?)
        }
        (Decoder::Float, ColBuilder::Float64(b)) => {
            let t = text(v)?;
            b.append_value(t.parse().map_err(|_| format!("`{t}` is not a number"))?)
        }
        (Decoder::Text, ColBuilder::Utf8(b)) => b.append_value(text(v)?),
        (Decoder::Bytes, ColBuilder::Binary(b)) => b.append_value(v),
        (Decoder::Bit, ColBuilder::Bool(b)) => {
            b.append_value(v.iter().any(|byte| *byte != 0 && *byte != b'0'))
        }
        (Decoder::Date, ColBuilder::Date(b)) => {
            let t = text(v)?;
            let d = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map_err(|_| format!("`{t}` is not a date Tarn can store"))?;
            b.append_value(
                (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32,
            )
        }
        (Decoder::DateTime, ColBuilder::Timestamp(b, _)) => {
            let t = text(v)?;
            let dt = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                .map_err(|_| format!("`{t}` is not a time Tarn can store"))?;
            b.append_value(dt.and_utc().timestamp_micros())
        }
        _ => return Err("internal: decoder and builder disagree".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_columns_types_map_faithfully_or_not_at_all() {
        let m = |t: &str| map_type(t, false).map(|(c, _)| c);
        assert_eq!(m("int(11)"), Some(ColType::Int32));
        assert_eq!(m("int(10) unsigned"), Some(ColType::Int64));
        assert_eq!(m("bigint(20) unsigned"), Some(ColType::Decimal(20, 0)));
        assert_eq!(m("decimal(12,2)"), Some(ColType::Decimal(12, 2)));
        assert_eq!(m("varchar(40)"), Some(ColType::Utf8));
        assert_eq!(m("datetime(6)"), Some(ColType::Timestamp));
        assert_eq!(
            map_type("datetime", true).map(|(c, _)| c),
            Some(ColType::TimestampNtz)
        );
        assert_eq!(m("bit(1)"), Some(ColType::Bool));
        assert_eq!(m("time"), None);
        assert_eq!(m("geometry"), None);
        assert_eq!(m("decimal(65,2)"), None);
    }
}
