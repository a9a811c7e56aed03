//! The sweep of expired records, checked in the database file: an expired session goes
//! with its events, checkpoints and pending writes (SQLite only: the dependents are
//! counted with SQL on `agentstore.db`). The key-value and lock tests are the
//! conformance suite's (`infra.rs`).

use agentstore::backend::{AuditQuery, EventQuery, SweepReport, WriteOp};
use agentstore::time::now;
use agentstore::{
    NewCheckpoint, NewEvent, NewMemory, NewPendingWrite, NewSession, Payload, Scope, Store,
};
use serde_json::json;

use crate::common::store;
use crate::infra::{audit_count, set_expired, shift};

fn session(store: &Store, scope: &Scope, id: &str, parent: Option<&str>, expired: bool) {
    let mut s = NewSession::new("conversation");
    s.id = Some(id.into());
    s.parent_id = parent.map(Into::into);
    s.expires_at = expired.then(|| shift(now(), -60_000));
    store.create_session(scope, s).unwrap();
}

#[test]
fn sweep_removes_expired_records_with_their_dependents() {
    let t = store();
    let s = &t.scope;
    session(&t.store, s, "old", None, true);
    t.store
        .append_events(
            s,
            "old",
            vec![
                NewEvent::message("user", "1"),
                NewEvent::message("assistant", "2"),
                NewEvent::message("user", "3"),
            ],
        )
        .unwrap();
    t.store
        .put_checkpoint(
            s,
            NewCheckpoint {
                session_id: "old".into(),
                checkpoint_ns: String::new(),
                id: Some("c1".into()),
                parent_id: None,
                state: Payload::Json(json!({})),
                metadata: json!({}),
            },
        )
        .unwrap();
    t.store
        .put_pending_writes(
            s,
            "old",
            "",
            "c1",
            vec![NewPendingWrite {
                task_id: "t".into(),
                idx: 0,
                channel: "c".into(),
                value: Payload::Json(json!(1)),
            }],
        )
        .unwrap();
    session(&t.store, s, "live", None, false);
    t.store
        .append_event(s, "live", NewEvent::message("user", "keep"))
        .unwrap();
    // An expired tree goes entirely, children first.
    session(&t.store, s, "tree", None, true);
    session(&t.store, s, "tree.child", Some("tree"), true);
    session(&t.store, s, "tree.grandchild", Some("tree.child"), true);
    t.store
        .append_event(s, "tree.grandchild", NewEvent::message("user", "g"))
        .unwrap();
    // An expired parent of a live child stays until the child is gone.
    session(&t.store, s, "parent", None, true);
    session(&t.store, s, "parent.child", Some("parent"), false);

    let mut m = NewMemory::new("stale fact");
    m.expires_at = Some(shift(now(), -1000));
    t.store.remember(s, m).unwrap();
    let mut m = NewMemory::new("fresh fact");
    m.expires_at = Some(shift(now(), 3_600_000));
    let fresh = t.store.remember(s, m).unwrap();
    t.store.remember(s, NewMemory::new("forever")).unwrap();

    set_expired(&t.store, s, "cache:old", 1000);
    t.store
        .kv_set(s, "cache:new", json!(1), Some(3_600_000))
        .unwrap();
    let at = now();
    t.store
        .write(
            s,
            vec![WriteOp::LockAcquire {
                name: "lapsed".into(),
                holder: "h".into(),
                expires_at: shift(at, -1),
                at: shift(at, -1000),
            }],
        )
        .unwrap();
    t.store.lock_acquire(s, "held", "h", 3_600_000).unwrap();

    // The other tenant's expired records are not this sweep's business.
    let other = t.other_tenant();
    session(&t.store, &other, "old", None, true);
    set_expired(&t.store, &other, "cache:old", 1000);

    let report = t.store.sweep_expired(s).unwrap();
    assert_eq!(
        report,
        SweepReport {
            sessions: 4,
            events: 4,
            memories: 1,
            kv: 1,
            locks: 1,
            ..Default::default()
        }
    );
    for gone in ["old", "tree", "tree.child", "tree.grandchild"] {
        assert_eq!(
            t.store.get_session(s, gone).unwrap_err().code(),
            "not_found"
        );
    }
    for kept in ["live", "parent", "parent.child"] {
        t.store.get_session(s, kept).unwrap();
    }
    assert_eq!(
        t.store
            .list_events(
                s,
                EventQuery {
                    session_id: "old".into(),
                    ..Default::default()
                }
            )
            .unwrap_err()
            .code(),
        "not_found"
    );
    let db = rusqlite::Connection::open(t.dir.path().join("data/agentstore.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT COUNT(*) FROM events WHERE tenant_id = 't1' AND session_id = 'old'"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM checkpoints WHERE tenant_id = 't1'"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM checkpoint_writes WHERE tenant_id = 't1'"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM memories WHERE tenant_id = 't1'"),
        2
    );
    t.store.get_memory(s, fresh.id()).unwrap();
    assert_eq!(
        count("SELECT COUNT(*) FROM kv_entries WHERE tenant_id = 't1'"),
        1
    );
    let lapsed = t.store.get_lock(s, "lapsed").unwrap().unwrap();
    assert_eq!(
        (lapsed.holder, lapsed.token),
        (None, 1),
        "released, row kept"
    );
    assert!(
        t.store
            .get_lock(s, "held")
            .unwrap()
            .unwrap()
            .holder
            .is_some()
    );
    t.store.get_session(&other, "old").unwrap();
    assert_eq!(
        count("SELECT COUNT(*) FROM kv_entries WHERE tenant_id = 't2'"),
        1
    );

    // One audit entry with the counts; a sweep that finds nothing writes none.
    assert_eq!(audit_count(&t.store, "t1", "retention.sweep"), 1);
    assert_eq!(t.store.sweep_expired(s).unwrap(), SweepReport::default());
    assert_eq!(audit_count(&t.store, "t1", "retention.sweep"), 1);
    let entry = t
        .store
        .list_audit(AuditQuery {
            tenant_id: Some("t1".into()),
            action: Some("retention.sweep".into()),
            limit: 1,
            ..Default::default()
        })
        .unwrap()
        .items
        .remove(0);
    let v = entry.new_values.unwrap();
    assert_eq!(
        (v["sessions"].clone(), v["events"].clone()),
        (json!(4), json!(4))
    );

    // Once the live child is deleted, its expired parent goes with the next sweep.
    t.store.delete_session(s, "parent.child").unwrap();
    assert_eq!(t.store.sweep_expired(s).unwrap().sessions, 1);

    let theirs = t.store.sweep_expired(&other).unwrap();
    assert_eq!((theirs.sessions, theirs.kv), (1, 1));
    assert_eq!(
        t.store
            .sweep_expired(&Scope::new("nosuch", "test"))
            .unwrap_err()
            .code(),
        "not_found"
    );
}
