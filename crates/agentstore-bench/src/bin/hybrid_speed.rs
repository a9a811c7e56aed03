//! `hybrid_speed`: search latency of the embedded store at scale. N document chunks
//! (default 1,000,000) of real English — the sentences of the SciFact abstracts, shuffled
//! into new documents — each with a synthetic 384-d vector drawn around one of 1,000
//! cluster centres, queried with SciFact's 300 test questions (text plus a synthetic
//! query vector). Reports p50/p95/p99 latency of keyword, vector and hybrid search through
//! `Store::search` (limit 10), once with FTS5 answering keyword queries and once with the
//! in-memory keyword index, and writes `bench/results/hybrid-speed.md`. See
//! bench/README.md.
//!
//! Query vectors are given with the request, so the time to embed a question is not in
//! these numbers (bench/embedding-speed.sh measures the embedder).

#[path = "../corpus.rs"]
mod corpus;
#[allow(dead_code)] // the quality benchmark's loaders; this one reads only SciFact
#[path = "retrieval_quality/data.rs"]
mod data;
#[path = "../provenance.rs"]
mod provenance;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentstore::search::SearchMode;
use agentstore::{Scope, SearchRequest, Store};
use agentstore_sqlite::{Durability, KeywordIndexMode, OpenOptions};
use anyhow::{Context, Result, bail};

use corpus::{SyntheticEmbedder, build, pct, sentences};
use provenance::*;

const LIMIT: usize = 10;

const USAGE: &str = "usage: hybrid_speed [--chunks N] [--queries N] [--engines LIST] [--smoke]
                    [--out PATH] [--data DIR] [--store DIR]

  --chunks N     chunks in the store (default 1000000)
  --queries N    questions timed per mode (default all 300 SciFact test questions)
  --engines LIST keyword engines, comma-separated: fts5, index (default both; FTS5 takes
                 about 2 s per keyword query at 1M chunks)
  --smoke        2,000 chunks and 20 questions; report to a temp file unless --out is
                 given. Checks that everything runs; numbers mean nothing.
  --out PATH     report (default bench/results/hybrid-speed.md)
  --data DIR     the evaluation sets (default: $AGENTSTORE_BENCH_DATA or ../shared/data)
  --store DIR    keep the store here and reuse it when it already holds N chunks
                 (default: a temp dir, removed afterwards). Building 1M chunks takes
                 about 15 minutes on 2 cores.";

struct Args {
    chunks: usize,
    queries: Option<usize>,
    engines: Vec<(&'static str, KeywordIndexMode)>,
    smoke: bool,
    out: Option<PathBuf>,
    data: PathBuf,
    store: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        chunks: 1_000_000,
        queries: None,
        engines: vec![
            ("FTS5", KeywordIndexMode::Off),
            ("keyword index", KeywordIndexMode::Eager),
        ],
        smoke: false,
        out: None,
        data: std::env::var_os("AGENTSTORE_BENCH_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("../shared/data")),
        store: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--chunks" => a.chunks = value()?.parse()?,
            "--queries" => a.queries = Some(value()?.parse()?),
            "--engines" => {
                a.engines = value()?
                    .split(',')
                    .map(|e| match e.trim() {
                        "fts5" => Ok(("FTS5", KeywordIndexMode::Off)),
                        "index" => Ok(("keyword index", KeywordIndexMode::Eager)),
                        other => bail!("unknown engine {other} (fts5, index)"),
                    })
                    .collect::<Result<_>>()?
            }
            "--smoke" => a.smoke = true,
            "--out" => a.out = Some(value()?.into()),
            "--data" => a.data = value()?.into(),
            "--store" => a.store = Some(value()?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if a.smoke {
        a.chunks = a.chunks.min(2_000);
        a.queries = Some(a.queries.unwrap_or(20).min(20));
    }
    Ok(a)
}

fn open(dir: &std::path::Path, mode: KeywordIndexMode, create: bool) -> Result<Store> {
    let mut opts = OpenOptions::new(dir);
    if create {
        opts = opts.create();
    }
    opts.keyword_index = mode;
    opts.durability = Durability::Normal;
    let store = agentstore_sqlite::open(&opts)?.with_embedder(Arc::new(SyntheticEmbedder::new()));
    Ok(store)
}

/// Chunks in the store at `dir` (read directly: `Store::stats` measures every table's
/// pages, which takes a while at this size).
fn chunk_count(dir: &std::path::Path) -> Result<u64> {
    let db = agentstore_sqlite::DataDir::new(dir).db_path();
    if !db.exists() {
        return Ok(0);
    }
    let c = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(c.query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get::<_, i64>(0))? as u64)
}

struct Row {
    engine: &'static str,
    mode: SearchMode,
    lat: Vec<Duration>,
    hits: usize,
}

fn rss_mb() -> f64 {
    read("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let sf = data::SciFact::load(&args.data.join("scifact"))
        .with_context(|| format!("loading SciFact from {}", args.data.display()))?;
    let sentences = sentences(&sf);
    let embedder = SyntheticEmbedder::new();
    let queries: Vec<(String, Vec<f32>)> = sf
        .queries
        .iter()
        .take(args.queries.unwrap_or(usize::MAX))
        .map(|q| (q.text.clone(), embedder.vector(&q.text)))
        .collect();

    let temp = tempfile::tempdir()?;
    let dir = args
        .store
        .clone()
        .unwrap_or_else(|| temp.path().join("store"));
    let scope = Scope::new("bench", "hybrid_speed");
    let mut ingest_s = None;
    {
        let store = open(&dir, KeywordIndexMode::Off, true)?;
        store.ensure_tenant("hybrid_speed", "bench")?;
        let have = chunk_count(&dir)? as usize;
        if have < args.chunks {
            if have > 0 {
                bail!(
                    "{} holds {have} chunks, fewer than --chunks {}; remove it first",
                    dir.display(),
                    args.chunks
                );
            }
            eprintln!("building {} chunks in {}", args.chunks, dir.display());
            ingest_s = Some(build(&store, &scope, &sentences, args.chunks)?);
        }
    }
    let chunks = chunk_count(&dir)?;

    let mut rows = Vec::new();
    let mut setup = Vec::new();
    for &(engine, mode) in &args.engines {
        let store = open(&dir, mode, false)?;
        // First searches load the vector index (snapshot or table) and, for the keyword
        // index, build it: timed apart from the queries.
        let t = Instant::now();
        store.search(
            &scope,
            SearchRequest {
                mode: Some(SearchMode::Vector),
                vector: Some(queries[0].1.clone()),
                limit: LIMIT,
                ..Default::default()
            },
        )?;
        let vector_load = t.elapsed().as_secs_f64();
        let t = Instant::now();
        store.search(
            &scope,
            SearchRequest {
                mode: Some(SearchMode::Keyword),
                limit: LIMIT,
                ..SearchRequest::text(&queries[0].0)
            },
        )?;
        let keyword_first = t.elapsed().as_secs_f64();
        setup.push((engine, vector_load, keyword_first, rss_mb()));
        for search_mode in [SearchMode::Keyword, SearchMode::Vector, SearchMode::Hybrid] {
            let mut lat = Vec::with_capacity(queries.len());
            let mut hits = 0;
            for (text, vector) in &queries {
                let req = SearchRequest {
                    mode: Some(search_mode),
                    vector: (search_mode != SearchMode::Keyword).then(|| vector.clone()),
                    limit: LIMIT,
                    ..SearchRequest::text(text)
                };
                let t = Instant::now();
                hits += store.search(&scope, req)?.len();
                lat.push(t.elapsed());
            }
            lat.sort();
            eprintln!("{engine:>13} {search_mode:?}: p50 {:.2} ms", pct(&lat, 0.5));
            rows.push(Row {
                engine,
                mode: search_mode,
                lat,
                hits,
            });
        }
    }

    let mut md = String::new();
    writeln!(md, "# Hybrid search speed at scale (`hybrid_speed`)\n")?;
    writeln!(
        md,
        "{} chunks of SciFact sentences with synthetic 384-d clustered vectors; {} SciFact \
         questions per mode, limit {LIMIT}, one thread, `Store::search` on the embedded store. \
         Query vectors are given (embedding time excluded).\n",
        chunks,
        queries.len()
    )?;
    writeln!(
        md,
        "| keyword engine | mode | p50 ms | p95 ms | p99 ms | queries/s | hits/query |"
    )?;
    writeln!(md, "|---|---|---:|---:|---:|---:|---:|")?;
    for r in &rows {
        let total: f64 = r.lat.iter().map(Duration::as_secs_f64).sum();
        writeln!(
            md,
            "| {} | {:?} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} |",
            r.engine,
            r.mode,
            pct(&r.lat, 0.5),
            pct(&r.lat, 0.95),
            pct(&r.lat, 0.99),
            r.lat.len() as f64 / total,
            r.hits as f64 / r.lat.len() as f64
        )?;
    }
    writeln!(md, "\nSetup:\n")?;
    if let Some(s) = ingest_s {
        writeln!(
            md,
            "- building the store (documents chunked, FTS5-indexed, vectors stored and \
             indexed as they arrive): {s:.0} s, {:.0} chunks/s",
            chunks as f64 / s
        )?;
    } else {
        writeln!(md, "- store reused from {}", dir.display())?;
    }
    for (engine, vector_load, keyword_first, rss) in &setup {
        writeln!(
            md,
            "- {engine}: first vector search (loads the vector index) {vector_load:.1} s; \
             first keyword search {keyword_first:.1} s (with the keyword index: builds it); \
             resident memory after both {rss:.0} MB"
        )?;
    }
    writeln!(md, "\nProvenance:\n")?;
    writeln!(md, "- machine: {} ({} CPUs)", cpu_model(), nproc())?;
    writeln!(md, "- commit: {}; {}", commit(), rustc())?;
    let cmd: Vec<String> = std::env::args().map(|a| shell_word(&a)).collect();
    writeln!(
        md,
        "- command: `cargo run --release -p agentstore-bench --bin hybrid_speed --{}`",
        cmd[1..].iter().map(|a| format!(" {a}")).collect::<String>()
    )?;
    writeln!(
        md,
        "- run at: {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )?;
    print!("{md}");
    let out = match (&args.out, args.smoke) {
        (Some(p), _) => p.clone(),
        (None, true) => temp.path().join("hybrid-speed.md"),
        (None, false) => workspace_root().join("bench/results/hybrid-speed.md"),
    };
    std::fs::write(&out, md).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hybrid_speed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
