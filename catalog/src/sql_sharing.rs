//! [`SharingStore`] for [`SqlCatalogStore`]: shares, shared tables, recipients and secrets
//! in the same database as the catalog.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::{Error, ErrorKind, Result};
use crate::names::validate_name;
use crate::sharing::{NewSharedTable, RecipientInfo, ShareInfo, SharedTable, SharingStore};
use crate::sql::{new_id, not_found, now, SqlCatalogStore};

fn db(what: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |e| Error::from_db(e, what)
}

fn share_from_row(row: &AnyRow) -> sqlx::Result<ShareInfo> {
    Ok(ShareInfo {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        comment: row.try_get("comment")?,
        created_at: row.try_get("created_at")?,
    })
}

fn shared_table_from_row(row: &AnyRow) -> sqlx::Result<SharedTable> {
    Ok(SharedTable {
        id: row.try_get("id")?,
        share_name: row.try_get("share_name")?,
        schema_name: row.try_get("schema_name")?,
        name: row.try_get("name")?,
        table_id: row.try_get("table_id")?,
        history: row.try_get::<i64, _>("history")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

const SHARED_TABLE_SELECT: &str = "SELECT st.id, s.name AS share_name, st.schema_name, st.name, \
     st.table_id, st.history, st.created_at FROM share_tables st JOIN shares s ON s.id = st.share_id";

async fn share_id(tx: &mut Transaction<'_, Any>, name: &str) -> Result<String> {
    sqlx::query("SELECT id FROM shares WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db("share"))?
        .map(|r| r.try_get::<String, _>("id"))
        .transpose()
        .map_err(db("share"))?
        .ok_or_else(|| not_found(format!("share `{name}` does not exist")))
}

async fn recipient_in(
    conn: &mut sqlx::AnyConnection,
    column: &str,
    value: &str,
) -> Result<Option<RecipientInfo>> {
    let sql = format!("SELECT * FROM recipients WHERE {column} = $1");
    let Some(row) = sqlx::query(&sql)
        .bind(value)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("recipient"))?
    else {
        return Ok(None);
    };
    let id: String = row.try_get("id").map_err(db("recipient"))?;
    let shares = sqlx::query(
        "SELECT s.name FROM recipient_shares rs JOIN shares s ON s.id = rs.share_id \
         WHERE rs.recipient_id = $1 ORDER BY s.name",
    )
    .bind(&id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db("recipient"))?
    .iter()
    .map(|r| r.try_get::<String, _>("name"))
    .collect::<sqlx::Result<Vec<_>>>()
    .map_err(db("recipient"))?;
    let info = (|| {
        Ok::<_, sqlx::Error>(RecipientInfo {
            id,
            name: row.try_get("name")?,
            shares,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    })()
    .map_err(db("recipient"))?;
    Ok(Some(info))
}

impl SqlCatalogStore {
    async fn recipient_by(&self, column: &str, value: &str) -> Result<Option<RecipientInfo>> {
        let mut conn = self.pool.acquire().await.map_err(db("recipient"))?;
        recipient_in(&mut conn, column, value).await
    }

    async fn recipient_named(&self, name: &str) -> Result<RecipientInfo> {
        self.recipient_by("name", name)
            .await?
            .ok_or_else(|| not_found(format!("recipient `{name}` does not exist")))
    }
}

#[async_trait]
impl SharingStore for SqlCatalogStore {
    async fn create_share(&self, name: &str, comment: Option<String>) -> Result<ShareInfo> {
        validate_name("share", name)?;
        let info = ShareInfo {
            id: new_id(),
            name: name.into(),
            comment,
            created_at: now(),
        };
        sqlx::query("INSERT INTO shares (id, name, comment, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&info.id)
            .bind(&info.name)
            .bind(&info.comment)
            .bind(info.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| Error::from_db(e, &format!("share `{name}`")))?;
        Ok(info)
    }

    async fn get_share(&self, name: &str) -> Result<ShareInfo> {
        sqlx::query("SELECT * FROM shares WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("share"))?
            .map(|r| share_from_row(&r))
            .transpose()
            .map_err(db("share"))?
            .ok_or_else(|| not_found(format!("share `{name}` does not exist")))
    }

    async fn list_shares(&self) -> Result<Vec<ShareInfo>> {
        sqlx::query("SELECT * FROM shares ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db("share"))?
            .iter()
            .map(share_from_row)
            .collect::<sqlx::Result<_>>()
            .map_err(db("share"))
    }

    async fn delete_share(&self, name: &str) -> Result<()> {
        let mut tx = self.write_tx().await.map_err(db("share"))?;
        let id = share_id(&mut tx, name).await?;
        for sql in [
            "DELETE FROM share_tables WHERE share_id = $1",
            "DELETE FROM recipient_shares WHERE share_id = $1",
            "DELETE FROM shares WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(db("share"))?;
        }
        tx.commit().await.map_err(db("share"))
    }

    async fn add_shared_table(&self, new: NewSharedTable) -> Result<SharedTable> {
        validate_name("schema", &new.schema_name)?;
        validate_name("table", &new.name)?;
        let what = format!(
            "table `{}.{}` in share `{}`",
            new.schema_name, new.name, new.share_name
        );
        let mut tx = self.write_tx().await.map_err(db("share"))?;
        let share = share_id(&mut tx, &new.share_name).await?;
        let table = sqlx::query("SELECT id FROM tables WHERE id = $1 AND state IS NULL")
            .bind(&new.table_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("table"))?;
        if table.is_none() {
            return Err(not_found(format!("no table has id `{}`", new.table_id)));
        }
        let info = SharedTable {
            id: new_id(),
            share_name: new.share_name,
            schema_name: new.schema_name,
            name: new.name,
            table_id: new.table_id,
            history: new.history,
            created_at: now(),
        };
        sqlx::query(
            "INSERT INTO share_tables (id, share_id, schema_name, name, table_id, history, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&info.id)
        .bind(&share)
        .bind(&info.schema_name)
        .bind(&info.name)
        .bind(&info.table_id)
        .bind(i64::from(info.history))
        .bind(info.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::from_db(e, &what))?;
        tx.commit().await.map_err(db("share"))?;
        Ok(info)
    }

    async fn remove_shared_table(&self, share: &str, schema: &str, name: &str) -> Result<()> {
        let mut tx = self.write_tx().await.map_err(db("share"))?;
        let id = share_id(&mut tx, share).await?;
        let done = sqlx::query(
            "DELETE FROM share_tables WHERE share_id = $1 AND schema_name = $2 AND name = $3",
        )
        .bind(&id)
        .bind(schema)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db("share"))?;
        if done.rows_affected() == 0 {
            return Err(not_found(format!(
                "share `{share}` has no table `{schema}.{name}`"
            )));
        }
        tx.commit().await.map_err(db("share"))
    }

    async fn list_shared_tables(&self, share: &str) -> Result<Vec<SharedTable>> {
        self.get_share(share).await?;
        let sql =
            format!("{SHARED_TABLE_SELECT} WHERE s.name = $1 ORDER BY st.schema_name, st.name");
        sqlx::query(&sql)
            .bind(share)
            .fetch_all(&self.pool)
            .await
            .map_err(db("share"))?
            .iter()
            .map(shared_table_from_row)
            .collect::<sqlx::Result<_>>()
            .map_err(db("share"))
    }

    async fn get_shared_table(&self, id: &str) -> Result<SharedTable> {
        let sql = format!("{SHARED_TABLE_SELECT} WHERE st.id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("share"))?
            .map(|r| shared_table_from_row(&r))
            .transpose()
            .map_err(db("share"))?
            .ok_or_else(|| not_found(format!("no shared table has id `{id}`")))
    }

    async fn create_recipient(
        &self,
        name: &str,
        token_hash: &str,
        expires_at: Option<i64>,
        shares: &[String],
    ) -> Result<RecipientInfo> {
        validate_name("recipient", name)?;
        let mut tx = self.write_tx().await.map_err(db("recipient"))?;
        let id = new_id();
        let created_at = now();
        sqlx::query(
            "INSERT INTO recipients (id, name, token_hash, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&id)
        .bind(name)
        .bind(token_hash)
        .bind(created_at)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::from_db(e, &format!("recipient `{name}`")))?;
        let mut granted = Vec::new();
        for share in shares {
            let share_id = share_id(&mut tx, share).await?;
            sqlx::query(
                "INSERT INTO recipient_shares (recipient_id, share_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(&share_id)
            .execute(&mut *tx)
            .await
            .map_err(db("recipient"))?;
            granted.push(share.clone());
        }
        tx.commit().await.map_err(db("recipient"))?;
        granted.sort();
        granted.dedup();
        Ok(RecipientInfo {
            id,
            name: name.into(),
            shares: granted,
            created_at,
            expires_at,
            revoked_at: None,
        })
    }

    async fn find_recipient(&self, token_hash: &str) -> Result<RecipientInfo> {
        self.recipient_by("token_hash", token_hash)
            .await?
            .ok_or_else(|| not_found("unknown token".into()))
    }

    async fn get_recipient(&self, id: &str) -> Result<RecipientInfo> {
        self.recipient_by("id", id)
            .await?
            .ok_or_else(|| not_found(format!("no recipient has id `{id}`")))
    }

    async fn list_recipients(&self) -> Result<Vec<RecipientInfo>> {
        let names = sqlx::query("SELECT name FROM recipients ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db("recipient"))?
            .iter()
            .map(|r| r.try_get::<String, _>("name"))
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(db("recipient"))?;
        let mut all = Vec::with_capacity(names.len());
        for name in names {
            if let Some(r) = self.recipient_by("name", &name).await? {
                all.push(r);
            }
        }
        Ok(all)
    }

    async fn grant_share(&self, recipient: &str, share: &str) -> Result<RecipientInfo> {
        let found = self.recipient_named(recipient).await?;
        let mut tx = self.write_tx().await.map_err(db("recipient"))?;
        let share_id = share_id(&mut tx, share).await?;
        sqlx::query(
            "INSERT INTO recipient_shares (recipient_id, share_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&found.id)
        .bind(&share_id)
        .execute(&mut *tx)
        .await
        .map_err(db("recipient"))?;
        tx.commit().await.map_err(db("recipient"))?;
        self.recipient_named(recipient).await
    }

    async fn revoke_share(&self, recipient: &str, share: &str) -> Result<RecipientInfo> {
        let found = self.recipient_named(recipient).await?;
        let mut tx = self.write_tx().await.map_err(db("recipient"))?;
        let share_id = share_id(&mut tx, share).await?;
        let done =
            sqlx::query("DELETE FROM recipient_shares WHERE recipient_id = $1 AND share_id = $2")
                .bind(&found.id)
                .bind(&share_id)
                .execute(&mut *tx)
                .await
                .map_err(db("recipient"))?;
        if done.rows_affected() == 0 {
            return Err(not_found(format!(
                "recipient `{recipient}` was not granted share `{share}`"
            )));
        }
        tx.commit().await.map_err(db("recipient"))?;
        self.recipient_named(recipient).await
    }

    async fn revoke_recipient(&self, name: &str) -> Result<RecipientInfo> {
        let done = sqlx::query(
            "UPDATE recipients SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(db("recipient"))?;
        let found = self.recipient_named(name).await?;
        if done.rows_affected() == 0 {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("recipient `{name}` is already revoked"),
            ));
        }
        Ok(found)
    }

    async fn secret(&self, name: &str) -> Result<Vec<u8>> {
        let fresh = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        sqlx::query(
            "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(&fresh)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(db("secret"))?;
        let value: String = sqlx::query("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get("value"))
            .map_err(db("secret"))?;
        Ok(value.into_bytes())
    }
}
