//! Privacy in the SQLite backend's files: the parental-consent gate against a consent
//! record removed behind the store's back (SQL on `agentstore.db`), an erased subject's
//! text gone from every byte of the data directory, and retention rules sweeping records
//! aged with SQL, their text leaving the files too. The consent gate, export and erasure
//! through the engine are the conformance suite's (`privacy.rs`).

use std::path::Path;

use agentstore::backend::{AuditQuery, RetentionEntity};
use agentstore::{NewDocument, NewEvent, NewMemory, NewMetricPoint, NewSession, NewSubject};
use serde_json::json;

use crate::common::store;
use crate::privacy::{adult, checkpoint, child, keyword_hits, personal_data, usage};

/// Events and checkpoints of a session that belongs to a gated subject are refused too
/// (the session existed before the gate: imported, or written by an older version).
#[test]
fn events_of_a_gated_subjects_session_are_refused() {
    let t = store();
    let kid = child(&t);
    let dir = t.dir.path().join("data/agentstore.db");
    let c = rusqlite::Connection::open(&dir).unwrap();
    t.store
        .set_consent(&t.scope, &kid, true, Some("parent:bob"))
        .unwrap();
    let mut ns = NewSession::new("chat");
    ns.subject_id = Some(kid.clone());
    let session = t.store.create_session(&t.scope, ns).unwrap();
    // Behind agentstore's back: the consent record disappears.
    c.execute(
        "UPDATE subjects SET parental_consent_at = NULL, parental_consent_by = NULL",
        [],
    )
    .unwrap();
    let e = t
        .store
        .append_event(&t.scope, &session.id, NewEvent::message("user", "hi"))
        .unwrap_err();
    assert_eq!(e.code(), "consent_required", "{e}");
    let e = t
        .store
        .put_checkpoint(&t.scope, checkpoint(&session.id))
        .unwrap_err();
    assert_eq!(e.code(), "consent_required", "{e}");
}

/// Words no other test writes, so finding them anywhere means this subject's data.
const MARKER: &str = "xylophonic quagmirezebu";

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    all_bytes(dir)
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(name, _)| name)
        .collect()
}

/// After an erasure the subject's text is in no file of the data directory: not in the
/// database's free pages, not in the full-text index's segments, not in the WAL.
#[test]
fn erased_text_leaves_the_data_directorys_bytes() {
    let t = store();
    let data = t.dir.path().join("data");
    let alice = adult(&t, "alice@example.com");
    let bob = adult(&t, "bob@example.com");
    for i in 0..3 {
        personal_data(&t, &alice, &format!("{MARKER}{i}"));
    }
    personal_data(&t, &bob, "marimba");
    // A search indexes the events' full text, so they are in the index too.
    assert!(keyword_hits(&t, &format!("{MARKER}0")) > 0);
    t.store.maintenance(false).unwrap();
    for needle in ["xylophonic", "quagmirezebu"] {
        assert!(
            !files_holding(&data, needle).is_empty(),
            "{needle} is not in the files before the erasure: the test would prove nothing"
        );
    }
    t.store.erase_subject(&t.scope, &alice).unwrap();
    for needle in ["xylophon", "quagmirezebu"] {
        let holding = files_holding(&data, needle);
        assert!(holding.is_empty(), "{needle} is still in {holding:?}");
    }
    assert!(
        !files_holding(&data, "marimba").is_empty(),
        "Bob's data went too"
    );
    assert!(t.store.verify().unwrap().ok());
}

/// Rules per entity and kind, and a subject's own retention: the sweep removes exactly
/// the records older than what applies to them, their text leaves the files, and the
/// sweep is audited.
#[test]
fn retention_rules_sweep_what_outlived_them() {
    let t = store();
    let sc = &t.scope;
    let db = rusqlite::Connection::open(t.dir.path().join("data/agentstore.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    // Behind agentstore's back: a record last changed `days` ago.
    let age = |table: &str, id: &str, days: i64| {
        db.execute(
            &format!("UPDATE {table} SET updated_at = updated_at - ?1 * 86400000000 WHERE id = ?2"),
            rusqlite::params![days, id],
        )
        .unwrap();
    };
    let set = |e, kind: Option<&str>, days| t.store.set_retention(sc, e, kind, days).unwrap();
    set(RetentionEntity::Memory, Some("fact"), Some(30));
    set(RetentionEntity::Memory, None, Some(400));
    set(RetentionEntity::Session, None, Some(7));
    set(RetentionEntity::Document, Some("note"), Some(10));
    set(RetentionEntity::Usage, None, Some(90));
    let rules = set(RetentionEntity::Metric, Some("cpu"), Some(1));
    assert_eq!(rules.len(), 6);
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

    let memory = |content: &str, kind: &str| {
        let mut m = NewMemory::new(content);
        m.kind = kind.into();
        t.store.remember(sc, m).unwrap().id().to_owned()
    };
    let old_fact = memory(&format!("{MARKER} old fact"), "fact");
    age("memories", &old_fact, 31);
    let new_fact = memory("a recent fact", "fact");
    age("memories", &new_fact, 29);
    let old_pref = memory("an old preference", "preference");
    age("memories", &old_pref, 100);
    let ancient_pref = memory("an ancient preference", "preference");
    age("memories", &ancient_pref, 401);
    let old_session = t
        .store
        .create_session(sc, NewSession::new("chat"))
        .unwrap()
        .id;
    t.store
        .append_event(sc, &old_session, NewEvent::message("user", "hello"))
        .unwrap();
    age("sessions", &old_session, 8);
    let new_session = t
        .store
        .create_session(sc, NewSession::new("chat"))
        .unwrap()
        .id;
    let doc = |text: &str, doc_type: &str| {
        let mut d = NewDocument::new(text);
        d.doc_type = Some(doc_type.into());
        t.store.put_document(sc, d).unwrap().id().to_owned()
    };
    let old_note = doc("an old note", "note");
    age("documents", &old_note, 11);
    let old_manual = doc("an old manual", "manual");
    age("documents", &old_manual, 11);
    let long_ago = agentstore::time::from_micros(
        agentstore::time::to_micros(&agentstore::time::now()) - 91 * 86_400_000_000,
    );
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
    m.subject_id = Some(short.clone());
    let brief = t.store.remember(sc, m).unwrap().id().to_owned();
    age("memories", &brief, 6);
    assert!(!files_holding(&t.dir.path().join("data"), "xylophonic").is_empty());

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
        (&old_fact, true),
        (&new_fact, false),
        (&old_pref, false),
        (&ancient_pref, true),
        (&brief, true),
    ] {
        assert_eq!(
            t.store.get_memory(sc, id).is_err(),
            gone,
            "memory {id} gone: expected {gone}"
        );
    }
    assert!(t.store.get_session(sc, &old_session).is_err());
    assert!(t.store.get_session(sc, &new_session).is_ok());
    assert_eq!(count("SELECT COUNT(*) FROM events"), 0);
    assert!(t.store.get_document(sc, &old_note).is_err());
    assert!(t.store.get_document(sc, &old_manual).is_ok());
    assert_eq!(count("SELECT COUNT(*) FROM usage_records"), 1);
    assert_eq!(
        count("SELECT COUNT(*) FROM metric_points WHERE name = 'mem'"),
        1
    );
    assert_eq!(count("SELECT COUNT(*) FROM metric_points"), 1);
    assert!(
        files_holding(&t.dir.path().join("data"), "xylophonic").is_empty(),
        "the swept text is still in the files"
    );
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
    let rules = set(RetentionEntity::Memory, Some("fact"), None);
    assert_eq!(rules.len(), 5);
    age("memories", &new_fact, 100);
    t.store.sweep_expired(sc).unwrap();
    assert!(t.store.get_memory(sc, &new_fact).is_ok());
    assert_eq!(t.store.list_retention(sc).unwrap(), rules);
}
