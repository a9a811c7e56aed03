//! Sessions and events: the lifecycle, events in order with pages and filtered by tool,
//! updates, reassignment to another agent (never another subject), agent statistics,
//! tenant isolation, and bad input changing nothing. That the database itself
//! refuses changes to events and the audit log (append-only triggers) is tested by the
//! SQLite backend with raw SQL (`sqlite_sessions.rs`).

use agentstore::backend::{AuditQuery, EventQuery, SessionQuery};
use agentstore::{NewAgent, NewEvent, NewSession, NewSubject, SessionUpdate};

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

#[test]
fn events_filtered_by_tool_name_and_kind() {
    let t = store();
    let s = t
        .store
        .create_session(&t.scope, NewSession::new("episode"))
        .unwrap();
    let step = |kind: &str, tool: Option<&str>| NewEvent {
        kind: kind.into(),
        content: Some(format!("{kind} with {tool:?}")),
        tool_name: tool.map(str::to_owned),
        ..Default::default()
    };
    t.store
        .append_events(
            &t.scope,
            &s.id,
            vec![
                step("context", None),
                step("step", Some("pytest")),
                step("step", Some("git")),
                step("tool_call", Some("pytest")),
                step("step", Some("pytest")),
                step("step", Some("PyTest")),
            ],
        )
        .unwrap();
    let seqs = |q: EventQuery| {
        let page = t.store.list_events(&t.scope, q).unwrap();
        (
            page.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
            page.next,
        )
    };
    let by_tool = |tool: &str| EventQuery {
        session_id: s.id.clone(),
        tool_name: Some(tool.into()),
        ..Default::default()
    };
    // Exact match: another spelling is another tool.
    assert_eq!(seqs(by_tool("pytest")), (vec![2, 4, 5], None));
    assert_eq!(seqs(by_tool("PyTest")), (vec![6], None));
    assert_eq!(seqs(by_tool("cargo")), (vec![], None));
    assert_eq!(
        seqs(EventQuery {
            kinds: vec!["step".into()],
            ..by_tool("pytest")
        }),
        (vec![2, 5], None)
    );
    // Pages of a filtered list continue from the cursor, both ways.
    assert_eq!(
        seqs(EventQuery {
            limit: 2,
            ..by_tool("pytest")
        }),
        (vec![2, 4], Some("4".into()))
    );
    assert_eq!(
        seqs(EventQuery {
            limit: 2,
            after_seq: Some(4),
            ..by_tool("pytest")
        }),
        (vec![5], None)
    );
    assert_eq!(
        seqs(EventQuery {
            limit: 2,
            descending: true,
            ..by_tool("pytest")
        }),
        (vec![5, 4], Some("4".into()))
    );
}

#[test]
fn a_session_is_reassigned_to_another_agent_but_keeps_its_subject() {
    let t = store();
    let sc = &t.scope;
    let bob = t
        .store
        .create_subject(
            sc,
            NewSubject {
                consent: true,
                ..NewSubject::new("bob@example.com")
            },
        )
        .unwrap();
    let other_person = t
        .store
        .create_subject(sc, NewSubject::new("carol@example.com"))
        .unwrap();
    let coder = t.store.put_agent(sc, NewAgent::named("coder")).unwrap();
    let tester = t.store.put_agent(sc, NewAgent::named("tester")).unwrap();
    let mut task = NewSession::new("task");
    task.subject_id = Some(bob.id.clone());
    task.title = Some("fix the refund retry".into());
    let task = t.store.create_session(sc, task).unwrap();
    assert_eq!(task.agent_id, None);

    let update = |u: SessionUpdate| t.store.update_session(sc, &task.id, u);
    let to_agent = |agent: Option<&str>| SessionUpdate {
        agent_id: Some(agent.map(str::to_owned)),
        ..Default::default()
    };
    let moved = update(SessionUpdate {
        status: Some("in_progress".into()),
        ..to_agent(Some(&coder.id))
    })
    .unwrap();
    assert_eq!(moved.agent_id.as_deref(), Some(coder.id.as_str()));
    assert_eq!(moved.status, "in_progress");
    assert_eq!(moved.subject_id.as_deref(), Some(bob.id.as_str()));
    assert_eq!(moved.title.as_deref(), Some("fix the refund retry"));
    assert_eq!(t.store.get_session(sc, &task.id).unwrap(), moved);
    let on_coder = t
        .store
        .list_sessions(
            sc,
            SessionQuery {
                agent_id: Some(coder.id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(on_coder.items.len(), 1);
    assert_eq!(t.store.agent_stats(sc, &coder.id).unwrap().sessions, 1);

    // An update that does not name the agent leaves it; another agent takes over.
    let kept = update(SessionUpdate {
        priority: Some(3),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(kept.agent_id.as_deref(), Some(coder.id.as_str()));
    let moved = update(to_agent(Some(&tester.id))).unwrap();
    assert_eq!(moved.agent_id.as_deref(), Some(tester.id.as_str()));
    assert_eq!(t.store.agent_stats(sc, &coder.id).unwrap().sessions, 0);
    assert_eq!(t.store.agent_stats(sc, &tester.id).unwrap().sessions, 1);

    // The audit entry records the old and the new agent.
    let entries = t
        .store
        .list_audit(AuditQuery {
            tenant_id: Some("t1".into()),
            action: Some("session.update".into()),
            resource_id: Some(task.id.clone()),
            ..Default::default()
        })
        .unwrap()
        .items;
    let last = entries.last().unwrap();
    assert_eq!(
        last.old_values.as_ref().unwrap()["agent_id"],
        coder.id.as_str()
    );
    assert_eq!(
        last.new_values.as_ref().unwrap()["agent_id"],
        tester.id.as_str()
    );

    // Refused, changing nothing: an unknown agent, another tenant's agent, a bad id,
    // and any other subject (or none).
    let before = t.store.get_session(sc, &task.id).unwrap();
    let other = t.other_tenant();
    let foreign = t.store.put_agent(&other, NewAgent::named("coder")).unwrap();
    for (u, code) in [
        (to_agent(Some("no-such-agent")), "not_found"),
        (to_agent(Some(&foreign.id)), "not_found"),
        (to_agent(Some("has space")), "invalid_input"),
        (
            SessionUpdate {
                subject_id: Some(Some(other_person.id.clone())),
                status: Some("reassigned".into()),
                ..Default::default()
            },
            "invalid_input",
        ),
        (
            SessionUpdate {
                subject_id: Some(None),
                ..to_agent(None)
            },
            "invalid_input",
        ),
    ] {
        let err = update(u).unwrap_err();
        assert_eq!(err.code(), code, "{err}");
    }
    let err = update(SessionUpdate {
        subject_id: Some(None),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("subject"), "{err}");
    assert_eq!(t.store.get_session(sc, &task.id).unwrap(), before);
    // Naming the current subject is not a change.
    let same = update(SessionUpdate {
        subject_id: Some(Some(bob.id.clone())),
        ..to_agent(None)
    })
    .unwrap();
    assert_eq!(same.agent_id, None);
    assert_eq!(same.subject_id.as_deref(), Some(bob.id.as_str()));
    // A session without a subject keeps having none.
    let free = t.store.create_session(sc, NewSession::new("task")).unwrap();
    let err = t
        .store
        .update_session(
            sc,
            &free.id,
            SessionUpdate {
                subject_id: Some(Some(bob.id.clone())),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    t.store
        .update_session(
            sc,
            &free.id,
            SessionUpdate {
                subject_id: Some(None),
                ..Default::default()
            },
        )
        .unwrap();
}
