//! The OpenAPI document for the endpoints Tarn serves.

use axum::Json;
use serde_json::{json, Value};

/// `GET /openapi.json`.
pub async fn document() -> Json<Value> {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let ok = |schema: &str| json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}}, "default": {"description": "Error", "content": {"application/json": {"schema": error}}}});
    Json(json!({
        "openapi": "3.0.3",
        "info": {"title": "Tarn", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Tarn's catalog over the Unity Catalog REST API (a subset of its api/all.yaml). Auth: `Authorization: Bearer <token>` (tokens from `tarn token create`)."},
        "paths": {
            "/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "OK"}}}},
            "/api/2.1/unity-catalog/catalogs": {
                "get": {"summary": "List catalogs", "parameters": [{"name": "max_results", "in": "query", "schema": {"type": "integer"}}, {"name": "page_token", "in": "query", "schema": {"type": "string"}}], "responses": ok("ListCatalogsResponse")},
                "post": {"summary": "Create a catalog (admin)", "responses": ok("CatalogInfo")}},
            "/api/2.1/unity-catalog/catalogs/{name}": {
                "get": {"summary": "Get a catalog", "responses": ok("CatalogInfo")},
                "delete": {"summary": "Delete a catalog (admin; force=true for a non-empty one)", "responses": ok("Empty")}},
            "/api/2.1/unity-catalog/schemas": {
                "get": {"summary": "List schemas of catalog_name", "responses": ok("ListSchemasResponse")},
                "post": {"summary": "Create a schema (admin)", "responses": ok("SchemaInfo")}},
            "/api/2.1/unity-catalog/schemas/{full_name}": {
                "get": {"summary": "Get a schema", "responses": ok("SchemaInfo")},
                "delete": {"summary": "Delete a schema (admin)", "responses": ok("Empty")}},
            "/api/2.1/unity-catalog/tables": {
                "get": {"summary": "List tables of catalog_name.schema_name", "responses": ok("ListTablesResponse")},
                "post": {"summary": "Create a MANAGED table or register an EXTERNAL one (write)", "responses": ok("TableInfo")}},
            "/api/2.1/unity-catalog/tables/{full_name}": {
                "get": {"summary": "Get a table with its current columns", "responses": ok("TableInfo")},
                "delete": {"summary": "Unregister a table (write); data is kept unless purge=true, which also deletes a MANAGED table's files at its managed location under the server's warehouse", "parameters": [{"name": "purge", "in": "query", "schema": {"type": "boolean"}}], "responses": ok("Empty")}},
            "/api/2.1/unity-catalog/temporary-table-credentials": {"post": {"summary": "Credentials for a table", "responses": ok("TemporaryCredentials")}},
            "/api/2.1/unity-catalog/temporary-path-credentials": {"post": {"summary": "Credentials for a path", "responses": ok("TemporaryCredentials")}},
            "/api/2.0/settings/types/default_namespace_ws/names/default": {"get": {"summary": "Default schema setting", "responses": {"200": {"description": "OK"}}}}
        },
        "components": {"schemas": {
            "Error": {"type": "object", "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "array", "items": {"type": "object"}}}},
            "Empty": {"type": "object"},
            "CatalogInfo": {"type": "object"}, "SchemaInfo": {"type": "object"}, "TableInfo": {"type": "object"},
            "ListCatalogsResponse": {"type": "object"}, "ListSchemasResponse": {"type": "object"}, "ListTablesResponse": {"type": "object"},
            "TemporaryCredentials": {"type": "object"}
        }}
    }))
}
