//! Privacy: COPPA's parental-consent gate on personal data; GDPR export and erasure of a
//! subject. What an erasure or a retention sweep leaves in the bytes of the data directory,
//! and the gate against records changed behind the store's back, are tested by the SQLite
//! backend (`sqlite_privacy.rs`) with the helpers here.

use agentstore::backend::{AuditQuery, SessionQuery};
use agentstore::{
    NewCheckpoint, NewDocument, NewEvent, NewMemory, NewSession, NewSubject, NewUsage, Payload,
    SearchRequest,
};
use serde_json::json;

use crate::common::{TestStore, store};

pub(crate) fn checkpoint(session: &str) -> NewCheckpoint {
    NewCheckpoint {
        session_id: session.into(),
        checkpoint_ns: String::new(),
        id: Some("cp1".into()),
        parent_id: None,
        state: Payload::Json(serde_json::json!({"favourite": "dinosaurs"})),
        metadata: serde_json::json!({}),
    }
}

pub(crate) fn child(t: &TestStore) -> String {
    t.store
        .create_subject(
            &t.scope,
            NewSubject {
                external_id: "kid@example.com".into(),
                age_gated: true,
                ..Default::default()
            },
        )
        .unwrap()
        .id
}

/// A subject under 13 without recorded parental consent: every write of its personal
/// data is refused with `consent_required` and writes nothing; once a parent's consent
/// is recorded (with who recorded it, and when) the same writes succeed.
#[test]
fn under_13_needs_parental_consent_before_personal_data() {
    let t = store();
    let kid = child(&t);
    let refused = |r: agentstore::Result<()>| {
        let e = r.expect_err("written without parental consent");
        assert_eq!(e.code(), "consent_required", "{e}");
        assert!(e.is_client_error());
        assert!(e.to_string().contains(&kid), "{e}");
    };
    let mut session = NewSession::new("learning");
    session.subject_id = Some(kid.clone());
    refused(t.store.create_session(&t.scope, session.clone()).map(drop));
    let mut memory = NewMemory::new("Loves dinosaurs");
    memory.subject_id = Some(kid.clone());
    refused(t.store.remember(&t.scope, memory.clone()).map(drop));
    let mut doc = NewDocument::new("My homework about volcanoes.");
    doc.subject_id = Some(kid.clone());
    refused(t.store.put_document(&t.scope, doc.clone()).map(drop));
    let page = t
        .store
        .list_sessions(&t.scope, SessionQuery::default())
        .unwrap();
    assert!(page.items.is_empty(), "a refused write left a session");

    // Consent without a parent's does not lift the gate.
    t.store.set_consent(&t.scope, &kid, true, None).unwrap();
    refused(t.store.create_session(&t.scope, session.clone()).map(drop));

    let s = t
        .store
        .set_consent(&t.scope, &kid, true, Some("parent:alice"))
        .unwrap();
    assert_eq!(s.parental_consent_by.as_deref(), Some("parent:alice"));
    assert!(s.parental_consent_at.is_some());
    let session = t.store.create_session(&t.scope, session).unwrap();
    t.store
        .append_event(&t.scope, &session.id, NewEvent::message("user", "hi"))
        .unwrap();
    t.store.remember(&t.scope, memory).unwrap();
    t.store.put_document(&t.scope, doc).unwrap();
    t.store
        .put_checkpoint(&t.scope, checkpoint(&session.id))
        .unwrap();
    let audit = t.store.list_audit(Default::default()).unwrap();
    assert!(
        audit.items.iter().any(|e| e.action == "subject.consent"
            && e.new_values.as_ref().unwrap()["parental_consent_by"] == "parent:alice"),
        "the consent is audited with who recorded it"
    );
}

pub(crate) fn adult(t: &TestStore, external: &str) -> String {
    t.store
        .create_subject(
            &t.scope,
            NewSubject {
                external_id: external.into(),
                consent: true,
                ..Default::default()
            },
        )
        .unwrap()
        .id
}

fn unit(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; 8];
    v[i % 8] = 1.0;
    v
}

/// Writes a bit of everything for `subject`, each piece carrying `word`: a parent and a
/// child session with events (one with a vector), a checkpoint with a pending write, a
/// usage record, two versions of a keyed memory with vectors, and a document.
pub(crate) fn personal_data(t: &TestStore, subject: &str, word: &str) -> (String, String) {
    let sc = &t.scope;
    let mut ns = NewSession::new("conversation");
    ns.subject_id = Some(subject.into());
    ns.title = Some(format!("chat about {word}"));
    let parent = t.store.create_session(sc, ns.clone()).unwrap();
    ns.parent_id = Some(parent.id.clone());
    let child = t.store.create_session(sc, ns).unwrap();
    let mut with_vector = NewEvent::message("user", format!("my secret is {word}"));
    with_vector.vector = Some(unit(1));
    t.store
        .append_events(
            sc,
            &parent.id,
            vec![
                with_vector,
                NewEvent::message("assistant", format!("noted: {word}")),
            ],
        )
        .unwrap();
    t.store
        .append_event(
            sc,
            &child.id,
            NewEvent::message("user", format!("again {word}")),
        )
        .unwrap();
    let cp = t
        .store
        .put_checkpoint(
            sc,
            NewCheckpoint {
                session_id: parent.id.clone(),
                checkpoint_ns: String::new(),
                id: Some(format!("cp-{subject}")),
                parent_id: None,
                state: Payload::Json(json!({"note": word})),
                metadata: json!({}),
            },
        )
        .unwrap();
    t.store
        .put_pending_writes(
            sc,
            &parent.id,
            "",
            &cp.id,
            vec![agentstore::NewPendingWrite {
                task_id: "t".into(),
                idx: 0,
                channel: "c".into(),
                value: Payload::Json(json!(word)),
            }],
        )
        .unwrap();
    t.store
        .record_usage(sc, vec![usage(Some(&parent.id), None)])
        .unwrap();
    for (i, text) in [format!("likes {word}"), format!("loves {word}")]
        .iter()
        .enumerate()
    {
        let mut m = NewMemory::new(text.clone());
        m.subject_id = Some(subject.into());
        m.key = Some(format!("taste-{subject}"));
        m.vector = Some(unit(2 + i));
        t.store.remember(sc, m).unwrap();
    }
    let mut d = NewDocument::new(format!(
        "A diary page about {word}. It goes on about {word}."
    ));
    d.subject_id = Some(subject.into());
    t.store.put_document(sc, d).unwrap();
    (parent.id, child.id)
}

/// A model call, in `session` if given, made at `created_at` (default now).
pub(crate) fn usage(session: Option<&str>, created_at: Option<agentstore::Timestamp>) -> NewUsage {
    NewUsage {
        id: None,
        session_id: session.map(Into::into),
        agent_id: None,
        provider: "p".into(),
        model: "m".into(),
        operation: None,
        input_tokens: 10,
        output_tokens: 5,
        estimated_cost: None,
        actual_cost: None,
        latency_ms: None,
        quality_score: None,
        success: true,
        metadata: json!({}),
        created_at,
    }
}

pub(crate) fn keyword_hits(t: &TestStore, text: &str) -> usize {
    t.store
        .search(&t.scope, SearchRequest::text(text))
        .unwrap()
        .len()
}

/// Export gives everything about the subject and nothing about another; erasure
/// removes all of it (rows, full-text entries, vectors), keeps the other subject whole,
/// leaves a tombstone without personal data, and the store still verifies.
#[test]
fn export_then_erase_a_subject() {
    let t = store();
    let alice = adult(&t, "alice@example.com");
    let bob = adult(&t, "bob@example.com");
    personal_data(&t, &alice, "xylophonic");
    personal_data(&t, &bob, "marimba");
    // A session of nobody's under one of Alice's survives her erasure, detached.
    let alice_sessions = t
        .store
        .list_sessions(
            &t.scope,
            SessionQuery {
                subject_id: Some(alice.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let mut orphan = NewSession::new("task");
    orphan.parent_id = Some(alice_sessions.items[0].id.clone());
    let orphan = t.store.create_session(&t.scope, orphan).unwrap();

    let export = t.store.export_subject(&t.scope, &alice).unwrap();
    // The access itself is recorded, with counts only.
    let exports = t
        .store
        .list_audit(AuditQuery {
            action: Some("subject.export".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .items;
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0].resource_id, alice);
    assert_eq!(exports[0].new_values.as_ref().unwrap()["memories"], 2);
    assert_eq!(export.subject.id, alice);
    assert_eq!(export.sessions.len(), 2);
    assert_eq!(export.events.len(), 3);
    assert_eq!(export.checkpoints.len(), 1);
    assert_eq!(export.pending_writes.len(), 1);
    assert_eq!(export.usage.len(), 1);
    assert_eq!(export.memories.len(), 2, "every version");
    assert_eq!(export.documents.len(), 1);
    assert!(!export.chunks.is_empty());
    assert!(
        export.audit.iter().any(|e| e.action == "subject.create"),
        "the audit entries about the subject"
    );
    let text = serde_json::to_string(&export).unwrap();
    assert!(text.contains("xylophonic"));
    assert!(
        !text.contains("marimba"),
        "another subject's data in the export"
    );

    assert!(keyword_hits(&t, "xylophonic") > 0);
    let erased = t.store.erase_subject(&t.scope, &alice).unwrap();
    assert_eq!(
        (
            erased.sessions,
            erased.events,
            erased.checkpoints,
            erased.usage_records
        ),
        (2, 3, 1, 1)
    );
    assert_eq!((erased.memories, erased.documents), (2, 1));
    assert_eq!(erased.chunks, export.chunks.len() as u64);
    assert_eq!(
        erased.vectors, 3,
        "one event and two memory versions had vectors"
    );

    assert_eq!(
        t.store.get_subject(&t.scope, &alice).unwrap_err().code(),
        "not_found"
    );
    assert_eq!(
        t.store.export_subject(&t.scope, &alice).unwrap_err().code(),
        "not_found"
    );
    assert_eq!(
        t.store.erase_subject(&t.scope, &alice).unwrap_err().code(),
        "not_found"
    );
    assert_eq!(
        keyword_hits(&t, "xylophonic"),
        0,
        "full-text entries remain"
    );
    let near = t
        .store
        .search(
            &t.scope,
            SearchRequest {
                vector: Some(unit(2)),
                mode: Some(agentstore::search::SearchMode::Vector),
                ..SearchRequest::default()
            },
        )
        .unwrap();
    assert!(
        near.iter()
            .all(|h| !serde_json::to_string(h).unwrap().contains("xylophonic")),
        "a vector of the erased subject still answers"
    );
    let orphan = t.store.get_session(&t.scope, &orphan.id).unwrap();
    assert_eq!(orphan.parent_id, None);

    // Bob is untouched.
    let bob_export = t.store.export_subject(&t.scope, &bob).unwrap();
    assert_eq!(
        (
            bob_export.sessions.len(),
            bob_export.events.len(),
            bob_export.memories.len()
        ),
        (2, 3, 2)
    );
    assert!(keyword_hits(&t, "marimba") > 0);

    // The tombstone: the subject's id and counts, nothing personal.
    let audit = t
        .store
        .list_audit(AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    let tomb = audit
        .items
        .iter()
        .find(|e| e.action == "subject.erase")
        .expect("a tombstone");
    assert_eq!(tomb.resource_id, alice);
    assert_eq!(tomb.new_values.as_ref().unwrap()["events"], 3);
    assert!(!serde_json::to_string(tomb).unwrap().contains("xylophonic"));
    let report = t.store.verify().unwrap();
    assert!(report.ok(), "{report:?}");
}
