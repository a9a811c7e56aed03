//! Sessions and events: the lifecycle, events in order with pages, updates, agent
//! statistics, tenant isolation, and bad input changing nothing. That the database itself
//! refuses changes to events and the audit log (append-only triggers) is tested by the
//! SQLite backend with raw SQL (`sqlite_sessions.rs`).

use agentstore::backend::{EventQuery, SessionQuery};
use agentstore::{NewAgent, NewEvent, NewSession, SessionUpdate};

use crate::common::store;

#[test]
fn session_lifecycle_and_events_in_order() {
    let t = store();
    let agent = t
        .store
        .put_agent(&t.scope, NewAgent::named("planner"))
        .unwrap();
    let mut ns = NewSession::new("conversation");
    ns.agent_id = Some(agent.id.clone());
    ns.title = Some("hello".into());
    let s = t.store.create_session(&t.scope, ns).unwrap();
    let evs = t
        .store
        .append_events(
            &t.scope,
            &s.id,
            vec![
                NewEvent::message("user", "hi"),
                NewEvent::message("assistant", "hello!"),
            ],
        )
        .unwrap();
    assert_eq!(evs.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    let e3 = t
        .store
        .append_event(&t.scope, &s.id, NewEvent::message("user", "bye"))
        .unwrap();
    assert_eq!(e3.seq, 3);
    let page = t
        .store
        .list_events(
            &t.scope,
            EventQuery {
                session_id: s.id.clone(),
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.next.as_deref(), Some("2"));
    let rest = t
        .store
        .list_events(
            &t.scope,
            EventQuery {
                session_id: s.id.clone(),
                after_seq: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(rest.items[0].content.as_deref(), Some("bye"));
    assert!(rest.next.is_none());

    let upd = t
        .store
        .update_session(
            &t.scope,
            &s.id,
            SessionUpdate {
                status: Some("completed".into()),
                success: Some(true),
                ended_at: Some(agentstore::time::now()),
                metadata: Some(serde_json::json!({"k": 1})),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(upd.status, "completed");
    assert_eq!(t.store.get_session(&t.scope, &s.id).unwrap(), upd);
    let stats = t.store.agent_stats(&t.scope, &agent.id).unwrap();
    assert_eq!((stats.sessions, stats.succeeded), (1, 1));

    // The other tenant sees nothing and cannot append.
    let other = t.other_tenant();
    assert_eq!(
        t.store.get_session(&other, &s.id).unwrap_err().code(),
        "not_found"
    );
    assert_eq!(
        t.store
            .append_event(&other, &s.id, NewEvent::message("user", "x"))
            .unwrap_err()
            .code(),
        "not_found"
    );
    let listed = t
        .store
        .list_sessions(&t.scope, SessionQuery::default())
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(
        t.store
            .list_sessions(&other, SessionQuery::default())
            .unwrap()
            .items
            .is_empty()
    );
}

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
    let sessions = t
        .store
        .list_sessions(&t.scope, SessionQuery::default())
        .unwrap();
    assert_eq!(sessions.items.len(), 1, "a refused session was stored");
}
