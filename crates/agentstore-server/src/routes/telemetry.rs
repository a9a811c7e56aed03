//! The usage ledger and metric points.

use std::collections::BTreeMap;

use agentstore::backend::{MetricQuery, UsageQuery};
use agentstore::store::{MetricBucket, SeriesValue, UsageAggregate};
use agentstore::{
    Error, KeyScope, MetricPoint, NewMetricPoint, NewUsage, Timestamp, UsageGroup, UsageRecord,
};
use axum::extract::State;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Body, Count, Created, Items, Q, Reply, created};
use crate::AppState;
use crate::api::{Api, op};
use crate::auth::Caller;

pub(super) fn routes(api: Api) -> Api {
    use KeyScope::{Read, Write};
    api.route(
        "post",
        "/v1/usage",
        op("recordUsage", "usage", "Record model calls", Write)
            .body::<UsageBatch>()
            .created::<Items<UsageRecord>>(),
        record_usage,
    )
    .route(
        "get",
        "/v1/usage/aggregate",
        op(
            "usageAggregate",
            "usage",
            "Tokens, cost, latency and success per model, per agent or overall, optionally per time bucket",
            Read,
        )
        .query::<UsageAggregateQuery>()
        .ok::<Items<UsageAggregate>>(),
        usage_aggregate,
    )
    .route(
        "post",
        "/v1/metric-points",
        op("recordMetrics", "metrics", "Record metric points", Write)
            .body::<PointBatch>()
            .ok::<Count>(),
        record_metrics,
    )
    .route(
        "get",
        "/v1/metric-points",
        op("metricRange", "metrics", "A metric's points in a time window", Read)
            .query::<PointQuery>()
            .ok::<Items<MetricPoint>>(),
        metric_range,
    )
    .route(
        "get",
        "/v1/metric-points/downsample",
        op(
            "metricDownsample",
            "metrics",
            "A metric's points merged into fixed buckets (avg, min, max, count, sum)",
            Read,
        )
        .query::<DownsampleQuery>()
        .ok::<Items<MetricBucket>>(),
        metric_downsample,
    )
    .route(
        "get",
        "/v1/metric-points/top",
        op(
            "metricTopK",
            "metrics",
            "Leaderboard: the latest value of each series, highest first",
            Read,
        )
        .query::<TopQuery>()
        .ok::<Items<SeriesValue>>(),
        metric_top_k,
    )
}

/// Model calls to record.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct UsageBatch {
    /// The calls.
    items: Vec<NewUsage>,
}

/// Which usage to aggregate, and how.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageAggregateQuery {
    /// Group by model, agent, or all.
    group: UsageGroup,
    /// Bucket width in seconds (default: one bucket over the window).
    #[serde(default)]
    bucket_secs: Option<i64>,
    /// From (inclusive, RFC 3339).
    #[serde(default)]
    from: Option<Timestamp>,
    /// To (exclusive, RFC 3339).
    #[serde(default)]
    to: Option<Timestamp>,
    /// Session.
    #[serde(default)]
    session_id: Option<String>,
    /// Agent.
    #[serde(default)]
    agent_id: Option<String>,
    /// Provider.
    #[serde(default)]
    provider: Option<String>,
    /// Model.
    #[serde(default)]
    model: Option<String>,
}

async fn record_usage(
    State(st): State<AppState>,
    c: Caller,
    Body(b): Body<UsageBatch>,
) -> Created<Items<UsageRecord>> {
    let scope = c.scope();
    let items = st.run(move |s| s.record_usage(&scope, b.items)).await?;
    Ok(created(Items { items }))
}

async fn usage_aggregate(
    State(st): State<AppState>,
    c: Caller,
    Q(q): Q<UsageAggregateQuery>,
) -> Reply<Items<UsageAggregate>> {
    let scope = c.scope();
    let query = UsageQuery {
        from: q.from,
        to: q.to,
        session_id: q.session_id,
        agent_id: q.agent_id,
        provider: q.provider,
        model: q.model,
    };
    let items = st
        .run(move |s| s.usage_aggregate(&scope, &query, q.group, q.bucket_secs))
        .await?;
    Ok(axum::Json(Items { items }))
}

/// Metric points to record.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct PointBatch {
    /// The points.
    points: Vec<NewMetricPoint>,
}

/// A metric and the series and window to read.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PointQuery {
    /// Metric name.
    name: String,
    /// Label conditions as `key:value`; repeat for several (all must hold).
    #[serde(default)]
    label: Vec<String>,
    /// From (inclusive, RFC 3339).
    #[serde(default)]
    from: Option<Timestamp>,
    /// To (exclusive, RFC 3339).
    #[serde(default)]
    to: Option<Timestamp>,
}

impl PointQuery {
    fn metric_query(self) -> agentstore::Result<MetricQuery> {
        metric_query(self.name, self.label, self.from, self.to)
    }
}

fn metric_query(
    name: String,
    label: Vec<String>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> agentstore::Result<MetricQuery> {
    let mut labels = BTreeMap::new();
    for l in label {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| Error::invalid("label", format!("'{l}' is not key:value")))?;
        labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(MetricQuery {
        name,
        labels,
        from,
        to,
    })
}

// DownsampleQuery and TopQuery repeat PointQuery's fields rather than flatten it: serde
// buffers a flattened struct's input as untyped strings, and then a single `label=a:b`
// no longer reads as a one-element list; nor would `deny_unknown_fields` work.

/// [`PointQuery`] with a bucket width.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DownsampleQuery {
    /// Metric name.
    name: String,
    /// Label conditions as `key:value`; repeat for several (all must hold).
    #[serde(default)]
    label: Vec<String>,
    /// From (inclusive, RFC 3339).
    #[serde(default)]
    from: Option<Timestamp>,
    /// To (exclusive, RFC 3339).
    #[serde(default)]
    to: Option<Timestamp>,
    /// Bucket width in seconds.
    bucket_secs: i64,
}

/// [`PointQuery`] with a count.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopQuery {
    /// Metric name.
    name: String,
    /// Label conditions as `key:value`; repeat for several (all must hold).
    #[serde(default)]
    label: Vec<String>,
    /// From (inclusive, RFC 3339).
    #[serde(default)]
    from: Option<Timestamp>,
    /// To (exclusive, RFC 3339).
    #[serde(default)]
    to: Option<Timestamp>,
    /// How many series (default 10).
    #[serde(default)]
    k: Option<usize>,
}

async fn record_metrics(
    State(st): State<AppState>,
    c: Caller,
    Body(b): Body<PointBatch>,
) -> Reply<Count> {
    let scope = c.scope();
    let count = st.run(move |s| s.record_metrics(&scope, b.points)).await?;
    Ok(axum::Json(Count { count }))
}

async fn metric_range(
    State(st): State<AppState>,
    c: Caller,
    Q(q): Q<PointQuery>,
) -> Reply<Items<MetricPoint>> {
    let scope = c.scope();
    let items = st
        .run(move |s| s.metric_range(&scope, &q.metric_query()?))
        .await?;
    Ok(axum::Json(Items { items }))
}

async fn metric_downsample(
    State(st): State<AppState>,
    c: Caller,
    Q(q): Q<DownsampleQuery>,
) -> Reply<Items<MetricBucket>> {
    let scope = c.scope();
    let items = st
        .run(move |s| {
            let query = metric_query(q.name, q.label, q.from, q.to)?;
            s.metric_downsample(&scope, &query, q.bucket_secs)
        })
        .await?;
    Ok(axum::Json(Items { items }))
}

async fn metric_top_k(
    State(st): State<AppState>,
    c: Caller,
    Q(q): Q<TopQuery>,
) -> Reply<Items<SeriesValue>> {
    let scope = c.scope();
    let k = q.k.unwrap_or(10);
    let items = st
        .run(move |s| {
            let query = metric_query(q.name, q.label, q.from, q.to)?;
            s.metric_top_k(&scope, &query, k)
        })
        .await?;
    Ok(axum::Json(Items { items }))
}
