//! The SQLite backend's vector index: recall of the HNSW graph path when the traversal
//! mode (an open option) changes, snapshots in `data/index` used and damaged ones rebuilt, and vectors
//! surviving backup and restore. The data and the helpers, and the recall of the graph
//! path with and without filters, are the conformance suite's (`vectors.rs`).

use agentstore::NewMemory;
use agentstore::search::SearchFilter;

use crate::common::store;
use crate::vectors::{brute, ids, large_tenant, load, recall, vectors, vsearch};

/// The conformance suite's large tenant (`vectors::graph_search_keeps_recall_…`), its
/// graph built and snapshotted with the default int8 traversal, opened with f32
/// traversal: the snapshot's graph is kept, only its codes go, at the same recall.
#[test]
fn switching_the_traversal_mode_keeps_the_graphs_recall() {
    let t = store();
    let (vs, queries) = large_tenant();
    load(&t, &vs);
    // A search loads the int8 graph; maintenance snapshots it.
    let got = ids(&vsearch(
        &t.store,
        &t,
        &queries[0],
        10,
        SearchFilter::default(),
    ));
    assert_eq!(got.len(), 10);
    let rep = t.store.maintenance(false).unwrap();
    assert!(
        rep.steps.iter().any(|s| s.contains("snapshotted")),
        "{:?}",
        rep.steps
    );
    let mut opts = agentstore_sqlite::OpenOptions::new(t.dir.path().join("data"));
    opts.vector_index.quantization = agentstore_sqlite::Quantization::None;
    let exact = agentstore_sqlite::open(&opts).unwrap();
    let mut total = 0.0;
    for q in &queries {
        let got = ids(&vsearch(&exact, &t, q, 10, SearchFilter::default()));
        total += recall(&got, &brute(&vs, q, 10, |_| true));
    }
    let r = total / queries.len() as f64;
    assert!(r >= 0.95, "f32 traversal: recall@10 {r}");
}

#[test]
fn snapshots_are_used_and_damaged_ones_rebuilt() {
    let t = store();
    let vs = vectors(400, 31);
    load(&t, &vs);
    let q = vectors(1, 32).remove(0);
    let want = ids(&vsearch(&t.store, &t, &q, 10, SearchFilter::default()));
    // Maintenance snapshots the index and drops the log entries it holds.
    let rep = t.store.maintenance(false).unwrap();
    assert!(
        rep.steps.iter().any(|s| s.contains("snapshotted")),
        "{:?}",
        rep.steps
    );
    let index_dir = t.dir.path().join("data").join("index");
    let snaps: Vec<_> = std::fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hnsw"))
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    // A fresh process loads the snapshot (the log it would need is gone).
    let again = t.reopen();
    assert_eq!(
        ids(&vsearch(&again, &t, &q, 10, SearchFilter::default())),
        want
    );
    drop(again);
    // Damage the snapshot: it is refused and the index rebuilt from the table.
    let mut bytes = std::fs::read(&snaps[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&snaps[0], &bytes).unwrap();
    let rebuilt = t.reopen();
    assert_eq!(
        ids(&vsearch(&rebuilt, &t, &q, 10, SearchFilter::default())),
        want
    );
    assert!(rebuilt.verify().unwrap().ok());
    // A truncated one too.
    drop(rebuilt);
    std::fs::write(&snaps[0], &bytes[..bytes.len() / 3]).unwrap();
    let rebuilt = t.reopen();
    assert_eq!(
        ids(&vsearch(&rebuilt, &t, &q, 10, SearchFilter::default())),
        want
    );
}

#[test]
fn backup_and_restore_keep_vectors_searchable() {
    let t = store();
    let vs = vectors(200, 41);
    load(&t, &vs);
    let q = vectors(1, 42).remove(0);
    let want = ids(&vsearch(&t.store, &t, &q, 10, SearchFilter::default()));
    let backup = t.dir.path().join("backup");
    t.store.backup(&backup).unwrap();
    // Written after the backup: must not appear in the restored store.
    t.store
        .remember(
            &t.scope,
            NewMemory {
                id: Some("after".into()),
                vector: Some(q.clone()),
                ..NewMemory::new("after the backup")
            },
        )
        .unwrap();
    let target = t.dir.path().join("restored");
    agentstore_sqlite::restore(&backup, &target, false).unwrap();
    let restored = agentstore_sqlite::open(&agentstore_sqlite::OpenOptions::new(&target)).unwrap();
    assert_eq!(
        ids(&vsearch(&restored, &t, &q, 10, SearchFilter::default())),
        want
    );
    assert!(restored.verify().unwrap().ok());
}
