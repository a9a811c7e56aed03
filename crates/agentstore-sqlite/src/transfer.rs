//! JSON Lines export and import of every entity.

use agentstore::backend::{ImportReport, Record};
use agentstore::{Result, Scope};
use rusqlite::Connection;

pub(crate) fn export(_c: &Connection, _out: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn import(
    _tx: &Connection,
    _scope: &Scope,
    _records: &mut dyn Iterator<Item = Result<(u64, Record)>>,
) -> Result<ImportReport> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
