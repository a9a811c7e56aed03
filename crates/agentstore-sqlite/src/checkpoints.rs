//! Checkpoints of agent state per thread, and their pending writes.

use agentstore::backend::{CheckpointQuery, WriteResult};
use agentstore::{Checkpoint, PendingWrite, Result, Scope};
use rusqlite::Connection;

pub(crate) fn put(_tx: &Connection, _scope: &Scope, _c: Checkpoint) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn put_writes(
    _tx: &Connection,
    _scope: &Scope,
    _w: Vec<PendingWrite>,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn get(
    _c: &Connection,
    _tenant: &str,
    _session_id: &str,
    _ns: &str,
    _id: Option<&str>,
) -> Result<Option<Checkpoint>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn list(
    _c: &Connection,
    _tenant: &str,
    _q: &CheckpointQuery,
) -> Result<Vec<Checkpoint>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn pending_writes(
    _c: &Connection,
    _tenant: &str,
    _session_id: &str,
    _ns: &str,
    _checkpoint_id: &str,
) -> Result<Vec<PendingWrite>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
