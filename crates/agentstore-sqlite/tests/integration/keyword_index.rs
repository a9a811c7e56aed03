//! The in-memory keyword index of large stores (src/keyword_index.rs) against a model of
//! the records: after any sequence of writes, deletes, rewrites and rid reuse, a keyword
//! search finds exactly the current records holding the word, as FTS5 does. Also the
//! background build (FTS5 answers meanwhile) and a rebuild after the log was truncated
//! past the index.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use agentstore::search::{HitRecord, SearchMode};
use agentstore::{NewDocument, NewEvent, NewMemory, NewSession, SearchRequest};
use agentstore_sqlite::KeywordIndexMode;
use proptest::prelude::*;

use crate::common::{TestStore, store_with};

const WORDS: [&str; 6] = ["amber", "basalt", "cobalt", "delta", "ember", "fjord"];

#[derive(Clone, Debug)]
enum Op {
    Remember(usize, Vec<usize>),
    Forget(usize),
    Append(usize, Vec<usize>),
    DeleteSession(usize),
    PutDocument(usize, Vec<usize>),
    DeleteDocument(usize),
}

fn text(words: &[usize]) -> String {
    words
        .iter()
        .map(|&w| WORDS[w])
        .collect::<Vec<_>>()
        .join(" ")
}

fn op() -> impl Strategy<Value = Op> {
    let words = proptest::collection::vec(0..WORDS.len(), 1..4);
    prop_oneof![
        3 => (0..5usize, words.clone()).prop_map(|(i, w)| Op::Remember(i, w)),
        1 => (0..5usize).prop_map(Op::Forget),
        3 => (0..3usize, words.clone()).prop_map(|(i, w)| Op::Append(i, w)),
        1 => (0..3usize).prop_map(Op::DeleteSession),
        2 => (0..3usize, words).prop_map(|(i, w)| Op::PutDocument(i, w)),
        1 => (0..3usize).prop_map(Op::DeleteDocument),
    ]
}

/// What the tables hold: per record key (`m:<memory key>`, `d:<document>`, `e:<event id>`),
/// its text.
#[derive(Default)]
struct Model {
    records: BTreeMap<String, String>,
    /// Memory key to the current version's id.
    memories: BTreeMap<String, String>,
    sessions: BTreeMap<usize, (String, Vec<String>)>,
    /// Makes every text unique: identical memories are deduplicated by the store.
    written: usize,
}

impl Model {
    fn holding(&self, word: &str) -> BTreeSet<String> {
        self.records
            .iter()
            .filter(|(_, text)| text.split(' ').any(|w| w == word))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn text(&mut self, words: &[usize]) -> String {
        self.written += 1;
        format!("{} n{}", text(words), self.written)
    }
}

fn apply(t: &TestStore, m: &mut Model, op: &Op) {
    let (s, sc) = (&t.store, &t.scope);
    match op {
        // A memory with a key: writing it again supersedes the current version.
        Op::Remember(i, w) => {
            let key = format!("mem{i}");
            let text = m.text(w);
            let out = s
                .remember(
                    sc,
                    NewMemory {
                        key: Some(key.clone()),
                        ..NewMemory::new(text.clone())
                    },
                )
                .unwrap();
            m.memories.insert(key.clone(), out.id().to_owned());
            m.records.insert(format!("m:{key}"), text);
        }
        Op::Forget(i) => {
            let key = format!("mem{i}");
            if let Some(id) = m.memories.remove(&key) {
                s.forget(sc, &id).unwrap();
                m.records.remove(&format!("m:{key}"));
            }
        }
        Op::Append(i, w) => {
            if !m.sessions.contains_key(i) {
                let session = s.create_session(sc, NewSession::new("chat")).unwrap();
                m.sessions.insert(*i, (session.id, Vec::new()));
            }
            let text = m.text(w);
            let (session, events) = m.sessions.get_mut(i).unwrap();
            let e = s
                .append_event(sc, session, NewEvent::message("user", text.clone()))
                .unwrap();
            events.push(e.id.clone());
            m.records.insert(format!("e:{}", e.id), text);
        }
        Op::DeleteSession(i) => {
            if let Some((session, events)) = m.sessions.remove(i) {
                s.delete_session(sc, &session).unwrap();
                for e in events {
                    m.records.remove(&format!("e:{e}"));
                }
            }
        }
        Op::PutDocument(i, w) => {
            let id = format!("doc{i}");
            let text = m.text(w);
            s.put_document(
                sc,
                NewDocument {
                    id: Some(id.clone()),
                    ..NewDocument::new(text.clone())
                },
            )
            .unwrap();
            m.records.insert(format!("d:{id}"), text);
        }
        Op::DeleteDocument(i) => {
            let id = format!("doc{i}");
            if m.records.remove(&format!("d:{id}")).is_some() {
                s.delete_document(sc, &id).unwrap();
            }
        }
    }
}

fn found(t: &TestStore, word: &str) -> BTreeSet<String> {
    t.store
        .search(
            &t.scope,
            SearchRequest {
                mode: Some(SearchMode::Keyword),
                limit: 1000,
                ..SearchRequest::text(word)
            },
        )
        .unwrap()
        .into_iter()
        .map(|h| match h.record {
            HitRecord::Memory(r) => format!("m:{}", r.key.unwrap_or_default()),
            HitRecord::Chunk(r) => format!("d:{}", r.document_id),
            HitRecord::Event(r) => format!("e:{}", r.id),
        })
        .collect()
}

fn check(t: &TestStore, m: &Model) -> Result<(), TestCaseError> {
    for w in WORDS {
        prop_assert_eq!(found(t, w), m.holding(w), "word {}", w);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Both engines against the model, searching after every operation (so the index
    /// catches up incrementally through every kind of change).
    #[test]
    fn both_engines_find_exactly_the_current_records(ops in proptest::collection::vec(op(), 1..30)) {
        for mode in [KeywordIndexMode::Eager, KeywordIndexMode::Off] {
            let t = store_with(mode);
            let mut m = Model::default();
            for op in &ops {
                apply(&t, &mut m, op);
                check(&t, &m)?;
            }
        }
    }
}

fn keyword_index_docs(t: &TestStore) -> u64 {
    t.store
        .stats()
        .unwrap()
        .entities
        .iter()
        .find(|e| e.entity == "keyword_index (memory)")
        .map_or(0, |e| e.rows)
}

/// Past the size threshold the first search starts a background build and is answered
/// by FTS5; once built the index answers, and follows later writes.
#[test]
fn auto_mode_builds_in_the_background() {
    let t = store_with(KeywordIndexMode::Auto { min_records: 20 });
    let mut m = Model::default();
    for i in 0..5 {
        apply(&t, &mut m, &Op::Remember(i, vec![i % 3, 4]));
    }
    check(&t, &m).unwrap();
    assert_eq!(
        keyword_index_docs(&t),
        0,
        "below the threshold nothing is built"
    );
    for i in 0..20 {
        apply(&t, &mut m, &Op::Append(i % 3, vec![i % 6]));
    }
    check(&t, &m).unwrap();
    let started = Instant::now();
    while keyword_index_docs(&t) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the keyword index was not built"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    check(&t, &m).unwrap();
    apply(&t, &mut m, &Op::DeleteSession(1));
    apply(&t, &mut m, &Op::Remember(7, vec![5]));
    check(&t, &m).unwrap();
    assert_eq!(keyword_index_docs(&t), m.records.len() as u64);
}

/// Waits until the keyword index holds `docs` documents, without searching.
fn wait_for_index(t: &TestStore, docs: u64) {
    let started = Instant::now();
    while keyword_index_docs(t) < docs {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the keyword index was not built: {} documents",
            keyword_index_docs(t)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes alone start the `Auto` build once the store has grown past the threshold, so
/// that the first search after it finds the index ready rather than starting it.
#[test]
fn auto_mode_starts_building_from_writes() {
    let t = store_with(KeywordIndexMode::Auto { min_records: 1500 });
    let session = t
        .store
        .create_session(&t.scope, NewSession::new("chat"))
        .unwrap();
    let batch = |from: usize| {
        (from..from + 100)
            .map(|i| NewEvent::message("user", format!("amber n{i}")))
            .collect::<Vec<_>>()
    };
    for b in 0..14 {
        t.store
            .append_events(&t.scope, &session.id, batch(b * 100))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(keyword_index_docs(&t), 0, "below the threshold");
    for b in 14..21 {
        t.store
            .append_events(&t.scope, &session.id, batch(b * 100))
            .unwrap();
    }
    wait_for_index(&t, 2000);
}

/// `Store::warm` (a server calls it as it starts) starts the build of a store already
/// past the threshold.
#[test]
fn warm_starts_the_auto_build() {
    let t = store_with(KeywordIndexMode::Auto { min_records: 20 });
    let mut m = Model::default();
    for i in 0..25 {
        apply(&t, &mut m, &Op::Append(i % 3, vec![i % 6]));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(keyword_index_docs(&t), 0, "nothing starts it before warm");
    t.store.warm().unwrap();
    wait_for_index(&t, 25);
    check(&t, &m).unwrap();
}

/// Maintenance in another process may drop log entries this index has not applied: the
/// index notices, FTS5 answers, and the index is built again from the tables.
#[test]
fn a_log_truncated_past_the_index_forces_a_rebuild() {
    let t = store_with(KeywordIndexMode::Eager);
    let mut m = Model::default();
    for i in 0..5 {
        apply(&t, &mut m, &Op::Remember(i, vec![i % 6]));
    }
    check(&t, &m).unwrap();
    apply(&t, &mut m, &Op::Forget(0));
    apply(&t, &mut m, &Op::Forget(4));
    let c = rusqlite::Connection::open(t.dir.path().join("data/agentstore.db")).unwrap();
    c.execute_batch(
        "UPDATE keyword_log_state SET truncated_through = (SELECT MAX(seq) FROM keyword_log);
         DELETE FROM keyword_log;",
    )
    .unwrap();
    check(&t, &m).unwrap();
    check(&t, &m).unwrap();
    assert_eq!(keyword_index_docs(&t), 3);
}
