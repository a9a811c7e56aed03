//! Moving a whole store from one backend to another (`agentstore copy`), verified.
//!
//! Written against the [`Backend`](crate::Backend) trait only, so it moves SQLite to
//! PostgreSQL, back, or between two stores of one kind. Records go through the same
//! export and import every backend implements (export order puts parents first; import
//! checks every reference and runs in one transaction), streamed through a bounded
//! channel so a store larger than memory moves too. Vectors, which the JSON Lines format
//! does not carry, follow model by model.
//!
//! Verification reads both stores again after the copy: per record type, the count and a
//! SHA-256 over the records' canonical JSON, in export order; per vector model, the count
//! and a SHA-256 over every record's vector. The destination's audit log must start with
//! the source's entries, byte for byte; the entries after them are the copy's own (the
//! import and the vector writes), and are reported.

use std::collections::BTreeMap;
use std::sync::mpsc::sync_channel;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backend::{Record, WriteOp};
use crate::embedding::Embedding;
use crate::search::Target;
use crate::{Error, Result, Scope, Store};

/// Records in flight between the export and the import.
const CHANNEL_RECORDS: usize = 1024;
/// Records whose vectors are read and written per batch.
const VECTOR_BATCH: usize = 512;

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

/// Records of a store that can carry vectors: (tenant, target, id), in export order.
type VectorOwners = Vec<(String, Target, String)>;

/// Called with each vector found: tenant, target, record id, vector.
type VectorVisitor<'a> = dyn FnMut(&str, Target, &str, &[f32]) -> Result<()> + 'a;

/// Vectors of one tenant and target on their way into one `PutVectors`.
type VectorBatch = (String, Target, Vec<(String, Embedding)>);

fn vector_owner(rec: &Record) -> Option<(String, Target, String)> {
    match rec {
        Record::Memory(m) => Some((m.tenant_id.clone(), Target::Memory, m.id.clone())),
        Record::Chunk(c) => Some((c.tenant_id.clone(), Target::Chunk, c.id.clone())),
        Record::Event(e) => Some((e.tenant_id.clone(), Target::Event, e.id.clone())),
        _ => None,
    }
}

/// Reads every record of `store`: digests per type (audit entries kept aside, as JSON)
/// and the records that can carry vectors.
fn survey(store: &Store) -> Result<(Digests, Vec<Vec<u8>>, VectorOwners)> {
    let mut d = Digests::default();
    let mut audit = Vec::new();
    let mut owners = Vec::new();
    store.backend().export(&mut |rec| {
        let json = record_json(&rec)?;
        if let Record::Audit(_) = rec {
            audit.push(json);
        } else {
            d.add(rec.type_name(), &json);
        }
        if let Some(o) = vector_owner(&rec) {
            owners.push(o);
        }
        Ok(())
    })?;
    Ok((d, audit, owners))
}

/// Digests of every vector of every model of `owners`, read from `store`.
fn vector_digests(store: &Store, owners: &VectorOwners) -> Result<BTreeMap<String, TypeDigest>> {
    let mut d = Digests::default();
    for m in store.backend().vector_models()? {
        for_each_vector(store, &m.model, owners, &mut |_, target, id, v| {
            let mut bytes = Vec::with_capacity(id.len() + 8 + v.len() * 4);
            bytes.extend_from_slice(target.as_str().as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(id.as_bytes());
            bytes.push(0);
            for x in v {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
            d.add(&m.model, &bytes);
            Ok(())
        })?;
    }
    Ok(d.finish())
}

/// Calls `f` for every vector of `model` that a record of `owners` has, in order.
fn for_each_vector(
    store: &Store,
    model: &str,
    owners: &VectorOwners,
    f: &mut VectorVisitor<'_>,
) -> Result<()> {
    // get_vectors is per tenant: batch runs of one tenant.
    let mut i = 0;
    while i < owners.len() {
        let tenant = &owners[i].0;
        let mut j = i;
        while j < owners.len() && j - i < VECTOR_BATCH && &owners[j].0 == tenant {
            j += 1;
        }
        let batch: Vec<(Target, String)> = owners[i..j]
            .iter()
            .map(|(_, t, id)| (*t, id.clone()))
            .collect();
        let got = store.backend().get_vectors(tenant, model, &batch)?;
        for ((target, id), v) in batch.iter().zip(got) {
            if let Some(v) = v {
                f(tenant, *target, id, &v)?;
            }
        }
        i = j;
    }
    Ok(())
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
    // Records: exported on a second thread into the import's iterator.
    let (tx, rx) = sync_channel::<Record>(CHANNEL_RECORDS);
    let mut owners: VectorOwners = Vec::new();
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
            if let Some(o) = vector_owner(&rec) {
                owners.push(o);
            }
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
    // Vectors, model by model, tenant by tenant.
    for m in src.backend().vector_models()? {
        let mut declared = std::collections::BTreeSet::new();
        // One PutVectors per run of one tenant and target, at most VECTOR_BATCH long.
        let mut batch: Option<VectorBatch> = None;
        let put = |b: Option<VectorBatch>| -> Result<()> {
            if let Some((tenant, target, items)) = b {
                dst.write(
                    &Scope::new(tenant, actor),
                    vec![WriteOp::PutVectors { target, items }],
                )?;
            }
            Ok(())
        };
        for_each_vector(src, &m.model, &owners, &mut |tenant, target, id, v| {
            if declared.insert(tenant.to_owned()) {
                dst.write(
                    &Scope::new(tenant, actor),
                    vec![WriteOp::DeclareVectorModel {
                        model: m.model.clone(),
                        dimension: m.dimension,
                        metric: m.metric,
                    }],
                )?;
            }
            let fits = matches!(&batch, Some((t, g, items))
                if t == tenant && *g == target && items.len() < VECTOR_BATCH);
            if !fits {
                put(batch.replace((tenant.to_owned(), target, Vec::new())))?;
            }
            if let Some((_, _, items)) = batch.as_mut() {
                items.push((
                    id.to_owned(),
                    Embedding {
                        model: m.model.clone(),
                        vector: v.to_vec(),
                    },
                ));
            }
            Ok(())
        })?;
        put(batch)?;
    }
    verify(src, dst)
}

/// Compares two stores after a copy (see the module docs).
pub fn verify(src: &Store, dst: &Store) -> Result<CopyReport> {
    let (a, a_audit, owners) = survey(src)?;
    let (b, b_audit, dst_owners) = survey(dst)?;
    let (a, b) = (a.finish(), b.finish());
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
    let va = vector_digests(src, &owners)?;
    let vb = vector_digests(dst, &dst_owners)?;
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
