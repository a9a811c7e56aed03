//! One search over memories, chunks and events.

use agentstore::{KeyScope, SearchHit, SearchRequest};
use axum::extract::State;
use schemars::JsonSchema;
use serde::Serialize;

use super::{Body, Reply};
use crate::AppState;
use crate::api::{Api, op};
use crate::auth::Caller;

pub(super) fn routes(api: Api) -> Api {
    api.route(
        "post",
        "/v1/search",
        op(
            "search",
            "search",
            "Keyword, vector or hybrid search with filters; each hit reports its component scores",
            KeyScope::Read,
        )
        .body::<SearchRequest>()
        .ok::<SearchResults>(),
        search,
    )
}

/// Search results, best first.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SearchResults {
    /// The hits.
    hits: Vec<SearchHit>,
}

async fn search(
    State(st): State<AppState>,
    c: Caller,
    Body(req): Body<SearchRequest>,
) -> Reply<SearchResults> {
    let scope = c.scope();
    let hits = st.run(move |s| s.search(&scope, req)).await?;
    Ok(axum::Json(SearchResults { hits }))
}
