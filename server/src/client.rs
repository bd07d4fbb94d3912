//! [`RemoteCatalogStore`]: the catalog of a running `tarn serve`, reached over its Unity
//! Catalog REST API, behind the same [`CatalogStore`] trait as the local databases. The CLI
//! uses it for `--server URL --token T`.

use async_trait::async_trait;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tarn_catalog::{
    CatalogInfo, CatalogStore, Error, ErrorKind, NewCatalog, NewSchema, NewTable, SchemaInfo,
    SchemaName, Scope, TableInfo, TableName, TokenInfo,
};

use crate::error::UnityError;
use crate::unity::wire::{
    Catalog, CreateCatalog, CreateColumn, CreateSchema, CreateTable, Deleted, ListCatalogs,
    ListSchemas, ListTables, Schema, Table,
};
use crate::unity::PREFIX as UC;

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

    /// Sends a request and reads the answer as `T`. An error answer becomes the catalog
    /// error its `error_code` names; an answer that is not a `T` is an error naming the
    /// endpoint and what is wrong with it.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Error> {
        let endpoint = format!("{method} {UC}{path}");
        let mut req = self
            .http
            .request(method, format!("{}{UC}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            let bytes = serde_json::to_vec(b).map_err(|e| {
                Error::new(
                    ErrorKind::Internal,
                    format!("cannot encode {endpoint}: {e}"),
                )
            })?;
            req = req.header("Content-Type", "application/json").body(bytes);
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
                format!("bad answer from {} to {endpoint}: {e}", self.base),
            )
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                Error::new(
                    ErrorKind::Internal,
                    format!("server {}: malformed answer to {endpoint}: {e}", self.base),
                )
            });
        }
        let Ok(error) = serde_json::from_slice::<UnityError>(&bytes) else {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "server {}: {endpoint} failed with HTTP {} and no error body",
                    self.base,
                    status.as_u16()
                ),
            ));
        };
        let kind = match error.error_code.as_str() {
            "NOT_FOUND" => ErrorKind::NotFound,
            "ALREADY_EXISTS" => ErrorKind::AlreadyExists,
            "FAILED_PRECONDITION" => ErrorKind::FailedPrecondition,
            "INVALID_ARGUMENT" | "UNAUTHENTICATED" | "PERMISSION_DENIED" => ErrorKind::InvalidInput,
            "TEMPORARILY_UNAVAILABLE" => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        };
        // A 5xx names only an error id: the cause is in the server's log, under that id.
        let hint = if status.is_server_error() && error.message.contains("error id") {
            "; the server's log has the cause under that error id"
        } else {
            ""
        };
        Err(Error::new(
            kind,
            format!(
                "server {}: {} (HTTP {}){hint}",
                self.base,
                error.message,
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
        let columns = columns
            .iter()
            .enumerate()
            .map(|(i, (n, t, nullable))| CreateColumn {
                name: n.clone(),
                type_text: t.clone(),
                nullable: *nullable,
                position: Some(i as i64),
            })
            .collect();
        let body = CreateTable {
            name: name.table.clone(),
            catalog_name: name.catalog.clone(),
            schema_name: name.schema.clone(),
            table_type: "MANAGED".into(),
            data_source_format: Some("DELTA".into()),
            columns,
            storage_location: None,
            comment,
            properties: Default::default(),
        };
        self.post::<Table, _>("/tables", &body).await
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
        self.delete(&path).await?;
        Ok(info)
    }
}

/// No request body.
const NO_BODY: Option<&()> = None;

impl RemoteCatalogStore {
    /// `GET path`, read as `T` and converted to what the catalog trait returns.
    async fn get<T: DeserializeOwned + Into<U>, U>(&self, path: &str) -> Result<U, Error> {
        Ok(self.call::<T>(Method::GET, path, NO_BODY).await?.into())
    }

    /// `POST path` with `body`, read as `T` and converted.
    async fn post<T: DeserializeOwned + Into<U>, U>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<U, Error> {
        Ok(self.call::<T>(Method::POST, path, Some(body)).await?.into())
    }

    /// `DELETE path`, whose answer is `{}`.
    async fn delete(&self, path: &str) -> Result<(), Error> {
        let _: Deleted = self.call(Method::DELETE, path, NO_BODY).await?;
        Ok(())
    }

    /// A list answer's items, converted.
    async fn list<T: DeserializeOwned, U>(
        &self,
        path: &str,
        items: impl FnOnce(T) -> Vec<U>,
    ) -> Result<Vec<U>, Error> {
        Ok(items(self.call(Method::GET, path, NO_BODY).await?))
    }
}

fn converted<T: Into<U>, U>(items: Vec<T>) -> Vec<U> {
    items.into_iter().map(Into::into).collect()
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
        let body = CreateCatalog {
            name: new.name,
            comment: new.comment,
            properties: new.properties,
        };
        self.post::<Catalog, _>("/catalogs", &body).await
    }
    async fn get_catalog(&self, name: &str) -> Result<CatalogInfo, Error> {
        self.get::<Catalog, _>(&format!("/catalogs/{name}")).await
    }
    async fn list_catalogs(&self) -> Result<Vec<CatalogInfo>, Error> {
        self.list("/catalogs", |l: ListCatalogs| converted(l.catalogs))
            .await
    }
    async fn delete_catalog(&self, name: &str, force: bool) -> Result<(), Error> {
        self.delete(&format!("/catalogs/{name}?force={force}"))
            .await
    }
    async fn create_schema(&self, new: NewSchema) -> Result<SchemaInfo, Error> {
        let body = CreateSchema {
            name: new.name,
            catalog_name: new.catalog_name,
            comment: new.comment,
            properties: new.properties,
        };
        self.post::<Schema, _>("/schemas", &body).await
    }
    async fn get_schema(&self, name: &SchemaName) -> Result<SchemaInfo, Error> {
        self.get::<Schema, _>(&format!("/schemas/{name}")).await
    }
    async fn list_schemas(&self, catalog: &str) -> Result<Vec<SchemaInfo>, Error> {
        let path = format!("/schemas?catalog_name={catalog}");
        self.list(&path, |l: ListSchemas| converted(l.schemas))
            .await
    }
    async fn delete_schema(&self, name: &SchemaName, force: bool) -> Result<(), Error> {
        self.delete(&format!("/schemas/{name}?force={force}")).await
    }
    async fn create_table(&self, new: NewTable) -> Result<TableInfo, Error> {
        let body = CreateTable {
            name: new.name,
            catalog_name: new.catalog_name,
            schema_name: new.schema_name,
            table_type: new.table_type.as_str().into(),
            data_source_format: Some("DELTA".into()),
            columns: Vec::new(),
            storage_location: Some(new.storage_location),
            comment: new.comment,
            properties: new.properties,
        };
        self.post::<Table, _>("/tables", &body).await
    }
    async fn get_table(&self, name: &TableName) -> Result<TableInfo, Error> {
        self.get::<Table, _>(&format!("/tables/{name}")).await
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
        self.list(&path, |l: ListTables| converted(l.tables)).await
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
