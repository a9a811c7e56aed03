//! Stats, verify, maintenance, backup and restore of the data directory.

use std::path::Path;

use agentstore::Result;
use agentstore::backend::{
    BackupManifest, MaintenanceOptions, MaintenanceReport, Stats, VerifyReport,
};
use rusqlite::Connection;

use crate::conn::{Connections, DataDir};

pub(crate) fn stats(_c: &Connection, _dir: &DataDir) -> Result<Stats> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn verify(_c: &Connection) -> Result<VerifyReport> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn maintenance(
    _conns: &Connections,
    _dir: &DataDir,
    _opts: &MaintenanceOptions,
) -> Result<MaintenanceReport> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
pub(crate) fn backup(_conns: &Connections, _dir: &DataDir, _out: &Path) -> Result<BackupManifest> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
/// Reads and parses `manifest.json` of a backup directory.
pub fn read_manifest(_backup_dir: &Path) -> Result<BackupManifest> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
/// Checks a backup directory against its manifest and the database inside it.
pub fn verify_backup(_backup_dir: &Path) -> Result<VerifyReport> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
/// Restores a verified backup into an empty (or, with `force`, replaced) data directory.
pub fn restore(_backup_dir: &Path, _data_dir: &Path, _force: bool) -> Result<BackupManifest> {
    Err(agentstore::Error::Config("not implemented yet".into()))
}
