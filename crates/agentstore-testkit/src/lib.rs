//! Helpers for agentstore's crash, concurrency and multi-process tests.
//!
//! The `crash-writer` binary appends to a store and acknowledges every committed write on
//! stdout ([`Ack`]); a test kills it, records what it acknowledged in a [`Ledger`] and
//! checks the reopened store against it. The line format and the contents the writer
//! stores live here so the writer and the checker cannot drift apart.

pub mod services;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use agentstore::backend::EventQuery;
use agentstore::{Event, Namespace, Scope, Store};
use agentstore_sqlite::{Durability, OpenOptions};

/// Tenant the writer and the tests use.
pub const TENANT: &str = "crash";
/// Actor recorded in the audit log for the writer's writes.
pub const ACTOR: &str = "crash-writer";
/// Session the writer appends to unless told otherwise.
pub const DEFAULT_SESSION: &str = "crash-stream";
/// Memory keys the writer upserts, so keys get many versions.
pub const MEMORY_KEYS: usize = 8;
/// KV keys the writer sets.
pub const KV_KEYS: usize = 4;

/// The scope of the writer's tenant.
pub fn scope() -> Scope {
    Scope::new(TENANT, ACTOR)
}

/// Options the writer opens its store with.
///
/// `Durability::Normal` is enough for the crash test: SIGKILL ends the process, not the
/// machine, and frames SQLite has written to the WAL before `COMMIT` returned sit in the
/// OS page cache, which outlives the process and is read back on reopen. Only a power cut
/// or kernel crash can lose them, and that is what `Durability::Full` (fsync at every
/// commit) protects against; it cannot be tested by killing a process.
pub fn writer_options(dir: &Path) -> OpenOptions {
    OpenOptions::new(dir)
        .create()
        .durability(Durability::Normal)
}

/// Content of event `index` of batch `batch` written by run `run`.
pub fn event_content(run: &str, batch: u64, index: usize) -> String {
    format!("run {run} batch {batch} event {index}")
}

/// Content of the memory version for `key` written in batch `batch` of run `run`. Unique
/// per batch, so every upsert makes a new version rather than updating one in place.
pub fn memory_content(run: &str, batch: u64, key: &str) -> String {
    format!("{key} as of run {run} batch {batch}")
}

/// The vector the writer stores with a memory version: 8 values derived from its
/// content, so the checker can find the version by it without being told.
pub fn memory_vector(content: &str) -> Vec<f32> {
    let h = agentstore::codec::sha256_hex(content.as_bytes());
    h.as_bytes()
        .chunks(8)
        .take(8)
        .map(|c| {
            let v = u32::from_str_radix(std::str::from_utf8(c).unwrap_or("1"), 16).unwrap_or(1);
            (v as f32 / u32::MAX as f32) - 0.5
        })
        .collect()
}

/// Name of memory key `i`.
pub fn memory_key(i: usize) -> String {
    format!("mem-{i}")
}

/// Name of KV key `i`.
pub fn kv_key(i: usize) -> String {
    format!("kv-{i}")
}

/// One line of the writer's stdout. A line is printed (and flushed) only after the write
/// it describes has committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ack {
    /// `READY <run> <last_seq>`: the store is open; the session holds `last_seq` events.
    Ready {
        /// Label of this writer run, part of every content it writes.
        run: String,
        /// Highest seq in the session when the writer started.
        last_seq: i64,
    },
    /// `ACK <batch_no> <first_seq> <last_seq> <last_event_id>`: a batch of events.
    Events {
        /// Batch number within the run, from 1.
        batch: u64,
        /// Seq of the batch's first event.
        first_seq: i64,
        /// Seq of its last event.
        last_seq: i64,
        /// Id of its last event.
        last_event_id: String,
    },
    /// `ACKM <key> <content_hash> <id>`: a memory upsert by key.
    Memory {
        /// The key.
        key: String,
        /// SHA-256 of the content, hex.
        content_hash: String,
        /// Id of the version that holds it.
        id: String,
    },
    /// `ACKK <key> <version>`: a KV set.
    Kv {
        /// The key.
        key: String,
        /// The entry's version after the set.
        version: i64,
    },
}

impl fmt::Display for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ack::Ready { run, last_seq } => write!(f, "READY {run} {last_seq}"),
            Ack::Events {
                batch,
                first_seq,
                last_seq,
                last_event_id,
            } => write!(f, "ACK {batch} {first_seq} {last_seq} {last_event_id}"),
            Ack::Memory {
                key,
                content_hash,
                id,
            } => write!(f, "ACKM {key} {content_hash} {id}"),
            Ack::Kv { key, version } => write!(f, "ACKK {key} {version}"),
        }
    }
}

impl Ack {
    /// Parses one line (without its newline).
    pub fn parse(line: &str) -> Result<Ack, String> {
        let f: Vec<&str> = line.split(' ').collect();
        let bad = || format!("malformed writer line {line:?}");
        let int = |s: &str| s.parse::<i64>().map_err(|_| bad());
        match f.as_slice() {
            ["READY", run, last] => Ok(Ack::Ready {
                run: (*run).into(),
                last_seq: int(last)?,
            }),
            ["ACK", batch, first, last, id] => Ok(Ack::Events {
                batch: batch.parse().map_err(|_| bad())?,
                first_seq: int(first)?,
                last_seq: int(last)?,
                last_event_id: (*id).into(),
            }),
            ["ACKM", key, hash, id] => Ok(Ack::Memory {
                key: (*key).into(),
                content_hash: (*hash).into(),
                id: (*id).into(),
            }),
            ["ACKK", key, version] => Ok(Ack::Kv {
                key: (*key).into(),
                version: int(version)?,
            }),
            _ => Err(bad()),
        }
    }
}

/// Reads a child's stdout on a thread and forwards each complete line.
///
/// A line cut short by the kill has no newline and is dropped: it was never fully
/// acknowledged. (Lines are far shorter than `PIPE_BUF`, so a cut line would mean a bug.)
pub fn spawn_line_reader(
    out: impl Read + Send + 'static,
) -> (mpsc::Receiver<String>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if !line.ends_with('\n') => return,
                Ok(_) => {
                    if tx.send(line.trim_end().to_owned()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (rx, handle)
}

/// Every event of a session, oldest first.
pub fn all_events(store: &Store, scope: &Scope, session: &str) -> agentstore::Result<Vec<Event>> {
    events_after(store, scope, session, 0)
}

/// The events of a session with seq above `after_seq`, oldest first, read in pages of
/// 1,000.
pub fn events_after(
    store: &Store,
    scope: &Scope,
    session: &str,
    after_seq: i64,
) -> agentstore::Result<Vec<Event>> {
    let mut out: Vec<Event> = Vec::new();
    loop {
        let page = store.list_events(
            scope,
            EventQuery {
                session_id: session.into(),
                after_seq: Some(out.last().map_or(after_seq, |e| e.seq)),
                limit: 1000,
                ..Default::default()
            },
        )?;
        let done = page.next.is_none() || page.items.is_empty();
        out.extend(page.items);
        if done {
            return Ok(out);
        }
    }
}

#[derive(Clone, Debug)]
struct AckedBatch {
    run: String,
    batch: u64,
    first_seq: i64,
    last_seq: i64,
    last_event_id: String,
}

#[derive(Clone, Debug)]
struct AckedMemory {
    key: String,
    content_hash: String,
    id: String,
}

/// What the checks found, for the test's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckSummary {
    /// Events in the session.
    pub events: i64,
    /// Events acknowledged.
    pub acked_events: i64,
    /// Memory versions acknowledged.
    pub acked_memories: usize,
    /// KV keys acknowledged.
    pub acked_kv_keys: usize,
}

/// Everything writers acknowledged, checked against a reopened store.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    batches: Vec<AckedBatch>,
    memories: Vec<AckedMemory>,
    kv: BTreeMap<String, i64>,
}

impl Ledger {
    /// Records one acknowledgement of run `run`. `Ready` lines carry no write and are
    /// ignored.
    pub fn record(&mut self, run: &str, ack: Ack) {
        match ack {
            Ack::Ready { .. } => {}
            Ack::Events {
                batch,
                first_seq,
                last_seq,
                last_event_id,
            } => self.batches.push(AckedBatch {
                run: run.into(),
                batch,
                first_seq,
                last_seq,
                last_event_id,
            }),
            Ack::Memory {
                key,
                content_hash,
                id,
            } => self.memories.push(AckedMemory {
                key,
                content_hash,
                id,
            }),
            Ack::Kv { key, version } => {
                let v = self.kv.entry(key).or_insert(version);
                *v = (*v).max(version);
            }
        }
    }

    /// Events acknowledged so far.
    pub fn acked_events(&self) -> i64 {
        self.batches
            .iter()
            .map(|b| b.last_seq - b.first_seq + 1)
            .sum()
    }

    /// Acknowledged batches as `(first_seq, last_seq)`, in the order recorded.
    pub fn batch_ranges(&self) -> Vec<(i64, i64)> {
        self.batches
            .iter()
            .map(|b| (b.first_seq, b.last_seq))
            .collect()
    }

    /// Checks the store against everything acknowledged; panics with the first
    /// discrepancy:
    /// - the session's seqs are exactly 1..=n;
    /// - every acknowledged batch is at its seqs, with its contents in order and its last
    ///   event's id;
    /// - every acknowledged memory version is readable by id with its content hash, is a
    ///   version of its key, and the key's current version is that one or a newer one;
    /// - every acknowledged KV key holds at least the acknowledged version;
    /// - `Store::verify` passes.
    pub fn check(&self, store: &Store, scope: &Scope, session: &str) -> CheckSummary {
        self.check_since(store, scope, session, 0)
    }

    /// [`Ledger::check`] with events up to `checked_seq` taken as already checked: only
    /// the seqs above it are read and compared. Events are append-only, so after a full
    /// check the crash test need only look at what later rounds added; its final full
    /// check catches anything lost below.
    pub fn check_since(
        &self,
        store: &Store,
        scope: &Scope,
        session: &str,
        checked_seq: i64,
    ) -> CheckSummary {
        let events =
            events_after(store, scope, session, checked_seq).expect("list the session's events");
        for (i, e) in events.iter().enumerate() {
            let want = checked_seq + i as i64 + 1;
            assert_eq!(
                e.seq, want,
                "seqs are not contiguous from 1: seq {want} is missing (found {} from event {})",
                e.seq, e.id
            );
        }
        let total = checked_seq + events.len() as i64;
        for b in self.batches.iter().filter(|b| b.last_seq > checked_seq) {
            assert!(
                b.first_seq >= 1 && b.first_seq <= b.last_seq,
                "acknowledged batch has an empty seq range: {b:?}"
            );
            assert!(
                b.last_seq <= total,
                "acknowledged batch {b:?} is missing: the session ends at seq {total}"
            );
            for seq in b.first_seq.max(checked_seq + 1)..=b.last_seq {
                let e = &events[(seq - checked_seq - 1) as usize];
                let want = event_content(&b.run, b.batch, (seq - b.first_seq) as usize);
                assert_eq!(
                    e.content.as_deref(),
                    Some(want.as_str()),
                    "event at seq {seq} does not hold acknowledged batch {b:?}"
                );
            }
            let last = &events[(b.last_seq - checked_seq - 1) as usize];
            assert_eq!(
                last.id, b.last_event_id,
                "last event of acknowledged batch {b:?}"
            );
        }
        // The scan above goes by seq; one read by id checks the id index as well.
        if let Some(b) = self.batches.last() {
            let e = store
                .get_event(scope, &b.last_event_id)
                .expect("read the last acknowledged event by id");
            assert_eq!(e.seq, b.last_seq, "seq of event {}", b.last_event_id);
        }

        let mut by_key: BTreeMap<&str, Vec<&AckedMemory>> = BTreeMap::new();
        for m in &self.memories {
            let got = store
                .get_memory(scope, &m.id)
                .unwrap_or_else(|e| panic!("acknowledged memory {m:?} is unreadable: {e}"));
            assert_eq!(got.content_hash, m.content_hash, "memory {}", m.id);
            assert_eq!(got.key.as_deref(), Some(m.key.as_str()), "memory {}", m.id);
            by_key.entry(&m.key).or_default().push(m);
        }
        for (key, acked) in &by_key {
            let history = store
                .memory_history(scope, &Namespace::root(), key)
                .unwrap_or_else(|e| panic!("history of memory key {key}: {e}"));
            let pos = |id: &str| {
                history
                    .iter()
                    .position(|v| v.id == id)
                    .unwrap_or_else(|| panic!("memory {id} is not a version of key {key}"))
            };
            let newest_acked = acked.iter().map(|m| pos(&m.id)).max().unwrap_or(0);
            let current = store
                .get_memory_by_key(scope, &Namespace::root(), key, None)
                .unwrap_or_else(|e| panic!("current version of memory key {key}: {e}"));
            assert!(
                pos(&current.id) >= newest_acked,
                "memory key {key}: current version {} is older than acknowledged {}",
                current.id,
                history[newest_acked].id
            );
            // The vector index agrees with the table: the current version is found by its
            // own vector, through the index, as the nearest memory.
            let hits = store
                .search(
                    scope,
                    agentstore::SearchRequest {
                        targets: vec![agentstore::search::Target::Memory],
                        limit: 1,
                        ..agentstore::SearchRequest::vector(memory_vector(&current.content))
                    },
                )
                .unwrap_or_else(|e| panic!("vector search for memory key {key}: {e}"));
            assert_eq!(
                hits.first().map(|h| h.id.as_str()),
                Some(current.id.as_str()),
                "memory key {key}: the vector index does not find the current version"
            );
        }

        for (key, version) in &self.kv {
            let e = store
                .kv_get(scope, key)
                .unwrap_or_else(|e| panic!("read KV key {key}: {e}"))
                .unwrap_or_else(|| panic!("acknowledged KV key {key} is missing"));
            assert!(
                e.version >= *version,
                "KV key {key} is at version {}, acknowledged {version}",
                e.version
            );
        }

        let report = store
            .verify()
            .unwrap_or_else(|e| panic!("verify failed to run: {e}"));
        assert!(report.ok(), "verify found problems: {report:?}");

        CheckSummary {
            events: total,
            acked_events: self.acked_events(),
            acked_memories: self.memories.len(),
            acked_kv_keys: self.kv.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_lines_round_trip() {
        for ack in [
            Ack::Ready {
                run: "r1".into(),
                last_seq: 0,
            },
            Ack::Events {
                batch: 3,
                first_seq: 10,
                last_seq: 19,
                last_event_id: "0190abc".into(),
            },
            Ack::Memory {
                key: memory_key(2),
                content_hash: "ab".repeat(32),
                id: "m1".into(),
            },
            Ack::Kv {
                key: kv_key(1),
                version: 7,
            },
        ] {
            assert_eq!(Ack::parse(&ack.to_string()), Ok(ack));
        }
    }

    #[test]
    fn malformed_lines_are_rejected() {
        for line in [
            "",
            "ACK 1 2",
            "ACK x 1 2 id",
            "READY r",
            "HELLO 1",
            "ACKK k v",
        ] {
            assert!(Ack::parse(line).is_err(), "{line:?} parsed");
        }
    }
}
