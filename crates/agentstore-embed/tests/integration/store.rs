//! The local model inside a real store: chunks and memories are embedded on write, query
//! text on search, and hybrid search finds text that shares no word with the query.

use std::sync::Arc;

use agentstore::search::{SearchMode, Target};
use agentstore::{NewDocument, NewMemory, Scope, SearchRequest};
use agentstore_embed::{BertEmbedder, Cached};
use agentstore_sqlite::OpenOptions;

use crate::common::require_model_dir;

#[test]
fn a_store_with_the_local_model_searches_by_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let model = BertEmbedder::load(require_model_dir()).unwrap();
    let store = agentstore_sqlite::open(&OpenOptions::new(dir.path().join("data")).create())
        .unwrap()
        .with_embedder(Arc::new(Cached::new(model, 1000)));
    store.ensure_tenant("test", "t1").unwrap();
    let scope = Scope::new("t1", "test");
    for text in [
        "Pasta should be boiled in plenty of salted water for about nine minutes.",
        "The quarterly revenue grew by twelve percent compared to last year.",
        "Our office cat sleeps on the warm printer every afternoon.",
    ] {
        store.put_document(&scope, NewDocument::new(text)).unwrap();
    }
    store
        .remember(&scope, NewMemory::new("The user wants replies in German."))
        .unwrap();
    let models = store.vector_models().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].model, "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!((models[0].dimension, models[0].vectors), (384, 4));

    // No word of the query occurs in the answer: only the vector list can find it.
    let hits = store
        .search(
            &scope,
            SearchRequest {
                mode: Some(SearchMode::Vector),
                limit: 1,
                ..SearchRequest::text("How long do I cook spaghetti?")
            },
        )
        .unwrap();
    assert_eq!(hits[0].target, Target::Chunk);
    assert!(hits[0].record.searchable_text().contains("Pasta"));
    let sim = hits[0].components.vector.unwrap();
    assert!(sim > 0.3, "{sim}");

    // With text only, a store with an embedder searches hybrid by default.
    let hits = store
        .search(
            &scope,
            SearchRequest::text("which language should answers be in"),
        )
        .unwrap();
    assert_eq!(hits[0].target, Target::Memory);
    assert!(hits[0].components.vector.is_some());

    // Re-putting an unchanged document embeds nothing and writes nothing.
    let audit = store.list_audit(Default::default()).unwrap().items.len();
    let again = store
        .put_document(
            &scope,
            NewDocument::new("Our office cat sleeps on the warm printer every afternoon."),
        )
        .unwrap();
    assert!(matches!(
        again,
        agentstore::DocumentOutcome::Unchanged { .. }
    ));
    assert_eq!(
        store.list_audit(Default::default()).unwrap().items.len(),
        audit
    );
}
