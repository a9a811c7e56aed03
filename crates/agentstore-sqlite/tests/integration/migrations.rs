//! Several openers of one new store: the schema is migrated exactly once and every
//! opener ends up on the same schema and the same subject secret.

use std::sync::{Arc, Barrier};

use agentstore_sqlite::{OpenOptions, migrate};

#[test]
fn concurrent_openers_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let n = 4;
    let barrier = Arc::new(Barrier::new(n));
    let hashes: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (barrier, path) = (barrier.clone(), path.clone());
                s.spawn(move || {
                    barrier.wait();
                    let store = agentstore_sqlite::open(&OpenOptions::new(&path).create()).unwrap();
                    store.subject_hash("t", "alice")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    let c = rusqlite::Connection::open(path.join("agentstore.db")).unwrap();
    let st = migrate::status(&c).unwrap();
    assert_eq!(st.current, migrate::latest_version());
    let rows: i64 = c
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, migrate::latest_version());
}

#[test]
fn a_store_behind_the_binary_refuses_to_open_until_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    drop(agentstore_sqlite::open(&OpenOptions::new(&path).create()).unwrap());
    let mut c = rusqlite::Connection::open(path.join("agentstore.db")).unwrap();
    assert_eq!(
        migrate::down(&mut c, None).unwrap(),
        vec![migrate::latest_version()]
    );
    let err = agentstore_sqlite::open(&OpenOptions::new(&path)).unwrap_err();
    assert_eq!(err.code(), "schema_pending");
    assert!(err.to_string().contains("agentstore migrate up"));
    migrate::up(&mut c, None).unwrap();
    agentstore_sqlite::open(&OpenOptions::new(&path)).unwrap();
}
