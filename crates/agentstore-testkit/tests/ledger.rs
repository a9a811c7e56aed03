//! The checker the crash test relies on must itself catch lost or altered writes: each
//! test here acknowledges something the store does not hold and expects `Ledger::check`
//! to fail on it.

use agentstore::codec::sha256_hex;
use agentstore::{NewEvent, NewMemory, NewSession, Scope, Store};
use agentstore_testkit::*;

const RUN: &str = "r1";

/// A store holding one acknowledged batch of three events, one memory version and one KV
/// entry, exactly as the writer would have written them, and the ledger of those acks.
fn written() -> (tempfile::TempDir, Store, Scope, Ledger) {
    let tmp = tempfile::tempdir().unwrap();
    let store = agentstore_sqlite::open(&writer_options(&tmp.path().join("data"))).unwrap();
    store.ensure_tenant(ACTOR, TENANT).unwrap();
    let scope = scope();
    store
        .create_session(
            &scope,
            NewSession {
                id: Some(DEFAULT_SESSION.into()),
                ..NewSession::new("ledger-test")
            },
        )
        .unwrap();
    let events = (0..3)
        .map(|i| NewEvent::message("user", event_content(RUN, 1, i)))
        .collect();
    let written = store
        .append_events(&scope, DEFAULT_SESSION, events)
        .unwrap();
    let key = memory_key(0);
    let content = memory_content(RUN, 1, &key);
    let hash = sha256_hex(content.as_bytes());
    let memory = store
        .remember(
            &scope,
            NewMemory {
                key: Some(key.clone()),
                vector: Some(memory_vector(&content)),
                ..NewMemory::new(content)
            },
        )
        .unwrap();
    let kv = store
        .kv_set(&scope, &kv_key(0), serde_json::json!(1), None)
        .unwrap();

    let mut ledger = Ledger::default();
    for ack in [
        Ack::Events {
            batch: 1,
            first_seq: 1,
            last_seq: 3,
            last_event_id: written[2].id.clone(),
        },
        Ack::Memory {
            key,
            content_hash: hash,
            id: memory.id().to_owned(),
        },
        Ack::Kv {
            key: kv_key(0),
            version: kv.version,
        },
    ] {
        ledger.record(RUN, ack);
    }
    (tmp, store, scope, ledger)
}

#[test]
fn accepts_a_store_holding_every_acknowledged_write() {
    let (_tmp, store, scope, ledger) = written();
    let summary = ledger.check(&store, &scope, DEFAULT_SESSION);
    assert_eq!(summary.events, 3);
    assert_eq!(summary.acked_events, 3);
    assert_eq!(summary.acked_memories, 1);
    assert_eq!(summary.acked_kv_keys, 1);
}

#[test]
#[should_panic(expected = "is missing")]
fn catches_a_lost_batch() {
    let (_tmp, store, scope, mut ledger) = written();
    ledger.record(
        RUN,
        Ack::Events {
            batch: 2,
            first_seq: 4,
            last_seq: 5,
            last_event_id: "never-written".into(),
        },
    );
    ledger.check(&store, &scope, DEFAULT_SESSION);
}

#[test]
#[should_panic(expected = "does not hold acknowledged batch")]
fn catches_events_that_are_not_the_acknowledged_ones() {
    let (_tmp, store, scope, mut ledger) = written();
    // Another run claims the same seqs.
    ledger.record(
        "other-run",
        Ack::Events {
            batch: 1,
            first_seq: 1,
            last_seq: 3,
            last_event_id: "whatever".into(),
        },
    );
    ledger.check(&store, &scope, DEFAULT_SESSION);
}

#[test]
#[should_panic(expected = "is unreadable")]
fn catches_a_lost_memory_version() {
    let (_tmp, store, scope, mut ledger) = written();
    ledger.record(
        RUN,
        Ack::Memory {
            key: memory_key(1),
            content_hash: "00".repeat(32),
            id: "lost-memory".into(),
        },
    );
    ledger.check(&store, &scope, DEFAULT_SESSION);
}

#[test]
#[should_panic(expected = "acknowledged 99")]
fn catches_a_kv_entry_older_than_acknowledged() {
    let (_tmp, store, scope, mut ledger) = written();
    ledger.record(
        RUN,
        Ack::Kv {
            key: kv_key(0),
            version: 99,
        },
    );
    ledger.check(&store, &scope, DEFAULT_SESSION);
}
