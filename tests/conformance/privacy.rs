//! Privacy: COPPA's parental-consent gate on personal data, also for a session that
//! existed before the gate; GDPR export and erasure of a subject; retention rules sweeping
//! the records that outlived them; a subject found by its external id and updated. What an erasure or a retention sweep leaves in the
//! bytes of the data directory, and the gate against records changed behind the store's
//! back, are tested by the SQLite backend (`sqlite_privacy.rs`) with the helpers here.

use agentstore::backend::{AuditQuery, MetricQuery, Record, RetentionEntity, SessionQuery};
use agentstore::time::{from_micros, now, to_micros};
use agentstore::{
    Document, Memory, NewCheckpoint, NewDocument, NewEvent, NewMemory, NewMetricPoint, NewSession,
    NewSubject, NewUsage, Payload, SearchRequest, Session, SubjectUpdate, Timestamp, WriteOp,
};
use serde_json::json;

use crate::common::{TestStore, store};
use crate::infra::rows;

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

/// Events and checkpoints of a session that belongs to a gated subject are refused too:
/// the session existed before the gate (here it is imported, as from an export of an older
/// version, which the gate does not stop: the record is history, not new personal data).
#[test]
fn events_of_a_gated_subjects_session_are_refused() {
    let t = store();
    let kid = child(&t);
    let template = t
        .store
        .create_session(&t.scope, NewSession::new("chat"))
        .unwrap();
    let gated = Session {
        id: "imported".into(),
        subject_id: Some(kid.clone()),
        ..template
    };
    let line = serde_json::to_string(&Record::Session(gated)).unwrap() + "\n";
    t.store
        .import_jsonl(&t.scope, &mut line.as_bytes(), &mut |_| {})
        .unwrap();
    assert_eq!(
        t.store
            .get_session(&t.scope, "imported")
            .unwrap()
            .subject_id
            .as_deref(),
        Some(kid.as_str())
    );
    let e = t
        .store
        .append_event(&t.scope, "imported", NewEvent::message("user", "hi"))
        .unwrap_err();
    assert_eq!(e.code(), "consent_required", "{e}");
    assert!(e.to_string().contains(&kid), "{e}");
    let e = t
        .store
        .put_checkpoint(&t.scope, checkpoint("imported"))
        .unwrap_err();
    assert_eq!(e.code(), "consent_required", "{e}");
    assert_eq!(rows(&t.store, "events"), 0, "a refused event was stored");
    assert_eq!(rows(&t.store, "checkpoints"), 0);

    // A parent's consent lifts the gate for the same session.
    t.store
        .set_consent(&t.scope, &kid, true, Some("parent:bob"))
        .unwrap();
    t.store
        .append_event(&t.scope, "imported", NewEvent::message("user", "hi"))
        .unwrap();
    t.store
        .put_checkpoint(&t.scope, checkpoint("imported"))
        .unwrap();
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

// ------------------------------------------------------------------------- retention

fn days_before(at: Timestamp, days: i64) -> Timestamp {
    from_micros(to_micros(&at) - days * 86_400_000_000)
}

/// Makes memory `id` `days` older: read through the engine, then deleted and written
/// back with its times moved, in one transaction of raw ops (the engine's way to write a
/// record with explicit times).
pub(crate) fn age_memory(t: &TestStore, id: &str, days: i64) {
    let m = t.store.get_memory(&t.scope, id).unwrap();
    let m = Memory {
        valid_from: days_before(m.valid_from, days),
        created_at: days_before(m.created_at, days),
        updated_at: days_before(m.updated_at, days),
        ..m
    };
    t.store
        .write(
            &t.scope,
            vec![
                WriteOp::Forget { id: id.into() },
                WriteOp::Remember {
                    memory: m,
                    vector: None,
                },
            ],
        )
        .unwrap();
}

/// Makes session `id` last changed `days` earlier than it was: an update that changes
/// nothing but carries that time.
pub(crate) fn age_session(t: &TestStore, id: &str, days: i64) {
    let s = t.store.get_session(&t.scope, id).unwrap();
    t.store
        .write(
            &t.scope,
            vec![WriteOp::UpdateSession {
                id: id.into(),
                update: Default::default(),
                at: days_before(s.updated_at, days),
            }],
        )
        .unwrap();
}

/// Makes document `id` `days` older, as [`age_memory`] does: deleted and written back
/// with its chunks and its times moved, in one transaction.
pub(crate) fn age_document(t: &TestStore, id: &str, days: i64) {
    let d = t.store.get_document(&t.scope, id).unwrap();
    let chunks = t.store.list_chunks(&t.scope, id).unwrap();
    let d = Document {
        created_at: days_before(d.created_at, days),
        updated_at: days_before(d.updated_at, days),
        ..d
    };
    t.store
        .write(
            &t.scope,
            vec![
                WriteOp::DeleteDocument { id: id.into() },
                WriteOp::PutDocument {
                    document: d,
                    chunks,
                    vectors: Vec::new(),
                },
            ],
        )
        .unwrap();
}

/// The records of [`seed_retention`], by what the sweep should do with them.
pub(crate) struct Retained {
    /// A fact older than the 30 days of facts (goes), with the caller's text.
    pub(crate) old_fact: String,
    /// A fact of 29 days (stays).
    pub(crate) new_fact: String,
    /// A preference of 100 days, under the 400 days of every memory (stays).
    pub(crate) old_pref: String,
    /// A preference of 401 days (goes).
    pub(crate) ancient_pref: String,
    /// A preference of 6 days of a subject who keeps data 5 days (goes).
    pub(crate) brief: String,
    /// A session of 8 days (7 for sessions) with one event (goes).
    pub(crate) old_session: String,
    /// A new session (stays).
    pub(crate) new_session: String,
    /// A note of 11 days (10 for notes) (goes).
    pub(crate) old_note: String,
    /// A manual of 11 days, no rule for manuals (stays).
    pub(crate) old_manual: String,
}

/// Retention rules per entity and kind, a subject's own retention, and records of every
/// entity on either side of what applies to them, aged through the engine: usage and
/// metric points of 91 days (one usage record and one `mem` point stay, one `cpu` point
/// goes). `old_fact_text` is the old fact's content.
pub(crate) fn seed_retention(t: &TestStore, old_fact_text: &str) -> Retained {
    let sc = &t.scope;
    let set = |e, kind: Option<&str>, days| t.store.set_retention(sc, e, kind, days).unwrap();
    set(RetentionEntity::Memory, Some("fact"), Some(30));
    set(RetentionEntity::Memory, None, Some(400));
    set(RetentionEntity::Session, None, Some(7));
    set(RetentionEntity::Document, Some("note"), Some(10));
    set(RetentionEntity::Usage, None, Some(90));
    set(RetentionEntity::Metric, Some("cpu"), Some(1));

    let memory = |content: &str, kind: &str, days: i64| {
        let mut m = NewMemory::new(content);
        m.kind = kind.into();
        let id = t.store.remember(sc, m).unwrap().id().to_owned();
        age_memory(t, &id, days);
        id
    };
    let old_fact = memory(old_fact_text, "fact", 31);
    let new_fact = memory("a recent fact", "fact", 29);
    let old_pref = memory("an old preference", "preference", 100);
    let ancient_pref = memory("an ancient preference", "preference", 401);
    let old_session = t
        .store
        .create_session(sc, NewSession::new("chat"))
        .unwrap()
        .id;
    t.store
        .append_event(sc, &old_session, NewEvent::message("user", "hello"))
        .unwrap();
    age_session(t, &old_session, 8);
    let new_session = t
        .store
        .create_session(sc, NewSession::new("chat"))
        .unwrap()
        .id;
    let doc = |text: &str, doc_type: &str| {
        let mut d = NewDocument::new(text);
        d.doc_type = Some(doc_type.into());
        let id = t.store.put_document(sc, d).unwrap().id().to_owned();
        age_document(t, &id, 11);
        id
    };
    let old_note = doc("an old note", "note");
    let old_manual = doc("an old manual", "manual");
    let long_ago = days_before(now(), 91);
    t.store
        .record_usage(sc, vec![usage(None, Some(long_ago)), usage(None, None)])
        .unwrap();
    let point = |name: &str| NewMetricPoint {
        name: name.into(),
        labels: Default::default(),
        value: 1.0,
        at: Some(long_ago),
    };
    t.store
        .record_metrics(sc, vec![point("cpu"), point("mem")])
        .unwrap();
    // A subject that keeps its data for 5 days, whatever the tenant's rules.
    let short = t
        .store
        .create_subject(
            sc,
            NewSubject {
                retention_days: Some(5),
                consent: true,
                ..NewSubject::new("brief@example.com")
            },
        )
        .unwrap()
        .id;
    let mut m = NewMemory::new("a preference of a brief subject");
    m.kind = "preference".into();
    m.subject_id = Some(short);
    let brief = t.store.remember(sc, m).unwrap().id().to_owned();
    age_memory(t, &brief, 6);
    Retained {
        old_fact,
        new_fact,
        old_pref,
        ancient_pref,
        brief,
        old_session,
        new_session,
        old_note,
        old_manual,
    }
}

/// Rules per entity and kind, and a subject's own retention: the sweep removes exactly
/// the records older than what applies to them, and is audited; removing a rule keeps
/// what it would have removed.
#[test]
fn retention_rules_sweep_what_outlived_them() {
    let t = store();
    let sc = &t.scope;
    let r = seed_retention(&t, "an old fact");
    assert_eq!(t.store.list_retention(sc).unwrap().len(), 6);
    let e = t
        .store
        .set_retention(sc, RetentionEntity::Usage, Some("gpt"), Some(1))
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let e = t
        .store
        .set_retention(sc, RetentionEntity::Memory, None, Some(0))
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    assert_eq!(rows(&t.store, "events"), 1);

    let swept = t.store.sweep_expired(sc).unwrap();
    assert_eq!(
        (
            swept.memories,
            swept.sessions,
            swept.events,
            swept.documents
        ),
        (3, 1, 1, 1),
        "{swept:?}"
    );
    assert_eq!((swept.usage, swept.metric_points), (1, 1), "{swept:?}");
    for (id, gone) in [
        (&r.old_fact, true),
        (&r.new_fact, false),
        (&r.old_pref, false),
        (&r.ancient_pref, true),
        (&r.brief, true),
    ] {
        assert_eq!(
            t.store.get_memory(sc, id).is_err(),
            gone,
            "memory {id} gone: expected {gone}"
        );
    }
    assert!(t.store.get_session(sc, &r.old_session).is_err());
    assert!(t.store.get_session(sc, &r.new_session).is_ok());
    assert_eq!(rows(&t.store, "events"), 0);
    assert!(t.store.get_document(sc, &r.old_note).is_err());
    assert!(t.store.get_document(sc, &r.old_manual).is_ok());
    assert_eq!(rows(&t.store, "usage_records"), 1);
    let points = |name: &str| {
        t.store
            .metric_range(
                sc,
                &MetricQuery {
                    name: name.into(),
                    ..Default::default()
                },
            )
            .unwrap()
            .len()
    };
    assert_eq!((points("cpu"), points("mem")), (0, 1));
    assert_eq!(rows(&t.store, "metric_points"), 1);
    let audit = t
        .store
        .list_audit(AuditQuery {
            action: Some("retention.sweep".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let sweep = &audit.items[0].new_values.as_ref().unwrap();
    assert_eq!(
        (&sweep["memories"], &sweep["sessions"], &sweep["documents"]),
        (&json!(3), &json!(1), &json!(1))
    );
    assert_eq!(
        (&sweep["usage"], &sweep["metric_points"]),
        (&json!(1), &json!(1))
    );

    // Removing a rule keeps what it would have removed.
    let rules = t
        .store
        .set_retention(sc, RetentionEntity::Memory, Some("fact"), None)
        .unwrap();
    assert_eq!(rules.len(), 5);
    age_memory(&t, &r.new_fact, 100);
    t.store.sweep_expired(sc).unwrap();
    assert!(t.store.get_memory(sc, &r.new_fact).is_ok());
    assert_eq!(t.store.list_retention(sc).unwrap(), rules);
}

/// A subject is found by the caller's external id (which only the keyed hash stands for)
/// and its metadata and retention change; consent, strictness and the external id stay.
#[test]
fn subjects_are_found_by_external_id_and_updated() {
    let t = store();
    let sc = &t.scope;
    let bob = t
        .store
        .create_subject(
            sc,
            NewSubject {
                consent: true,
                metadata: json!({"role": "user", "plan": "free"}),
                ..NewSubject::new("bob@example.com")
            },
        )
        .unwrap();
    let found = t.store.find_subject(sc, "bob@example.com").unwrap();
    assert_eq!(found.as_ref(), Some(&bob));
    assert_eq!(t.store.find_subject(sc, "Bob@example.com").unwrap(), None);
    assert_eq!(
        t.store
            .find_subject(&t.other_tenant(), "bob@example.com")
            .unwrap(),
        None
    );

    std::thread::sleep(std::time::Duration::from_millis(1));
    let updated = t
        .store
        .update_subject(
            sc,
            &bob.id,
            SubjectUpdate {
                metadata: Some(json!({"plan": "pro", "role": null, "theme": "dark"})),
                retention_days: Some(Some(30)),
            },
        )
        .unwrap();
    assert_eq!(updated.metadata, json!({"plan": "pro", "theme": "dark"}));
    assert_eq!(updated.retention_days, Some(30));
    assert!(updated.updated_at > bob.updated_at);
    assert_eq!(
        (
            &updated.external_id_hash,
            updated.consent,
            updated.consent_at,
            updated.strict,
            updated.created_at
        ),
        (
            &bob.external_id_hash,
            bob.consent,
            bob.consent_at,
            bob.strict,
            bob.created_at
        )
    );
    assert_eq!(
        t.store.find_subject(sc, "bob@example.com").unwrap(),
        Some(updated.clone())
    );
    // An absent field is left; `null` retention returns to the tenant's rules.
    let kept = t
        .store
        .update_subject(sc, &bob.id, SubjectUpdate::default())
        .unwrap();
    assert_eq!(
        (&kept.metadata, kept.retention_days),
        (&updated.metadata, Some(30))
    );
    let cleared = t
        .store
        .update_subject(
            sc,
            &bob.id,
            SubjectUpdate {
                retention_days: Some(None),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(cleared.retention_days, None);
    assert_eq!(cleared.metadata, updated.metadata);

    let entries = t
        .store
        .list_audit(AuditQuery {
            tenant_id: Some("t1".into()),
            action: Some("subject.update".into()),
            resource_id: Some(bob.id.clone()),
            ..Default::default()
        })
        .unwrap()
        .items;
    assert_eq!(entries.len(), 3);
    assert_eq!(
        entries[0].old_values.as_ref().unwrap()["metadata"]["plan"],
        "free"
    );
    assert_eq!(
        entries[0].new_values.as_ref().unwrap()["retention_days"],
        30
    );
    assert_eq!(
        entries[2].new_values.as_ref().unwrap()["retention_days"],
        json!(null)
    );

    // Refused, changing nothing.
    let before = t.store.get_subject(sc, &bob.id).unwrap();
    for (id, u, code) in [
        (
            bob.id.as_str(),
            SubjectUpdate {
                metadata: Some(json!(["not", "an", "object"])),
                ..Default::default()
            },
            "invalid_input",
        ),
        (
            bob.id.as_str(),
            SubjectUpdate {
                metadata: Some(json!({"plan": "team"})),
                retention_days: Some(Some(0)),
            },
            "invalid_input",
        ),
        ("no-such-subject", SubjectUpdate::default(), "not_found"),
    ] {
        let err = t.store.update_subject(sc, id, u).unwrap_err();
        assert_eq!(err.code(), code, "{err}");
    }
    let err = t
        .store
        .update_subject(&t.other_tenant(), &bob.id, SubjectUpdate::default())
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    assert_eq!(t.store.get_subject(sc, &bob.id).unwrap(), before);
}
