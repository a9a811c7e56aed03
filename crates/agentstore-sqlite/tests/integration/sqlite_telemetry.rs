//! Metric labels stored as canonical JSON, read back with SQL from `agentstore.db`
//! (SQLite only). The seed, and metric points by range, downsampled and as a leaderboard
//! through the engine, are the conformance suite's (`telemetry.rs`).

use crate::common::store;
use crate::telemetry::seed_metrics;

#[test]
fn metric_labels_are_stored_as_canonical_json() {
    let t = store();
    seed_metrics(&t.store, &t.scope);
    // Labels are stored as canonical JSON: the same set has one spelling whatever the
    // insertion order.
    let c = rusqlite::Connection::open(t.dir.path().join("data/agentstore.db")).unwrap();
    let spellings: Vec<String> = c
        .prepare("SELECT DISTINCT labels FROM metric_points WHERE name = 'fitness' ORDER BY labels")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        spellings,
        [
            r#"{"agent":"a","env":"prod"}"#,
            r#"{"agent":"b","env":"prod"}"#,
            r#"{"agent":"c","env":"dev"}"#
        ]
    );
}
