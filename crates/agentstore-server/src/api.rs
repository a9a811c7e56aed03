//! One registration per endpoint builds both the axum route and its OpenAPI 3.1
//! operation, so the document served at `/v1/openapi.json` cannot drift from what the
//! server does.
//!
//! Why not a crate: utoipa's derive reads field types by name and cannot see through our
//! type aliases (`Json`, `Timestamp`), and aide's release on schemars 1 (which the MCP
//! SDK also uses) is still an alpha. Request and response shapes come from schemars;
//! what is left here is the skeleton of the document.

use std::collections::BTreeMap;

use agentstore::KeyScope;
use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodFilter, on};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// What the document says about one operation.
pub(crate) struct Doc {
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    /// The scope a key needs; None for public endpoints.
    scope: Option<KeyScope>,
    body: Option<SchemaFn>,
    query: Option<SchemaFn>,
    /// Status and schema of success; None: 204 without a body.
    response: Option<(u16, SchemaFn)>,
}

/// An operation that needs a key with `scope`.
pub(crate) fn op(
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    scope: KeyScope,
) -> Doc {
    Doc {
        id,
        tag,
        summary,
        scope: Some(scope),
        body: None,
        query: None,
        response: None,
    }
}

impl Doc {
    /// JSON request body of type `T`.
    pub(crate) fn body<T: JsonSchema>(mut self) -> Self {
        self.body = Some(schema_of::<T>);
        self
    }

    /// Query parameters: the fields of `T`.
    pub(crate) fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(schema_of::<T>);
        self
    }

    /// 200 with a `T`.
    pub(crate) fn ok<T: JsonSchema>(mut self) -> Self {
        self.response = Some((200, schema_of::<T>));
        self
    }

    /// 201 with a `T`.
    pub(crate) fn created<T: JsonSchema>(mut self) -> Self {
        self.response = Some((201, schema_of::<T>));
        self
    }
}

/// The router and the document, built together.
pub(crate) struct Api {
    router: Router<AppState>,
    paths: BTreeMap<String, Map<String, Value>>,
    schemas: SchemaGenerator,
}

impl Api {
    pub(crate) fn new() -> Self {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
        });
        Api {
            router: Router::new(),
            paths: BTreeMap::new(),
            schemas: settings.into_generator(),
        }
    }

    /// Registers `handler` for `method` on `path` (axum's `{param}` syntax, which is also
    /// OpenAPI's).
    pub(crate) fn route<H, T>(mut self, method: &str, path: &str, doc: Doc, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match method {
            "get" => MethodFilter::GET,
            "post" => MethodFilter::POST,
            "put" => MethodFilter::PUT,
            "patch" => MethodFilter::PATCH,
            "delete" => MethodFilter::DELETE,
            other => panic!("unsupported method {other}"),
        };
        let mut route = on(filter, handler);
        if doc.query.is_none() {
            route = route.route_layer(middleware::from_fn(no_query));
        }
        if let Some(scope) = doc.scope {
            route = route.route_layer(middleware::from_fn(move |req: Request, next: Next| {
                require_scope(scope, req, next)
            }));
        }
        self.router = self.router.route(path, route);
        let operation = self.operation(path, &doc);
        let previous = self
            .paths
            .entry(path.to_owned())
            .or_default()
            .insert(method.to_owned(), operation);
        assert!(previous.is_none(), "{method} {path} registered twice");
        self
    }

    fn operation(&mut self, path: &str, doc: &Doc) -> Value {
        let mut params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if let Some(query) = doc.query {
            params.extend(self.query_params(query));
        }
        let mut responses = Map::new();
        match doc.response {
            Some((status, schema)) => {
                let schema = schema(&mut self.schemas);
                responses.insert(
                    status.to_string(),
                    json!({"description": "Success", "content": {"application/json": {"schema": schema}}}),
                );
            }
            None => {
                responses.insert("204".into(), json!({"description": "Done; no content"}));
            }
        }
        let error = self.schemas.subschema_for::<ErrorBody>();
        let mut errors = vec![("400", "Invalid input"), ("413", "Request too large")];
        if doc.scope.is_some() {
            errors.extend([
                ("401", "Missing, unknown, revoked or expired API key"),
                ("403", "The key lacks the scope this operation needs"),
                ("404", "No such record in the key's tenant"),
                ("409", "Conflicts with the current state"),
                ("429", "Rate limit of the key exceeded; see Retry-After"),
            ]);
        }
        errors.push(("default", "Server-side failure"));
        for (status, description) in errors {
            responses.insert(
                status.into(),
                json!({"description": description, "content": {"application/json": {"schema": error}}}),
            );
        }
        let mut o = Map::new();
        o.insert("operationId".into(), json!(doc.id));
        o.insert("tags".into(), json!([doc.tag]));
        o.insert("summary".into(), json!(doc.summary));
        if !params.is_empty() {
            o.insert("parameters".into(), Value::Array(params));
        }
        if let Some(body) = doc.body {
            let schema = body(&mut self.schemas);
            o.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": schema}}}),
            );
        }
        o.insert("responses".into(), Value::Object(responses));
        match doc.scope {
            Some(scope) => {
                o.insert("security".into(), json!([{"api_key": []}]));
                o.insert("x-required-scope".into(), json!(scope.as_str()));
            }
            None => {
                o.insert("security".into(), json!([]));
            }
        }
        Value::Object(o)
    }

    /// The properties of a query struct's schema, one parameter each.
    fn query_params(&mut self, query: SchemaFn) -> Vec<Value> {
        let reference = query(&mut self.schemas);
        let name = reference
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .unwrap_or_default()
            .to_owned();
        let definitions = self.schemas.definitions();
        let Some(def) = definitions.get(&name) else {
            return Vec::new();
        };
        let required: Vec<&str> = def
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(props) = def.get("properties").and_then(Value::as_object) else {
            return Vec::new();
        };
        props
            .iter()
            .map(|(prop, schema)| {
                let mut schema = schema.clone();
                non_empty(&mut schema);
                let mut p = json!({
                    "name": prop,
                    "in": "query",
                    "required": required.contains(&prop.as_str()),
                    "schema": schema,
                });
                if let Some(d) = schema.get("description") {
                    p["description"] = d.clone();
                }
                p
            })
            .collect()
    }

    /// The router and the OpenAPI document.
    pub(crate) fn finish(mut self) -> (Router<AppState>, Value) {
        let mut schemas = Map::new();
        for (name, schema) in self.schemas.take_definitions(true) {
            schemas.insert(name, schema);
        }
        let mut codes = String::new();
        for (code, status) in crate::error::STATUS {
            codes.push_str(&format!("| `{code}` | {status} |\n"));
        }
        let doc = json!({
            "openapi": "3.1.0",
            "info": {
                "title": "agentstore",
                "version": env!("CARGO_PKG_VERSION"),
                "description": format!(
                    "Storage and memory for AI agents. Every request under /v1 carries \
                     `Authorization: Bearer <API key>` and is confined to the key's tenant. \
                     Errors are JSON `{{\"code\", \"message\"}}`; codes and statuses:\n\n\
                     | code | status |\n|---|---|\n{codes}"
                ),
            },
            "paths": self.paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "api_key": {"type": "http", "scheme": "bearer", "description": "An API key from `agentstore keys create`"}
                }
            }
        });
        (self.router, doc)
    }
}

/// Refuses the request unless the caller's key grants `scope`.
async fn require_scope(scope: KeyScope, req: Request, next: Next) -> Result<Response, ApiError> {
    let caller = req
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| ApiError::new("unauthorized", "an API key is required"))?;
    if !caller.key.allows(scope, agentstore::time::now()) {
        return Err(ApiError::new(
            "forbidden",
            format!(
                "this operation needs a key with the '{}' scope",
                scope.as_str()
            ),
        ));
    }
    Ok(next.run(req).await)
}

/// Refuses any query parameter on an endpoint that reads none, as query structs refuse
/// the parameters they lack (`deny_unknown_fields`): a parameter the server ignored would
/// leave the client believing its answer was filtered, or its delete narrowed.
async fn no_query(req: Request, next: Next) -> Result<Response, ApiError> {
    let query = req.uri().query().unwrap_or("");
    if let Some((key, _)) = form_urlencoded::parse(query.as_bytes()).next() {
        return Err(ApiError::new(
            "invalid_input",
            format!("unknown query parameter `{key}`: this endpoint takes none"),
        ));
    }
    Ok(next.run(req).await)
}

/// Marks the strings of a query parameter's schema `minLength: 1`: the query extractor
/// refuses empty values (`?to=`), so the document says so.
fn non_empty(schema: &mut Value) {
    let Some(o) = schema.as_object_mut() else {
        return;
    };
    let is_string = match o.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    if is_string && !o.contains_key("enum") {
        o.entry("minLength").or_insert(json!(1));
    }
    if let Some(items) = o.get_mut("items") {
        non_empty(items);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = o.get_mut(key) {
            alts.iter_mut().for_each(non_empty);
        }
    }
}
