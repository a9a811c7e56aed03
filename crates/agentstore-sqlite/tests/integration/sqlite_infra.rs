//! The sweep of expired records, checked in the database file: an expired session goes
//! with its events, checkpoints and pending writes, counted per tenant with SQL on
//! `agentstore.db` (SQLite only). The sweep through the engine, on the same data, and the
//! key-value and lock tests are the conformance suite's (`infra.rs`).

use crate::common::store;
use crate::infra::{first_sweep, seed_expired};

#[test]
fn sweep_removes_expired_rows_from_the_database_file() {
    let t = store();
    seed_expired(&t);
    assert_eq!(t.store.sweep_expired(&t.scope).unwrap(), first_sweep());
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
    assert_eq!(
        count("SELECT COUNT(*) FROM kv_entries WHERE tenant_id = 't1'"),
        1
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM kv_entries WHERE tenant_id = 't2'"),
        1
    );
}
