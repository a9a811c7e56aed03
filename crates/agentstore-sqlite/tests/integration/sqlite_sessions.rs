//! Events and the audit log are append-only down to the database file: even raw SQL
//! cannot change them (SQLite only: the triggers of `agentstore.db`). Sessions, events
//! and bad input changing nothing through the engine are the conformance suite's
//! (`sessions.rs`).

use agentstore::{NewEvent, NewSession};

use crate::common::store;

#[test]
fn events_and_the_audit_log_refuse_raw_sql_changes() {
    let t = store();
    let s = t
        .store
        .create_session(&t.scope, NewSession::new("task"))
        .unwrap();
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
