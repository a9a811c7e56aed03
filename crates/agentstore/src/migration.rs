//! Bookkeeping of versioned, checksummed up/down migrations, shared by the SQL backends:
//! each backend compiles its own SQL scripts into a [`Migration`] list and keeps a
//! `schema_migrations` table; what counts as applied, pending, unknown or changed, and
//! which of those refuse to open, is decided here once.

use serde::Serialize;

use crate::codec::columns::to_ts;
use crate::codec::sha256_hex;
use crate::{Error, Result};

/// One migration compiled into the binary.
#[derive(Debug)]
pub struct Migration {
    /// Version, from 1, contiguous.
    pub version: i64,
    /// Short name.
    pub name: &'static str,
    /// Forward SQL.
    pub up: &'static str,
    /// Rollback SQL.
    pub down: &'static str,
}

impl Migration {
    /// SHA-256 of the up script.
    pub fn checksum(&self) -> String {
        sha256_hex(self.up.as_bytes())
    }
}

/// The highest version of `known`.
pub fn latest_of(known: &[Migration]) -> i64 {
    known.last().map_or(0, |m| m.version)
}

/// One row of `migrate status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MigrationState {
    /// Version.
    pub version: i64,
    /// Name.
    pub name: String,
    /// `applied`, `pending`, `checksum_mismatch` or `unknown` (applied by a newer binary).
    pub state: String,
    /// When applied (RFC 3339).
    pub applied_at: Option<String>,
    /// Checksum recorded (applied) or expected (pending).
    pub checksum: String,
}

/// `migrate status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MigrationStatus {
    /// Highest applied version (0 for none).
    pub current: i64,
    /// Latest version the binary knows.
    pub latest: i64,
    /// Every known or applied migration.
    pub migrations: Vec<MigrationState>,
}

/// The status of a database whose `schema_migrations` rows are `applied`
/// (version, name, checksum, applied_at in microseconds), against the `known` scripts.
pub fn status_of(applied: &[(i64, String, String, i64)], known: &[Migration]) -> MigrationStatus {
    let mut out = Vec::new();
    for (v, name, sum, at) in applied {
        let state = match known.iter().find(|m| m.version == *v) {
            None => "unknown",
            Some(m) if &m.checksum() != sum => "checksum_mismatch",
            Some(_) => "applied",
        };
        out.push(MigrationState {
            version: *v,
            name: name.clone(),
            state: state.into(),
            applied_at: Some(to_ts(*at).to_rfc3339()),
            checksum: sum.clone(),
        });
    }
    for m in known {
        if !applied.iter().any(|a| a.0 == m.version) {
            out.push(MigrationState {
                version: m.version,
                name: m.name.into(),
                state: "pending".into(),
                applied_at: None,
                checksum: m.checksum(),
            });
        }
    }
    out.sort_by_key(|s| s.version);
    MigrationStatus {
        current: applied.last().map_or(0, |a| a.0),
        latest: latest_of(known),
        migrations: out,
    }
}

/// Refuses a database whose applied migrations differ from the binary's, or that has
/// pending ones.
pub fn check_status(st: &MigrationStatus) -> Result<()> {
    mismatch(st)?;
    let pending = st
        .migrations
        .iter()
        .filter(|m| m.state == "pending")
        .count();
    if pending > 0 {
        return Err(Error::SchemaPending {
            current: st.current,
            latest: st.latest,
            pending,
        });
    }
    Ok(())
}

/// Refuses applied migrations this binary does not know or whose script changed.
pub fn mismatch(st: &MigrationStatus) -> Result<()> {
    for m in &st.migrations {
        match m.state.as_str() {
            "unknown" => {
                return Err(Error::SchemaMismatch(format!(
                    "migration {} ({}) was applied by a newer agentstore; this binary knows up to version {}",
                    m.version, m.name, st.latest
                )));
            }
            "checksum_mismatch" => {
                return Err(Error::SchemaMismatch(format!(
                    "migration {} ({}) was applied with checksum {} but this binary's script has a different checksum; the database was built by a different build of agentstore",
                    m.version, m.name, m.checksum
                )));
            }
            _ => {}
        }
    }
    Ok(())
}
