//! Documents and chunks: dedupe by hash, replace by id or source path.

use agentstore::backend::{DocumentQuery, WriteResult};
use agentstore::{Chunk, Document, Page, Result, Scope, Timestamp};
use rusqlite::Connection;

pub(crate) fn put(
    _tx: &Connection,
    _scope: &Scope,
    _d: Document,
    _chunks: Vec<Chunk>,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn delete(_tx: &Connection, _scope: &Scope, _id: &str) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn record_queries(
    _tx: &Connection,
    _scope: &Scope,
    _ids: &[String],
    _at: Timestamp,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn get(_c: &Connection, _tenant: &str, _id: &str) -> Result<Option<Document>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn list(_c: &Connection, _tenant: &str, _q: &DocumentQuery) -> Result<Page<Document>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn list_chunks(
    _c: &Connection,
    _tenant: &str,
    _document_id: &str,
) -> Result<Vec<Chunk>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn get_chunk(_c: &Connection, _tenant: &str, _id: &str) -> Result<Option<Chunk>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
