//! The OpenAPI document for the endpoints Tarn serves: every route of the Unity Catalog
//! REST API, the Delta Sharing protocol and the Iceberg REST catalog, with its path and query parameters and request
//! bodies, so a client generator (or an API fuzzer) can drive the whole surface from it.

use axum::Json;
use serde_json::{json, Value};

/// `GET /openapi.json`.
pub async fn document() -> Json<Value> {
    Json(spec())
}

/// What a catalog, schema or table name may be (`tarn_catalog::validate_name`).
const NAME: &str = "[A-Za-z0-9_@-]+";

/// A string of `parts` names joined by dots (`catalog.schema.table` is 3), with an example.
fn dotted(parts: usize, example: &str) -> Value {
    let pattern = vec![NAME; parts].join("\\.");
    json!({"type": "string", "pattern": format!("^{pattern}$"), "example": example})
}

/// A path parameter (always required, a string).
fn path(name: &str, description: &str) -> Value {
    path_of(name, description, json!({"type": "string"}))
}

/// A path parameter with its own schema.
fn path_of(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": schema})
}

/// An optional query parameter of the given JSON type.
fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
           "schema": {"type": ty}})
}

/// A required query parameter with its schema.
fn required_query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": true, "description": description,
           "schema": schema})
}

/// A JSON request body with the named schema.
fn body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {
        "schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

/// The answers of a Unity Catalog operation: the named schema, or an error.
fn uc_responses(schema: &str) -> Value {
    json!({
        "200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": format!("#/components/schemas/{schema}")}}}},
        "400": {"$ref": "#/components/responses/UcError"},
        "401": {"$ref": "#/components/responses/UcError"},
        "403": {"$ref": "#/components/responses/UcError"},
        "404": {"$ref": "#/components/responses/UcError"},
        "409": {"$ref": "#/components/responses/UcError"},
        "default": {"$ref": "#/components/responses/UcError"}
    })
}

/// The answers of a Delta Sharing operation: JSON or newline-delimited JSON, or an error.
fn sharing_responses(ndjson: bool) -> Value {
    let content = if ndjson {
        json!({"application/x-ndjson": {"schema": {"type": "string"}}})
    } else {
        json!({"application/json": {"schema": {"type": "object"}}})
    };
    json!({
        "200": {"description": "OK", "content": content},
        "400": {"$ref": "#/components/responses/SharingError"},
        "401": {"$ref": "#/components/responses/SharingError"},
        "403": {"$ref": "#/components/responses/SharingError"},
        "404": {"$ref": "#/components/responses/SharingError"},
        "default": {"$ref": "#/components/responses/SharingError"}
    })
}

/// A Unity Catalog operation (catalog bearer token).
fn uc(summary: &str, parameters: Value, request: Option<&str>, answer: &str) -> Value {
    let mut op = json!({"tags": ["Unity Catalog"], "summary": summary,
                        "parameters": parameters, "responses": uc_responses(answer),
                        "security": [{"catalogToken": []}]});
    if let Some(schema) = request {
        op["requestBody"] = body(schema);
    }
    op
}

/// A Delta Sharing operation (recipient bearer token).
fn sharing(summary: &str, parameters: Value, ndjson: bool) -> Value {
    json!({"tags": ["Delta Sharing"], "summary": summary, "parameters": parameters,
           "responses": sharing_responses(ndjson), "security": [{"recipientToken": []}]})
}

/// An Iceberg REST catalog operation (catalog bearer token, `read` scope): the named answer
/// schema (none: 204 without a body), or an error in Iceberg's shape.
fn iceberg(summary: &str, parameters: Value, answer: Option<&str>) -> Value {
    let ok = match answer {
        Some(schema) => json!({"200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": format!("#/components/schemas/{schema}")}}}}}),
        None => json!({"204": {"description": "It exists"}}),
    };
    let mut responses = ok;
    for status in ["400", "401", "403", "404", "406"] {
        responses[status] = json!({"$ref": "#/components/responses/IcebergError"});
    }
    responses["default"] = json!({"$ref": "#/components/responses/IcebergError"});
    json!({"tags": ["Iceberg REST"], "summary": summary, "parameters": parameters,
           "responses": responses, "security": [{"catalogToken": []}]})
}

/// The whole OpenAPI 3.0 document.
pub fn spec() -> Value {
    const UC: &str = "/api/2.1/unity-catalog";
    const DS: &str = crate::sharing::PREFIX;
    let page = || {
        vec![
            query(
                "max_results",
                "integer",
                "Page size; 0 or absent: everything",
            ),
            query(
                "page_token",
                "string",
                "`next_page_token` of the previous page",
            ),
        ]
    };
    let with_page = |mut params: Vec<Value>| {
        params.extend(page());
        Value::Array(params)
    };
    let ds_page = || {
        vec![
            query("maxResults", "integer", "Page size"),
            query(
                "pageToken",
                "string",
                "`nextPageToken` of the previous page",
            ),
        ]
    };
    let share = || path_of("share", "Share name", dotted(1, "partners"));
    let schema = || path_of("schema", "Schema name within the share", dotted(1, "sales"));
    let table = || path_of("table", "Table name within the schema", dotted(1, "orders"));
    let table_params = || vec![share(), schema(), table()];
    let capabilities = json!({"name": "delta-sharing-capabilities", "in": "header",
        "required": false, "schema": {"type": "string"},
        "description": "`responseformat=parquet|delta;readerfeatures=...`"});
    let with_capabilities = |mut params: Vec<Value>| {
        params.push(capabilities.clone());
        Value::Array(params)
    };
    let force = query("force", "boolean", "Delete even when not empty");

    let mut paths = serde_json::Map::new();
    let mut add = |p: String, item: Value| {
        paths.insert(p, item);
    };
    add(
        "/health".into(),
        json!({"get": {"tags": ["Server"], "summary": "Liveness",
        "security": [], "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}}}),
    );
    add(
        "/openapi.json".into(),
        json!({"get": {"tags": ["Server"], "summary": "This document",
        "security": [], "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}}}),
    );

    add(
        format!("{UC}/catalogs"),
        json!({
        "get": uc("List catalogs", with_page(vec![]), None, "ListCatalogsResponse"),
        "post": uc("Create a catalog (admin)", json!([]), Some("CreateCatalog"), "CatalogInfo")}),
    );
    add(
        format!("{UC}/catalogs/{{name}}"),
        json!({
        "get": uc("Get a catalog", json!([path_of("name", "Catalog name", dotted(1, "main"))]), None, "CatalogInfo"),
        "delete": uc("Delete a catalog (admin)", json!([path_of("name", "Catalog name", dotted(1, "main")), force.clone()]), None, "Empty")}),
    );
    add(
        format!("{UC}/schemas"),
        json!({
        "get": uc("List the schemas of a catalog",
                  with_page(vec![required_query("catalog_name", dotted(1, "main"), "Catalog")]), None, "ListSchemasResponse"),
        "post": uc("Create a schema (admin)", json!([]), Some("CreateSchema"), "SchemaInfo")}),
    );
    add(
        format!("{UC}/schemas/{{full_name}}"),
        json!({
        "get": uc("Get a schema", json!([path_of("full_name", "catalog.schema", dotted(2, "main.shop"))]), None, "SchemaInfo"),
        "delete": uc("Delete a schema (admin)", json!([path_of("full_name", "catalog.schema", dotted(2, "main.shop")), force]), None, "Empty")}),
    );
    add(
        format!("{UC}/tables"),
        json!({
        "get": uc("List the tables of a schema",
                  with_page(vec![required_query("catalog_name", dotted(1, "main"), "Catalog"),
                                 required_query("schema_name", dotted(1, "shop"), "Schema")]),
                  None, "ListTablesResponse"),
        "post": uc("Create a MANAGED table or register an EXTERNAL one (write)", json!([]), Some("CreateTable"), "TableInfo")}),
    );
    add(
        format!("{UC}/tables/{{full_name}}"),
        json!({
        "get": uc("Get a table with its current columns", json!([path_of("full_name", "catalog.schema.table", dotted(3, "main.shop.orders"))]), None, "TableInfo"),
        "delete": uc("Unregister a table (write); its data is kept, unless purge=true: then a MANAGED table's files are deleted, only at its managed location under the server's warehouse", json!([path_of("full_name", "catalog.schema.table", dotted(3, "main.shop.orders")), query("purge", "boolean", "Also delete a MANAGED table's files (Tarn's own parameter)")]), None, "Empty")}),
    );
    add(
        format!("{UC}/temporary-table-credentials"),
        json!({
        "post": uc("Where to read or write a table", json!([]), Some("TableCredentialRequest"), "TemporaryCredentials")}),
    );
    add(
        format!("{UC}/temporary-path-credentials"),
        json!({
        "post": uc("Where to read or write a path", json!([]), Some("PathCredentialRequest"), "TemporaryCredentials")}),
    );
    add(
        "/api/2.0/settings/types/default_namespace_ws/names/default".into(),
        json!({
        "get": uc("The default schema setting", json!([]), None, "Setting")}),
    );

    add(
        format!("{DS}/shares"),
        json!({
        "get": sharing("List the shares granted to the caller", Value::Array(ds_page()), false)}),
    );
    add(
        format!("{DS}/shares/{{share}}"),
        json!({
        "get": sharing("Get a share", json!([share()]), false)}),
    );
    add(
        format!("{DS}/shares/{{share}}/schemas"),
        json!({
        "get": sharing("List the schemas of a share", Value::Array([vec![share()], ds_page()].concat()), false)}),
    );
    add(
        format!("{DS}/shares/{{share}}/schemas/{{schema}}/tables"),
        json!({
        "get": sharing("List the tables of a schema", Value::Array([vec![share(), schema()], ds_page()].concat()), false)}),
    );
    add(
        format!("{DS}/shares/{{share}}/all-tables"),
        json!({
        "get": sharing("List all the tables of a share", Value::Array([vec![share()], ds_page()].concat()), false)}),
    );
    let t = format!("{DS}/shares/{{share}}/schemas/{{schema}}/tables/{{table}}");
    add(
        format!("{t}/version"),
        json!({
        "get": sharing("The table's version (at startingTimestamp)",
                       Value::Array([table_params(), vec![query("startingTimestamp", "string", "ISO 8601 timestamp")]].concat()),
                       false)}),
    );
    add(
        format!("{t}/metadata"),
        json!({
        "get": sharing("The table's protocol and metadata", with_capabilities(table_params()), true)}),
    );
    let mut query_op = sharing(
        "The table's files (a version, a timestamp or a range of versions)",
        with_capabilities(table_params()),
        true,
    );
    query_op["requestBody"] = json!({"required": false, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/QueryTable"}}}});
    add(format!("{t}/query"), json!({"post": query_op}));
    add(
        format!("{t}/changes"),
        json!({
        "get": sharing("The table's change data feed",
                       with_capabilities([table_params(), vec![
                           query("startingVersion", "integer", "First version"),
                           query("endingVersion", "integer", "Last version"),
                           query("startingTimestamp", "string", "ISO 8601 timestamp"),
                           query("endingTimestamp", "string", "ISO 8601 timestamp"),
                           query("includeHistoricalMetadata", "boolean", "Also metadata changes"),
                           query("maxFiles", "integer", "At most this many files per answer; the answer ends with an endStreamAction holding nextPageToken"),
                           query("pageToken", "string", "The nextPageToken of the previous page"),
                       ]].concat()),
                       true)}),
    );
    add(
        format!("{DS}/files/{{token}}"),
        json!({
        "get": {"tags": ["Delta Sharing"], "summary": "A data file at a pre-signed URL (the URL is the credential)",
                "security": [],
                "parameters": [path("token", "The signed file ticket"),
                               {"name": "Range", "in": "header", "required": false, "schema": {"type": "string"},
                                "description": "`bytes=start-end`"}],
                "responses": {"200": {"description": "The file", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                              "206": {"description": "Part of the file", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                              "403": {"$ref": "#/components/responses/SharingError"},
                              "404": {"$ref": "#/components/responses/SharingError"},
                              "416": {"description": "Range not satisfiable"}}}}),
    );

    // The Iceberg REST catalog (read-only; every other method of these paths answers 406).
    const IB: &str = crate::iceberg::PREFIX;
    let prefix = || {
        path(
            "prefix",
            "The catalog (the `prefix` that `/v1/config` gives)",
        )
    };
    let namespace = || path("namespace", "A schema of the catalog (one level)");
    let ib_page = || {
        vec![
            query(
                "pageToken",
                "string",
                "`next-page-token` of the previous page",
            ),
            query("pageSize", "integer", "Page size"),
        ]
    };
    add(
        format!("{IB}/v1/config"),
        json!({"get": iceberg("The catalog's configuration (its `prefix`)",
                              json!([query("warehouse", "string", "A catalog name; absent: the only catalog")]),
                              Some("IcebergConfig"))}),
    );
    add(
        format!("{IB}/v1/{{prefix}}/namespaces"),
        json!({"get": iceberg("The catalog's schemas as namespaces",
                              Value::Array([vec![prefix(), query("parent", "string", "A parent namespace (none are nested)")], ib_page()].concat()),
                              Some("IcebergListNamespaces"))}),
    );
    add(
        format!("{IB}/v1/{{prefix}}/namespaces/{{namespace}}"),
        json!({"get": iceberg("A namespace", json!([prefix(), namespace()]), Some("IcebergNamespace")),
               "head": iceberg("Whether a namespace exists (204 or 404)", json!([prefix(), namespace()]), None)}),
    );
    add(
        format!("{IB}/v1/{{prefix}}/namespaces/{{namespace}}/tables"),
        json!({"get": iceberg("The namespace's tables",
                              Value::Array([vec![prefix(), namespace()], ib_page()].concat()),
                              Some("IcebergListTables"))}),
    );
    let table = || path("table", "A table of the namespace");
    add(
        format!("{IB}/v1/{{prefix}}/namespaces/{{namespace}}/tables/{{table}}"),
        json!({"get": iceberg("Load a table: its Iceberg metadata, one snapshot per Delta version",
                              json!([prefix(), namespace(), table(),
                                     query("snapshots", "string", "`all` (default) or `refs`")]),
                              Some("IcebergLoadTable")),
               "head": iceberg("Whether a table exists (204 or 404)", json!([prefix(), namespace(), table()]), None)}),
    );

    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let name = |example: &str| dotted(1, example);
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Tarn", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Tarn's catalog over the Unity Catalog REST API (a subset of its api/all.yaml) and its shares over the Delta Sharing protocol. Catalog calls take a catalog token (`tarn token create`); Delta Sharing calls take a recipient's token (`tarn share recipient create`)."},
        "tags": [{"name": "Unity Catalog"}, {"name": "Delta Sharing"}, {"name": "Iceberg REST"}, {"name": "Server"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "catalogToken": {"type": "http", "scheme": "bearer", "description": "A catalog token with the scope the call needs (read, write, admin)"},
                "recipientToken": {"type": "http", "scheme": "bearer", "description": "A Delta Sharing recipient's token, from its profile file"}
            },
            "responses": {
                "UcError": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UcError"}}}},
                "SharingError": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SharingError"}}}},
                "IcebergError": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IcebergError"}}}}
            },
            "schemas": {
                "UcError": {"type": "object", "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "array", "items": {"type": "object"}}}},
                "SharingError": {"type": "object", "properties": {"errorCode": {"type": "string"}, "message": {"type": "string"}}},
                "IcebergError": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["message", "type", "code"], "properties": {
                    "message": {"type": "string"}, "type": {"type": "string", "example": "NoSuchTableException"}, "code": {"type": "integer"}}}}},
                "IcebergConfig": {"type": "object", "required": ["defaults", "overrides"], "properties": {
                    "defaults": string_map, "overrides": string_map, "endpoints": {"type": "array", "items": {"type": "string"}}}},
                "IcebergNamespace": {"type": "object", "required": ["namespace"], "properties": {
                    "namespace": {"type": "array", "items": {"type": "string"}}, "properties": string_map}},
                "IcebergListNamespaces": {"type": "object", "required": ["namespaces"], "properties": {
                    "namespaces": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}}, "next-page-token": {"type": "string"}}},
                "IcebergListTables": {"type": "object", "required": ["identifiers"], "properties": {
                    "identifiers": {"type": "array", "items": {"type": "object", "properties": {
                        "namespace": {"type": "array", "items": {"type": "string"}}, "name": {"type": "string"}}}},
                    "next-page-token": {"type": "string"}}},
                "IcebergLoadTable": {"type": "object", "required": ["metadata"], "properties": {
                    "metadata-location": {"type": "string"}, "metadata": {"type": "object", "description": "Iceberg table metadata (format version 2)"},
                    "config": string_map}},
                "Empty": {"type": "object"},
                "Setting": {"type": "object"},
                "CreateCatalog": {"type": "object", "required": ["name"], "properties": {
                    "name": name("sales"), "comment": {"type": "string"}, "properties": string_map}},
                "CreateSchema": {"type": "object", "required": ["name", "catalog_name"], "properties": {
                    "name": name("staging"), "catalog_name": name("main"), "comment": {"type": "string"}, "properties": string_map}},
                "CreateColumn": {"type": "object", "required": ["name", "type_text"], "properties": {
                    "name": {"type": "string", "example": "id"}, "type_text": {"type": "string", "example": "array<struct<a: int, b: map<string, decimal(10,2)>>>", "description": "Spark SQL type text, e.g. `bigint`, `array<string>`, `decimal(10,2)`"},
                    "nullable": {"type": "boolean", "default": true}}},
                "CreateTable": {"type": "object", "required": ["name", "catalog_name", "schema_name", "table_type"], "properties": {
                    "name": name("events"), "catalog_name": name("main"), "schema_name": name("shop"),
                    "table_type": {"type": "string", "enum": ["MANAGED", "EXTERNAL"]},
                    "data_source_format": {"type": "string", "enum": ["DELTA"]},
                    "columns": {"type": "array", "items": {"$ref": "#/components/schemas/CreateColumn"}},
                    "storage_location": {"type": "string"}, "comment": {"type": "string"}, "properties": string_map}},
                "TableCredentialRequest": {"type": "object", "required": ["table_id"], "properties": {
                    "table_id": {"type": "string", "format": "uuid"}, "operation": {"type": "string", "enum": ["READ", "READ_WRITE"]}}},
                "PathCredentialRequest": {"type": "object", "required": ["url"], "properties": {
                    "url": {"type": "string"}, "operation": {"type": "string", "enum": ["PATH_READ", "PATH_READ_WRITE", "PATH_CREATE_TABLE"]}}},
                "QueryTable": {"type": "object", "properties": {
                    "predicateHints": {"type": "array", "items": {"type": "string"}},
                    "jsonPredicateHints": {"type": "string", "description": "A JSON predicate (Delta Sharing's jsonPredicateHints)"},
                    "limitHint": {"type": "integer"}, "version": {"type": "integer"}, "timestamp": {"type": "string"},
                    "startingVersion": {"type": "integer"}, "endingVersion": {"type": "integer"},
                    "maxFiles": {"type": "integer"}, "pageToken": {"type": "string"}}},
                "CatalogInfo": {"type": "object"}, "SchemaInfo": {"type": "object"}, "TableInfo": {"type": "object"},
                "ListCatalogsResponse": {"type": "object"}, "ListSchemasResponse": {"type": "object"},
                "ListTablesResponse": {"type": "object"}, "TemporaryCredentials": {"type": "object"}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The document describes exactly the routes the router serves: the router is built
    /// from the protocols' endpoint lists, and so is the set checked here.
    #[test]
    fn every_route_of_the_router_is_documented_and_nothing_else() {
        let doc = spec();
        let routed: BTreeSet<(String, String)> = crate::endpoints()
            .into_iter()
            .map(|e| (e.method.as_str().to_ascii_lowercase(), e.path))
            .collect();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "routed but not documented: {undocumented:?}"
        );
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            unrouted.is_empty(),
            "documented but not routed: {unrouted:?}"
        );
        assert_eq!(routed.len(), 34, "{routed:?}");
    }

    /// The protocols' routes are documented, each with its path parameters declared.
    #[test]
    fn documented_paths_declare_their_parameters() {
        let doc = spec();
        let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        for p in [
            "/api/2.1/unity-catalog/catalogs/{name}",
            "/api/2.1/unity-catalog/temporary-path-credentials",
            "/delta-sharing/shares/{share}/schemas/{schema}/tables/{table}/query",
            "/delta-sharing/files/{token}",
            "/iceberg/v1/{prefix}/namespaces/{namespace}/tables/{table}",
        ] {
            assert!(paths.iter().any(|k| k.as_str() == p), "{p} missing");
        }
        for (p, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|x| x["in"] == "path")
                            .map(|x| x["name"].as_str().unwrap())
                            .collect()
                    })
                    .unwrap_or_default();
                for segment in p.split('/').filter(|s| s.starts_with('{')) {
                    let name = segment.trim_matches(|c| c == '{' || c == '}');
                    assert!(
                        declared.contains(&name),
                        "{method} {p}: path parameter {name} undeclared"
                    );
                }
            }
        }
    }
}
