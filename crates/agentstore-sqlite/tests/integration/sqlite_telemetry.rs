//! Metric points by range, downsampled and as a leaderboard, and their labels stored as
//! canonical JSON, read back with SQL from `agentstore.db` (SQLite only). The seed and
//! the queries are the conformance suite's (`telemetry.rs`).

use agentstore::backend::MetricQuery;
use agentstore::store::MetricBucket;
use serde_json::json;

use crate::common::store;
use crate::telemetry::{T0_SECS, at, audit_entries, labels, query, seed_metrics};

#[test]
fn metric_range_downsample_and_leaderboard() {
    let t = store();
    seed_metrics(&t.store, &t.scope);
    let values = |q: &MetricQuery| -> Vec<(i64, f64)> {
        t.store
            .metric_range(&t.scope, q)
            .unwrap()
            .iter()
            .map(|p| (p.at.timestamp() - T0_SECS, p.value))
            .collect()
    };
    assert_eq!(
        values(&query(&[("env", "prod")], None, None)),
        [(0, 1.0), (10, 2.0), (30, 3.0), (40, 8.0), (70, 5.0)]
    );
    assert_eq!(
        values(&query(&[], Some(10), Some(70))),
        [(10, 2.0), (20, 10.0), (30, 3.0), (40, 8.0)],
        "from is inclusive, to exclusive"
    );
    assert_eq!(
        values(&query(&[("agent", "c"), ("env", "dev")], None, None)),
        [(20, 10.0), (80, 4.0)]
    );
    assert!(values(&query(&[("agent", "c"), ("env", "prod")], None, None)).is_empty());
    assert!(values(&query(&[("region", "eu")], None, None)).is_empty());

    let buckets = t
        .store
        .metric_downsample(&t.scope, &query(&[], None, None), 60)
        .unwrap();
    assert_eq!(
        buckets,
        vec![
            MetricBucket {
                start: at(0),
                count: 5,
                avg: 4.8,
                min: 1.0,
                max: 10.0,
                sum: 24.0,
            },
            MetricBucket {
                start: at(60),
                count: 2,
                avg: 4.5,
                min: 4.0,
                max: 5.0,
                sum: 9.0,
            },
        ]
    );

    let top = t
        .store
        .metric_top_k(&t.scope, &query(&[], None, None), 2)
        .unwrap();
    let board: Vec<(&str, f64, i64)> = top
        .iter()
        .map(|s| {
            (
                s.labels["agent"].as_str(),
                s.value,
                s.at.timestamp() - T0_SECS,
            )
        })
        .collect();
    assert_eq!(board, [("b", 8.0, 40), ("a", 5.0, 70)]);
    let dev = t
        .store
        .metric_top_k(&t.scope, &query(&[("env", "dev")], None, None), 10)
        .unwrap();
    assert_eq!(dev.len(), 1);
    assert_eq!(
        (dev[0].value, dev[0].labels.clone()),
        (4.0, labels(&[("agent", "c"), ("env", "dev")]))
    );

    // One audit entry for the batch.
    let entries = audit_entries(&t.store, "t1", "metric.record");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].new_values.as_ref().unwrap()["count"], json!(8));

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
