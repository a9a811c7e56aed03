//! `postgres`: the PostgreSQL backend beside the SQLite backend, in one run, through the
//! same public `Store` API.
//!
//! 1. **Foundation workloads** (the foundation benchmark's own code, `workloads.rs`):
//!    event appends single and batched, memory upserts single and batched, point reads
//!    on one and two threads, listing a session, backup. Writes run on SQLite at
//!    `synchronous=FULL` and `NORMAL` and on PostgreSQL with `synchronous_commit=on` in a
//!    cluster of this run's own with fsync on; reads and the backup on SQLite and
//!    PostgreSQL. Every measurement gets a fresh store (a directory, a database); the
//!    sides alternate `--repeat` times and each reports its median.
//! 2. **Retrieval**: the corpus of `hybrid_speed` (SciFact sentences shuffled into
//!    documents, synthetic 384-d clustered vectors) in one store per backend; keyword,
//!    vector (our in-memory HNSW against pgvector's HNSW) and hybrid search latency
//!    p50/p99, exact vector search, and recall@10 of the approximate vector search
//!    against the exact one on each backend.
//!
//! Writes `bench/results/postgres.md`. `--services` instead starts the same durable
//! cluster and a Redis for `bench/postgres-load.sh` and holds them until stdin closes.
//! See bench/README.md.

#[path = "../corpus.rs"]
mod corpus;
#[allow(dead_code)] // the quality benchmark's loaders; this one reads only SciFact
#[path = "retrieval_quality/data.rs"]
mod data;
#[path = "../provenance.rs"]
mod provenance;
#[path = "../report.rs"]
mod report;
// The foundation benchmark's workloads; the bare-loop helpers and the `--encrypted`
// subject are the foundation binary's alone.
#[allow(dead_code)]
#[path = "../workloads.rs"]
mod workloads;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentstore::search::{HitRecord, SearchMode};
use agentstore::{Scope, SearchHit, SearchRequest, Store};
use agentstore_postgres::PgOptions;
use agentstore_sqlite::{Durability, KeywordIndexMode, OpenOptions};
use agentstore_testkit::services::{PgCluster, Postgres, Redis};
use anyhow::{Context, Result, bail, ensure};
use rand::SeedableRng;
use rand::rngs::StdRng;

use corpus::{SyntheticEmbedder, pct};
use provenance::*;
use report::{cell_text, num, thousands};
use workloads::{Cell, READ_THREADS, SEED, Sizes, measure, median};

const USAGE: &str = "usage: postgres [--smoke] [--scale N] [--repeat N] [--only SUBSTRING]
                [--part foundation|retrieval] [--chunks N] [--queries N] [--out PATH]
                [--data DIR] [--data-dir DIR] [--pg-set NAME=VALUE]...
       postgres --services [--data-dir DIR] [--pg-set NAME=VALUE]...

  --smoke         tiny sizes (foundation smoke sizes, 2,000 chunks, 20 questions),
                  one pass; a check that everything runs; report to a temp file
  --scale N       the foundation workloads' operation counts and time caps times N
                  (default 0.5: 5 s caps, so the whole run stays near 15 minutes)
  --repeat N      run each side of a foundation row N times, alternating, and
                  report the median (default 3; 1 with --smoke)
  --only SUBSTRING
                  foundation rows whose name contains SUBSTRING only; the report
                  is then written only if --out is given
  --part P        only the foundation or only the retrieval part; the report is then
                  written only if --out is given
  --chunks N      chunks in each retrieval store (default 50000)
  --queries N     SciFact test questions timed per mode (default all 300)
  --out PATH      report (default bench/results/postgres.md)
  --data DIR      the evaluation sets (default: $AGENTSTORE_BENCH_DATA or ../shared/data)
  --data-dir DIR  where the SQLite stores and the PostgreSQL cluster are created
                  (default: the system temp dir); its file system decides what an
                  fsync costs, for both backends alike
  --pg-set NAME=VALUE
                  one more PostgreSQL server setting for the benchmark cluster
                  (repeatable; e.g. shared_buffers=1GB)
  --services      start the durable cluster (one database) and a Redis, print
                  DATABASE_URL=, REDIS_URL=, PG_SETTINGS=, PG_VERSION= lines and READY,
                  and hold them until stdin closes (bench/postgres-load.sh)";

/// bench/postgres-load.sh writes the request-throughput section of the report from this
/// line to the end; rewriting the report keeps that section, so the two harnesses share
/// one results file without either rerunning the other.
const LOAD_MARKER: &str = "<!-- bench/postgres-load.sh writes from here to the end -->";

/// Hits per search, as `hybrid_speed` asks for.
const LIMIT: usize = 10;
/// Tenant and actor of the retrieval stores.
const RETRIEVAL_TENANT: &str = "bench";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Foundation,
    Retrieval,
}

struct Args {
    smoke: bool,
    scale: f64,
    repeat: Option<usize>,
    only: Option<String>,
    part: Option<Part>,
    chunks: usize,
    queries: Option<usize>,
    out: Option<PathBuf>,
    data: PathBuf,
    data_dir: Option<PathBuf>,
    pg_set: Vec<(String, String)>,
    services: bool,
    raw: Vec<String>,
}

fn parse_args() -> Result<Option<Args>> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut a = Args {
        smoke: false,
        scale: 0.5,
        repeat: None,
        only: None,
        part: None,
        chunks: 50_000,
        queries: None,
        out: None,
        data: std::env::var_os("AGENTSTORE_BENCH_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("../shared/data")),
        data_dir: None,
        pg_set: Vec::new(),
        services: false,
        raw: raw.clone(),
    };
    let mut it = raw.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--smoke" => a.smoke = true,
            "--services" => a.services = true,
            "--scale" => {
                let v = value()?;
                a.scale = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .with_context(|| format!("--scale must be a positive number: {v}"))?;
            }
            "--repeat" => {
                let v = value()?;
                a.repeat = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .with_context(|| format!("--repeat must be a positive integer: {v}"))?,
                );
            }
            "--only" => a.only = Some(value()?),
            "--part" => {
                a.part = Some(match value()?.as_str() {
                    "foundation" => Part::Foundation,
                    "retrieval" => Part::Retrieval,
                    other => bail!("--part is foundation or retrieval, not {other}"),
                })
            }
            "--chunks" => a.chunks = value()?.parse().context("--chunks")?,
            "--queries" => a.queries = Some(value()?.parse().context("--queries")?),
            "--out" => a.out = Some(value()?.into()),
            "--data" => a.data = value()?.into(),
            "--data-dir" => a.data_dir = Some(value()?.into()),
            "--pg-set" => {
                let v = value()?;
                let (k, val) = v
                    .split_once('=')
                    .with_context(|| format!("--pg-set wants NAME=VALUE, not {v}"))?;
                a.pg_set.push((k.trim().to_owned(), val.trim().to_owned()));
            }
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other}"),
        }
    }
    if a.smoke {
        a.chunks = a.chunks.min(2_000);
        a.queries = Some(a.queries.unwrap_or(20).min(20));
    }
    Ok(Some(a))
}

// ------------------------------------------------------------------ the cluster

/// The benchmark's cluster: PostgreSQL's durable settings (testkit's
/// [`PgCluster::durable`]) plus `--pg-set`, in the data dir.
fn cluster(args: &Args, root: &Path) -> PgCluster {
    let mut c = PgCluster::durable().dir_in(root);
    for (k, v) in &args.pg_set {
        c = c.setting(k, v);
    }
    c
}

/// A database's name, the last part of its URL.
fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// A client of its own (not the store's pool), for sizes and settings.
fn client(url: &str) -> Result<postgres::Client> {
    postgres::Client::connect(url, postgres::NoTls).context("connect to PostgreSQL")
}

/// One text value of a query without parameters.
fn query_text(url: &str, sql: &str) -> Result<String> {
    Ok(client(url)?.query_one(sql, &[])?.get(0))
}

/// The store's size in bytes: its tables with their indexes and TOAST. Not
/// `pg_database_size`, which also counts the ~7 MB of system catalogs every database
/// has, so that it compares with SQLite's files.
fn pg_size(url: &str) -> Result<u64> {
    let n: i64 = client(url)?
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')",
            &[],
        )?
        .get(0);
    Ok(n as u64)
}

/// The cluster's server version, pgvector's version and the settings that decide what a
/// commit costs and how much the server caches.
fn pg_facts(pg: &Postgres) -> Result<(String, String)> {
    let url = pg.url("postgres");
    let version = query_text(&url, "SELECT version()")?;
    let vector = query_text(
        &url,
        "SELECT coalesce(default_version, '?') FROM pg_available_extensions WHERE name = 'vector'",
    )?;
    let mut settings = Vec::new();
    for name in [
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "wal_sync_method",
        "shared_buffers",
        "max_connections",
    ] {
        settings.push(format!(
            "{name}={}",
            query_text(&url, &format!("SHOW {name}"))?
        ));
    }
    Ok((format!("{version}; pgvector {vector}"), settings.join(", ")))
}

/// A fresh database with a new store in it (schema created, the workloads' tenant and
/// session prepared), handed to `f`, then dropped with the database.
fn with_pg_store<T>(
    pg: &Postgres,
    s: &Sizes,
    f: impl FnOnce(&Store, &Scope, &str) -> Result<T>,
) -> Result<T> {
    let url = pg.create_database();
    let out = (|| {
        let store = agentstore_postgres::open(&PgOptions::new(url.clone()).create())?;
        let scope = workloads::prepare(&store, s)?;
        f(&store, &scope, &url)
    })();
    // The store (and its pool) is gone by now; FORCE ends any connection still closing.
    pg.psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db_name(&url)),
    );
    out
}

// ------------------------------------------------------------------ foundation

/// Which store a measurement runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Sqlite(Durability),
    Postgres,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Sqlite(Durability::Full) => "SQLite FULL",
            Side::Sqlite(Durability::Normal) => "SQLite NORMAL",
            Side::Postgres => "PostgreSQL",
        }
    }
}

const WRITE_SIDES: [Side; 3] = [
    Side::Sqlite(Durability::Full),
    Side::Sqlite(Durability::Normal),
    Side::Postgres,
];
/// Reads and the backup do not depend on the commit durability; the foundation
/// benchmark builds their SQLite stores at `NORMAL`.
const READ_SIDES: [Side; 2] = [Side::Sqlite(Durability::Normal), Side::Postgres];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
    Backup,
}

struct Row {
    workload: String,
    unit: &'static str,
    kind: Kind,
    cells: Vec<(Side, Result<Cell, String>)>,
}

impl Row {
    fn cell(&self, side: Side) -> Option<&Result<Cell, String>> {
        self.cells.iter().find(|(s, _)| *s == side).map(|(_, c)| c)
    }

    /// PostgreSQL's speed over SQLite's at `sqlite` (for the backup: SQLite's seconds
    /// over PostgreSQL's), so above 1 means PostgreSQL is faster everywhere.
    fn ratio(&self, sqlite: Durability) -> Option<f64> {
        let (Some(Ok(p)), Some(Ok(s))) =
            (self.cell(Side::Postgres), self.cell(Side::Sqlite(sqlite)))
        else {
            return None;
        };
        Some(match self.kind {
            Kind::Backup => s.value / p.value,
            Kind::Write | Kind::Read => p.value / s.value,
        })
    }
}

/// Runs every side `repeat` times, alternating sides within each round, so other load
/// on the machine hits all sides alike; each side's median. A side stops at its first
/// failure and reports it.
fn run_sides(
    root: &Path,
    repeat: usize,
    sides: &[Side],
    mut f: impl FnMut(Side, &Path) -> Result<Cell>,
) -> Vec<(Side, Result<Cell, String>)> {
    let mut got: Vec<Result<Vec<Cell>, String>> = sides.iter().map(|_| Ok(Vec::new())).collect();
    for _ in 0..repeat.max(1) {
        for (side, out) in sides.iter().zip(got.iter_mut()) {
            if let Ok(cells) = out {
                match measure(root, side.label(), &mut |dir: &Path| f(*side, dir)) {
                    Ok(c) => cells.push(c),
                    Err(e) => *out = Err(e),
                }
            }
        }
    }
    sides
        .iter()
        .copied()
        .zip(got.into_iter().map(|r| r.map(median)))
        .collect()
}

fn foundation(
    sizes: &Sizes,
    root: &Path,
    repeat: usize,
    pg: &Postgres,
    only: Option<&str>,
) -> (Vec<Row>, Vec<String>) {
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let mut wanted = |name: &str| {
        let yes = only.is_none_or(|o| name.contains(o));
        if !yes {
            skipped.push(name.to_owned());
        }
        yes
    };
    let rng = |k: u64| StdRng::seed_from_u64(SEED + k);

    // The names, keys and seeds of the foundation benchmark's rows, so a row here and
    // there is the same work.
    let appends = [
        ("event append, single (1 per txn)", 1, sizes.single),
        ("event append, batched (1,000 per txn)", 1000, sizes.batched),
    ];
    for (name, batch, iters) in appends {
        if !wanted(name) {
            continue;
        }
        eprintln!("{name}");
        let cells = run_sides(root, repeat, &WRITE_SIDES, |side, dir| match side {
            Side::Sqlite(d) => workloads::event_append(dir, d, batch, iters, sizes),
            Side::Postgres => with_pg_store(pg, sizes, |store, scope, _| {
                workloads::event_append_on(store, scope, batch, iters, sizes)
            }),
        });
        rows.push(Row {
            workload: name.into(),
            unit: "events/s",
            kind: Kind::Write,
            cells,
        });
    }

    let upserts = [
        (
            "memory upsert by key, single (remember)",
            1,
            sizes.memory_single,
        ),
        (
            "memory upsert by key, batched (remember_many of 100)",
            100,
            sizes.memory_batched,
        ),
    ];
    for (k, (name, batch, iters)) in (1..).zip(upserts) {
        if !wanted(name) {
            continue;
        }
        eprintln!("{name}");
        // Every side draws the same keys.
        let cells = run_sides(root, repeat, &WRITE_SIDES, |side, dir| match side {
            Side::Sqlite(d) => workloads::memory_upsert(dir, d, batch, iters, sizes, &mut rng(k)),
            Side::Postgres => with_pg_store(pg, sizes, |store, scope, _| {
                workloads::memory_upsert_on(store, scope, batch, iters, sizes, &mut rng(k))
            }),
        });
        rows.push(Row {
            workload: name.into(),
            unit: "upserts/s",
            kind: Kind::Write,
            cells,
        });
    }

    let pool = thousands((sizes.read_pool.div_ceil(1000) * 1000) as u64);
    let name = format!("point read: get_event by random id ({pool} events)");
    if wanted(&name) {
        eprintln!("{name}");
        let cells = run_sides(root, repeat, &READ_SIDES, |side, dir| match side {
            Side::Sqlite(_) => workloads::point_reads(dir, sizes, &mut rng(10)),
            Side::Postgres => with_pg_store(pg, sizes, |store, scope, _| {
                let ids = workloads::fill_read_pool(store, scope, sizes)?;
                workloads::point_reads_on(store, scope, &ids, sizes, &mut rng(10))
            }),
        });
        rows.push(Row {
            workload: name,
            unit: "reads/s",
            kind: Kind::Read,
            cells,
        });
    }

    let name =
        format!("point read, {READ_THREADS} threads: get_event by random id ({pool} events)");
    if wanted(&name) {
        eprintln!("{name}");
        let cells = run_sides(root, repeat, &READ_SIDES, |side, dir| match side {
            Side::Sqlite(_) => {
                workloads::point_reads_threaded(dir, sizes, READ_THREADS, &mut rng(11))
            }
            Side::Postgres => with_pg_store(pg, sizes, |store, scope, _| {
                let ids = workloads::fill_read_pool(store, scope, sizes)?;
                workloads::point_reads_threaded_on(
                    store,
                    scope,
                    &ids,
                    sizes,
                    READ_THREADS,
                    &mut rng(11),
                )
            }),
        });
        rows.push(Row {
            workload: name,
            unit: "reads/s",
            kind: Kind::Read,
            cells,
        });
    }

    let name = format!(
        "list a session's events, pages of 100 ({} events)",
        thousands((sizes.list_session.div_ceil(1000) * 1000) as u64)
    );
    if wanted(&name) {
        eprintln!("{name}");
        let cells = run_sides(root, repeat, &READ_SIDES, |side, dir| match side {
            Side::Sqlite(_) => workloads::list_session(dir, sizes),
            Side::Postgres => with_pg_store(pg, sizes, |store, scope, _| {
                workloads::list_session_on(store, scope, sizes)
            }),
        });
        rows.push(Row {
            workload: name,
            unit: "events/s",
            kind: Kind::Read,
            cells,
        });
    }

    let name = format!(
        "backup: Store::backup of the events of a {} MiB SQLite store",
        sizes.backup_bytes >> 20
    );
    if wanted(&name) {
        eprintln!("{name}");
        // SQLite's store grows to the foundation benchmark's size; PostgreSQL's then to
        // the same events, so both copy the same contents (SQLite runs first in each
        // round). The formats differ: SQLite copies its pages, PostgreSQL exports JSONL.
        let events = std::cell::Cell::new(0u64);
        let cell = |r: workloads::BackupRun| Cell {
            value: r.secs,
            note: Some(format!(
                "{} events, store {} MB, backup {} MB",
                thousands(r.events),
                r.store_bytes / 1_000_000,
                r.bytes / 1_000_000
            )),
        };
        let cells = run_sides(root, repeat, &READ_SIDES, |side, dir| match side {
            Side::Sqlite(_) => workloads::backup_sqlite(dir, sizes).map(|r| {
                events.set(r.events);
                cell(r)
            }),
            Side::Postgres => with_pg_store(pg, sizes, |store, scope, url| {
                let want = events.get();
                ensure!(want > 0, "the SQLite side did not run");
                workloads::backup_on(
                    store,
                    scope,
                    sizes,
                    &dir.join("backup"),
                    |n| Ok(n >= want),
                    || pg_size(url),
                )
                .map(cell)
            }),
        });
        rows.push(Row {
            workload: name,
            unit: "s",
            kind: Kind::Backup,
            cells,
        });
    }
    (rows, skipped)
}

fn ratio_text(r: Option<f64>) -> String {
    r.map_or("—".into(), |x| format!("{x:.2}×"))
}

fn foundation_tables(rows: &[Row]) -> String {
    let mut t = String::new();
    let writes: Vec<&Row> = rows.iter().filter(|r| r.kind == Kind::Write).collect();
    if !writes.is_empty() {
        t.push_str(
            "| workload | SQLite, synchronous=FULL | SQLite, synchronous=NORMAL | PostgreSQL, \
             synchronous_commit=on | PostgreSQL ÷ SQLite FULL | PostgreSQL ÷ SQLite NORMAL |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        for r in writes {
            let cell = |side| r.cell(side).map_or("—".into(), |c| cell_text(c, r.unit));
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} |",
                r.workload,
                cell(Side::Sqlite(Durability::Full)),
                cell(Side::Sqlite(Durability::Normal)),
                cell(Side::Postgres),
                ratio_text(r.ratio(Durability::Full)),
                ratio_text(r.ratio(Durability::Normal)),
            );
        }
        t.push('\n');
    }
    let reads: Vec<&Row> = rows.iter().filter(|r| r.kind != Kind::Write).collect();
    if !reads.is_empty() {
        t.push_str(
            "| workload | SQLite | PostgreSQL | PostgreSQL ÷ SQLite |\n|---|---:|---:|---:|\n",
        );
        for r in reads {
            let cell = |side| r.cell(side).map_or("—".into(), |c| cell_text(c, r.unit));
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} |",
                r.workload,
                cell(Side::Sqlite(Durability::Normal)),
                cell(Side::Postgres),
                ratio_text(r.ratio(Durability::Normal)),
            );
        }
    }
    t
}

// ------------------------------------------------------------------ retrieval

/// One search configuration's timings and results.
struct Timed {
    lat: Vec<Duration>,
    hits: usize,
    /// Top-`LIMIT` ids per query (for recall).
    ids: Vec<Vec<String>>,
    /// Top-`LIMIT` chunks per query as (document id, position): the same on both
    /// backends, unlike the ids.
    chunks: Vec<Vec<(String, i64)>>,
}

impl Timed {
    fn p(&self, q: f64) -> f64 {
        pct(&self.lat, q)
    }
}

/// Runs every query once with `req(text, vector)`; latencies sorted.
fn time_queries(
    store: &Store,
    scope: &Scope,
    queries: &[(String, Vec<f32>)],
    req: impl Fn(&str, &[f32]) -> SearchRequest,
) -> Result<Timed> {
    let mut t = Timed {
        lat: Vec::with_capacity(queries.len()),
        hits: 0,
        ids: Vec::new(),
        chunks: Vec::new(),
    };
    for (text, vector) in queries {
        let r = req(text, vector);
        let started = Instant::now();
        let hits: Vec<SearchHit> = store.search(scope, r)?;
        t.lat.push(started.elapsed());
        t.hits += hits.len();
        t.ids.push(hits.iter().map(|h| h.id.clone()).collect());
        t.chunks.push(
            hits.iter()
                .filter_map(|h| match &h.record {
                    HitRecord::Chunk(c) => Some((c.document_id.clone(), c.idx)),
                    _ => None,
                })
                .collect(),
        );
    }
    t.lat.sort();
    Ok(t)
}

fn keyword(text: &str, _: &[f32]) -> SearchRequest {
    SearchRequest {
        mode: Some(SearchMode::Keyword),
        limit: LIMIT,
        ..SearchRequest::text(text)
    }
}

fn vector(_: &str, v: &[f32]) -> SearchRequest {
    SearchRequest {
        mode: Some(SearchMode::Vector),
        vector: Some(v.to_vec()),
        limit: LIMIT,
        ..Default::default()
    }
}

fn exact(t: &str, v: &[f32]) -> SearchRequest {
    SearchRequest {
        exact: true,
        ..vector(t, v)
    }
}

fn hybrid(text: &str, v: &[f32]) -> SearchRequest {
    SearchRequest {
        mode: Some(SearchMode::Hybrid),
        vector: Some(v.to_vec()),
        limit: LIMIT,
        ..SearchRequest::text(text)
    }
}

/// Mean share of the exact top-`LIMIT` that the approximate search found.
fn recall(approx: &Timed, exact: &Timed) -> f64 {
    let per: Vec<f64> = approx
        .ids
        .iter()
        .zip(&exact.ids)
        .filter(|(_, e)| !e.is_empty())
        .map(|(a, e)| {
            let a: HashSet<&String> = a.iter().collect();
            e.iter().filter(|id| a.contains(id)).count() as f64 / e.len() as f64
        })
        .collect();
    per.iter().sum::<f64>() / per.len().max(1) as f64
}

/// What one engine (a backend, and on SQLite a keyword engine) measured.
struct Engine {
    name: &'static str,
    vector_first_s: f64,
    keyword_first_s: f64,
    keyword: Timed,
    hybrid: Timed,
    /// Approximate and exact vector search; `None` where the engine shares them with
    /// another (the SQLite keyword index changes keyword search only).
    vector: Option<(Timed, Timed)>,
}

fn run_engine(
    name: &'static str,
    store: &Store,
    scope: &Scope,
    queries: &[(String, Vec<f32>)],
    with_vector: bool,
) -> Result<Engine> {
    // First searches load the vector index (SQLite: snapshot or table) and build the
    // in-memory keyword index where it is on: timed apart from the queries.
    let t = Instant::now();
    store.search(scope, vector("", &queries[0].1))?;
    let vector_first_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    store.search(scope, keyword(&queries[0].0, &[]))?;
    let keyword_first_s = t.elapsed().as_secs_f64();
    let keyword = time_queries(store, scope, queries, keyword)?;
    eprintln!("  {name} keyword: p50 {:.2} ms", keyword.p(0.5));
    let vector = if with_vector {
        let approx = time_queries(store, scope, queries, vector)?;
        eprintln!("  {name} vector: p50 {:.2} ms", approx.p(0.5));
        let ex = time_queries(store, scope, queries, exact)?;
        eprintln!("  {name} vector exact: p50 {:.2} ms", ex.p(0.5));
        Some((approx, ex))
    } else {
        None
    };
    let hybrid = time_queries(store, scope, queries, hybrid)?;
    eprintln!("  {name} hybrid: p50 {:.2} ms", hybrid.p(0.5));
    Ok(Engine {
        name,
        vector_first_s,
        keyword_first_s,
        keyword,
        hybrid,
        vector,
    })
}

struct Retrieval {
    chunks: usize,
    queries: usize,
    sqlite_build_s: f64,
    pg_build_s: f64,
    sqlite_bytes: u64,
    pg_bytes: u64,
    engines: Vec<Engine>,
}

fn open_sqlite(dir: &Path, mode: KeywordIndexMode, create: bool) -> Result<Store> {
    let mut opts = OpenOptions::new(dir);
    if create {
        opts = opts.create();
    }
    opts.keyword_index = mode;
    // The durable setting on both backends; builds commit once per document (about
    // 100 chunks), so it costs the SQLite build little.
    opts.durability = Durability::Full;
    Ok(agentstore_sqlite::open(&opts)?.with_embedder(Arc::new(SyntheticEmbedder::new())))
}

fn open_pg(url: &str, create: bool) -> Result<Store> {
    let o = PgOptions::new(url);
    let o = if create { o.create() } else { o };
    Ok(agentstore_postgres::open(&o)?.with_embedder(Arc::new(SyntheticEmbedder::new())))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

fn retrieval(args: &Args, root: &Path, pg: &Postgres) -> Result<Retrieval> {
    let sf = data::SciFact::load(&args.data.join("scifact"))
        .with_context(|| format!("loading SciFact from {}", args.data.display()))?;
    let sentences = corpus::sentences(&sf);
    let embedder = SyntheticEmbedder::new();
    let queries: Vec<(String, Vec<f32>)> = sf
        .queries
        .iter()
        .take(args.queries.unwrap_or(usize::MAX))
        .map(|q| (q.text.clone(), embedder.vector(&q.text)))
        .collect();
    ensure!(!queries.is_empty(), "no queries");
    let scope = Scope::new(RETRIEVAL_TENANT, "postgres_bench");

    let temp = tempfile::Builder::new()
        .prefix("agentstore-bench-pg-")
        .tempdir_in(root)?;
    let dir = temp.path().join("store");
    eprintln!("retrieval: building {} chunks on SQLite", args.chunks);
    let sqlite_build_s = {
        let store = open_sqlite(&dir, KeywordIndexMode::Off, true)?;
        store.ensure_tenant("postgres_bench", RETRIEVAL_TENANT)?;
        corpus::build(&store, &scope, &sentences, args.chunks)?
    };
    let sqlite_bytes = dir_bytes(&dir);
    eprintln!("retrieval: building {} chunks on PostgreSQL", args.chunks);
    let url = pg.create_database();
    let pg_build_s = {
        let store = open_pg(&url, true)?;
        store.ensure_tenant("postgres_bench", RETRIEVAL_TENANT)?;
        corpus::build(&store, &scope, &sentences, args.chunks)?
    };
    // Fresh planner statistics, as autovacuum would have gathered by the time a real
    // store of this size is searched; the benchmark does not wait for it.
    client(&url)?.batch_execute("ANALYZE")?;
    let pg_bytes = pg_size(&url)?;

    let mut engines = Vec::new();
    for (name, mode, with_vector) in [
        ("SQLite, FTS5", KeywordIndexMode::Off, true),
        ("SQLite, keyword index", KeywordIndexMode::Eager, false),
    ] {
        eprintln!("retrieval: {name}");
        let store = open_sqlite(&dir, mode, false)?;
        engines.push(run_engine(name, &store, &scope, &queries, with_vector)?);
    }
    eprintln!("retrieval: PostgreSQL");
    {
        let store = open_pg(&url, false)?;
        engines.push(run_engine("PostgreSQL", &store, &scope, &queries, true)?);
    }
    pg.psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db_name(&url)),
    );
    Ok(Retrieval {
        chunks: args.chunks,
        queries: queries.len(),
        sqlite_build_s,
        pg_build_s,
        sqlite_bytes,
        pg_bytes,
        engines,
    })
}

fn retrieval_tables(r: &Retrieval) -> String {
    let find = |n: &str| r.engines.iter().find(|e| e.name == n);
    let (Some(fts), Some(ix), Some(pg)) = (
        find("SQLite, FTS5"),
        find("SQLite, keyword index"),
        find("PostgreSQL"),
    ) else {
        return "retrieval engines missing\n".into();
    };
    let (Some((s_vec, s_exact)), Some((p_vec, p_exact))) = (&fts.vector, &pg.vector) else {
        return "vector timings missing\n".into();
    };
    let mut t = String::from(
        "| search (limit 10) | SQLite p50 ms | SQLite p99 ms | PostgreSQL p50 ms | \
         PostgreSQL p99 ms | PostgreSQL ÷ SQLite, p50 latency |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let rows: [(&str, &Timed, &Timed); 6] = [
        (
            "keyword — SQLite: FTS5 BM25; PostgreSQL: tsvector + GIN, ts_rank_cd",
            &fts.keyword,
            &pg.keyword,
        ),
        (
            "keyword — SQLite: in-memory keyword index (BM25, block-max WAND)",
            &ix.keyword,
            &pg.keyword,
        ),
        (
            "vector, HNSW (ef 100) — SQLite: our in-memory index; PostgreSQL: pgvector",
            s_vec,
            p_vec,
        ),
        ("vector, exact (every vector compared)", s_exact, p_exact),
        (
            "hybrid (RRF) — SQLite: FTS5 + our HNSW; PostgreSQL: tsvector + pgvector",
            &fts.hybrid,
            &pg.hybrid,
        ),
        (
            "hybrid (RRF) — SQLite: keyword index + our HNSW",
            &ix.hybrid,
            &pg.hybrid,
        ),
    ];
    for (name, s, p) in rows {
        let _ = writeln!(
            t,
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}× |",
            s.p(0.5),
            s.p(0.99),
            p.p(0.5),
            p.p(0.99),
            p.p(0.5) / s.p(0.5)
        );
    }
    // Both backends' exact searches rank the same vectors, so they should agree; a
    // disagreement would mean the stores differ, not the indexes.
    let (mut same, mut total) = (0usize, 0usize);
    for (a, b) in s_exact.chunks.iter().zip(&p_exact.chunks) {
        let b: HashSet<&(String, i64)> = b.iter().collect();
        same += a.iter().filter(|c| b.contains(c)).count();
        total += a.len();
    }
    let _ = write!(
        t,
        "\n| vector index | recall@10 against exact search, mean over the questions |\n\
         |---|---:|\n\
         | SQLite: our in-memory HNSW (M 16, ef_construction 128), ef 100 | {:.4} |\n\
         | PostgreSQL: pgvector HNSW (m 16, ef_construction 64, its defaults), \
         hnsw.ef_search 100, iterative scan | {:.4} |\n\n\
         The two backends' exact top-10s agree on {same} of {total} chunks (matched by \
         document and position, since chunk ids differ between the stores).\n",
        recall(s_vec, s_exact),
        recall(p_vec, p_exact),
    );
    let _ = writeln!(
        t,
        "\nHits per question (limit 10): keyword {:.1} / {:.1}, vector {:.1} / {:.1}, \
         hybrid {:.1} / {:.1} (SQLite FTS5 / PostgreSQL).",
        fts.keyword.hits as f64 / r.queries as f64,
        pg.keyword.hits as f64 / r.queries as f64,
        s_vec.hits as f64 / r.queries as f64,
        p_vec.hits as f64 / r.queries as f64,
        fts.hybrid.hits as f64 / r.queries as f64,
        pg.hybrid.hits as f64 / r.queries as f64,
    );
    let _ = writeln!(
        t,
        "\nSetup:\n\n\
         - building each store (`put_document` of ~100-chunk documents, chunks keyword-indexed \
         and embedded by the synthetic embedder as they arrive, vectors indexed): SQLite \
         {:.0} s ({} chunks/s), PostgreSQL {:.0} s ({} chunks/s)\n\
         - size after the build: SQLite {} MB (database, WAL and vector index files), \
         PostgreSQL {} MB (tables with their indexes and TOAST)",
        r.sqlite_build_s,
        num(r.chunks as f64 / r.sqlite_build_s),
        r.pg_build_s,
        num(r.chunks as f64 / r.pg_build_s),
        r.sqlite_bytes / 1_000_000,
        r.pg_bytes / 1_000_000,
    );
    for e in &r.engines {
        let _ = writeln!(
            t,
            "- {}: first vector search {:.2} s, first keyword search {:.2} s",
            e.name, e.vector_first_s, e.keyword_first_s
        );
    }
    t
}

// ------------------------------------------------------------------ report and main

/// How the run was set up, for the report.
struct Setup<'a> {
    sizes: &'a Sizes,
    repeat: usize,
    root: &'a Path,
    /// The server's and pgvector's versions; the cluster's settings.
    pg_version: String,
    pg_settings: String,
    /// The 1-minute load average when the run began.
    load_start: String,
}

/// The 1-minute load average.
fn load_average() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .next()
        .unwrap_or("unknown")
        .to_owned()
}

/// Files with uncommitted changes outside the benchmarks' own (`bench/`, this crate)
/// and outside tests: "commit X with uncommitted changes" does not say whether the
/// measured code was the commit's, and a backend changed in the working tree makes the
/// numbers its.
fn foreign_changes() -> String {
    let ws = workspace_root();
    // Not `command_output`: it trims, and a status line's leading space is part of it.
    let Ok(out) = std::process::Command::new("git")
        .arg("-C")
        .arg(&ws)
        .args(["status", "--porcelain"])
        .output()
    else {
        return "unknown (no git)".into();
    };
    let status = String::from_utf8_lossy(&out.stdout);
    let paths: Vec<&str> = status
        .lines()
        .filter_map(|l| l.get(3..))
        .filter(|p| {
            !p.starts_with("bench/")
                && !p.starts_with("crates/agentstore-bench/")
                && !p.starts_with("tests/")
                && !p.contains("/tests/")
                && *p != "Cargo.lock"
        })
        .collect();
    if paths.is_empty() {
        "none (test files not counted)".into()
    } else {
        format!("{} (test files not counted)", paths.join(", "))
    }
}

fn report(
    args: &Args,
    setup: &Setup<'_>,
    foundation: Option<&[Row]>,
    retrieval: Option<&Result<Retrieval>>,
    took: Duration,
) -> String {
    let Setup {
        sizes,
        repeat,
        root,
        pg_version,
        pg_settings,
        load_start,
    } = setup;
    let mut cmd = String::from(if cfg!(debug_assertions) {
        "cargo run -p agentstore-bench --bin postgres"
    } else {
        "cargo run --release -p agentstore-bench --bin postgres"
    });
    if !args.raw.is_empty() {
        cmd.push_str(" --");
        for a in &args.raw {
            cmd.push(' ');
            cmd.push_str(&shell_word(a));
        }
    }
    let profile = if cfg!(debug_assertions) {
        "debug (numbers not meaningful)"
    } else {
        "release"
    };
    let mut md = format!(
        "# PostgreSQL beside SQLite\n\n\
         Reproduce with:\n\n```sh\n{cmd}\n```\n\n\
         - date: {}\n- machine: {} CPUs ({}), Linux {}\n- stores and cluster in: {}\n\
         - build: {profile}, {}\n- commit: {}\n- SQLite: {}\n- PostgreSQL: {pg_version}\n\
         - PostgreSQL cluster of this run (nothing else runs on it): {pg_settings}; \
         everything else PostgreSQL's defaults. Client and server share the machine's \
         cores, over loopback TCP.\n- uncommitted changes outside the benchmarks: {}\n\
         - 1-minute load average at the start and the end: {} and {} (the machine is \
         shared: other work there slows both backends alike only where the sides \
         alternate)\n- total run time {:.0} s\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        nproc(),
        cpu_model(),
        read("/proc/sys/kernel/osrelease").trim(),
        root.display(),
        rustc(),
        commit(),
        rusqlite::version(),
        foreign_changes(),
        load_start,
        load_average(),
        took.as_secs_f64(),
    );
    if let Some(rows) = foundation {
        let _ = write!(
            md,
            "\n## Foundation workloads\n\n\
             The foundation benchmark's workloads (`workloads.rs`), through `Store`, each \
             measurement on a fresh store (SQLite: a new directory; PostgreSQL: a new \
             database). Sizes: {} single appends, {} batches of 1,000 events, {} single and \
             {} batches of 100 memory upserts, {} point reads (per row; split over \
             {READ_THREADS} threads in the {READ_THREADS}-thread row), {} passes over the \
             listed session; each measurement stops early after {:.0} s. Each side ran {repeat} \
             time(s), the sides alternating; the table shows each side's median. Ratios are \
             PostgreSQL's speed over SQLite's (for the backup: SQLite's seconds over \
             PostgreSQL's), so below 1× PostgreSQL is slower.\n\n{}",
            thousands(sizes.single as u64),
            thousands(sizes.batched as u64),
            thousands(sizes.memory_single as u64),
            thousands(sizes.memory_batched as u64),
            thousands(sizes.reads as u64),
            thousands(sizes.list_passes as u64),
            sizes.cap.as_secs_f64(),
            foundation_tables(rows),
        );
    }
    if let Some(r) = retrieval {
        md.push_str("\n## Retrieval\n\n");
        match r {
            Ok(r) => {
                let _ = write!(
                    md,
                    "One store per backend holding the same {} chunks (`hybrid_speed`'s corpus: \
                     SciFact sentences shuffled into documents, 500-character chunks, synthetic \
                     384-d clustered vectors from a deterministic embedder given to the store); \
                     {} SciFact test questions per search, each with a synthetic query vector \
                     given with the request (no embedding time), one at a time on one thread, \
                     `Store::search` with default targets.\n\n{}",
                    thousands(r.chunks as u64),
                    r.queries,
                    retrieval_tables(r),
                );
            }
            Err(e) => {
                let _ = writeln!(md, "n/a (error: {e:#})");
            }
        }
    }
    md
}

/// `--services`: the benchmark cluster with one database, and a Redis, for
/// bench/postgres-load.sh, until stdin closes. The cluster goes when this process ends
/// however it ends (testkit's watchdog), Redis when it is dropped here: the script
/// closes stdin rather than killing this process, so the drop runs.
fn services(args: &Args, root: &Path) -> Result<()> {
    let pg = Postgres::start_with(&cluster(args, root));
    let url = pg.create_database();
    let redis = Redis::start();
    let (version, settings) = pg_facts(&pg)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "DATABASE_URL={url}")?;
    writeln!(out, "REDIS_URL={}", redis.url())?;
    writeln!(out, "PG_SETTINGS={settings}")?;
    writeln!(out, "PG_VERSION={version}")?;
    writeln!(out, "READY")?;
    out.flush()?;
    drop(out);
    std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())?;
    drop(redis);
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("postgres: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let root = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    if let Err(e) = std::fs::create_dir_all(&root) {
        eprintln!("postgres: cannot create {}: {e}", root.display());
        return ExitCode::FAILURE;
    }
    if args.services {
        return match services(&args, &root) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("postgres --services: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let started = Instant::now();
    let load_start = load_average();
    let sizes = if args.smoke {
        Sizes::smoke()
    } else {
        Sizes::full(args.scale)
    };
    let repeat = args.repeat.unwrap_or(if args.smoke { 1 } else { 3 });
    eprintln!(
        "starting a PostgreSQL cluster with fsync on in {}",
        root.display()
    );
    let pg = Postgres::start_with(&cluster(&args, &root));
    let facts = match pg_facts(&pg) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("postgres: cannot read the cluster's settings: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let partial = args.only.is_some() || args.part.is_some();
    let out = match (&args.out, partial) {
        (Some(out), _) => Some(out.clone()),
        (None, true) => None,
        (None, false) if args.smoke => Some(
            std::env::temp_dir().join(format!("agentstore-bench-pg-{}.md", std::process::id())),
        ),
        (None, false) => Some(workspace_root().join("bench/results/postgres.md")),
    };

    let mut failed = 0;
    let foundation_rows = (args.part != Some(Part::Retrieval)).then(|| {
        let (rows, skipped) = foundation(&sizes, &root, repeat, &pg, args.only.as_deref());
        if rows.is_empty() {
            eprintln!(
                "postgres: no foundation row contains {:?}; the rows are:\n  {}",
                args.only.as_deref().unwrap_or_default(),
                skipped.join("\n  ")
            );
        }
        failed += rows
            .iter()
            .flat_map(|r| &r.cells)
            .filter(|(_, c)| c.is_err())
            .count();
        rows
    });
    let retrieval = (args.part != Some(Part::Foundation)).then(|| retrieval(&args, &root, &pg));
    if let Some(Err(e)) = &retrieval {
        eprintln!("postgres: retrieval failed: {e:#}");
        failed += 1;
    }
    let setup = Setup {
        sizes: &sizes,
        repeat,
        root: &root,
        pg_version: facts.0,
        pg_settings: facts.1,
        load_start,
    };
    let text = report(
        &args,
        &setup,
        foundation_rows.as_deref(),
        retrieval.as_ref(),
        started.elapsed(),
    );
    println!("\n{text}");
    match out {
        Some(out) => {
            let kept = std::fs::read_to_string(&out)
                .ok()
                .and_then(|old| old.find(LOAD_MARKER).map(|i| old[i..].to_owned()));
            let text = match kept {
                Some(section) => format!("{text}\n{section}"),
                None => text,
            };
            let written = out
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&out, &text));
            if let Err(e) = written {
                eprintln!("postgres: cannot write {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
            println!("wrote {}", out.display());
        }
        None => println!("report not written (--only or --part without --out)"),
    }
    if failed > 0 {
        eprintln!("postgres: {failed} measurements failed (shown as n/a)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
