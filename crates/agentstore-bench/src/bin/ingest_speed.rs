//! `ingest_speed`: documents per second into a store that embeds them with the local
//! model, one document per write (`Store::put_document`, what `agentstore ingest` did
//! before batching) beside batches across documents (`Store::put_documents`, what it does
//! now), on the same SciFact abstracts, in one run. The two ways alternate `--repeat`
//! times, each into a fresh store, and the report takes each side's median.
//!
//! Usage: `ingest_speed [--docs N] [--batch N] [--repeat N] [--out PATH] [--smoke]
//! [--data DIR] [--model-dir DIR]`

#[path = "../provenance.rs"]
mod provenance;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentstore::{NewDocument, Scope, Store};
use agentstore_embed::BertEmbedder;
use agentstore_sqlite::{Durability, OpenOptions};
use anyhow::{Context, Result, bail};

use provenance::*;

const USAGE: &str = "usage: ingest_speed [--docs N] [--batch N] [--repeat N] [--out PATH] [--smoke]
                    [--data DIR] [--model-dir DIR]

  --docs N         the first N SciFact abstracts (title + text), default 1000
  --batch N        documents per put_documents call, default 256 (agentstore ingest's batch)
  --repeat N       runs of each way, alternating, default 3; the report takes medians
  --out PATH       report (default bench/results/ingest-speed.md; a temp file with --smoke)
  --smoke          16 documents, one run each: checks that it runs; numbers mean nothing
  --data DIR       evaluation sets (default $AGENTSTORE_BENCH_DATA or ../shared/data)
  --model-dir DIR  all-MiniLM-L6-v2 files (default $AGENTSTORE_MODEL_DIR or
                   .models/all-MiniLM-L6-v2, as scripts/fetch-model.sh installs them)";

struct Args {
    docs: usize,
    batch: usize,
    repeat: usize,
    out: PathBuf,
    smoke: bool,
    data: PathBuf,
    model_dir: PathBuf,
    raw: Vec<String>,
}

fn parse_args() -> Result<Option<Args>> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut a = Args {
        docs: 1000,
        batch: 256,
        repeat: 3,
        out: workspace_root().join("bench/results/ingest-speed.md"),
        smoke: false,
        data: std::env::var_os("AGENTSTORE_BENCH_DATA")
            .map_or_else(|| workspace_root().join("../shared/data"), PathBuf::from),
        model_dir: std::env::var_os("AGENTSTORE_MODEL_DIR").map_or_else(
            || workspace_root().join(".models/all-MiniLM-L6-v2"),
            PathBuf::from,
        ),
        raw: raw.clone(),
    };
    let mut out = None;
    let mut it = raw.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--docs" => a.docs = value()?.parse()?,
            "--batch" => a.batch = value()?.parse()?,
            "--repeat" => a.repeat = value()?.parse()?,
            "--out" => out = Some(PathBuf::from(value()?)),
            "--smoke" => a.smoke = true,
            "--data" => a.data = value()?.into(),
            "--model-dir" => a.model_dir = value()?.into(),
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}"),
        }
    }
    if a.smoke {
        a.docs = 16;
        a.batch = 8;
        a.repeat = 1;
        a.out = std::env::temp_dir().join(format!(
            "agentstore-ingest-speed-smoke-{}.md",
            std::process::id()
        ));
    }
    if let Some(o) = out {
        a.out = o;
    }
    if a.docs == 0 || a.batch == 0 || a.repeat == 0 {
        bail!("--docs, --batch and --repeat must be at least 1");
    }
    Ok(Some(a))
}

/// The first `n` SciFact abstracts as documents.
fn load_docs(args: &Args) -> Result<Vec<NewDocument>> {
    let path = args.data.join("scifact/corpus.jsonl");
    let f = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut docs = Vec::with_capacity(args.docs);
    for line in BufReader::new(f).lines().take(args.docs) {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let mut d = NewDocument::new(format!("{}\n\n{}", field("title"), field("text")));
        d.source_path = Some(format!("scifact#{}", field("_id")));
        d.title = Some(field("title"));
        docs.push(d);
    }
    if docs.len() < args.docs {
        bail!("{} has only {} documents", path.display(), docs.len());
    }
    Ok(docs)
}

/// One timed ingest of `docs` into a fresh durable store; returns (time, chunks stored).
fn ingest(
    embedder: &Arc<BertEmbedder>,
    docs: &[NewDocument],
    batch: Option<usize>,
) -> Result<(Duration, u64)> {
    let dir = tempfile::tempdir()?;
    // Full durability, as `agentstore ingest` runs: one fsync per write is part of what
    // batching saves.
    let store: Store = agentstore_sqlite::open(
        &OpenOptions::new(dir.path())
            .create()
            .durability(Durability::Full),
    )?
    .with_embedder(Arc::clone(embedder) as Arc<dyn agentstore::embedding::Embedder>);
    store.ensure_tenant("bench", "bench")?;
    let scope = Scope::new("bench", "bench");
    let started = Instant::now();
    match batch {
        None => {
            for d in docs {
                store.put_document(&scope, d.clone())?;
            }
        }
        Some(n) => {
            for b in docs.chunks(n) {
                store.put_documents(&scope, b.to_vec())?;
            }
        }
    }
    let took = started.elapsed();
    let chunks = store
        .stats()?
        .entities
        .iter()
        .find(|e| e.entity == "chunks")
        .map_or(0, |e| e.rows);
    Ok((took, chunks))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run(args: &Args) -> Result<()> {
    let docs = load_docs(args)?;
    let embedder = Arc::new(
        BertEmbedder::load(&args.model_dir)
            .with_context(|| format!("loading the model from {}", args.model_dir.display()))?,
    );
    // Warm-up, untimed: the model's first calls allocate.
    ingest(&embedder, &docs[..docs.len().min(8)], Some(8))?;
    let mut single = Vec::new();
    let mut batched = Vec::new();
    let mut chunks = (0, 0);
    for rep in 0..args.repeat {
        let (t, c) = ingest(&embedder, &docs, None)?;
        eprintln!("run {}: one per write {:.2} s", rep + 1, t.as_secs_f64());
        single.push(t);
        chunks.0 = c;
        let (t, c) = ingest(&embedder, &docs, Some(args.batch))?;
        eprintln!(
            "run {}: batches of {} {:.2} s",
            rep + 1,
            args.batch,
            t.as_secs_f64()
        );
        batched.push(t);
        chunks.1 = c;
    }
    if chunks.0 != chunks.1 {
        bail!(
            "the two ways stored different chunk counts: {} and {}",
            chunks.0,
            chunks.1
        );
    }
    let (s, b) = (median(single), median(batched));
    let rate = |t: Duration| docs.len() as f64 / t.as_secs_f64();
    let cmd =
        std::iter::once("cargo run --release -p agentstore-bench --bin ingest_speed".to_owned())
            .chain((!args.raw.is_empty()).then(|| "--".to_owned()))
            .chain(args.raw.iter().map(|a| shell_word(a)))
            .collect::<Vec<_>>()
            .join(" ");
    let mut out = String::new();
    let _ = write!(
        out,
        "# Ingest speed: one document per write against batches across documents\n\n\
         Reproduce with:\n\n```sh\n{cmd}\n```\n\n\
         - date: {date}\n- machine: nproc {nproc}, {cpu}\n- build: {profile}, {rustc}\n- commit: {commit}\n\
         - documents: the first {n} SciFact abstracts (title + text), {chunks} chunks\n\
         - store: embedded SQLite, `Durability::Full` (fsync per commit), embedder all-MiniLM-L6-v2 \
         (candle, CPU, its default batch of 32 texts)\n\
         - {repeat} run(s) of each way, alternating, each into a fresh store; medians\n\n\
         | way | seconds | documents/s |\n|---|---:|---:|\n\
         | one per write (`put_document`) | {st:.2} | {sr:.1} |\n\
         | batches of {batch} (`put_documents`, `agentstore ingest`) | {bt:.2} | {br:.1} |\n\n\
         Batched ÷ one per write: **{ratio:.2}×** the documents per second.\n",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        nproc = nproc(),
        cpu = cpu_model(),
        profile = if cfg!(debug_assertions) {
            "debug (numbers not meaningful)"
        } else {
            "release"
        },
        rustc = rustc(),
        commit = commit(),
        n = docs.len(),
        chunks = chunks.0,
        repeat = args.repeat,
        st = s.as_secs_f64(),
        sr = rate(s),
        batch = args.batch,
        bt = b.as_secs_f64(),
        br = rate(b),
        ratio = rate(b) / rate(s),
    );
    print!("{out}");
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, out).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Some(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ingest_speed: {e:#}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("ingest_speed: {e:#}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
