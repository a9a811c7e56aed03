//! Usage records and metric points.

use agentstore::backend::{MetricQuery, UsageQuery, WriteResult};
use agentstore::{MetricPoint, Result, Scope, UsageRecord};
use rusqlite::Connection;

pub(crate) fn record_usage(
    _tx: &Connection,
    _scope: &Scope,
    _u: Vec<UsageRecord>,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn record_metrics(
    _tx: &Connection,
    _scope: &Scope,
    _m: Vec<MetricPoint>,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn list_usage(
    _c: &Connection,
    _tenant: &str,
    _q: &UsageQuery,
) -> Result<Vec<UsageRecord>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn metric_points(
    _c: &Connection,
    _tenant: &str,
    _q: &MetricQuery,
) -> Result<Vec<MetricPoint>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
