//! Hostile input, as properties: strings built from SQL, FTS5, JSON-path and LIKE
//! syntax, quotes, control and invisible characters go into every query and filter.
//! Whatever the store refuses, it refuses with `invalid_input` or `too_large`; no string
//! in a query or filter changes what the query means or what the store holds.
//!
//! The same strings in every free-text field coming back byte-identical is a property of
//! the SQLite backend's tests (`sqlite_hostile.rs`), which runs it on an encrypted store;
//! the strategy and the checks here are shared with it.

use agentstore::backend::MemoryQuery;
use agentstore::search::{MetadataCondition, MetadataOp, SearchFilter, Target};
use agentstore::{NewMemory, SearchRequest};
use proptest::prelude::*;
use serde_json::json;

use crate::common::{TestStore, store};

/// Pieces that mean something to SQL, FTS5, JSON paths, LIKE, shells or terminals.
const FRAGMENTS: &[&str] = &[
    "'",
    "\"",
    "`",
    "\\",
    "'; DROP TABLE memories; --",
    "\" OR 1=1 --",
    "') OR ('1'='1",
    "/* comment */",
    "%",
    "_",
    "*",
    "NEAR(",
    " OR ",
    " AND ",
    " NOT ",
    "content:",
    "{content summary}:",
    "^",
    "$.a[0]",
    "$..*",
    "\u{0}",
    "\u{1f}",
    "\n",
    "\r\n",
    "\t",
    "\u{202e}",
    "\u{200b}",
    "e\u{301}",
    "😀",
    "東京",
    "../../etc/passwd",
    "${HOME}",
    "$(rm -rf /)",
    "<script>alert(1)</script>",
    "\u{feff}",
    "null",
    "{\"a\":1}",
];

pub(crate) fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(FRAGMENTS), 1..6).prop_map(|v| v.concat()),
        "\\PC{0,40}",
        (prop::sample::select(FRAGMENTS), "\\PC{0,12}").prop_map(|(a, b)| format!("{b}{a}{b}")),
    ]
}

/// Refused input gets a client error with a stable code.
pub(crate) fn refused(e: &agentstore::Error) {
    assert!(
        matches!(e.code(), "invalid_input" | "too_large"),
        "unexpected error for hostile input: {e}"
    );
}

pub(crate) fn counts(t: &TestStore) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = t
        .store
        .stats()
        .unwrap()
        .entities
        .into_iter()
        .map(|e| (e.entity, e.rows))
        .collect();
    v.sort();
    v
}

/// Two fixed memories every query runs against.
fn seeded() -> TestStore {
    let t = store();
    for (key, text) in [("a", "alpha report"), ("b", "beta summary")] {
        let mut m = NewMemory::new(text);
        m.key = Some(key.into());
        m.tags = vec!["fixed".into()];
        m.metadata = json!({ "origin": "seed" });
        t.store.remember(&t.scope, m).unwrap();
    }
    t
}

proptest! {
    // Each case opens a new store.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn hostile_queries_and_filters_never_change_a_query(s in hostile()) {
        let t = seeded();
        let sc = &t.scope;
        let before = counts(&t);
        let memory_ids = |req: SearchRequest| -> Result<Vec<String>, agentstore::Error> {
            t.store
                .search(sc, req)
                .map(|hits| hits.into_iter().map(|h| h.id).collect())
        };

        // Hostile text beside a real word: the word is still found, and the hostile part
        // matches only as words (the seeds hold none of the fragments as words).
        match memory_ids(SearchRequest::text(format!("{s} alpha"))) {
            Ok(hits) => prop_assert!(!hits.is_empty(), "alpha not found beside {s:?}"),
            Err(e) => refused(&e),
        }

        // Each filter with the hostile value selects nothing, or is refused.
        let filters = [
            SearchFilter { kinds: vec![s.clone()], ..Default::default() },
            SearchFilter { tags: vec![s.clone()], ..Default::default() },
            SearchFilter { session_id: Some(s.clone()), ..Default::default() },
            SearchFilter { subject_id: Some(s.clone()), ..Default::default() },
            SearchFilter { agent_id: Some(s.clone()), ..Default::default() },
            SearchFilter {
                metadata: vec![MetadataCondition::new("origin", MetadataOp::Eq, s.clone())],
                ..Default::default()
            },
            SearchFilter {
                metadata: vec![MetadataCondition::new(s.clone(), MetadataOp::Eq, "seed")],
                ..Default::default()
            },
        ];
        for filter in filters {
            let req = SearchRequest {
                filter: filter.clone(),
                targets: vec![Target::Memory],
                ..SearchRequest::text("alpha beta")
            };
            match memory_ids(req) {
                Ok(hits) => {
                    let legit = s == "fixed" || s == "fact" || s == "seed" || s == "origin";
                    prop_assert!(legit || hits.is_empty(), "{filter:?} selected {hits:?}");
                }
                Err(e) => refused(&e),
            }
        }

        // Listing by a hostile key, kind or tag finds nothing and changes nothing.
        let page = t.store.list_memories(
            sc,
            MemoryQuery { kinds: vec![s.clone()], tags: vec![s.clone()], ..Default::default() },
        );
        match page {
            Ok(p) => prop_assert!(p.items.is_empty() || s == "fixed" || s == "fact"),
            Err(e) => refused(&e),
        }
        prop_assert_eq!(counts(&t), before);
        prop_assert_eq!(memory_ids(SearchRequest::text("alpha beta")).unwrap().len(), 2);
    }
}
