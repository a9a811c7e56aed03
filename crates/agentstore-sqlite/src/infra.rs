//! Key-value entries with TTL, named locks with fencing tokens, and the expiry sweep.

use agentstore::backend::WriteResult;
use agentstore::{Json, KvEntry, Lock, Result, Scope, Timestamp};
use rusqlite::Connection;

pub(crate) fn kv_set(
    _tx: &Connection,
    _scope: &Scope,
    _key: &str,
    _value: Json,
    _expires_at: Option<Timestamp>,
    _at: Timestamp,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn kv_incr(
    _tx: &Connection,
    _scope: &Scope,
    _key: &str,
    _by: i64,
    _expires_at: Option<Timestamp>,
    _at: Timestamp,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn kv_expire(
    _tx: &Connection,
    _scope: &Scope,
    _key: &str,
    _expires_at: Option<Timestamp>,
    _at: Timestamp,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn kv_delete(_tx: &Connection, _scope: &Scope, _key: &str) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn kv_delete_prefix(
    _tx: &Connection,
    _scope: &Scope,
    _prefix: &str,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn lock_acquire(
    _tx: &Connection,
    _scope: &Scope,
    _name: &str,
    _holder: &str,
    _expires_at: Timestamp,
    _at: Timestamp,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn lock_renew(
    _tx: &Connection,
    _scope: &Scope,
    _name: &str,
    _token: i64,
    _expires_at: Timestamp,
    _at: Timestamp,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn lock_release(
    _tx: &Connection,
    _scope: &Scope,
    _name: &str,
    _token: i64,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn sweep_expired(
    _tx: &Connection,
    _scope: &Scope,
    _at: Timestamp,
) -> Result<WriteResult> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn kv_get(
    _c: &Connection,
    _tenant: &str,
    _key: &str,
    _now: Timestamp,
) -> Result<Option<KvEntry>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn kv_list(
    _c: &Connection,
    _tenant: &str,
    _prefix: &str,
    _now: Timestamp,
    _limit: usize,
) -> Result<Vec<KvEntry>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn get_lock(_c: &Connection, _tenant: &str, _name: &str) -> Result<Option<Lock>> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
