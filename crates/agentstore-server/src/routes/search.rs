//! One search over memories, chunks and events, and the vector models it compares.

use agentstore::{KeyScope, Metric, SearchHit, SearchRequest};
use axum::extract::State;
use schemars::JsonSchema;
use serde::Serialize;

use super::{Body, Items, Reply};
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
    .route(
        "get",
        "/v1/vector-models",
        op(
            "vectorModels",
            "search",
            "The vector models of the store: id, dimension, metric, and which one the store embeds and searches with",
            KeyScope::Read,
        )
        .ok::<Items<VectorModelView>>(),
        vector_models,
    )
}

/// A vector model of the store. Models belong to the store, not to a tenant: every
/// tenant sees the same list.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct VectorModelView {
    /// Model id, as recorded with each vector (`external-<n>d` for caller-supplied vectors
    /// of a store without a configured model).
    id: String,
    /// Vector length.
    dimension: usize,
    /// How vectors are compared.
    metric: Metric,
    /// Whether this is the store's configured model: the one new records are embedded
    /// with and vector searches compare against.
    active: bool,
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

// No vector count: the backend counts a model's vectors across all tenants, and that
// number would tell one tenant how much the others store.
async fn vector_models(State(st): State<AppState>, _: Caller) -> Reply<Items<VectorModelView>> {
    let items = st
        .run(|s| {
            let active = s.vector_model().map(|m| m.id.clone());
            let mut items: Vec<VectorModelView> = s
                .vector_models()?
                .into_iter()
                .map(|m| VectorModelView {
                    active: active.as_deref() == Some(m.model.as_str()),
                    id: m.model,
                    dimension: m.dimension,
                    metric: m.metric,
                })
                .collect();
            // A configured model is recorded with its first vector; before that it is
            // still the one the store will use.
            if let Some(m) = s.vector_model()
                && !items.iter().any(|v| v.active)
            {
                items.push(VectorModelView {
                    id: m.id.clone(),
                    dimension: m.dimension,
                    metric: m.metric,
                    active: true,
                });
            }
            Ok(items)
        })
        .await?;
    Ok(axum::Json(Items { items }))
}
