//! The agentstore side of each workload, through the public `Store` API, and what both
//! sides share: contents, the timed loop, sizes on disk.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use agentstore::backend::EventQuery;
use agentstore::{NewEvent, NewMemory, NewSession, Scope, Store};
use agentstore_sqlite::{Durability, OpenOptions};
use anyhow::{Context, Result, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Cell, Sizes};

/// Tenant both sides write under.
pub const TENANT: &str = "bench";
const SESSION: &str = "s1";

/// Operations done and the time they took.
#[derive(Clone, Copy, Debug)]
pub struct Measure {
    /// Operations (events, upserts, reads) completed.
    pub ops: u64,
    /// Seconds.
    pub secs: f64,
}

impl Measure {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-9)
    }
}

/// Calls `step` (which returns the operations it did) `iters` times, stopping early once
/// `cap` has passed, so a slow disk bounds the run's length rather than its accuracy.
pub fn run_loop(
    iters: usize,
    cap: Duration,
    mut step: impl FnMut() -> Result<u64>,
) -> Result<Measure> {
    let started = Instant::now();
    let mut ops = 0;
    for _ in 0..iters {
        ops += step()?;
        if started.elapsed() >= cap {
            break;
        }
    }
    Ok(Measure {
        ops,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// A chat-message-sized event content (about 200 bytes), unique per `i`.
pub fn event_content(i: u64) -> String {
    format!(
        "message {i}: the user asked the agent to summarise the quarterly report, compare \
         it with last year's figures and draft a short note for the team with the three \
         most important changes and a suggested next step."
    )
}

/// An event content of `len` bytes for the backup store.
pub fn backup_content(i: u64, len: usize) -> String {
    let mut s = format!("event {i} ");
    while s.len() < len {
        s.push_str("lorem ipsum dolor sit amet ");
    }
    s.truncate(len);
    s
}

/// A memory key out of a key space; drawing keys at random from a space half the size of
/// the run mixes new keys with updates of existing ones.
pub fn memory_key(i: usize) -> String {
    format!("pref-{i}")
}

/// Memory content unique per upsert, so an existing key gets a new version.
pub fn memory_content(i: u64, key: &str) -> String {
    format!("{key} (revision {i}): prefers concise answers with code samples in Rust")
}

/// Microseconds since the epoch, as agentstore stores times.
pub fn micros_now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Bytes of a SQLite database and its WAL.
pub fn db_bytes(db: &Path) -> Result<u64> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    Ok(size(db) + size(Path::new(&wal)))
}

/// The subject whose records the `--encrypted` run writes.
pub const SUBJECT: &str = "bench-subject";

/// A new store with the benchmark's tenant and session. With `s.encrypted` the store has
/// a master key and the session (and every memory) belongs to a subject, so that every
/// event and memory text is sealed under the subject's data key.
fn open(dir: &Path, d: Durability, s: &Sizes) -> Result<(Store, Scope)> {
    let mut opts = OpenOptions::new(dir.join("data")).create().durability(d);
    if s.encrypted {
        opts.master_key = Some(agentstore_sqlite::MasterKeySource::Key(
            agentstore_sqlite::MasterKey::generate(),
        ));
    }
    let store = agentstore_sqlite::open(&opts).context("open the store")?;
    store.create_tenant("bench", TENANT, "Benchmark")?;
    let scope = Scope::new(TENANT, "bench");
    let subject = if s.encrypted {
        let mut n = agentstore::NewSubject::new("bench@example.com");
        n.id = Some(SUBJECT.into());
        n.consent = true;
        Some(store.create_subject(&scope, n)?.id)
    } else {
        None
    };
    store.create_session(
        &scope,
        NewSession {
            id: Some(SESSION.into()),
            subject_id: subject,
            ..NewSession::new("bench")
        },
    )?;
    Ok((store, scope))
}

fn append(
    store: &Store,
    scope: &Scope,
    batch: usize,
    iters: usize,
    cap: Duration,
    content: impl Fn(u64) -> String,
) -> Result<(Measure, Vec<String>)> {
    let mut next = 0u64;
    let mut ids = Vec::new();
    let m = run_loop(iters, cap, || {
        let written = if batch == 1 {
            next += 1;
            let e = NewEvent::message("user", content(next));
            vec![store.append_event(scope, SESSION, e)?]
        } else {
            let events = (0..batch)
                .map(|_| {
                    next += 1;
                    NewEvent::message("user", content(next))
                })
                .collect();
            store.append_events(scope, SESSION, events)?
        };
        ensure!(
            written.len() == batch
                && written.windows(2).all(|w| w[1].seq == w[0].seq + 1)
                && written.last().is_some_and(|e| e.seq == next as i64),
            "append returned the wrong seqs"
        );
        ids.extend(written.into_iter().map(|e| e.id));
        Ok(batch as u64)
    })?;
    Ok((m, ids))
}

/// Event appends, `batch` per call (`append_event` for 1, `append_events` otherwise).
pub fn event_append(
    dir: &Path,
    d: Durability,
    batch: usize,
    iters: usize,
    s: &Sizes,
) -> Result<Cell> {
    let (store, scope) = open(dir, d, s)?;
    let (m, _) = append(&store, &scope, batch, iters, s.cap, event_content)?;
    Ok(Cell::rate(m))
}

/// Memory upserts by key (`remember` for 1, `remember_many` otherwise).
pub fn memory_upsert(
    dir: &Path,
    d: Durability,
    batch: usize,
    iters: usize,
    s: &Sizes,
    rng: &mut StdRng,
) -> Result<Cell> {
    let (store, scope) = open(dir, d, s)?;
    let key_space = (iters * batch / 2).max(1);
    let mut i = 0u64;
    let m = run_loop(iters, s.cap, || {
        let memories: Vec<NewMemory> = (0..batch)
            .map(|_| {
                i += 1;
                let key = memory_key(rng.random_range(0..key_space));
                NewMemory {
                    key: Some(key.clone()),
                    subject_id: s.encrypted.then(|| SUBJECT.to_owned()),
                    ..NewMemory::new(memory_content(i, &key))
                }
            })
            .collect();
        let done = if batch == 1 {
            let m = memories.into_iter().next().context("one memory")?;
            store.remember(&scope, m).map(|_| 1)?
        } else {
            store.remember_many(&scope, memories)?.len()
        };
        ensure!(done == batch, "{done} of {batch} upserts reported");
        Ok(batch as u64)
    })?;
    Ok(Cell::rate(m))
}

/// A store holding `s.read_pool` events (rounded up to whole batches of 1,000) and their
/// ids, for the point-read rows.
fn read_pool(dir: &Path, s: &Sizes) -> Result<(Store, Scope, Vec<String>)> {
    let (store, scope) = open(dir, Durability::Normal, s)?;
    let (_, ids) = append(
        &store,
        &scope,
        1000,
        s.read_pool.div_ceil(1000),
        Duration::MAX,
        event_content,
    )?;
    Ok((store, scope, ids))
}

fn read_one(store: &Store, scope: &Scope, ids: &[String], rng: &mut StdRng) -> Result<u64> {
    let id = &ids[rng.random_range(0..ids.len())];
    let e = store.get_event(scope, id)?;
    ensure!(&e.id == id, "asked for {id}, got {}", e.id);
    Ok(1)
}

/// Point reads of random events by id, through the pool of read connections.
pub fn point_reads(dir: &Path, s: &Sizes, rng: &mut StdRng) -> Result<Cell> {
    let (store, scope, ids) = read_pool(dir, s)?;
    let m = run_loop(s.reads, s.cap, || read_one(&store, &scope, &ids, rng))?;
    Ok(Cell::rate(m))
}

/// `s.reads` point reads split over `threads` threads that share one `Store` (each holds
/// a clone, as the handles of a multi-threaded application would), so they contend for
/// its pool of read connections.
pub fn point_reads_threaded(
    dir: &Path,
    s: &Sizes,
    threads: usize,
    rng: &mut StdRng,
) -> Result<Cell> {
    let (store, scope, ids) = read_pool(dir, s)?;
    let m = run_threads(
        threads,
        s.reads,
        s.cap,
        rng,
        || Ok(store.clone()),
        |store, rng| read_one(store, &scope, &ids, rng),
    )?;
    Ok(Cell::rate(m))
}

/// Runs `total` iterations of `step` split over `threads` OS threads and measures them
/// together: operations of all threads over the wall time from their common start to the
/// last one's end. Each thread first builds its own state with `setup` (a connection, a
/// store handle), outside the timed part; a barrier then starts all of them at once.
/// Each thread draws from its own generator, seeded in turn from `rng`, so both sides of
/// a row read the same ids. Each thread stops early at `cap`, like `run_loop`.
pub fn run_threads<S>(
    threads: usize,
    total: usize,
    cap: Duration,
    rng: &mut StdRng,
    setup: impl Fn() -> Result<S> + Sync,
    step: impl Fn(&mut S, &mut StdRng) -> Result<u64> + Sync,
) -> Result<Measure> {
    let threads = threads.max(1);
    let rngs: Vec<StdRng> = (0..threads).map(|_| StdRng::from_rng(&mut *rng)).collect();
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|sc| {
        let handles: Vec<_> = rngs
            .into_iter()
            .enumerate()
            .map(|(t, mut rng)| {
                let iters = total / threads + usize::from(t < total % threads);
                let (setup, step, barrier) = (&setup, &step, &barrier);
                sc.spawn(move || {
                    // A setup that fails or panics must still reach the barrier, or the
                    // other threads and the timer would wait for it forever.
                    let state = catch_unwind(AssertUnwindSafe(setup));
                    barrier.wait();
                    let mut state = match state {
                        Ok(s) => s?,
                        Err(p) => resume_unwind(p),
                    };
                    run_loop(iters, cap, || step(&mut state, &mut rng))
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let mut ops = 0;
        for h in handles {
            match h.join() {
                Ok(m) => ops += m?.ops,
                // Re-raised so `measure` reports it like a panic of a one-thread side.
                Err(p) => resume_unwind(p),
            }
        }
        Ok(Measure {
            ops,
            secs: started.elapsed().as_secs_f64(),
        })
    })
}

/// Pages of 100 over one session, start to end, several times.
pub fn list_session(dir: &Path, s: &Sizes) -> Result<Cell> {
    let (store, scope) = open(dir, Durability::Normal, s)?;
    let batches = s.list_session.div_ceil(1000);
    append(&store, &scope, 1000, batches, Duration::MAX, event_content)?;
    let total = batches * 1000;
    let mut pages = 0u64;
    let m = run_loop(s.list_passes, s.cap, || {
        let mut after = None;
        let mut seen = 0;
        loop {
            let page = store.list_events(
                &scope,
                EventQuery {
                    session_id: SESSION.into(),
                    after_seq: after,
                    limit: 100,
                    ..Default::default()
                },
            )?;
            pages += 1;
            seen += page.items.len();
            match page.items.last() {
                Some(last) if page.items.len() == 100 => after = Some(last.seq),
                _ => break,
            }
        }
        ensure!(seen == total, "listed {seen} of {total} events");
        Ok(seen as u64)
    })?;
    Ok(Cell::listing(m, pages))
}

/// Builds a store of at least `s.backup_bytes` by batched appends, then times
/// `Store::backup`. Returns the cell and the database size, which the bare side matches.
pub fn backup(dir: &Path, s: &Sizes) -> Result<(Cell, u64)> {
    let (store, scope) = open(dir, Durability::Normal, s)?;
    let db = dir.join("data").join("agentstore.db");
    let mut next = 0u64;
    while db_bytes(&db)? < s.backup_bytes {
        let events = (0..1000)
            .map(|_| {
                next += 1;
                NewEvent::message("user", backup_content(next, s.backup_event_bytes))
            })
            .collect();
        store.append_events(&scope, SESSION, events)?;
    }
    let size = db_bytes(&db)?;
    let out = dir.join("backup");
    let started = Instant::now();
    let manifest = store.backup(&out)?;
    let secs = started.elapsed().as_secs_f64();
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    ensure!(bytes > 0, "the backup manifest lists no bytes");
    Ok((Cell::backup(secs, bytes), size))
}
