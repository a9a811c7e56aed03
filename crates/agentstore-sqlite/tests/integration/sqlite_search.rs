//! The deferred event index of FTS5, checked with FTS5's own integrity check on
//! `agentstore.db` (SQLite only). Like the conformance suite's `search.rs`, this file
//! runs twice (see main.rs): as `sqlite_search`, where FTS5 answers searches, and as
//! `sqlite_search_keyword_index`, where the in-memory keyword index does.

use std::collections::BTreeSet;

use agentstore::search::Target;
use agentstore::{NewEvent, NewSession, SearchRequest};

use crate::common::{TestStore, search_store};
use crate::search::{search, set};

/// A new store with tenant `t1`, with the keyword engine this module's name asks for.
fn store() -> TestStore {
    search_store(module_path!())
}

/// Events are indexed just before a search (migration 0003), not by the append: every
/// event committed before the search is found, a deleted session's events never are, and
/// a rid SQLite reuses after deleting the newest events is indexed again.
#[test]
fn deferred_event_index_follows_appends_deletes_and_reused_rids() {
    let t = store();
    let target = |text: &str| {
        search(
            &t.store,
            &t.scope,
            SearchRequest {
                targets: vec![Target::Event],
                limit: 1000,
                ..SearchRequest::text(text)
            },
        )
        .into_iter()
        .map(|h| h.id)
        .collect::<BTreeSet<_>>()
    };
    let keep = t
        .store
        .create_session(&t.scope, NewSession::new("conversation"))
        .unwrap();
    let first = t
        .store
        .append_event(
            &t.scope,
            &keep.id,
            NewEvent::message("user", "alpha harbour"),
        )
        .unwrap();
    assert_eq!(target("harbour"), set(&[&first.id]));

    // The newest events belong to a session that is then deleted, some of them already
    // indexed and some not: the rids above the survivors may be handed out again.
    let gone = t
        .store
        .create_session(&t.scope, NewSession::new("task"))
        .unwrap();
    t.store
        .append_event(
            &t.scope,
            &gone.id,
            NewEvent::message("user", "beta harbour"),
        )
        .unwrap();
    assert_eq!(target("beta").len(), 1);
    t.store
        .append_event(
            &t.scope,
            &gone.id,
            NewEvent::message("user", "gamma harbour"),
        )
        .unwrap();
    t.store.delete_session(&t.scope, &gone.id).unwrap();
    assert!(target("beta").is_empty());
    assert!(target("gamma").is_empty());

    let later = t
        .store
        .append_events(
            &t.scope,
            &keep.id,
            vec![
                NewEvent::message("user", "delta harbour"),
                NewEvent::message("user", "epsilon harbour"),
            ],
        )
        .unwrap();
    let mut want: Vec<&str> = later.iter().map(|e| e.id.as_str()).collect();
    want.push(&first.id);
    assert_eq!(target("harbour"), set(&want));

    // FTS5's own check compares the index with the events table row by row.
    let c = rusqlite::Connection::open(t.dir.path().join("data/agentstore.db")).unwrap();
    c.execute(
        "INSERT INTO events_fts (events_fts) VALUES ('integrity-check')",
        [],
    )
    .unwrap();
    // Maintenance indexes whatever a search has not yet.
    t.store
        .append_event(&t.scope, &keep.id, NewEvent::message("user", "zeta"))
        .unwrap();
    let rep = t.store.maintenance(false).unwrap();
    // Where the keyword index answers, searches leave FTS5's event index behind, and
    // maintenance catches up with all of it.
    let pending = if module_path!().ends_with("search_keyword_index") {
        "fulltext: 4 event"
    } else {
        "fulltext: 1 event"
    };
    assert!(
        rep.steps.iter().any(|s| s.starts_with(pending)),
        "{:?}",
        rep.steps
    );
    c.execute(
        "INSERT INTO events_fts (events_fts) VALUES ('integrity-check')",
        [],
    )
    .unwrap();
}
