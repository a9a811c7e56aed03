//! The ceiling: a bare rusqlite loop doing the same inserts and reads on tables of the
//! same shape, with the same pragmas, and nothing else (no validation, no audit row, no
//! secondary indexes, no seq lookup).

use std::path::Path;
use std::time::{Duration, Instant};

use agentstore::codec::{new_id, sha256_hex};
use agentstore_sqlite::Durability;
use anyhow::{Context, Result, ensure};
use rand::Rng;
use rand::rngs::StdRng;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::workloads::{
    Measure, TENANT, backup_content, db_bytes, event_content, memory_content, memory_key,
    micros_now, run_loop, run_threads,
};
use crate::{Cell, Sizes};

/// The events table of migration 0001 without its foreign key and trigger: the same
/// columns and the two uniqueness constraints the data model needs.
const EVENTS_DDL: &str = "CREATE TABLE events (
    rid INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, id TEXT NOT NULL,
    session_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, role TEXT,
    content TEXT, tool_name TEXT, parameters TEXT, result TEXT, success INTEGER,
    duration_ms INTEGER, tokens INTEGER, cost REAL, metadata TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    UNIQUE (tenant_id, id), UNIQUE (tenant_id, session_id, seq))";

/// The memories table of migration 0001 without foreign keys, with its two uniqueness
/// constraints (ids; one current version per key) and none of migration 0002's indexes.
const MEMORIES_DDL: &str = "CREATE TABLE memories (
    rid INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, id TEXT NOT NULL,
    namespace TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL, key TEXT, content TEXT NOT NULL,
    summary TEXT, tier TEXT NOT NULL, importance REAL NOT NULL, confidence REAL NOT NULL,
    success_rate REAL, pinned INTEGER NOT NULL DEFAULT 0, priority INTEGER NOT NULL DEFAULT 0,
    topic TEXT, domain TEXT, tags TEXT NOT NULL DEFAULT '[]',
    source_sessions TEXT NOT NULL DEFAULT '[]', source_events TEXT NOT NULL DEFAULT '[]',
    subject_id TEXT, agent_id TEXT, access_count INTEGER NOT NULL DEFAULT 0,
    last_accessed_at INTEGER, token_count INTEGER NOT NULL DEFAULT 0,
    content_hash TEXT NOT NULL, valid_from INTEGER NOT NULL, valid_to INTEGER,
    superseded_by TEXT, expires_at INTEGER, metadata TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    UNIQUE (tenant_id, id));
CREATE UNIQUE INDEX memories_current_key
    ON memories (tenant_id, namespace, key) WHERE key IS NOT NULL AND valid_to IS NULL";

const INSERT_EVENT: &str = "INSERT INTO events
    (tenant_id, id, session_id, seq, kind, role, content, metadata, created_at)
    VALUES (?1, ?2, ?3, ?4, 'message', 'user', ?5, '{}', ?6)";

/// A connection to the database in `dir` with the pragmas agentstore sets on every
/// connection.
fn connect(dir: &Path, durability: Durability) -> Result<Connection> {
    let conn = Connection::open(dir.join("bare.db")).context("open the bare database")?;
    conn.execute_batch(&agentstore_sqlite::pragmas(durability))?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// A database in `dir` with the pragmas agentstore sets on every connection and both tables.
fn open(dir: &Path, durability: Durability) -> Result<Connection> {
    let conn = connect(dir, durability)?;
    conn.execute_batch(EVENTS_DDL)?;
    conn.execute_batch(MEMORIES_DDL)?;
    Ok(conn)
}

fn insert_event(c: &Connection, session: &str, seq: i64, content: &str) -> Result<()> {
    c.prepare_cached(INSERT_EVENT)?.execute(params![
        TENANT,
        new_id(),
        session,
        seq,
        content,
        micros_now()
    ])?;
    Ok(())
}

/// Appends `batch` events per transaction, `iters` times or until the time cap.
fn append(
    c: &mut Connection,
    session: &str,
    batch: usize,
    iters: usize,
    cap: Duration,
    content: impl Fn(i64) -> String,
) -> Result<Measure> {
    let mut seq = 0i64;
    run_loop(iters, cap, || {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for _ in 0..batch {
            seq += 1;
            insert_event(&tx, session, seq, &content(seq))?;
        }
        tx.commit()?;
        Ok(batch as u64)
    })
}

/// Event appends, `batch` per transaction.
pub fn event_append(
    dir: &Path,
    d: Durability,
    batch: usize,
    iters: usize,
    s: &Sizes,
) -> Result<Cell> {
    let mut c = open(dir, d)?;
    let m = append(&mut c, "s1", batch, iters, s.cap, |seq| {
        event_content(seq as u64)
    })?;
    let n: i64 = c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
    ensure!(n as u64 == m.ops, "{} events written, {n} stored", m.ops);
    Ok(Cell::rate(m))
}

/// Memory upserts by key: close the current version of the key, insert the new one.
pub fn memory_upsert(
    dir: &Path,
    d: Durability,
    batch: usize,
    iters: usize,
    s: &Sizes,
    rng: &mut StdRng,
) -> Result<Cell> {
    let mut c = open(dir, d)?;
    let key_space = (iters * batch / 2).max(1);
    let mut i = 0u64;
    let m = run_loop(iters, s.cap, || {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for _ in 0..batch {
            i += 1;
            let key = memory_key(rng.random_range(0..key_space));
            let content = memory_content(i, &key);
            let id = new_id();
            let at = micros_now();
            tx.prepare_cached(
                "UPDATE memories SET valid_to = ?1, superseded_by = ?2, updated_at = ?1
                 WHERE tenant_id = ?3 AND namespace = '' AND key = ?4 AND valid_to IS NULL",
            )?
            .execute(params![at, id, TENANT, key])?;
            tx.prepare_cached(
                "INSERT INTO memories (tenant_id, id, namespace, kind, key, content, tier,
                     importance, confidence, token_count, content_hash, valid_from,
                     metadata, created_at, updated_at)
                 VALUES (?1, ?2, '', 'fact', ?3, ?4, 'long', 0.5, 1.0, ?5, ?6, ?7, '{}', ?7, ?7)",
            )?
            .execute(params![
                TENANT,
                id,
                key,
                content,
                (content.len() / 4) as i64,
                sha256_hex(content.as_bytes()),
                at
            ])?;
        }
        tx.commit()?;
        Ok(batch as u64)
    })?;
    let n: i64 = c.query_row("SELECT COUNT(*) FROM memories", [], |r| r.get(0))?;
    ensure!(n as u64 == m.ops, "{} memories written, {n} stored", m.ops);
    Ok(Cell::rate(m))
}

type EventRow = (
    String,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
);

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

const EVENT_COLUMNS: &str = "id, session_id, seq, kind, role, content, metadata, created_at";

/// A database holding `s.read_pool` events (rounded up to whole batches of 1,000), the
/// connection that wrote them and their ids, for the point-read rows.
fn read_pool(dir: &Path, s: &Sizes) -> Result<(Connection, Vec<String>)> {
    let mut c = open(dir, Durability::Normal)?;
    append(
        &mut c,
        "s1",
        1000,
        s.read_pool.div_ceil(1000),
        Duration::MAX,
        |seq| event_content(seq as u64),
    )?;
    let ids: Vec<String> = c
        .prepare("SELECT id FROM events")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((c, ids))
}

fn event_by_id() -> String {
    format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ?1 AND id = ?2")
}

fn read_one(c: &Connection, sql: &str, ids: &[String], rng: &mut StdRng) -> Result<u64> {
    let id = &ids[rng.random_range(0..ids.len())];
    let row = c
        .prepare_cached(sql)?
        .query_row(params![TENANT, id], event_row)
        .optional()?;
    ensure!(row.is_some_and(|r| &r.0 == id), "event {id} not found");
    Ok(1)
}

/// Point reads of random events by id.
pub fn point_reads(dir: &Path, s: &Sizes, rng: &mut StdRng) -> Result<Cell> {
    let (c, ids) = read_pool(dir, s)?;
    let sql = event_by_id();
    let m = run_loop(s.reads, s.cap, || read_one(&c, &sql, &ids, rng))?;
    Ok(Cell::rate(m))
}

/// `s.reads` point reads split over `threads` threads, each on its own connection.
pub fn point_reads_threaded(
    dir: &Path,
    s: &Sizes,
    threads: usize,
    rng: &mut StdRng,
) -> Result<Cell> {
    // The writing connection stays open meanwhile, as agentstore's writer does.
    let (_writer, ids) = read_pool(dir, s)?;
    let sql = event_by_id();
    let m = run_threads(
        threads,
        s.reads,
        s.cap,
        rng,
        || connect(dir, Durability::Normal),
        |c, rng| read_one(c, &sql, &ids, rng),
    )?;
    Ok(Cell::rate(m))
}

/// Pages of 100 over one session, start to end, several times.
pub fn list_session(dir: &Path, s: &Sizes) -> Result<Cell> {
    let mut c = open(dir, Durability::Normal)?;
    append(
        &mut c,
        "s1",
        1000,
        s.list_session.div_ceil(1000),
        Duration::MAX,
        |seq| event_content(seq as u64),
    )?;
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events
         WHERE tenant_id = ?1 AND session_id = ?2 AND seq > ?3 ORDER BY seq LIMIT 100"
    );
    let total = s.list_session.div_ceil(1000) * 1000;
    let mut pages = 0u64;
    let m = run_loop(s.list_passes, s.cap, || {
        let mut after = 0i64;
        let mut seen = 0;
        loop {
            let page: Vec<EventRow> = c
                .prepare_cached(&sql)?
                .query_map(params![TENANT, "s1", after], event_row)?
                .collect::<rusqlite::Result<_>>()?;
            pages += 1;
            seen += page.len();
            match page.last() {
                Some(last) if page.len() == 100 => after = last.2,
                _ => break,
            }
        }
        ensure!(seen == total, "listed {seen} of {total} events");
        Ok(seen as u64)
    })?;
    Ok(Cell::listing(m, pages))
}

/// Online backup (sqlite3_backup, all pages in one step) of a database of at least
/// `min_bytes`.
pub fn backup(dir: &Path, s: &Sizes, min_bytes: u64) -> Result<Cell> {
    let mut c = open(dir, Durability::Normal)?;
    let db = dir.join("bare.db");
    let mut seq = 0i64;
    while db_bytes(&db)? < min_bytes {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for _ in 0..1000 {
            seq += 1;
            insert_event(
                &tx,
                "s1",
                seq,
                &backup_content(seq as u64, s.backup_event_bytes),
            )?;
        }
        tx.commit()?;
    }
    let out = dir.join("bare-backup.db");
    let started = Instant::now();
    {
        let mut dst = Connection::open(&out)?;
        let b = rusqlite::backup::Backup::new(&c, &mut dst)?;
        // Nothing else has the database open, so the one step copies everything; Busy
        // or Locked would mean another process, and is waited out.
        while b.step(-1)? != rusqlite::backup::StepResult::Done {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&out)?.len();
    Ok(Cell::backup(secs, bytes))
}
