//! `retrieval_quality`: how well agentstore's search finds the right records, on public
//! sets with relevance judgements: BEIR SciFact (nDCG@10, Recall@100) and LoCoMo
//! (evidence recall@5/@10 per question category), for keyword, vector and hybrid modes,
//! each number printed beside the reference the data README computed. Everything runs
//! through the public library API of the embedded store. See bench/README.md.
//!
//! Usage: `retrieval_quality [--smoke] [--out PATH] [--only scifact|locomo]
//! [--modes keyword,vector,hybrid] [--embed-docs] [--data DIR] [--model-dir DIR]
//! [--data-dir DIR] [--keyword-engine fts5|index]`

#[path = "retrieval_quality/data.rs"]
mod data;
#[path = "retrieval_quality/engine.rs"]
mod engine;
#[path = "retrieval_quality/exact.rs"]
mod exact;
#[path = "retrieval_quality/metrics.rs"]
mod metrics;
#[path = "../provenance.rs"]
mod provenance;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentstore::search::Fusion;
use agentstore_embed::BertEmbedder;
use agentstore_sqlite::KeywordIndexMode;
use anyhow::{Context, Result, bail};

use data::{LoCoMo, SciFact};
use engine::Mode;
use provenance::*;

const USAGE: &str = "usage: retrieval_quality [--smoke] [--out PATH] [--only scifact|locomo]
                         [--modes keyword,vector,hybrid] [--embed-docs] [--data DIR]
                         [--model-dir DIR] [--data-dir DIR] [--keyword-engine fts5|index]

  --smoke          tiny subsets (SciFact 200 docs / 20 queries, one LoCoMo conversation's
                   first 3 sessions / up to 20 questions); report to a temp file unless
                   --out is given. Checks that everything runs; numbers mean nothing.
  --out PATH       where to write the report (default bench/results/retrieval-quality.md;
                   runs narrowed by --only or --modes write only when --out is given)
  --only SET       scifact or locomo
  --modes LIST     comma-separated of keyword, vector, hybrid (default all three; hybrid
                   runs RRF and weighted fusion)
  --embed-docs     SciFact vector and hybrid modes: the store embeds every abstract with
                   all-MiniLM-L6-v2 as it stores it (~20 min of CPU for the full set on
                   2 cores). Default: the documents are stored without an embedder and
                   their vectors are written from the precomputed file
                   ann-scifact-minilm/base.fvecs (same model, made by
                   sentence-transformers); queries are embedded by the store either way
  --data DIR       the evaluation sets (default: $AGENTSTORE_BENCH_DATA or ../shared/data
                   beside the workspace)
  --model-dir DIR  all-MiniLM-L6-v2 files (default: $AGENTSTORE_MODEL_DIR or
                   .models/all-MiniLM-L6-v2, as scripts/fetch-model.sh installs them)
  --data-dir DIR   where the temporary stores are created (default: the system temp dir)
  --keyword-engine fts5 (default; what stores of these sizes use) or index (the in-memory
                   keyword index that large stores switch to, built eagerly here)";

/// Weighted fusions run beside RRF in hybrid mode, (keyword, vector): an even split,
/// and one leaning on the vector side, which ranks better on its own on LoCoMo's
/// paraphrased questions and near BM25 on SciFact.
const WEIGHTS: [(f64, f64); 2] = [(0.5, 0.5), (0.3, 0.7)];
/// Hits asked per SciFact query: Recall@100 needs 100 documents.
const SCIFACT_DEPTH: usize = 100;
/// Hits asked per LoCoMo question: recall@5 is read off the same top 10.
const LOCOMO_DEPTH: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Set {
    SciFact,
    LoCoMo,
}

struct Args {
    smoke: bool,
    out: Option<PathBuf>,
    only: Option<Set>,
    modes: Vec<Mode>,
    /// Whether the mode list was narrowed from the default.
    partial_modes: bool,
    /// SciFact: embed the abstracts in the store instead of writing precomputed vectors.
    embed_docs: bool,
    data: PathBuf,
    model_dir: PathBuf,
    data_dir: Option<PathBuf>,
    /// Which keyword engine answers keyword candidates: FTS5 (what stores of these sizes
    /// use by default) or the in-memory keyword index (what large stores use).
    keyword: KeywordIndexMode,
    raw: Vec<String>,
}

fn parse_args() -> Result<Option<Args>> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let ws = workspace_root();
    let mut a = Args {
        smoke: false,
        out: None,
        only: None,
        modes: Vec::new(),
        partial_modes: false,
        embed_docs: false,
        data: std::env::var_os("AGENTSTORE_BENCH_DATA")
            .map_or_else(|| ws.join("../shared/data"), PathBuf::from),
        model_dir: std::env::var_os("AGENTSTORE_MODEL_DIR")
            .map_or_else(|| ws.join(".models/all-MiniLM-L6-v2"), PathBuf::from),
        data_dir: None,
        keyword: KeywordIndexMode::Off,
        raw: raw.clone(),
    };
    let mut kinds = vec!["keyword".to_owned(), "vector".into(), "hybrid".into()];
    let mut it = raw.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--smoke" => a.smoke = true,
            "--out" => a.out = Some(value()?.into()),
            "--only" => {
                a.only = Some(match value()?.as_str() {
                    "scifact" => Set::SciFact,
                    "locomo" => Set::LoCoMo,
                    other => bail!("--only takes scifact or locomo, not {other:?}"),
                })
            }
            "--modes" => {
                kinds = value()?.split(',').map(|s| s.trim().to_owned()).collect();
                a.partial_modes = true;
            }
            "--embed-docs" => a.embed_docs = true,
            "--data" => a.data = value()?.into(),
            "--model-dir" => a.model_dir = value()?.into(),
            "--data-dir" => a.data_dir = Some(value()?.into()),
            "--keyword-engine" => {
                a.keyword = match value()?.as_str() {
                    "fts5" => KeywordIndexMode::Off,
                    "index" => KeywordIndexMode::Eager,
                    other => bail!("--keyword-engine takes fts5 or index, not {other:?}"),
                }
            }
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    for k in &kinds {
        match k.as_str() {
            "keyword" => a.modes.push(Mode::Keyword),
            "vector" => a.modes.push(Mode::Vector),
            "hybrid" => {
                a.modes.push(Mode::Hybrid(Fusion::default()));
                a.modes.extend(
                    WEIGHTS.map(|(keyword, vector)| {
                        Mode::Hybrid(Fusion::Weighted { keyword, vector })
                    }),
                );
            }
            other => bail!("--modes takes keyword, vector and hybrid, not {other:?}"),
        }
    }
    if a.modes.is_empty() {
        bail!("--modes is empty");
    }
    Ok(Some(a))
}

// ------------------------------------------------------------------------- results

/// The README's numbers for one retriever; None where it gives none.
#[derive(Clone, Copy, Default)]
struct SciRef {
    ndcg10: Option<f64>,
    r100: Option<f64>,
    mrr10: Option<f64>,
    /// The published figure (BEIR paper, MTEB) or the project goal, with its label.
    note: Option<&'static str>,
}

/// Reference numbers from /work/shared/data/scifact/README.md (computed there on these
/// files, exact search) and the published figures.
const SCI_BM25: SciRef = SciRef {
    ndcg10: Some(0.6617),
    r100: Some(0.886),
    mrr10: Some(0.628),
    note: Some("published BM25 (BEIR, Elasticsearch) 0.665"),
};
const SCI_MINILM: SciRef = SciRef {
    ndcg10: Some(0.6451),
    r100: Some(0.925),
    mrr10: Some(0.605),
    note: Some("published MiniLM (MTEB) 0.6451"),
};
/// The project's goal for SciFact hybrid nDCG@10.
const SCI_GOAL: f64 = 0.69;
const SCI_RRF: SciRef = SciRef {
    ndcg10: Some(0.6864),
    r100: Some(0.962),
    mrr10: Some(0.646),
    note: Some("goal ≥ 0.69"),
};

#[derive(Clone, Copy)]
struct SciScores {
    ndcg10: f64,
    r100: f64,
    mrr10: f64,
    p50_ms: Option<f64>,
}

struct SciRow {
    label: String,
    /// A store hybrid row, which the goal for nDCG@10 applies to.
    hybrid: bool,
    reference: SciRef,
    result: Result<SciScores, String>,
}

fn score_scifact(set: &SciFact, runs: &[Vec<String>], latencies: Option<&[Duration]>) -> SciScores {
    let (mut n, mut r, mut m) = (Vec::new(), Vec::new(), Vec::new());
    for (q, run) in set.queries.iter().zip(runs) {
        let rel = &set.qrels[&q.id];
        let ranked = metrics::dedup(run.iter().map(String::as_str));
        n.push(metrics::ndcg_at(&ranked, rel, 10));
        r.push(metrics::recall_at(&ranked, rel, 100));
        m.push(metrics::mrr_at(&ranked, rel, 10));
    }
    SciScores {
        ndcg10: metrics::mean(&n),
        r100: metrics::mean(&r),
        mrr10: metrics::mean(&m),
        p50_ms: latencies.map(metrics::p50_ms),
    }
}

/// LoCoMo category codes and names (README: 1 and 5 confirmed by the LoCoMo code, 2–4 as
/// later papers use them).
const CATEGORIES: [(u8, &str); 5] = [
    (1, "multi-hop"),
    (2, "temporal"),
    (3, "open-domain"),
    (4, "single-hop"),
    (5, "adversarial"),
];

/// Recall means per category, overall and excluding category 5.
#[derive(Clone, Default)]
struct Recalls {
    by_cat: BTreeMap<u8, f64>,
    overall: f64,
    excl5: f64,
}

#[derive(Clone)]
struct LocomoScores {
    r5: Recalls,
    r10: Recalls,
    p50_ms: Option<f64>,
}

struct LocomoRow {
    label: String,
    result: Result<LocomoScores, String>,
}

fn score_locomo(
    set: &LoCoMo,
    runs: &[Vec<String>],
    latencies: Option<&[Duration]>,
) -> LocomoScores {
    let recalls = |k: usize| {
        let mut per: BTreeMap<u8, Vec<f64>> = BTreeMap::new();
        let (mut all, mut excl5) = (Vec::new(), Vec::new());
        for (q, run) in set.queries.iter().zip(runs) {
            // The 4 questions without evidence have no recall to measure.
            if q.evidence.is_empty() {
                continue;
            }
            let rel: HashSet<String> = q.evidence.iter().cloned().collect();
            let ranked = metrics::dedup(run.iter().map(String::as_str));
            let r = metrics::recall_at(&ranked, &rel, k);
            per.entry(q.category).or_default().push(r);
            all.push(r);
            if q.category != 5 {
                excl5.push(r);
            }
        }
        Recalls {
            by_cat: per.iter().map(|(c, v)| (*c, metrics::mean(v))).collect(),
            overall: metrics::mean(&all),
            excl5: metrics::mean(&excl5),
        }
    };
    LocomoScores {
        r5: recalls(5),
        r10: recalls(10),
        p50_ms: latencies.map(metrics::p50_ms),
    }
}

/// Where the stored records' vectors came from.
enum Vectors {
    /// Keyword modes only: none.
    None,
    /// The store's embedder embedded each record as it was written (in `Ingest::took`).
    Embedded,
    /// Written afterwards from a precomputed file with `WriteOp::PutVectors`, in `took`.
    Precomputed { file: String, took: Duration },
}

/// One store (and ingest) per set, shared by every mode; with an embedder when any mode
/// needs one.
struct Ingest {
    what: String,
    items: usize,
    took: Duration,
    vectors: Vectors,
}

// ------------------------------------------------------------------------- SciFact

struct SciOutcome {
    docs: usize,
    queries: usize,
    ingest: Option<Ingest>,
    rows: Vec<SciRow>,
    took: Duration,
}

fn run_scifact(args: &Args, embedder: Option<&Arc<BertEmbedder>>) -> Result<SciOutcome> {
    let start = Instant::now();
    let full = SciFact::load(&args.data.join("scifact"))?;
    let set = if args.smoke {
        full.subset(200, 20)
    } else {
        full
    };
    eprintln!(
        "scifact: {} docs, {} queries",
        set.docs.len(),
        set.queries.len()
    );
    let mut rows = Vec::new();

    // Reference retrievers in this binary, to check the metric code against the README.
    let bm25 = exact::Bm25::new(
        set.docs
            .iter()
            .map(|d| d.indexed_text())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
        1.2,
        0.75,
    );
    let bm25_runs: Vec<Vec<usize>> = set
        .queries
        .iter()
        .map(|q| exact::top_k(&bm25.scores(&q.text), 1000))
        .collect();
    let ids = |runs: &[Vec<usize>]| -> Vec<Vec<String>> {
        runs.iter()
            .map(|r| {
                r.iter()
                    .take(SCIFACT_DEPTH)
                    .map(|&i| set.docs[i].id.clone())
                    .collect()
            })
            .collect()
    };
    rows.push(SciRow {
        hybrid: false,
        label: "reference: exact BM25 k1=1.2 b=0.75, `\\w+` tokens, no stemming (this binary)"
            .into(),
        reference: SCI_BM25,
        result: Ok(score_scifact(&set, &ids(&bm25_runs), None)),
    });
    let minilm_dir = args.data.join("ann-scifact-minilm");
    let minilm = MiniLmVectors::load(&minilm_dir);
    let minilm_runs = minilm
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .and_then(|m| m.exact_runs(&set));
    rows.push(SciRow {
        hybrid: false,
        label:
            "reference: exact MiniLM, precomputed vectors (ann-scifact-minilm, brute-force cosine)"
                .into(),
        reference: SCI_MINILM,
        result: minilm_runs
            .as_ref()
            .map(|r| score_scifact(&set, &ids(r), None))
            .map_err(|e| format!("{e:#}")),
    });
    rows.push(SciRow {
        hybrid: false,
        label: "reference: RRF k=60 of the two rows above".into(),
        reference: SCI_RRF,
        result: minilm_runs
            .as_ref()
            .map(|m| {
                let fused: Vec<Vec<usize>> = bm25_runs
                    .iter()
                    .zip(m)
                    .map(|(b, v)| exact::rrf(&[b.clone(), v.clone()], 60.0, set.docs.len()))
                    .collect();
                score_scifact(&set, &ids(&fused), None)
            })
            .map_err(|e| format!("{e:#}")),
    });

    let embedder = embedder.filter(|_| args.modes.iter().any(Mode::needs_embedder));
    // Unless --embed-docs, the documents go in without an embedder and get the
    // precomputed vectors; the embedder is attached afterwards for the queries only.
    let precomputed = embedder.is_some() && !args.embed_docs;
    let mut bench = engine::open(
        args.data_dir.as_deref(),
        embedder.filter(|_| !precomputed),
        false,
        args.keyword,
    )?;
    eprintln!(
        "scifact: storing {} documents{}",
        set.docs.len(),
        if bench.embedding {
            " (embedding)"
        } else if precomputed {
            " (then their precomputed vectors)"
        } else {
            ""
        }
    );
    let took = engine::ingest_scifact(&bench, &set.docs)?;
    let vectors = match embedder {
        Some(e) if precomputed => {
            let m = minilm.as_ref().map_err(|e| {
                anyhow::anyhow!("{e:#} (the precomputed document vectors; or pass --embed-docs)")
            })?;
            let took = engine::put_scifact_vectors(&bench, &set.docs, &m.docs)?;
            bench.search_with(e)?;
            Vectors::Precomputed {
                file: std::fs::canonicalize(minilm_dir.join("base.fvecs"))
                    .unwrap_or_else(|_| minilm_dir.join("base.fvecs"))
                    .display()
                    .to_string(),
                took,
            }
        }
        Some(_) => Vectors::Embedded,
        None => Vectors::None,
    };
    let ingest = Ingest {
        what: "documents".into(),
        items: set.docs.len(),
        took,
        vectors,
    };
    for &mode in &args.modes {
        eprintln!("scifact: {}", mode.label());
        let reference = match mode {
            Mode::Keyword => SCI_BM25,
            Mode::Vector => SCI_MINILM,
            Mode::Hybrid(Fusion::Rrf { .. }) => SCI_RRF,
            Mode::Hybrid(Fusion::Weighted { .. }) => SciRef {
                note: Some("no README reference; compare RRF"),
                ..SciRef::default()
            },
        };
        let result = engine::search_scifact(&bench, mode, &set.queries, SCIFACT_DEPTH)
            .map(|(runs, lat)| score_scifact(&set, &runs, Some(&lat)))
            .map_err(|e| format!("{e:#}"));
        rows.push(SciRow {
            label: format!("agentstore {}", mode.row_label(args.keyword)),
            hybrid: matches!(mode, Mode::Hybrid(_)),
            reference,
            result,
        });
    }
    Ok(SciOutcome {
        docs: set.docs.len(),
        queries: set.queries.len(),
        ingest: Some(ingest),
        rows,
        took: start.elapsed(),
    })
}

/// The precomputed all-MiniLM-L6-v2 vectors of ann-scifact-minilm, keyed by SciFact id
/// through `base_ids.txt` / `query_ids.txt` (row i of the `.fvecs` is line i of its ids
/// file), never by position in the corpus.
struct MiniLmVectors {
    docs: HashMap<String, Vec<f32>>,
    queries: HashMap<String, Vec<f32>>,
}

impl MiniLmVectors {
    fn load(dir: &Path) -> Result<MiniLmVectors> {
        let keyed = |vecs: &str, ids_file: &str| -> Result<HashMap<String, Vec<f32>>> {
            let rows = data::read_fvecs(&dir.join(vecs))?;
            let ids = data::read_ids(&dir.join(ids_file))?;
            if rows.len() != ids.len() {
                bail!(
                    "{vecs} has {} rows, {ids_file} {} ids",
                    rows.len(),
                    ids.len()
                );
            }
            let n = ids.len();
            let map: HashMap<String, Vec<f32>> = ids.into_iter().zip(rows).collect();
            if map.len() != n {
                bail!("{ids_file} repeats an id");
            }
            Ok(map)
        };
        Ok(MiniLmVectors {
            docs: keyed("base.fvecs", "base_ids.txt")?,
            queries: keyed("query.fvecs", "query_ids.txt")?,
        })
    }

    /// Doc indexes per query ranked by exact cosine, for the docs and queries of `set`
    /// (the smoke subset included).
    fn exact_runs(&self, set: &SciFact) -> Result<Vec<Vec<usize>>> {
        let get = |map: &HashMap<String, Vec<f32>>, id: &str| {
            map.get(id)
                .cloned()
                .with_context(|| format!("{id} has no precomputed vector"))
        };
        let doc_vecs = set
            .docs
            .iter()
            .map(|d| get(&self.docs, &d.id))
            .collect::<Result<Vec<_>>>()?;
        set.queries
            .iter()
            .map(|q| {
                let v = get(&self.queries, &q.id)?;
                Ok(exact::top_k(&exact::cosine_scores(&v, &doc_vecs), 1000))
            })
            .collect()
    }
}

// ------------------------------------------------------------------------- LoCoMo

struct LocomoOutcome {
    turns: usize,
    conversations: usize,
    questions: usize,
    with_evidence: usize,
    ingest: Option<Ingest>,
    rows: Vec<LocomoRow>,
    took: Duration,
}

fn run_locomo(args: &Args, embedder: Option<&Arc<BertEmbedder>>) -> Result<LocomoOutcome> {
    let start = Instant::now();
    let full = LoCoMo::load(&args.data.join("locomo"))?;
    let set = if args.smoke { full.subset(3, 20) } else { full };
    let convs = set.conversations();
    eprintln!(
        "locomo: {} turns in {} conversations, {} questions",
        set.turns.len(),
        convs.len(),
        set.queries.len()
    );
    let mut rows = Vec::new();

    // Exact BM25 per conversation, the README's reference setup, to check recall code.
    let mut bm25_runs = vec![Vec::new(); set.queries.len()];
    for conv in &convs {
        let turns: Vec<&data::Turn> = set.turns.iter().filter(|t| &t.conv_id == conv).collect();
        let texts: Vec<String> = turns.iter().map(|t| t.indexed_text()).collect();
        let bm25 = exact::Bm25::new(texts.iter().map(String::as_str), 1.2, 0.75);
        for (i, q) in set
            .queries
            .iter()
            .enumerate()
            .filter(|(_, q)| &q.conv_id == conv)
        {
            bm25_runs[i] = exact::top_k(&bm25.scores(&q.question), LOCOMO_DEPTH)
                .into_iter()
                .map(|j| turns[j].dia_id.clone())
                .collect();
        }
    }
    rows.push(LocomoRow {
        label: "reference: exact BM25 k1=1.2 b=0.75, `\\w+` tokens (this binary)".into(),
        result: Ok(score_locomo(&set, &bm25_runs, None)),
    });

    let embed = args.modes.iter().any(Mode::needs_embedder);
    let bench = engine::open(
        args.data_dir.as_deref(),
        embed.then_some(embedder).flatten(),
        true,
        args.keyword,
    )?;
    eprintln!(
        "locomo: storing {} turns{}",
        set.turns.len(),
        if bench.embedding { " (embedding)" } else { "" }
    );
    let took = engine::ingest_locomo(&bench, &set.turns)?;
    let ingest = Ingest {
        what: "turns (message events)".into(),
        items: set.turns.len(),
        took,
        vectors: if bench.embedding {
            Vectors::Embedded
        } else {
            Vectors::None
        },
    };
    for &mode in &args.modes {
        eprintln!("locomo: {}", mode.label());
        let result = engine::search_locomo(&bench, mode, &set.queries, LOCOMO_DEPTH)
            .map(|(runs, lat)| score_locomo(&set, &runs, Some(&lat)))
            .map_err(|e| format!("{e:#}"));
        rows.push(LocomoRow {
            label: format!("agentstore {}", mode.row_label(args.keyword)),
            result,
        });
    }
    Ok(LocomoOutcome {
        turns: set.turns.len(),
        conversations: convs.len(),
        questions: set.queries.len(),
        with_evidence: set
            .queries
            .iter()
            .filter(|q| !q.evidence.is_empty())
            .count(),
        ingest: Some(ingest),
        rows,
        took: start.elapsed(),
    })
}

// ------------------------------------------------------------------------- report

fn f3(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => "—".into(),
    }
}

fn f4(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        _ => "—".into(),
    }
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.1}"),
        _ => "—".into(),
    }
}

fn error_cell(e: &str) -> String {
    let one_line = e.replace('\n', " ").replace('|', "\\|");
    format!("n/a ({one_line})")
}

fn ingest_line(i: &Ingest) -> String {
    let rate = |took: Duration| i.items as f64 / took.as_secs_f64().max(1e-9);
    let stored = format!(
        "{} {} in {:.1} s ({:.0}/s)",
        i.items,
        i.what,
        i.took.as_secs_f64(),
        rate(i.took)
    );
    match &i.vectors {
        Vectors::None => format!("{stored}, no vectors (keyword modes only)"),
        Vectors::Embedded => format!(
            "{stored}, embedding with all-MiniLM-L6-v2 in the store included (`Store::with_embedder`)"
        ),
        Vectors::Precomputed { took, .. } => format!(
            "{stored} without embedding, then their precomputed vectors written in {:.1} s \
             ({:.0}/s; `WriteOp::PutVectors`, {} per batch)",
            took.as_secs_f64(),
            rate(*took),
            engine::VECTOR_BATCH
        ),
    }
}

/// Which vectors the vector and hybrid rows compared: where the records' came from and
/// where the queries' did.
fn vectors_line(i: &Ingest, records: &str) -> String {
    let queries = "Query vectors: embedded by the store at search time with our embedder \
                   (`agentstore_embed::BertEmbedder`, all-MiniLM-L6-v2 on candle, CPU), inside \
                   each timed `Store::search`.";
    match &i.vectors {
        Vectors::None => "No vectors: keyword modes only.".into(),
        Vectors::Embedded => format!(
            "{records} vectors: embedded by the store as it stored them, with our embedder \
             (`agentstore_embed::BertEmbedder`, all-MiniLM-L6-v2). {queries}"
        ),
        Vectors::Precomputed { file, .. } => format!(
            "{records} vectors: **precomputed**, not made by our embedder: read from `{file}` \
             (all-MiniLM-L6-v2 through Python sentence-transformers; rows matched to documents \
             by `base_ids.txt`) and written to each document's one chunk with \
             `WriteOp::PutVectors` under the model id `{}`, declared 384-d cosine. Our \
             embedder reproduces them (the embed crate's tests check cosine 1.0 on 200 of \
             these documents); `--embed-docs` makes the store embed them instead. {queries}",
            engine::MINILM_ID
        ),
    }
}

fn scifact_section(o: &SciOutcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## SciFact (BEIR test split)\n\n{} documents (`title + \" \" + text`, one document of one \
         chunk each), {} queries with test qrels. Ingest: {}. Each query asks for {SCIFACT_DEPTH} \
         hits; nDCG@10 (binary gains, log2 discount), Recall@100 and MRR@10 averaged over the \
         queries. \"README\" columns are the numbers /work/shared/data/scifact/README.md computed \
         on these files; the rows marked reference are computed by this binary outside the store \
         and check its metric code against them.\n\n{}\n",
        o.docs,
        o.queries,
        o.ingest.as_ref().map_or_else(|| "—".into(), ingest_line),
        o.ingest
            .as_ref()
            .map_or_else(|| "—".into(), |i| vectors_line(i, "Document"))
    );
    s.push_str("| retriever | nDCG@10 | README | Recall@100 | README | MRR@10 | README | p50 ms | note |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for r in &o.rows {
        let reference = r.reference;
        match &r.result {
            Ok(x) => {
                let _ = writeln!(
                    s,
                    "| {} | **{:.4}** | {} | {:.3} | {} | {:.3} | {} | {} | {} |",
                    r.label,
                    x.ndcg10,
                    f4(reference.ndcg10),
                    x.r100,
                    f3(reference.r100),
                    x.mrr10,
                    f3(reference.mrr10),
                    ms(x.p50_ms),
                    reference.note.unwrap_or("")
                );
            }
            Err(e) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | | {} | | {} | | {} |",
                    r.label,
                    error_cell(e),
                    f4(reference.ndcg10),
                    f3(reference.r100),
                    f3(reference.mrr10),
                    reference.note.unwrap_or("")
                );
            }
        }
    }
    let hybrid: Vec<String> = o
        .rows
        .iter()
        .filter(|r| r.hybrid)
        .filter_map(|r| {
            let x = r.result.as_ref().ok()?;
            let verdict = if x.ndcg10 >= SCI_GOAL {
                "meets"
            } else {
                "misses"
            };
            Some(format!("{} {:.4} {verdict} it", r.label, x.ndcg10))
        })
        .collect();
    if !hybrid.is_empty() {
        let _ = writeln!(
            s,
            "\nGoal: hybrid nDCG@10 ≥ {SCI_GOAL} (published BM25 0.665, MiniLM 0.645). {}. The \
             fusion weights are the fixed ones in the binary, not tuned on these queries.",
            hybrid.join("; ")
        );
    }
    s
}

/// README reference rows for LoCoMo: (label, R@5 overall, R@10 overall, R@10 excl. cat 5,
/// R@10 per category 1..=5).
const LOCOMO_REFS: [(&str, f64, f64, f64, [f64; 5]); 3] = [
    (
        "README: BM25 k1=1.2 b=0.75, `\\w+`",
        0.469,
        0.548,
        0.524,
        [0.22, 0.63, 0.27, 0.61, 0.63],
    ),
    (
        "README: all-MiniLM-L6-v2 cosine",
        0.334,
        0.428,
        0.454,
        [0.27, 0.49, 0.25, 0.52, 0.34],
    ),
    (
        "README: RRF k=60 of the two",
        0.446,
        0.556,
        0.564,
        [0.31, 0.66, 0.26, 0.65, 0.53],
    ),
];

fn locomo_section(o: &LocomoOutcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## LoCoMo (locomo10)\n\n{} turns in {} conversations, {} questions ({} with evidence; \
         the rest are skipped). Ingest: {}.\n\n\
         Each conversation is one user's history: its sessions are agentstore sessions in the \
         namespace `locomo/<conv>`, each turn a `message` event (role = speaker, content = \
         `speaker: text`, `dia_id` in metadata, times from the session dates). A question \
         searches events of kind `message` under its own conversation's namespace only. Recall@k \
         = |evidence ∩ top k| / |evidence| per question, averaged (the LoCoMo code's metric); \
         R@5 is read off the same top {LOCOMO_DEPTH}.\n\n{}\n",
        o.turns,
        o.conversations,
        o.questions,
        o.with_evidence,
        o.ingest.as_ref().map_or_else(|| "—".into(), ingest_line),
        o.ingest
            .as_ref()
            .map_or_else(|| "—".into(), |i| vectors_line(i, "Turn (event)"))
    );
    for (k, pick) in [(10, true), (5, false)] {
        let _ = writeln!(s, "### Recall@{k}\n");
        s.push_str("| retriever |");
        for (c, name) in CATEGORIES {
            let _ = write!(s, " cat {c} {name} |");
        }
        s.push_str(" overall | excl. cat 5 | p50 ms |\n|---|");
        s.push_str(&"---|".repeat(CATEGORIES.len() + 3));
        s.push('\n');
        for r in &o.rows {
            match &r.result {
                Ok(x) => {
                    let rec = if pick { &x.r10 } else { &x.r5 };
                    let _ = write!(s, "| {} |", r.label);
                    for (c, _) in CATEGORIES {
                        let _ = write!(s, " {} |", f3(rec.by_cat.get(&c).copied()));
                    }
                    let _ = writeln!(
                        s,
                        " **{:.3}** | {:.3} | {} |",
                        rec.overall,
                        rec.excl5,
                        ms(x.p50_ms)
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} |{}",
                        r.label,
                        error_cell(e),
                        " |".repeat(CATEGORIES.len() + 2)
                    );
                }
            }
        }
        for (label, r5, r10, excl5, cats) in LOCOMO_REFS {
            let _ = write!(s, "| {label} |");
            for c in cats {
                let _ = write!(
                    s,
                    " {} |",
                    if pick {
                        format!("{c:.2}")
                    } else {
                        "—".into()
                    }
                );
            }
            let _ = writeln!(
                s,
                " {:.3} | {} | — |",
                if pick { r10 } else { r5 },
                if pick {
                    format!("{excl5:.3}")
                } else {
                    "—".into()
                }
            );
        }
        s.push('\n');
    }
    s
}

// ------------------------------------------------------------------------- machine

/// The workspace this binary was built from (the bench crate sits two levels down).
fn machine() -> String {
    let profile = if cfg!(debug_assertions) {
        "debug (latencies not meaningful)"
    } else {
        "release"
    };
    format!(
        "- date: {}\n- machine: nproc {nproc}, {cpu}\n- build: {profile}, {rustc}\n- commit: {commit}\n- SQLite: {}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        rusqlite::version(),
        nproc = nproc(),
        cpu = cpu_model(),
        rustc = rustc(),
        commit = commit(),
    )
}

fn report(
    args: &Args,
    sci: Option<&SciOutcome>,
    loc: Option<&LocomoOutcome>,
    model: &str,
    took: Duration,
) -> String {
    let mut cmd = String::from(if cfg!(debug_assertions) {
        "cargo run -p agentstore-bench --bin retrieval_quality"
    } else {
        "cargo run --release -p agentstore-bench --bin retrieval_quality"
    });
    if !args.raw.is_empty() {
        cmd.push_str(" -- ");
        cmd.push_str(
            &args
                .raw
                .iter()
                .map(|a| shell_word(a))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let mut s = format!(
        "# Retrieval quality\n\nReproduce with:\n\n```sh\n{cmd}\n```\n\n{}- embedder: {model}\n\
         - stores: embedded SQLite (`agentstore_sqlite::open`), `Durability::Normal`, one fresh \
         store per dataset shared by all modes\n- total run time: {:.0} s{}\n\n",
        machine(),
        took.as_secs_f64(),
        if args.smoke {
            " (smoke subsets: numbers mean nothing)"
        } else {
            ""
        },
    );
    s.push_str(if matches!(args.keyword, KeywordIndexMode::Eager) {
        "Keyword mode is the in-memory keyword index (tantivy BM25, k1 = 1.2, b = 0.75, \
         English stemming and accent folding), the engine large stores use, built eagerly \
         for this run (`--keyword-engine index`; docs/search.md). Latency p50 is one \
         `Store::search` call, query embedding included for vector and hybrid modes.\n\n"
    } else {
        "Keyword mode is SQLite FTS5 BM25 (k1 = 1.2, b = 0.75) with the `porter unicode61` \
         tokenizer, so English words are stemmed, unlike the READMEs' reference BM25; BM25 \
         statistics are those of the whole index (docs/search.md). Latency p50 is one \
         `Store::search` call, query embedding included for vector and hybrid modes.\n\n"
    });
    if let Some(o) = sci {
        s.push_str(&scifact_section(o));
        let _ = writeln!(
            s,
            "\nSciFact section run time: {:.0} s.\n",
            o.took.as_secs_f64()
        );
    }
    if let Some(o) = loc {
        s.push_str(&locomo_section(o));
        let _ = writeln!(
            s,
            "LoCoMo section run time: {:.0} s.\n",
            o.took.as_secs_f64()
        );
    }
    s
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(ok) => {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the selected sets and writes the report; false when some mode failed (its cells
/// then say why, and the rest of the report is still written).
fn run(args: &Args) -> Result<bool> {
    let start = Instant::now();
    let embedder = if args.modes.iter().any(Mode::needs_embedder) {
        let e = BertEmbedder::load(&args.model_dir).with_context(|| {
            format!(
                "loading all-MiniLM-L6-v2 from {} (run scripts/fetch-model.sh, or pass --modes keyword)",
                args.model_dir.display()
            )
        })?;
        Some(Arc::new(e))
    } else {
        None
    };
    let model = embedder.as_ref().map_or_else(
        || "none (keyword only)".to_owned(),
        |_| {
            format!(
                "all-MiniLM-L6-v2 (candle, CPU) from {}",
                args.model_dir.display()
            )
        },
    );
    let sci = match args.only {
        None | Some(Set::SciFact) => Some(run_scifact(args, embedder.as_ref())?),
        _ => None,
    };
    let loc = match args.only {
        None | Some(Set::LoCoMo) => Some(run_locomo(args, embedder.as_ref())?),
        _ => None,
    };
    let text = report(args, sci.as_ref(), loc.as_ref(), &model, start.elapsed());
    println!("{text}");
    let partial = args.only.is_some() || args.partial_modes;
    let out = match (&args.out, args.smoke, partial) {
        (Some(p), _, _) => Some(p.clone()),
        (None, true, _) => Some(std::env::temp_dir().join("agentstore-retrieval-quality-smoke.md")),
        (None, false, true) => None,
        (None, false, false) => Some(workspace_root().join("bench/results/retrieval-quality.md")),
    };
    match out {
        Some(p) => {
            std::fs::write(&p, &text).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("report written to {}", p.display());
        }
        None => {
            eprintln!("partial run (--only / --modes): report not written; pass --out to keep it")
        }
    }
    let failed = sci
        .iter()
        .flat_map(|o| o.rows.iter().map(|r| r.result.is_err()))
        .chain(
            loc.iter()
                .flat_map(|o| o.rows.iter().map(|r| r.result.is_err())),
        );
    Ok(!failed.into_iter().any(|f| f))
}
