//! The OpenAPI 3.0 document of every route Tarn serves (`GET /openapi.json`), generated.
//!
//! Each route's [`Endpoint`](crate::Endpoint) carries its [`Operation`]: a summary, its
//! parameters, its request body and its answers, named by their Rust types. The schemas
//! come from those types' `JsonSchema` derives (the `schemars` crate, OpenAPI 3.0 dialect):
//! the wire types the handlers answer with and the remote client reads, the query-string
//! structs the handlers parse, and each protocol's error body. So the document lists
//! exactly the routes the router is built from, with the shapes they really answer, and a
//! route cannot be added without its operation.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use schemars::gen::{SchemaGenerator, SchemaSettings};
use schemars::schema::{InstanceType, ObjectValidation, Schema, SchemaObject, StringValidation};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{IcebergError, SharingError, UnityError};

/// `GET /openapi.json`: the document, generated once.
pub(crate) async fn document() -> Response {
    static TEXT: OnceLock<Vec<u8>> = OnceLock::new();
    let text = TEXT.get_or_init(|| {
        // Serializing maps of strings and schemas cannot fail.
        serde_json::to_vec(&spec()).unwrap_or_default()
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text.clone(),
    )
        .into_response()
}

/// Which API an operation belongs to: its tag, the token it takes and its error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// The server's own routes (health, this document): no token.
    Server,
    /// The Unity Catalog REST API: a catalog token, [`UnityError`].
    Unity,
    /// Delta Sharing: a recipient's token, [`SharingError`].
    Sharing,
    /// The Iceberg REST catalog: a catalog token, [`IcebergError`].
    Iceberg,
}

impl Api {
    fn tag(self) -> &'static str {
        match self {
            Api::Server => "Server",
            Api::Unity => "Unity Catalog",
            Api::Sharing => "Delta Sharing",
            Api::Iceberg => "Iceberg REST",
        }
    }

    fn security_scheme(self) -> Option<&'static str> {
        match self {
            Api::Server => None,
            Api::Unity | Api::Iceberg => Some(CATALOG_TOKEN),
            Api::Sharing => Some(RECIPIENT_TOKEN),
        }
    }

    /// The error statuses every operation of this API may answer (besides `default`).
    fn error_statuses(self) -> &'static [u16] {
        match self {
            Api::Server => &[],
            Api::Unity => &[400, 401, 403, 404, 409],
            Api::Sharing => &[400, 401, 403, 404],
            Api::Iceberg => &[400, 401, 403, 404, 406],
        }
    }

    /// The schema of this API's error body.
    fn error_schema(self, gen: &mut SchemaGenerator) -> Option<Schema> {
        match self {
            Api::Server => None,
            Api::Unity => Some(gen.subschema_for::<UnityError>()),
            Api::Sharing => Some(gen.subschema_for::<SharingError>()),
            Api::Iceberg => Some(gen.subschema_for::<IcebergError>()),
        }
    }
}

const CATALOG_TOKEN: &str = "catalogToken";
const RECIPIENT_TOKEN: &str = "recipientToken";
const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

/// A function giving a type's schema (a `$ref` for a named type).
type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(gen: &mut SchemaGenerator) -> Schema {
    let schema = gen.subschema_for::<T>();
    in_openapi_dialect(gen, schema)
}

/// The properties of a query-string struct, inline (each becomes one parameter).
fn inline_schema_of<T: JsonSchema>(gen: &mut SchemaGenerator) -> Schema {
    let schema = T::json_schema(gen);
    in_openapi_dialect(gen, schema)
}

/// `schema` in OpenAPI 3.0's dialect of JSON Schema: the generator's visitors (a single
/// `example`, no `true` schemas, no siblings of `$ref`) apply to whole documents only, so
/// schemas taken out one by one go through them here.
fn in_openapi_dialect(gen: &mut SchemaGenerator, mut schema: Schema) -> Schema {
    for visitor in gen.visitors_mut() {
        visitor.visit_schema(&mut schema);
    }
    schema
}

/// One parameter of an operation, before its schema is generated.
enum ParamSpec {
    /// Every field of a query-string struct.
    Query(SchemaFn),
    /// A path parameter: a name of `parts` dotted names (0: any string) with an example.
    Path {
        name: &'static str,
        description: &'static str,
        parts: usize,
        example: &'static str,
    },
    /// An optional request header.
    Header {
        name: &'static str,
        description: &'static str,
    },
}

/// One answer of an operation, before its schema is generated.
struct AnswerSpec {
    status: u16,
    description: &'static str,
    /// The media type and the schema of the body (of each line, for NDJSON); `None`: no body.
    content: Option<(&'static str, SchemaFn)>,
    /// Headers the answer carries.
    headers: Vec<(&'static str, &'static str)>,
}

/// The OpenAPI description of one endpoint: every [`Endpoint`](crate::Endpoint) takes one,
/// so no route goes undocumented. Built with the methods below, naming types, never JSON.
pub(crate) struct Operation {
    api: Api,
    id: &'static str,
    summary: &'static str,
    token: bool,
    parameters: Vec<ParamSpec>,
    body: Option<(bool, SchemaFn)>,
    answers: Vec<AnswerSpec>,
    extra_errors: Vec<u16>,
}

impl Operation {
    /// An operation of `api` with a unique `id` (a client generator's method name) and a
    /// one-line summary; it takes `api`'s token.
    pub(crate) fn new(api: Api, id: &'static str, summary: &'static str) -> Self {
        Self {
            api,
            id,
            summary,
            token: api.security_scheme().is_some(),
            parameters: Vec::new(),
            body: None,
            answers: Vec::new(),
            extra_errors: Vec::new(),
        }
    }

    /// The operation needs no token (a pre-signed URL is its own credential).
    pub(crate) fn without_token(mut self) -> Self {
        self.token = false;
        self
    }

    /// Its query parameters: the fields of the struct the handler reads with `Query<Q>`.
    pub(crate) fn query<Q: JsonSchema>(mut self) -> Self {
        self.parameters
            .push(ParamSpec::Query(inline_schema_of::<Q>));
        self
    }

    /// A path parameter `{name}` holding `parts` dotted names (`catalog.schema` is 2), or
    /// any string with `parts` 0, with an example value.
    pub(crate) fn path(
        mut self,
        name: &'static str,
        description: &'static str,
        parts: usize,
        example: &'static str,
    ) -> Self {
        self.parameters.push(ParamSpec::Path {
            name,
            description,
            parts,
            example,
        });
        self
    }

    /// An optional request header.
    pub(crate) fn header(mut self, name: &'static str, description: &'static str) -> Self {
        self.parameters
            .push(ParamSpec::Header { name, description });
        self
    }

    /// A required JSON request body of type `T`.
    pub(crate) fn body<T: JsonSchema>(mut self) -> Self {
        self.body = Some((true, schema_of::<T>));
        self
    }

    /// An optional JSON request body of type `T`.
    pub(crate) fn optional_body<T: JsonSchema>(mut self) -> Self {
        self.body = Some((false, schema_of::<T>));
        self
    }

    /// Answers 200 with a JSON `T`.
    pub(crate) fn answers<T: JsonSchema>(self) -> Self {
        self.answer(200, "OK", Some((JSON, schema_of::<T>)))
    }

    /// Answers 200 with newline-delimited JSON, each line a `T`.
    pub(crate) fn answers_lines<T: JsonSchema>(self, description: &'static str) -> Self {
        self.answer(200, description, Some((NDJSON, schema_of::<T>)))
    }

    /// Answers `status` without a body.
    pub(crate) fn answers_nothing(self, status: u16, description: &'static str) -> Self {
        self.answer(status, description, None)
    }

    /// Answers `status` with the bytes of a file.
    pub(crate) fn answers_bytes(self, status: u16, description: &'static str) -> Self {
        self.answer(
            status,
            description,
            Some(("application/octet-stream", binary_schema)),
        )
    }

    /// The answer added last carries the header `name`.
    pub(crate) fn answer_header(mut self, name: &'static str, description: &'static str) -> Self {
        if let Some(last) = self.answers.last_mut() {
            last.headers.push((name, description));
        }
        self
    }

    /// An error status beyond the API's usual ones.
    pub(crate) fn error(mut self, status: u16) -> Self {
        self.extra_errors.push(status);
        self
    }

    fn answer(
        mut self,
        status: u16,
        description: &'static str,
        content: Option<(&'static str, SchemaFn)>,
    ) -> Self {
        self.answers.push(AnswerSpec {
            status,
            description,
            content,
            headers: Vec::new(),
        });
        self
    }

    /// The operation object for `method` on `path`, its schemas added to `gen`.
    fn render(&self, method: &str, gen: &mut SchemaGenerator) -> OperationObject {
        let mut parameters = Vec::new();
        for p in &self.parameters {
            match p {
                ParamSpec::Query(schema) => parameters.extend(query_parameters(schema(gen))),
                ParamSpec::Path {
                    name,
                    description,
                    parts,
                    example,
                } => parameters.push(Parameter {
                    name: name.to_string(),
                    location: "path".into(),
                    required: true,
                    description: description.to_string(),
                    schema: dotted_names(*parts, example),
                }),
                ParamSpec::Header { name, description } => parameters.push(Parameter {
                    name: name.to_string(),
                    location: "header".into(),
                    required: false,
                    description: description.to_string(),
                    schema: string_schema(),
                }),
            }
        }
        let request_body = self.body.map(|(required, schema)| RequestBody {
            required,
            content: BTreeMap::from([(
                JSON.to_string(),
                MediaType {
                    schema: schema(gen),
                },
            )]),
        });
        let mut responses = BTreeMap::new();
        for a in &self.answers {
            responses.insert(
                a.status.to_string(),
                ResponseObject {
                    description: a.description.to_string(),
                    headers: a
                        .headers
                        .iter()
                        .map(|(name, description)| {
                            (
                                name.to_string(),
                                HeaderObject {
                                    description: description.to_string(),
                                    schema: string_schema(),
                                },
                            )
                        })
                        .collect(),
                    content: a
                        .content
                        .iter()
                        .map(|(media, schema)| {
                            (
                                media.to_string(),
                                MediaType {
                                    schema: schema(gen),
                                },
                            )
                        })
                        .collect(),
                },
            );
        }
        // A HEAD answer has no body, errors included.
        let error_body = if method == "head" {
            None
        } else {
            self.api.error_schema(gen)
        };
        let statuses = self.api.error_statuses().iter().chain(&self.extra_errors);
        let keys = statuses
            .map(|s| s.to_string())
            .chain(self.api.error_schema(gen).map(|_| "default".to_string()));
        for key in keys {
            responses.insert(
                key,
                ResponseObject {
                    description: "An error".into(),
                    headers: BTreeMap::new(),
                    content: error_body
                        .iter()
                        .map(|schema| {
                            (
                                JSON.to_string(),
                                MediaType {
                                    schema: schema.clone(),
                                },
                            )
                        })
                        .collect(),
                },
            );
        }
        let security = match (self.token, self.api.security_scheme()) {
            (true, Some(scheme)) => vec![BTreeMap::from([(scheme.to_string(), Vec::new())])],
            _ => Vec::new(),
        };
        OperationObject {
            tags: vec![self.api.tag().to_string()],
            summary: self.summary.to_string(),
            operation_id: self.id.to_string(),
            parameters,
            request_body,
            responses,
            security,
        }
    }
}

/// Each property of a query-string struct's schema as an optional (or, when the struct
/// requires it, required) query parameter; its doc comment is the description.
fn query_parameters(schema: Schema) -> Vec<Parameter> {
    let Schema::Object(SchemaObject {
        object: Some(object),
        ..
    }) = schema
    else {
        return Vec::new();
    };
    let ObjectValidation {
        properties,
        required,
        ..
    } = *object;
    properties
        .into_iter()
        .map(|(name, schema)| {
            let (description, schema) = match schema {
                Schema::Object(mut o) => {
                    let description = o
                        .metadata
                        .as_mut()
                        .and_then(|m| m.description.take())
                        .unwrap_or_default();
                    (description, Schema::Object(o))
                }
                other => (String::new(), other),
            };
            Parameter {
                required: required.contains(&name),
                name,
                location: "query".into(),
                description,
                schema,
            }
        })
        .collect()
}

/// What a catalog, schema, table or share name may be (`tarn_catalog::validate_name`).
const NAME: &str = "[A-Za-z0-9_@-]+";

/// A string of `parts` names joined by dots (any string for 0), with an example.
fn dotted_names(parts: usize, example: &str) -> Schema {
    let mut schema = SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        ..Default::default()
    };
    if parts > 0 {
        schema.string = Some(Box::new(StringValidation {
            pattern: Some(format!("^{}$", vec![NAME; parts].join("\\."))),
            ..Default::default()
        }));
    }
    if !example.is_empty() {
        schema.extensions.insert("example".into(), example.into());
    }
    Schema::Object(schema)
}

fn string_schema() -> Schema {
    dotted_names(0, "")
}

fn binary_schema(_: &mut SchemaGenerator) -> Schema {
    Schema::Object(SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        format: Some("binary".into()),
        ..Default::default()
    })
}

/// The whole document: every endpoint of [`crate::endpoints`], and the schemas they name.
pub fn spec() -> Document {
    let mut gen = SchemaGenerator::new(SchemaSettings::openapi3());
    let mut paths: BTreeMap<String, BTreeMap<String, OperationObject>> = BTreeMap::new();
    for e in crate::endpoints() {
        let method = e.method.as_str().to_ascii_lowercase();
        let operation = e.operation.render(&method, &mut gen);
        paths.entry(e.path).or_default().insert(method, operation);
    }
    let definitions: BTreeMap<String, Schema> = gen
        .take_definitions()
        .into_iter()
        .map(|(name, schema)| (name, in_openapi_dialect(&mut gen, schema)))
        .collect();
    let bearer = |description: &str| SecurityScheme {
        kind: "http".into(),
        scheme: "bearer".into(),
        description: description.into(),
    };
    Document {
        openapi: "3.0.3".into(),
        info: Info {
            title: "Tarn".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Tarn's catalog over the Unity Catalog REST API (a subset of its \
                api/all.yaml) and the Iceberg REST catalog (read-only), and its shares over \
                the Delta Sharing protocol. Catalog calls take a catalog token (`tarn token \
                create`); Delta Sharing calls take a recipient's token (`tarn share recipient \
                create`)."
                .into(),
        },
        tags: [Api::Unity, Api::Sharing, Api::Iceberg, Api::Server]
            .iter()
            .map(|a| Tag {
                name: a.tag().into(),
            })
            .collect(),
        paths,
        components: Components {
            security_schemes: BTreeMap::from([
                (
                    CATALOG_TOKEN.to_string(),
                    bearer("A catalog token with the scope the call needs (read, write, admin)"),
                ),
                (
                    RECIPIENT_TOKEN.to_string(),
                    bearer("A Delta Sharing recipient's token, from its profile file"),
                ),
            ]),
            schemas: definitions,
        },
    }
}

/// An OpenAPI 3.0 document (the part of the format Tarn's document uses).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "OpenApiDocument")]
pub struct Document {
    /// The OpenAPI version, `3.0.3`.
    pub openapi: String,
    /// The API's title, version and description.
    pub info: Info,
    /// The protocols, one tag each.
    pub tags: Vec<Tag>,
    /// Each path's operations, by lowercase method.
    pub paths: BTreeMap<String, BTreeMap<String, OperationObject>>,
    /// The schemas the operations name, and the token schemes.
    pub components: Components,
}

/// The document's `info`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Info {
    /// `Tarn`.
    pub title: String,
    /// Tarn's version.
    pub version: String,
    /// What the API is.
    pub description: String,
}

/// A tag: one protocol.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Tag {
    /// The protocol's name.
    pub name: String,
}

/// One operation (a method on a path).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationObject {
    /// The protocol.
    pub tags: Vec<String>,
    /// What it does.
    pub summary: String,
    /// A unique name for it.
    pub operation_id: String,
    /// Its path, query and header parameters.
    pub parameters: Vec<Parameter>,
    /// Its request body, if it takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<RequestBody>,
    /// Its answers, by status (and `default`).
    pub responses: BTreeMap<String, ResponseObject>,
    /// The token it takes (empty: none).
    pub security: Vec<BTreeMap<String, Vec<String>>>,
}

/// A parameter.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Parameter {
    /// Its name.
    pub name: String,
    /// `path`, `query` or `header`.
    #[serde(rename = "in")]
    pub location: String,
    /// Whether it must be given.
    pub required: bool,
    /// What it is.
    pub description: String,
    /// Its JSON schema.
    #[schemars(with = "serde_json::Value")]
    pub schema: Schema,
}

/// A request body.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RequestBody {
    /// Whether it must be given.
    pub required: bool,
    /// Its schema by media type.
    pub content: BTreeMap<String, MediaType>,
}

/// An answer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ResponseObject {
    /// What it means.
    pub description: String,
    /// The headers it carries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderObject>,
    /// Its body's schema by media type (none: no body).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub content: BTreeMap<String, MediaType>,
}

/// A header of an answer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HeaderObject {
    /// What it holds.
    pub description: String,
    /// Its schema.
    #[schemars(with = "serde_json::Value")]
    pub schema: Schema,
}

/// A body's schema.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MediaType {
    /// The JSON schema (of each line, for NDJSON).
    #[schemars(with = "serde_json::Value")]
    pub schema: Schema,
}

/// The document's `components`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Components {
    /// The two kinds of bearer token.
    pub security_schemes: BTreeMap<String, SecurityScheme>,
    /// The schemas the operations refer to, by name.
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub schemas: BTreeMap<String, Schema>,
}

/// A token scheme.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SecurityScheme {
    /// `http`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `bearer`.
    pub scheme: String,
    /// Which token.
    pub description: String,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    fn document_json() -> Value {
        serde_json::to_value(spec()).unwrap()
    }

    /// The document describes exactly the routes the router serves: the router is built
    /// from the protocols' endpoint lists, and so is the document; this checks the result.
    #[test]
    fn every_route_of_the_router_is_documented_and_nothing_else() {
        let doc = document_json();
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

    /// Routes come only from the endpoint lists: nothing in the crate adds a route to a
    /// router any other way (`.route(`, `.nest(`...) but [`crate::Endpoint::router`], so
    /// the document, built from the same lists, has every route the server answers.
    #[test]
    fn routers_are_built_only_from_endpoint_lists() {
        fn sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    sources(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    found.push(path);
                }
            }
        }
        let mut files = Vec::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        assert!(files.len() > 20, "{files:?}");
        let calls = [".route(", ".route_service(", ".nest(", ".nest_service("];
        let mut found = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = !line.trim_start().starts_with("//") && !line.contains("calls = [");
                if code && calls.iter().any(|c| line.contains(c)) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
        assert_eq!(
            found.len(),
            1,
            "routes added outside the endpoint lists: {found:#?}"
        );
        assert!(found[0].contains("lib.rs"), "{found:?}");
    }

    /// Every path parameter of every route is declared, and nothing else is in the path.
    #[test]
    fn documented_paths_declare_their_parameters() {
        let doc = document_json();
        for (p, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|x| x["in"] == "path")
                    .map(|x| x["name"].as_str().unwrap())
                    .collect();
                let in_path: BTreeSet<&str> = p
                    .split('/')
                    .filter(|s| s.starts_with('{'))
                    .map(|s| s.trim_matches(|c| c == '{' || c == '}'))
                    .collect();
                assert_eq!(declared, in_path, "{method} {p}: path parameters");
            }
        }
    }

    /// Operation ids are unique (client generators name methods after them), and every
    /// operation that takes a token says which.
    #[test]
    fn operation_ids_are_unique_and_tokens_declared() {
        let doc = document_json();
        let mut ids = BTreeSet::new();
        for (p, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap();
                assert!(
                    ids.insert(id.to_string()),
                    "{method} {p}: operationId {id} twice"
                );
                let public = p == "/health"
                    || p == "/openapi.json"
                    || p.starts_with("/delta-sharing/files/");
                assert_eq!(
                    op["security"].as_array().unwrap().is_empty(),
                    public,
                    "{method} {p}: security"
                );
            }
        }
    }

    /// Follows `$ref`s to the named component.
    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.strip_prefix("#/components/schemas/").unwrap();
                let target = &doc["components"]["schemas"][name];
                assert!(target.is_object(), "dangling {r}");
                resolve(doc, target)
            }
            None => schema,
        }
    }

    /// A schema that says nothing of its object: no properties, no variants.
    fn untyped(schema: &Value) -> bool {
        let keys = [
            "properties",
            "anyOf",
            "oneOf",
            "allOf",
            "additionalProperties",
        ];
        keys.iter().all(|k| schema.get(*k).is_none())
    }

    /// Every JSON request body and every JSON or NDJSON 2xx answer names a wire type whose
    /// schema has properties (not an untyped `{"type": "object"}`), and every error answer
    /// is its protocol's error body.
    #[test]
    fn bodies_and_answers_are_typed() {
        let doc = document_json();
        let mut typed = 0;
        for (p, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let mut bodies: Vec<(&str, &Value)> = Vec::new();
                if let Some(content) = op["requestBody"]["content"].as_object() {
                    bodies.extend(content.iter().map(|(m, c)| (m.as_str(), &c["schema"])));
                }
                for (status, answer) in op["responses"].as_object().unwrap() {
                    let Some(content) = answer["content"].as_object() else {
                        continue;
                    };
                    for (media, c) in content {
                        if status.starts_with('2') && media.contains("json") {
                            bodies.push((media, &c["schema"]));
                        } else if !status.starts_with('2') {
                            let name = c["schema"]["$ref"].as_str().unwrap_or_default();
                            assert!(
                                name.ends_with("Error"),
                                "{method} {p} {status}: error body {name:?}"
                            );
                        }
                    }
                }
                for (media, schema) in bodies {
                    assert!(
                        schema["$ref"].is_string(),
                        "{method} {p} {media}: not a named type: {schema}"
                    );
                    let target = resolve(&doc, schema);
                    assert!(
                        !untyped(target),
                        "{method} {p} {media}: untyped schema {target}"
                    );
                    typed += 1;
                }
            }
        }
        assert!(typed >= 30, "only {typed} typed bodies");
    }

    /// The error bodies are described with their required fields, per protocol.
    #[test]
    fn error_bodies_are_described() {
        let doc = document_json();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["UnityError"]["required"],
            serde_json::json!(["error_code", "message"])
        );
        assert_eq!(
            schemas["SharingError"]["required"],
            serde_json::json!(["errorCode", "message"])
        );
        assert_eq!(
            schemas["IcebergErrorModel"]["required"],
            serde_json::json!(["code", "message", "type"])
        );
    }
}
