//! The agentstore side of each workload, through the public `Store` API, and what both
//! sides share: sizes, contents, the timed loop, sizes on disk. The `_on` variants take a
//! store of any backend (the PostgreSQL benchmark runs them on PostgreSQL); the others
//! open a fresh SQLite store in a directory, as the foundation benchmark does.

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

/// How much work each workload does.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Single-event appends (one transaction each).
    pub single: usize,
    /// Batches of 1,000 events.
    pub batched: usize,
    /// Single memory upserts.
    pub memory_single: usize,
    /// Batches of 100 memory upserts.
    pub memory_batched: usize,
    /// Events in the store point reads draw from.
    pub read_pool: usize,
    /// Point reads.
    pub reads: usize,
    /// Events in the listed session.
    pub list_session: usize,
    /// Passes over the listed session.
    pub list_passes: usize,
    /// Minimum database size for the backup.
    pub backup_bytes: u64,
    /// Content bytes of each event in the backup store.
    pub backup_event_bytes: usize,
    /// Time after which a workload stops early and reports what it did.
    pub cap: Duration,
    /// Field encryption on, every record belonging to a subject (`--encrypted`).
    pub encrypted: bool,
}

impl Sizes {
    /// The foundation benchmark's sizes, operation counts and time caps times `scale`.
    pub fn full(scale: f64) -> Sizes {
        let n = |x: usize| ((x as f64 * scale).round() as usize).max(1);
        Sizes {
            single: n(20_000),
            batched: n(500),
            memory_single: n(10_000),
            memory_batched: n(500),
            read_pool: n(100_000),
            reads: n(500_000),
            list_session: 10_000,
            list_passes: n(100),
            backup_bytes: (256.0 * scale * (1u64 << 20) as f64) as u64,
            backup_event_bytes: 1_000,
            cap: Duration::from_secs_f64(10.0 * scale),
            encrypted: false,
        }
    }

    /// Tiny sizes (`--smoke`): every workload runs and checks its result.
    pub fn smoke() -> Sizes {
        Sizes {
            single: 20,
            batched: 3,
            memory_single: 20,
            memory_batched: 3,
            read_pool: 2_000,
            reads: 2_000,
            list_session: 2_000,
            list_passes: 2,
            backup_bytes: 2 << 20,
            backup_event_bytes: 1_000,
            cap: Duration::from_secs(2),
            encrypted: false,
        }
    }
}

/// One side's result in one row.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Operations per second, or seconds per GB for the backup.
    pub value: f64,
    /// Extra detail shown beside the value.
    pub note: Option<String>,
}

impl Cell {
    /// Operations per second.
    pub fn rate(m: Measure) -> Cell {
        Cell {
            value: m.rate(),
            note: None,
        }
    }

    /// Events per second, with the time per page of `pages`.
    pub fn listing(m: Measure, pages: u64) -> Cell {
        Cell {
            value: m.rate(),
            note: Some(format!("{:.3} ms/page", m.secs * 1e3 / pages.max(1) as f64)),
        }
    }

    /// Seconds per GB (10^9 bytes) for a backup of `bytes` that took `secs`.
    pub fn backup(secs: f64, bytes: u64) -> Cell {
        Cell {
            value: secs / (bytes.max(1) as f64 / 1e9),
            note: Some(format!("{} MB in {secs:.2} s", bytes / 1_000_000)),
        }
    }
}

/// The cell of median value (the upper one of an even count).
pub fn median(mut cells: Vec<Cell>) -> Cell {
    cells.sort_by(|a, b| a.value.total_cmp(&b.value));
    cells.swap_remove(cells.len() / 2)
}

/// Runs one side of one workload in a fresh directory (removed afterwards), turning an
/// error or a panic into the message shown in its cell.
pub fn measure(
    root: &Path,
    label: &str,
    f: &mut impl FnMut(&Path) -> Result<Cell>,
) -> Result<Cell, String> {
    eprint!("  {label} ... ");
    let started = Instant::now();
    let out = tempfile::Builder::new()
        .prefix("agentstore-bench-")
        .tempdir_in(root)
        .map_err(|e| format!("temp dir in {}: {e}", root.display()))
        .and_then(
            |dir| match catch_unwind(AssertUnwindSafe(|| f(dir.path()))) {
                Ok(Ok(c)) => Ok(c),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(p) => Err(p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .map_or_else(|| "panic".into(), |m| format!("panic: {m}"))),
            },
        );
    match &out {
        Ok(_) => eprintln!("{:.1} s", started.elapsed().as_secs_f64()),
        Err(e) => eprintln!("failed: {e}"),
    }
    out
}

/// Seed of every random choice (keys, ids to read), so reruns do the same work.
pub const SEED: u64 = 20_240_601;
/// Threads of the multi-threaded point-read row: the benchmark machine has 2 cores, and
/// more threads than cores would measure the scheduler rather than the store.
pub const READ_THREADS: usize = 2;

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

/// A new SQLite store in `dir` with the benchmark's tenant and session. With
/// `s.encrypted` the store has a master key and the session (and every memory) belongs
/// to a subject, so that every event and memory text is sealed under the subject's data
/// key.
fn open(dir: &Path, d: Durability, s: &Sizes) -> Result<(Store, Scope)> {
    let mut opts = OpenOptions::new(dir.join("data")).create().durability(d);
    if s.encrypted {
        opts.master_key = Some(agentstore_sqlite::MasterKeySource::Key(
            agentstore_sqlite::MasterKey::generate(),
        ));
    }
    let store = agentstore_sqlite::open(&opts).context("open the store")?;
    let scope = prepare(&store, s)?;
    Ok((store, scope))
}

/// Creates the benchmark's tenant and session (and with `s.encrypted` its subject) in a
/// new, empty store of any backend; the scope the workloads write under.
pub fn prepare(store: &Store, s: &Sizes) -> Result<Scope> {
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
    Ok(scope)
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
    event_append_on(&store, &scope, batch, iters, s)
}

/// [`event_append`] on a store of any backend, prepared by [`prepare`].
pub fn event_append_on(
    store: &Store,
    scope: &Scope,
    batch: usize,
    iters: usize,
    s: &Sizes,
) -> Result<Cell> {
    let (m, _) = append(store, scope, batch, iters, s.cap, event_content)?;
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
    memory_upsert_on(&store, &scope, batch, iters, s, rng)
}

/// [`memory_upsert`] on a store of any backend, prepared by [`prepare`].
pub fn memory_upsert_on(
    store: &Store,
    scope: &Scope,
    batch: usize,
    iters: usize,
    s: &Sizes,
    rng: &mut StdRng,
) -> Result<Cell> {
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
            store.remember(scope, m).map(|_| 1)?
        } else {
            store.remember_many(scope, memories)?.len()
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
    let ids = fill_read_pool(&store, &scope, s)?;
    Ok((store, scope, ids))
}

/// Appends the point-read rows' `s.read_pool` events (rounded up to whole batches of
/// 1,000) to a store prepared by [`prepare`]; their ids.
pub fn fill_read_pool(store: &Store, scope: &Scope, s: &Sizes) -> Result<Vec<String>> {
    let (_, ids) = append(
        store,
        scope,
        1000,
        s.read_pool.div_ceil(1000),
        Duration::MAX,
        event_content,
    )?;
    Ok(ids)
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
    point_reads_on(&store, &scope, &ids, s, rng)
}

/// [`point_reads`] on a store filled by [`fill_read_pool`], which returned `ids`.
pub fn point_reads_on(
    store: &Store,
    scope: &Scope,
    ids: &[String],
    s: &Sizes,
    rng: &mut StdRng,
) -> Result<Cell> {
    let m = run_loop(s.reads, s.cap, || read_one(store, scope, ids, rng))?;
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
    point_reads_threaded_on(&store, &scope, &ids, s, threads, rng)
}

/// [`point_reads_threaded`] on a store filled by [`fill_read_pool`], which returned `ids`.
pub fn point_reads_threaded_on(
    store: &Store,
    scope: &Scope,
    ids: &[String],
    s: &Sizes,
    threads: usize,
    rng: &mut StdRng,
) -> Result<Cell> {
    let m = run_threads(
        threads,
        s.reads,
        s.cap,
        rng,
        || Ok(store.clone()),
        |store, rng| read_one(store, scope, ids, rng),
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
    list_session_on(&store, &scope, s)
}

/// [`list_session`] on a store of any backend, prepared by [`prepare`].
pub fn list_session_on(store: &Store, scope: &Scope, s: &Sizes) -> Result<Cell> {
    let batches = s.list_session.div_ceil(1000);
    append(store, scope, 1000, batches, Duration::MAX, event_content)?;
    let total = batches * 1000;
    let mut pages = 0u64;
    let m = run_loop(s.list_passes, s.cap, || {
        let mut after = None;
        let mut seen = 0;
        loop {
            let page = store.list_events(
                scope,
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
    let r = backup_sqlite(dir, s)?;
    Ok((Cell::backup(r.secs, r.bytes), r.store_bytes))
}

/// One timed `Store::backup`.
#[derive(Clone, Copy, Debug)]
pub struct BackupRun {
    /// Seconds `Store::backup` took.
    pub secs: f64,
    /// Bytes the backup wrote (its manifest's files).
    pub bytes: u64,
    /// Size of the store it copied.
    pub store_bytes: u64,
    /// Events the store held.
    // Read by the postgres binary (its stores copy the same events), not by this one.
    #[allow(dead_code)]
    pub events: u64,
}

/// [`backup`]'s SQLite store, grown to at least `s.backup_bytes`, and its backup.
pub fn backup_sqlite(dir: &Path, s: &Sizes) -> Result<BackupRun> {
    let (store, scope) = open(dir, Durability::Normal, s)?;
    let db = dir.join("data").join("agentstore.db");
    backup_on(
        &store,
        &scope,
        s,
        &dir.join("backup"),
        |_| Ok(db_bytes(&db)? >= s.backup_bytes),
        || db_bytes(&db),
    )
}

/// [`backup`] on a store of any backend, prepared by [`prepare`]: batches of 1,000
/// events of `s.backup_event_bytes` are appended until `grown(events so far)` says so
/// (a size reached, or the event count of another backend's store, so that two
/// backends copy the same contents), `size` measures the store, and the backup goes to
/// `out`.
pub fn backup_on(
    store: &Store,
    scope: &Scope,
    s: &Sizes,
    out: &Path,
    mut grown: impl FnMut(u64) -> Result<bool>,
    size: impl FnOnce() -> Result<u64>,
) -> Result<BackupRun> {
    let mut next = 0u64;
    while !grown(next)? {
        let events = (0..1000)
            .map(|_| {
                next += 1;
                NewEvent::message("user", backup_content(next, s.backup_event_bytes))
            })
            .collect();
        store.append_events(scope, SESSION, events)?;
    }
    let store_bytes = size()?;
    let started = Instant::now();
    let manifest = store.backup(out)?;
    let secs = started.elapsed().as_secs_f64();
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    ensure!(bytes > 0, "the backup manifest lists no bytes");
    Ok(BackupRun {
        secs,
        bytes,
        store_bytes,
        events: next,
    })
}
