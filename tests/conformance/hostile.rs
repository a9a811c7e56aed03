//! Hostile input, as properties: strings built from SQL, FTS5, JSON-path and LIKE
//! syntax, quotes, control and invisible characters go into every query and filter, and
//! into every free-text field. Whatever the store refuses, it refuses with
//! `invalid_input` or `too_large` and writes nothing; no string in a query or filter
//! changes what the query means or what the store holds; whatever it accepts comes back
//! byte-identical.
//!
//! One documented difference: a backend that cannot store U+0000 in text
//! (`common::STORES_NUL` false: PostgreSQL) refuses every value holding it with
//! `invalid_input`, and the properties check that it does.
//!
//! The SQLite backend runs the round trip again on an encrypted store
//! (`sqlite_hostile.rs`) with [`round_trip`].

use agentstore::backend::{EventQuery, MemoryQuery};
use agentstore::search::{MetadataCondition, MetadataOp, SearchFilter, Target};
use agentstore::{NewDocument, NewEvent, NewMemory, NewSession, SearchRequest};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::json;

use crate::common::{STORES_NUL, TestStore, store};

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

/// Whether the store may refuse `s` for holding U+0000, and must: the backend cannot store
/// it.
fn nul_refused(s: &str) -> bool {
    !STORES_NUL && s.contains('\0')
}

/// The documented refusal of text holding U+0000 by a backend that cannot store it.
fn refused_for_nul(e: &agentstore::Error) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.code(), "invalid_input", "{}", e);
    Ok(())
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

/// `s` in every free-text field of a memory, a session, an event and a document, half of
/// them (`with_subject`) belonging to a subject: whatever the store accepts comes back
/// byte-identical; whatever it refuses, it refuses with a client error and writes nothing.
pub(crate) fn round_trip(t: &TestStore, s: &str, with_subject: bool) -> Result<(), TestCaseError> {
    let sc = &t.scope;
    let s = s.to_owned();
    let subject = with_subject.then(|| {
        let mut n = agentstore::NewSubject::new("someone@example.com");
        n.consent = true;
        t.store.create_subject(sc, n).unwrap().id
    });
    let nul = nul_refused(&s);
    let before = counts(t);

    let mut m = NewMemory::new(format!("note {s}"));
    m.subject_id = subject.clone();
    m.summary = Some(s.clone());
    m.topic = Some(s.clone());
    m.tags = vec![s.clone()];
    m.key = Some(s.clone());
    m.metadata = json!({ "field": s.clone(), "nested": { "v": [s.clone()] } });
    match t.store.remember(sc, m) {
        Ok(out) => {
            prop_assert!(!nul, "text with U+0000 stored by a backend that cannot");
            let got = t.store.get_memory(sc, out.id()).unwrap();
            prop_assert_eq!(&got.content, &format!("note {s}"));
            prop_assert_eq!(got.summary.as_deref(), Some(s.as_str()));
            prop_assert_eq!(got.topic.as_deref(), Some(s.as_str()));
            prop_assert_eq!(&got.tags, &vec![s.clone()]);
            prop_assert_eq!(got.key.as_deref(), Some(s.as_str()));
            prop_assert_eq!(&got.metadata["field"], &json!(s));
            prop_assert_eq!(&got.metadata["nested"]["v"][0], &json!(s));
        }
        Err(e) => {
            refused(&e);
            prop_assert_eq!(counts(t), before.clone());
        }
    }

    let mut ns = NewSession::new("chat");
    ns.subject_id = subject.clone();
    ns.title = Some(s.clone());
    let session = match t.store.create_session(sc, ns.clone()) {
        Ok(session) => {
            prop_assert!(!nul, "text with U+0000 stored by a backend that cannot");
            let title = t.store.get_session(sc, &session.id).unwrap().title;
            prop_assert_eq!(title.as_deref(), Some(s.as_str()));
            session
        }
        Err(e) => {
            // A title is any text: only a backend without U+0000 refuses one, for it.
            prop_assert!(nul, "title {:?} refused: {}", s, e);
            refused_for_nul(&e)?;
            let sessions = t.store.list_sessions(sc, Default::default()).unwrap();
            prop_assert!(sessions.items.is_empty(), "a refused session was stored");
            // The events below need a session.
            ns.title = None;
            t.store.create_session(sc, ns).unwrap()
        }
    };
    let mut e = NewEvent::message("user", s.clone());
    e.tool_name = Some(s.clone());
    e.parameters = Some(json!({ "q": s.clone() }));
    e.metadata = Some(json!({ "k": s.clone() }));
    match t.store.append_event(sc, &session.id, e) {
        Ok(_) => {
            prop_assert!(!nul, "text with U+0000 stored by a backend that cannot");
            let events = t
                .store
                .list_events(
                    sc,
                    EventQuery {
                        session_id: session.id.clone(),
                        limit: 10,
                        ..Default::default()
                    },
                )
                .unwrap()
                .items;
            prop_assert_eq!(events[0].content.as_deref(), Some(s.as_str()));
            prop_assert_eq!(events[0].tool_name.as_deref(), Some(s.as_str()));
            prop_assert_eq!(&events[0].parameters, &Some(json!({ "q": s.clone() })));
            prop_assert_eq!(&events[0].metadata, &json!({ "k": s.clone() }));
        }
        Err(e) => {
            if nul {
                refused_for_nul(&e)?;
            } else {
                refused(&e);
            }
            let events = t
                .store
                .list_events(
                    sc,
                    EventQuery {
                        session_id: session.id.clone(),
                        ..Default::default()
                    },
                )
                .unwrap();
            prop_assert!(events.items.is_empty(), "a refused event was stored");
        }
    }

    let mut d = NewDocument::new(format!("doc {s}"));
    d.subject_id = subject.clone();
    d.title = Some(s.clone());
    let docs_before = counts(t);
    match t.store.put_document(sc, d) {
        Ok(out) => {
            prop_assert!(!nul, "text with U+0000 stored by a backend that cannot");
            let doc = t.store.get_document(sc, out.id()).unwrap();
            prop_assert_eq!(&doc.content, &format!("doc {s}"));
            prop_assert_eq!(doc.title.as_deref(), Some(s.as_str()));
        }
        Err(e) => {
            if nul {
                refused_for_nul(&e)?;
            } else {
                refused(&e);
            }
            prop_assert_eq!(counts(t), docs_before);
        }
    }
    let report = t.store.verify().unwrap();
    prop_assert!(report.ok(), "{:?}", report);
    Ok(())
}

proptest! {
    // Each case opens a new store.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Half the records belong to a subject, half to nobody.
    #[test]
    fn hostile_text_comes_back_byte_identical(s in hostile(), with_subject in any::<bool>()) {
        let t = store();
        round_trip(&t, &s, with_subject)?;
    }
}

/// The random strings hold U+0000 in only a few cases; these always do, so both branches
/// of `STORES_NUL` run on every backend every time: stored byte-identical, or refused
/// with `invalid_input` and nothing written.
#[test]
fn text_holding_nul_is_stored_or_refused_as_documented() {
    for (s, with_subject) in [("a\u{0}b", false), ("\u{0}", true), ("x\u{0}", false)] {
        let t = store();
        round_trip(&t, s, with_subject).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    }
}
