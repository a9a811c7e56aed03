//! Privacy in the SQLite backend's files: the parental-consent gate against a consent
//! record removed behind the store's back (SQL on `agentstore.db`), an erased subject's
//! text gone from every byte of the data directory, and what a retention sweep removed
//! gone from the tables and the files. The consent gate (with a session imported from
//! before it), export, erasure and retention rules through the engine are the conformance
//! suite's (`privacy.rs`).

use std::path::Path;

use agentstore::{NewEvent, NewSession};

use crate::common::store;
use crate::privacy::{adult, checkpoint, child, keyword_hits, personal_data, seed_retention};

/// Events and checkpoints of a session that belongs to a gated subject are refused once
/// the parental consent it was created under is gone, here removed with SQL behind the
/// store's back. (A session imported from before the gate is the conformance suite's
/// `privacy::events_of_a_gated_subjects_session_are_refused`.)
#[test]
fn a_consent_removed_behind_the_stores_back_gates_the_session() {
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

/// The retention sweep of the conformance suite's data (`privacy::seed_retention`): the
/// rows it removed are gone from the tables, counted with SQL, and their text from every
/// byte of the data directory.
#[test]
fn retention_sweep_takes_the_text_out_of_the_files() {
    let t = store();
    let data = t.dir.path().join("data");
    seed_retention(&t, &format!("{MARKER} old fact"));
    assert!(
        !files_holding(&data, "xylophonic").is_empty(),
        "the text is not in the files before the sweep: the test would prove nothing"
    );
    let swept = t.store.sweep_expired(&t.scope).unwrap();
    assert_eq!(
        (
            swept.memories,
            swept.events,
            swept.usage,
            swept.metric_points
        ),
        (3, 1, 1, 1),
        "{swept:?}"
    );
    let db = rusqlite::Connection::open(data.join("agentstore.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM events"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM usage_records"), 1);
    assert_eq!(
        count("SELECT COUNT(*) FROM metric_points WHERE name = 'mem'"),
        1
    );
    assert_eq!(count("SELECT COUNT(*) FROM metric_points"), 1);
    assert!(
        files_holding(&data, "xylophonic").is_empty(),
        "the swept text is still in the files"
    );
}
