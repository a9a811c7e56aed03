//! Telemetry: usage records aggregated per model, agent and time bucket; metric points by
//! range, downsampled and as a leaderboard; labels matched literally; bad input and tenant
//! isolation. The canonical spelling of stored labels is checked by the SQLite backend
//! (`sqlite_telemetry.rs`) in its database file, with the seed here.

use std::collections::BTreeMap;

use agentstore::backend::{AuditQuery, MetricQuery, UsageQuery};
use agentstore::store::{MetricBucket, UsageAggregate};
use agentstore::time::from_micros;
use agentstore::{
    Error, NewAgent, NewMetricPoint, NewSession, NewUsage, Store, Timestamp, UsageGroup,
};
use serde_json::json;

use crate::common::store;

/// An hour boundary (1,699,999,200 s = 472,222 h), so hourly and minutely buckets start
/// exactly here.
const T0_SECS: i64 = 1_699_999_200;

fn at(secs: i64) -> Timestamp {
    from_micros((T0_SECS + secs) * 1_000_000)
}

fn usage(provider: &str, model: &str, agent: Option<&str>, secs: i64) -> NewUsage {
    NewUsage {
        id: None,
        session_id: None,
        agent_id: agent.map(Into::into),
        provider: provider.into(),
        model: model.into(),
        operation: Some("chat".into()),
        input_tokens: 0,
        output_tokens: 0,
        estimated_cost: None,
        actual_cost: None,
        latency_ms: None,
        quality_score: None,
        success: true,
        metadata: json!({}),
        created_at: Some(at(secs)),
    }
}

pub(crate) fn audit_entries(
    store: &Store,
    tenant: &str,
    action: &str,
) -> Vec<agentstore::AuditEntry> {
    store
        .list_audit(AuditQuery {
            tenant_id: Some(tenant.into()),
            action: Some(action.into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
        .items
}

/// Costs, latencies and qualities are sums of powers of two, so the expected aggregates
/// are exact in floating point.
#[test]
fn usage_aggregates_per_model_agent_and_bucket() {
    let t = store();
    let a = t.store.put_agent(&t.scope, NewAgent::named("a")).unwrap();
    let b = t.store.put_agent(&t.scope, NewAgent::named("b")).unwrap();
    let s = t
        .store
        .create_session(&t.scope, NewSession::new("run"))
        .unwrap();

    let mut r1 = usage("openai", "gpt-4o", Some(&a.id), 10);
    (r1.input_tokens, r1.output_tokens) = (100, 50);
    (r1.estimated_cost, r1.actual_cost) = (Some(0.25), Some(0.375));
    (r1.latency_ms, r1.quality_score) = (Some(100.0), Some(0.5));
    r1.session_id = Some(s.id.clone());
    let mut r2 = usage("openai", "gpt-4o", Some(&b.id), 20 * 60);
    (r2.input_tokens, r2.output_tokens) = (200, 100);
    r2.estimated_cost = Some(0.5);
    r2.latency_ms = Some(300.0);
    r2.success = false;
    let mut r3 = usage("anthropic", "claude", Some(&a.id), 3600 + 5 * 60);
    (r3.input_tokens, r3.output_tokens) = (50, 25);
    (r3.estimated_cost, r3.actual_cost) = (Some(0.125), Some(0.0625));
    r3.quality_score = Some(1.0);
    let mut r4 = usage("openai", "gpt-4o", None, 2 * 3600);
    (r4.input_tokens, r4.output_tokens) = (10, 5);

    let recs = t
        .store
        .record_usage(&t.scope, vec![r1, r2, r3, r4])
        .unwrap();
    assert_eq!(recs.len(), 4);
    // One audit entry for the whole call.
    let entries = audit_entries(&t.store, "t1", "usage.record");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].new_values.as_ref().unwrap()["count"], json!(4));

    let window = UsageQuery {
        from: Some(at(0)),
        to: Some(at(2 * 3600)),
        ..Default::default()
    };
    let per_model = t
        .store
        .usage_aggregate(&t.scope, &window, UsageGroup::Model, None)
        .unwrap();
    assert_eq!(
        per_model,
        vec![
            UsageAggregate {
                group: "anthropic/claude".into(),
                bucket: None,
                calls: 1,
                successes: 1,
                success_rate: 1.0,
                input_tokens: 50,
                output_tokens: 25,
                estimated_cost: 0.125,
                actual_cost: 0.0625,
                avg_latency_ms: None,
                avg_quality: Some(1.0),
            },
            UsageAggregate {
                group: "openai/gpt-4o".into(),
                bucket: None,
                calls: 2,
                successes: 1,
                success_rate: 0.5,
                input_tokens: 300,
                output_tokens: 150,
                estimated_cost: 0.75,
                actual_cost: 0.375,
                avg_latency_ms: Some(200.0),
                avg_quality: Some(0.5),
            },
        ]
    );

    let per_agent = t
        .store
        .usage_aggregate(&t.scope, &window, UsageGroup::Agent, None)
        .unwrap();
    let by_group: BTreeMap<&str, &UsageAggregate> =
        per_agent.iter().map(|g| (g.group.as_str(), g)).collect();
    assert_eq!(by_group.len(), 2);
    let ga = by_group[a.id.as_str()];
    assert_eq!((ga.calls, ga.successes), (2, 2));
    assert_eq!((ga.input_tokens, ga.output_tokens), (150, 75));
    assert_eq!((ga.estimated_cost, ga.actual_cost), (0.375, 0.4375));
    assert_eq!(
        (ga.avg_latency_ms, ga.avg_quality),
        (Some(100.0), Some(0.75))
    );
    let gb = by_group[b.id.as_str()];
    assert_eq!((gb.calls, gb.successes, gb.success_rate), (1, 0, 0.0));
    assert_eq!((gb.estimated_cost, gb.actual_cost), (0.5, 0.0));

    let hourly = t
        .store
        .usage_aggregate(&t.scope, &window, UsageGroup::All, Some(3600))
        .unwrap();
    let shape: Vec<(Option<Timestamp>, u64, i64)> = hourly
        .iter()
        .map(|g| (g.bucket, g.calls, g.input_tokens))
        .collect();
    assert_eq!(shape, [(Some(at(0)), 2, 300), (Some(at(3600)), 1, 50)]);

    // Without an upper bound the record at the window's end counts, under agent "-".
    let all = t
        .store
        .usage_aggregate(&t.scope, &UsageQuery::default(), UsageGroup::Agent, None)
        .unwrap();
    assert_eq!(
        all.iter().find(|g| g.group == "-").unwrap().input_tokens,
        10
    );

    // Filters.
    let q = |f: &dyn Fn(&mut UsageQuery)| {
        let mut q = UsageQuery::default();
        f(&mut q);
        t.store.backend().list_usage("t1", &q).unwrap()
    };
    let gpt = q(&|q| q.model = Some("gpt-4o".into()));
    assert_eq!(
        gpt.iter().map(|r| r.input_tokens).collect::<Vec<_>>(),
        [100, 200, 10],
        "oldest first"
    );
    assert_eq!(q(&|q| q.provider = Some("anthropic".into())).len(), 1);
    assert_eq!(q(&|q| q.agent_id = Some(a.id.clone())).len(), 2);
    let by_session = q(&|q| q.session_id = Some(s.id.clone()));
    assert_eq!(by_session.len(), 1);
    assert_eq!(by_session[0], recs[0]);

    // Agent statistics read the same records.
    let stats = t.store.agent_stats(&t.scope, &a.id).unwrap();
    assert_eq!((stats.usage_calls, stats.input_tokens), (2, 150));
}

#[test]
fn usage_refuses_unknown_references_and_duplicates() {
    let t = store();
    let err = t
        .store
        .record_usage(&t.scope, vec![usage("p", "m", Some("ghost"), 0)])
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "agent", ref id } if id == "ghost"));
    let mut u = usage("p", "m", None, 0);
    u.session_id = Some("nosuch".into());
    let err = t.store.record_usage(&t.scope, vec![u]).unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "session", ref id } if id == "nosuch"));

    let mut first = usage("p", "m", None, 0);
    first.id = Some("u1".into());
    t.store.record_usage(&t.scope, vec![first.clone()]).unwrap();
    let mut fresh = usage("p", "m", None, 1);
    fresh.id = Some("u2".into());
    let err = t
        .store
        .record_usage(&t.scope, vec![fresh, first])
        .unwrap_err();
    assert_eq!(err.code(), "already_exists");

    let mut neg = usage("p", "m", None, 0);
    neg.input_tokens = -1;
    assert_eq!(
        t.store
            .record_usage(&t.scope, vec![neg])
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    // Only the first good call was stored (the batch with the duplicate rolled back whole).
    let all = t
        .store
        .backend()
        .list_usage("t1", &UsageQuery::default())
        .unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["u1"]
    );
    assert_eq!(audit_entries(&t.store, "t1", "usage.record").len(), 1);

    // Another tenant neither sees these records nor may point at this tenant's agents.
    let a = t.store.put_agent(&t.scope, NewAgent::named("a")).unwrap();
    let other = t.other_tenant();
    assert!(
        t.store
            .backend()
            .list_usage("t2", &UsageQuery::default())
            .unwrap()
            .is_empty()
    );
    let err = t
        .store
        .record_usage(&other, vec![usage("p", "m", Some(&a.id), 0)])
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    // The same id in another tenant is a different record.
    let mut same_id = usage("p", "m", None, 0);
    same_id.id = Some("u1".into());
    t.store.record_usage(&other, vec![same_id]).unwrap();
    let totals = t
        .store
        .usage_aggregate(&other, &UsageQuery::default(), UsageGroup::All, None)
        .unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0].calls, 1);
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn point(name: &str, l: &[(&str, &str)], value: f64, secs: i64) -> NewMetricPoint {
    NewMetricPoint {
        name: name.into(),
        labels: labels(l),
        value,
        at: Some(at(secs)),
    }
}

pub(crate) fn seed_metrics(store: &Store, scope: &agentstore::Scope) {
    let a = [("agent", "a"), ("env", "prod")];
    let b = [("env", "prod"), ("agent", "b")];
    let c = [("agent", "c"), ("env", "dev")];
    let n = store
        .record_metrics(
            scope,
            vec![
                point("fitness", &a, 1.0, 0),
                point("fitness", &b, 2.0, 10),
                point("fitness", &c, 10.0, 20),
                point("fitness", &a, 3.0, 30),
                point("fitness", &b, 8.0, 40),
                point("fitness", &a, 5.0, 70),
                point("fitness", &c, 4.0, 80),
                point("latency", &a, 99.0, 5),
            ],
        )
        .unwrap();
    assert_eq!(n, 8);
}

fn query(l: &[(&str, &str)], from: Option<i64>, to: Option<i64>) -> MetricQuery {
    MetricQuery {
        name: "fitness".into(),
        labels: labels(l),
        from: from.map(at),
        to: to.map(at),
    }
}

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
    // Labels come back as a set, whatever the order they were given in.
    let b = t
        .store
        .metric_range(&t.scope, &query(&[("agent", "b")], None, None))
        .unwrap();
    assert!(
        b.iter()
            .all(|p| p.labels == labels(&[("agent", "b"), ("env", "prod")]))
    );

    // One audit entry for the batch.
    let entries = audit_entries(&t.store, "t1", "metric.record");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].new_values.as_ref().unwrap()["count"], json!(8));
}

#[test]
fn metric_labels_with_json_path_characters_match_literally() {
    let t = store();
    let odd = [("we\"ird.key[0]", "x'y"), ("$", "%")];
    t.store
        .record_metrics(
            &t.scope,
            vec![point("m", &odd, 1.0, 0), point("m", &[("$", "%")], 2.0, 1)],
        )
        .unwrap();
    let q = MetricQuery {
        name: "m".into(),
        labels: labels(&[("we\"ird.key[0]", "x'y")]),
        ..Default::default()
    };
    let got = t.store.metric_range(&t.scope, &q).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels, labels(&odd));
    let q = MetricQuery {
        name: "m".into(),
        labels: labels(&[("$", "%")]),
        ..Default::default()
    };
    assert_eq!(t.store.metric_range(&t.scope, &q).unwrap().len(), 2);
}

#[test]
fn metrics_bad_input_and_tenant_isolation() {
    let t = store();
    seed_metrics(&t.store, &t.scope);
    for bad in [
        point("fitness", &[], f64::NAN, 0),
        point("", &[], 1.0, 0),
        point("fitness", &[("", "v")], 1.0, 0),
    ] {
        let err = t
            .store
            .record_metrics(&t.scope, vec![point("fitness", &[], 1.0, 90), bad])
            .unwrap_err();
        assert_eq!(err.code(), "invalid_input");
    }
    assert_eq!(
        t.store
            .metric_range(&t.scope, &query(&[], None, None))
            .unwrap()
            .len(),
        7,
        "refused batches store nothing"
    );
    assert_eq!(audit_entries(&t.store, "t1", "metric.record").len(), 1);

    let other = t.other_tenant();
    assert!(
        t.store
            .metric_range(&other, &query(&[], None, None))
            .unwrap()
            .is_empty()
    );
    assert!(
        t.store
            .metric_top_k(&other, &query(&[], None, None), 5)
            .unwrap()
            .is_empty()
    );
    t.store
        .record_metrics(&other, vec![point("fitness", &[("agent", "z")], 100.0, 0)])
        .unwrap();
    let top = t
        .store
        .metric_top_k(&t.scope, &query(&[], None, None), 1)
        .unwrap();
    assert_eq!(
        top[0].value, 8.0,
        "the other tenant's 100 is not on this board"
    );
    let unknown = agentstore::Scope::new("nosuch", "test");
    assert_eq!(
        t.store
            .record_metrics(&unknown, vec![point("m", &[], 1.0, 0)])
            .unwrap_err()
            .code(),
        "not_found"
    );
}
