//! [`RemoteCatalogStore`]: the catalog of a running `tarn serve`, reached over its Unity
//! Catalog REST API, behind the same [`CatalogStore`] trait as the local databases. The CLI
//! uses it for `--server URL --token T`.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Value};
use tarn_catalog::{
    CatalogInfo, CatalogStore, Error, ErrorKind, NewCatalog, NewSchema, NewTable, SchemaInfo,
    SchemaName, Scope, TableInfo, TableName, TableType, TokenInfo,
};

const UC: &str = "/api/2.1/unity-catalog";

/// A remote catalog.
#[derive(Debug, Clone)]
pub struct RemoteCatalogStore {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl RemoteCatalogStore {
    /// The server at `base` (e.g. `http://127.0.0.1:8080`), with a bearer token.
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, Error> {
        let mut req = self
            .http
            .request(method, format!("{}{UC}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot reach the server at {}: {e}", self.base),
            )
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("bad answer from {}: {e}", self.base),
            )
        })?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let message = value["message"]
            .as_str()
            .unwrap_or("request failed")
            .to_string();
        let kind = match value["error_code"].as_str().unwrap_or("") {
            "NOT_FOUND" => ErrorKind::NotFound,
            "ALREADY_EXISTS" => ErrorKind::AlreadyExists,
            "FAILED_PRECONDITION" => ErrorKind::FailedPrecondition,
            "INVALID_ARGUMENT" | "UNAUTHENTICATED" | "PERMISSION_DENIED" => ErrorKind::InvalidInput,
            "TEMPORARILY_UNAVAILABLE" => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        };
        // A 5xx names only an error id: the cause is in the server's log, under that id.
        let hint = if status.is_server_error() && message.contains("error id") {
            "; the server's log has the cause under that error id"
        } else {
            ""
        };
        Err(Error::new(
            kind,
            format!(
                "server {}: {message} (HTTP {}){hint}",
                self.base,
                status.as_u16()
            ),
        ))
    }

    /// Asks the server to create a MANAGED table with these columns (name, Spark type, nullable).
    pub async fn create_managed_table(
        &self,
        name: &TableName,
        columns: &[(String, String, bool)],
        comment: Option<String>,
    ) -> Result<TableInfo, Error> {
        let columns: Vec<Value> = columns
            .iter()
            .enumerate()
            .map(|(i, (n, t, nullable))| json!({"name": n, "type_text": t, "nullable": nullable, "position": i}))
            .collect();
        let v = self
            .call(
                Method::POST,
                "/tables",
                Some(json!({"name": name.table, "catalog_name": name.catalog, "schema_name": name.schema,
                            "table_type": "MANAGED", "data_source_format": "DELTA", "columns": columns, "comment": comment})),
            )
            .await?;
        table_from(&v)
    }

    /// Drops a table on the server (`DELETE /tables/NAME`, with `?purge=true` to have the
    /// server delete a MANAGED table's files, which it does only under its own warehouse).
    /// Returns the table as it was. Nothing is deleted on this machine.
    pub async fn drop_table(&self, name: &TableName, purge: bool) -> Result<TableInfo, Error> {
        let info = self.get_table(name).await?;
        let path = if purge {
            format!("/tables/{name}?purge=true")
        } else {
            format!("/tables/{name}")
        };
        self.call(Method::DELETE, &path, None).await?;
        Ok(info)
    }
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn properties(v: &Value) -> std::collections::BTreeMap<String, String> {
    serde_json::from_value(v["properties"].clone()).unwrap_or_default()
}

fn catalog_from(v: &Value) -> Result<CatalogInfo, Error> {
    Ok(CatalogInfo {
        id: text(v, "id"),
        name: text(v, "name"),
        comment: v["comment"].as_str().map(str::to_string),
        properties: properties(v),
        owner: v["owner"].as_str().map(str::to_string),
        created_at: v["created_at"].as_i64().unwrap_or(0),
        updated_at: v["updated_at"].as_i64().unwrap_or(0),
    })
}

fn schema_from(v: &Value) -> Result<SchemaInfo, Error> {
    Ok(SchemaInfo {
        id: text(v, "schema_id"),
        catalog_name: text(v, "catalog_name"),
        name: text(v, "name"),
        comment: v["comment"].as_str().map(str::to_string),
        properties: properties(v),
        owner: v["owner"].as_str().map(str::to_string),
        created_at: v["created_at"].as_i64().unwrap_or(0),
        updated_at: v["updated_at"].as_i64().unwrap_or(0),
    })
}

fn table_from(v: &Value) -> Result<TableInfo, Error> {
    Ok(TableInfo {
        id: text(v, "table_id"),
        catalog_name: text(v, "catalog_name"),
        schema_name: text(v, "schema_name"),
        name: text(v, "name"),
        table_type: if v["table_type"] == "MANAGED" {
            TableType::Managed
        } else {
            TableType::External
        },
        data_source_format: text(v, "data_source_format"),
        storage_location: text(v, "storage_location"),
        comment: v["comment"].as_str().map(str::to_string),
        properties: properties(v),
        owner: v["owner"].as_str().map(str::to_string),
        created_at: v["created_at"].as_i64().unwrap_or(0),
        updated_at: v["updated_at"].as_i64().unwrap_or(0),
    })
}

fn list<T>(v: &Value, key: &str, f: fn(&Value) -> Result<T, Error>) -> Result<Vec<T>, Error> {
    v[key]
        .as_array()
        .map(|a| a.iter().map(f).collect())
        .unwrap_or_else(|| Ok(Vec::new()))
}

fn local_only<T>() -> Result<T, Error> {
    Err(Error::new(
        ErrorKind::InvalidInput,
        "tokens are managed on the server's machine: run `tarn token` there, without --server",
    ))
}

#[async_trait]
impl CatalogStore for RemoteCatalogStore {
    async fn create_catalog(&self, new: NewCatalog) -> Result<CatalogInfo, Error> {
        let v = self
            .call(
                Method::POST,
                "/catalogs",
                Some(
                    json!({"name": new.name, "comment": new.comment, "properties": new.properties}),
                ),
            )
            .await?;
        catalog_from(&v)
    }
    async fn get_catalog(&self, name: &str) -> Result<CatalogInfo, Error> {
        catalog_from(
            &self
                .call(Method::GET, &format!("/catalogs/{name}"), None)
                .await?,
        )
    }
    async fn list_catalogs(&self) -> Result<Vec<CatalogInfo>, Error> {
        list(
            &self.call(Method::GET, "/catalogs", None).await?,
            "catalogs",
            catalog_from,
        )
    }
    async fn delete_catalog(&self, name: &str, force: bool) -> Result<(), Error> {
        self.call(
            Method::DELETE,
            &format!("/catalogs/{name}?force={force}"),
            None,
        )
        .await
        .map(|_| ())
    }
    async fn create_schema(&self, new: NewSchema) -> Result<SchemaInfo, Error> {
        let body = json!({"name": new.name, "catalog_name": new.catalog_name, "comment": new.comment, "properties": new.properties});
        schema_from(&self.call(Method::POST, "/schemas", Some(body)).await?)
    }
    async fn get_schema(&self, name: &SchemaName) -> Result<SchemaInfo, Error> {
        schema_from(
            &self
                .call(Method::GET, &format!("/schemas/{name}"), None)
                .await?,
        )
    }
    async fn list_schemas(&self, catalog: &str) -> Result<Vec<SchemaInfo>, Error> {
        list(
            &self
                .call(
                    Method::GET,
                    &format!("/schemas?catalog_name={catalog}"),
                    None,
                )
                .await?,
            "schemas",
            schema_from,
        )
    }
    async fn delete_schema(&self, name: &SchemaName, force: bool) -> Result<(), Error> {
        self.call(
            Method::DELETE,
            &format!("/schemas/{name}?force={force}"),
            None,
        )
        .await
        .map(|_| ())
    }
    async fn create_table(&self, new: NewTable) -> Result<TableInfo, Error> {
        let body = json!({"name": new.name, "catalog_name": new.catalog_name, "schema_name": new.schema_name,
            "table_type": new.table_type.as_str(), "data_source_format": "DELTA", "columns": [],
            "storage_location": new.storage_location, "comment": new.comment, "properties": new.properties});
        table_from(&self.call(Method::POST, "/tables", Some(body)).await?)
    }
    async fn get_table(&self, name: &TableName) -> Result<TableInfo, Error> {
        table_from(
            &self
                .call(Method::GET, &format!("/tables/{name}"), None)
                .await?,
        )
    }
    async fn get_table_by_id(&self, id: &str) -> Result<TableInfo, Error> {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("looking up table id `{id}` is not part of the HTTP API"),
        ))
    }
    async fn list_tables(&self, schema: &SchemaName) -> Result<Vec<TableInfo>, Error> {
        let path = format!(
            "/tables?catalog_name={}&schema_name={}",
            schema.catalog, schema.schema
        );
        list(
            &self.call(Method::GET, &path, None).await?,
            "tables",
            table_from,
        )
    }
    async fn delete_table(&self, name: &TableName) -> Result<TableInfo, Error> {
        self.drop_table(name, false).await
    }
    async fn create_token(
        &self,
        _: &str,
        _: &str,
        _: Scope,
        _: Option<i64>,
    ) -> Result<TokenInfo, Error> {
        local_only()
    }
    async fn find_token(&self, _: &str) -> Result<TokenInfo, Error> {
        local_only()
    }
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        local_only()
    }
    async fn delete_token(&self, _: &str) -> Result<(), Error> {
        local_only()
    }
}
