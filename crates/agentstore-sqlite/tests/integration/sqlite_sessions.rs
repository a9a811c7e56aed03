//! Bad session and event input changing nothing, down to the database file: events and
//! the audit log refuse even raw SQL updates (SQLite only: the triggers of
//! `agentstore.db`). Sessions and events through the engine are the conformance suite's
//! (`sessions.rs`).

use agentstore::backend::EventQuery;
use agentstore::{NewEvent, NewSession};

use crate::common::store;

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let t = store();
    let s = t
        .store
        .create_session(&t.scope, NewSession::new("task"))
        .unwrap();
    let huge = "x".repeat(t.store.limits().max_content_bytes + 1);
    let err = t
        .store
        .append_events(
            &t.scope,
            &s.id,
            vec![
                NewEvent::message("user", "ok"),
                NewEvent::message("user", huge),
            ],
        )
        .unwrap_err();
    assert_eq!(err.code(), "too_large");
    let mut bad = NewSession::new("task");
    bad.agent_id = Some("nope".into());
    assert_eq!(
        t.store.create_session(&t.scope, bad).unwrap_err().code(),
        "not_found"
    );
    let mut bad = NewSession::new("task");
    bad.id = Some("has space".into());
    assert_eq!(
        t.store.create_session(&t.scope, bad).unwrap_err().code(),
        "invalid_input"
    );
    let page = t
        .store
        .list_events(
            &t.scope,
            EventQuery {
                session_id: s.id.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(page.items.is_empty());
    // Events cannot be updated, even with raw SQL.
    drop(
        t.store
            .append_event(&t.scope, &s.id, NewEvent::message("user", "x"))
            .unwrap(),
    );
    let c = rusqlite::Connection::open(t.dir.path().join("data/agentstore.db")).unwrap();
    let e = c
        .execute("UPDATE events SET content = 'y'", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"));
    let e = c.execute("DELETE FROM audit_log", []).unwrap_err();
    assert!(e.to_string().contains("append-only"));
}
