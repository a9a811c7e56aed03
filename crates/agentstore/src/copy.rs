//! Moving a whole store from one backend to another (`agentstore copy`), verified.
//!
//! Written against the [`Backend`](crate::Backend) trait only, so it moves SQLite to
//! PostgreSQL, back, or between two stores of one kind. Records and vectors go through
//! the same export and import every backend implements (export order puts parents first;
//! import checks every reference and runs in one transaction), streamed through a bounded
//! channel so a store larger than memory moves too.
//!
//! Verification reads both stores again after the copy: per record type, the count and a
//! SHA-256 over the records' canonical JSON, in export order; the same per vector model
//! over its vectors. The destination's audit log must start with the source's entries,
//! byte for byte; the entry after them is the copy's own (the import), and is reported.

use std::collections::BTreeMap;
use std::sync::mpsc::sync_channel;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backend::Record;
use crate::{Error, Result, Scope, Store};

/// Records in flight between the export and the import.
const CHANNEL_RECORDS: usize = 1024;

/// What a copy moved, and the checks that it arrived whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CopyReport {
    /// Per record type: count and SHA-256, equal in both stores.
    pub records: BTreeMap<String, TypeDigest>,
    /// Per vector model: count and SHA-256, equal in both stores.
    pub vectors: BTreeMap<String, TypeDigest>,
    /// Audit entries the copy itself appended to the destination (after the source's).
    pub audit_entries_added: u64,
}

/// A count and a digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TypeDigest {
    /// How many.
    pub count: u64,
    /// Hex SHA-256 over them in order.
    pub sha256: String,
}

#[derive(Default)]
struct Digests {
    per: BTreeMap<String, (u64, Sha256)>,
}

impl Digests {
    fn add(&mut self, kind: &str, bytes: &[u8]) {
        let e = self
            .per
            .entry(kind.to_owned())
            .or_insert_with(|| (0, Sha256::new()));
        e.0 += 1;
        e.1.update((bytes.len() as u64).to_le_bytes());
        e.1.update(bytes);
    }

    fn finish(self) -> BTreeMap<String, TypeDigest> {
        self.per
            .into_iter()
            .map(|(k, (count, h))| {
                (
                    k,
                    TypeDigest {
                        count,
                        sha256: hex::encode(h.finalize()),
                    },
                )
            })
            .collect()
    }
}

fn record_json(rec: &Record) -> Result<Vec<u8>> {
    serde_json::to_vec(rec).map_err(|e| Error::Corrupt(format!("record does not serialise: {e}")))
}

/// What verification compares of one store, read from one export.
struct Survey {
    /// Per record type, vectors and audit entries excepted.
    records: Digests,
    /// Per vector model.
    vectors: Digests,
    /// The audit log, as JSON, in order.
    audit: Vec<Vec<u8>>,
}

fn survey(store: &Store) -> Result<Survey> {
    let mut s = Survey {
        records: Digests::default(),
        vectors: Digests::default(),
        audit: Vec::new(),
    };
    store.backend().export(&mut |rec| {
        let json = record_json(&rec)?;
        match &rec {
            Record::Audit(_) => s.audit.push(json),
            Record::Vector(v) => s.vectors.add(&v.model, &json),
            _ => s.records.add(rec.type_name(), &json),
        }
        Ok(())
    })?;
    Ok(s)
}

/// Copies every record and vector of `src` into `dst`, which must be empty (no tenants,
/// no audit entries), then verifies the copy. `actor` is recorded in the destination's
/// audit log. On a verification failure the destination keeps what was copied and the
/// error says what differs.
pub fn copy(src: &Store, dst: &Store, actor: &str) -> Result<CopyReport> {
    if !dst.backend().list_tenants()?.is_empty() {
        return Err(Error::invalid(
            "to",
            "the destination store is not empty; copy into a new store",
        ));
    }
    let scope = Scope::new("", actor);
    // Records, vectors included: exported on a second thread into the import's iterator.
    let (tx, rx) = sync_channel::<Record>(CHANNEL_RECORDS);
    std::thread::scope(|s| -> Result<()> {
        let exporter = s.spawn(move || {
            src.backend().export(&mut |rec| {
                tx.send(rec)
                    .map_err(|_| Error::Conflict("the import stopped early".into()))
            })
        });
        let mut line = 0u64;
        let mut records = rx.into_iter().map(|rec| {
            line += 1;
            Ok((line, rec))
        });
        let imported = dst.backend().import(&scope, &mut records);
        drop(records);
        let exported = exporter
            .join()
            .map_err(|_| Error::Corrupt("the export thread panicked".into()))?;
        // The import's error is the one to report: the export only stops because of it.
        imported?;
        exported
    })?;
    verify(src, dst)
}

/// Compares two stores after a copy (see the module docs).
pub fn verify(src: &Store, dst: &Store) -> Result<CopyReport> {
    let a = survey(src)?;
    let b = survey(dst)?;
    let (a_audit, b_audit) = (a.audit, b.audit);
    let (va, vb) = (a.vectors.finish(), b.vectors.finish());
    let (a, b) = (a.records.finish(), b.records.finish());
    let mut problems = Vec::new();
    for k in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => problems.push(format!(
                "{k}: {} in the source, {} in the destination{}",
                x.map_or(0, |d| d.count),
                y.map_or(0, |d| d.count),
                if x.map(|d| d.count) == y.map(|d| d.count) {
                    " (same count, different content)"
                } else {
                    ""
                }
            )),
        }
    }
    if b_audit.len() < a_audit.len() || b_audit[..a_audit.len()] != a_audit[..] {
        problems.push("audit: the destination's log does not start with the source's".into());
    }
    if va != vb {
        problems.push(format!(
            "vectors differ: source {:?}, destination {:?}",
            va.iter().map(|(k, d)| (k, d.count)).collect::<Vec<_>>(),
            vb.iter().map(|(k, d)| (k, d.count)).collect::<Vec<_>>()
        ));
    }
    if !problems.is_empty() {
        return Err(Error::Conflict(format!(
            "the copy does not match its source: {}",
            problems.join("; ")
        )));
    }
    let mut records = a;
    let mut h = Sha256::new();
    for e in &a_audit {
        h.update((e.len() as u64).to_le_bytes());
        h.update(e);
    }
    if !a_audit.is_empty() {
        records.insert(
            "audit".into(),
            TypeDigest {
                count: a_audit.len() as u64,
                sha256: hex::encode(h.finalize()),
            },
        );
    }
    Ok(CopyReport {
        records,
        vectors: va,
        audit_entries_added: (b_audit.len() - a_audit.len()) as u64,
    })
}
