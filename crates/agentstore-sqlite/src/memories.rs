//! Memories: upsert by key with versioning, dedupe by content hash, as-of reads.

use agentstore::backend::{MemoryQuery, WriteResult};
use agentstore::{Memory, Namespace, Page, Result, Scope, Timestamp};
use rusqlite::Connection;

pub(crate) fn remember(_tx: &Connection, _scope: &Scope, _m: Memory) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn forget(_tx: &Connection, _scope: &Scope, _id: &str) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn invalidate(
    _tx: &Connection,
    _scope: &Scope,
    _id: &str,
    _at: Timestamp,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn touch(
    _tx: &Connection,
    _scope: &Scope,
    _ids: &[String],
    _at: Timestamp,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn get(_c: &Connection, _tenant: &str, _id: &str) -> Result<Option<Memory>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn get_by_key(
    _c: &Connection,
    _tenant: &str,
    _ns: &Namespace,
    _key: &str,
    _as_of: Option<Timestamp>,
) -> Result<Option<Memory>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn history(
    _c: &Connection,
    _tenant: &str,
    _ns: &Namespace,
    _key: &str,
) -> Result<Vec<Memory>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn list(
    _c: &Connection,
    _tenant: &str,
    _q: &MemoryQuery,
    _now: Timestamp,
) -> Result<Page<Memory>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
