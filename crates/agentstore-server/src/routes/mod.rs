//! The endpoints under /v1, one module per group of entities. Every handler takes the
//! [`Caller`](crate::auth::Caller) (whose key fixes the tenant), parses its input with
//! the extractors below (so malformed input gets the API's error shape), and calls the
//! store on the blocking pool.

mod admin;
mod checkpoints;
mod documents;
mod infra;
mod memories;
mod registry;
mod search;
mod sessions;
mod telemetry;

use agentstore::Namespace;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::api::Api;
use crate::error::ApiError;

/// A JSON object body; a malformed one is a 400 `invalid_json` in the API's error shape.
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // Every body is an object, but serde also fills a struct from an array of its
        // fields in order (`[null, null]`), which the OpenAPI document does not allow and
        // a client sends only by mistake; so the shape is checked before the fields.
        let axum::Json(raw) = axum::Json::<Box<RawValue>>::from_request(req, state).await?;
        if !raw.get().starts_with('{') {
            return Err(ApiError::new(
                "invalid_json",
                "the request body must be a JSON object",
            ));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(raw.get().as_bytes())?;
        Ok(Body(value))
    }
}

/// Query parameters; a repeated key fills a list (`kind=a&kind=b`).
pub(crate) struct Q<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // The form decoder reads `to=` as an absent `to`, so a client that sends an empty
        // time or cursor by mistake would silently get an unfiltered answer. An empty
        // value is refused instead; leaving the parameter out says "none".
        let query = parts.uri.query().unwrap_or("");
        if let Some((key, _)) =
            form_urlencoded::parse(query.as_bytes()).find(|(_, value)| value.is_empty())
        {
            return Err(ApiError::new(
                "invalid_input",
                format!("query parameter {key} is empty; leave it out instead"),
            ));
        }
        let axum_extra::extract::Query(value) =
            axum_extra::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Q(value))
    }
}

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct P<T>(pub T);

pub(crate) type Reply<T> = Result<axum::Json<T>, ApiError>;
pub(crate) type Created<T> = Result<(axum::http::StatusCode, axum::Json<T>), ApiError>;

pub(crate) fn created<T>(v: T) -> (axum::http::StatusCode, axum::Json<T>) {
    (axum::http::StatusCode::CREATED, axum::Json(v))
}

/// A namespace path as `a/b/c` in a query string.
pub(crate) fn namespace(s: Option<&str>) -> agentstore::Result<Option<Namespace>> {
    s.map(Namespace::parse_path).transpose()
}

/// A count of what an operation changed.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Count {
    /// How many records.
    pub count: u64,
}

/// A list that is not paginated (bounded by its query).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Items<T> {
    /// The records.
    pub items: Vec<T>,
}

/// Every endpoint under /v1.
pub(crate) fn api() -> Api {
    let api = Api::new();
    let api = sessions::routes(api);
    let api = memories::routes(api);
    let api = documents::routes(api);
    let api = search::routes(api);
    let api = registry::routes(api);
    let api = checkpoints::routes(api);
    let api = telemetry::routes(api);
    let api = infra::routes(api);
    admin::routes(api)
}
