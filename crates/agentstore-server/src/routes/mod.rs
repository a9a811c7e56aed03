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
use axum::extract::{FromRequest, FromRequestParts};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::Api;
use crate::error::ApiError;

/// A JSON body; a malformed one is a 400 `invalid_json` in the API's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct Body<T>(pub T);

/// Query parameters; a repeated key fills a list (`kind=a&kind=b`).
#[derive(FromRequestParts)]
#[from_request(via(axum_extra::extract::Query), rejection(ApiError))]
pub(crate) struct Q<T>(pub T);

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
