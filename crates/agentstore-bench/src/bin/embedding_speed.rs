//! `embedding_speed`: texts per second of agentstore's local embedder (`BertEmbedder`,
//! all-MiniLM-L6-v2) beside sentence-transformers on the same texts, and how closely their
//! vectors agree. bench/embedding-speed.sh drives it: `texts` writes the workloads once,
//! `run` measures agentstore (the script runs sentence-transformers on the same files),
//! `report` combines both engines' rows and vectors into the markdown table. `smoke`
//! checks the agentstore side alone on a few texts. See bench/README.md.

#[path = "../provenance.rs"]
mod provenance;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use agentstore::embedding::cosine;
use agentstore_embed::{BertEmbedder, BertEmbedderOptions, Embedder};
use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use provenance::*;

const USAGE: &str = "usage: embedding_speed texts  [--data DIR] [--short N] [--long N] --out DIR
       embedding_speed run    --texts DIR --vectors DIR [--model-dir DIR] [--batch-size N] [--rep N]
       embedding_speed report --texts DIR --results FILE --ours DIR --peer DIR --out PATH
                              [--command STR] [--versions STR] [--batch-size N] [--threads N]
       embedding_speed smoke  [--data DIR] [--model-dir DIR] [--out PATH]

  texts   writes the workloads as JSON Lines of strings: DIR/short.jsonl (the first N LoCoMo
          turns as \"speaker: text\", default 2000) and DIR/long.jsonl (the first N SciFact
          docs as title + \" \" + text, default 1000)
  run     embeds each workload once untimed (the first 64 texts, warm-up), then all of it
          timed; prints one JSON row per workload and writes the vectors to
          DIR/<workload>.f32 (little-endian f32, one vector after the other)
  report  medians of the rows in FILE (JSON Lines from `run` and the peer), cosine of the
          two engines' vectors; writes the markdown table to PATH and prints it. Exits 1
          when a workload's minimum cosine is below 0.999
  smoke   32 texts of each workload, agentstore only, checks the vectors (unit length,
          batched = one at a time) and writes the table to a temp file unless --out

  --data DIR       evaluation sets (default $AGENTSTORE_BENCH_DATA or ../shared/data)
  --model-dir DIR  all-MiniLM-L6-v2 files (default $AGENTSTORE_MODEL_DIR or
                   .models/all-MiniLM-L6-v2, as scripts/fetch-model.sh installs them)";

/// The two workloads, in report order: name, what the texts are.
const WORKLOADS: [(&str, &str); 2] = [
    ("short", "LoCoMo turns (`speaker: text`)"),
    (
        "long",
        "SciFact docs (`title + \" \" + text`, truncated at 256 tokens)",
    ),
];
/// Texts embedded untimed first, so that one-time costs (allocations, thread start-up)
/// stay out of the measured run.
const WARM_UP: usize = 64;
/// The agreement the retrieval issue asks for between the two engines' vectors.
const MIN_COSINE: f64 = 0.999;
const OURS: &str = "agentstore";
const PEER: &str = "sentence-transformers";

/// One timed pass of one engine over one workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    engine: String,
    workload: String,
    texts: usize,
    /// Tokens the model reads: special tokens included, after truncation, no padding.
    tokens: usize,
    seconds: f64,
    #[serde(default)]
    rep: usize,
    #[serde(default)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command: fn(&Flags, &[String]) -> Result<bool> = match args.first().map(String::as_str) {
        Some("texts") => |flags, _| cmd_texts(flags),
        Some("run") => |flags, _| cmd_run(flags),
        Some("report") => |flags, _| cmd_report(flags),
        Some("smoke") => cmd_smoke,
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match Flags::parse(&args[1..]).and_then(|flags| command(&flags, &args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("embedding_speed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--flag value` pairs; which ones a subcommand reads is up to it.
struct Flags(BTreeMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags> {
        let mut map = BTreeMap::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let Some(name) = flag.strip_prefix("--") else {
                bail!("unexpected argument {flag:?}\n\n{USAGE}");
            };
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            map.insert(name.to_owned(), value.clone());
        }
        Ok(Flags(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        self.get(name)
            .map(PathBuf::from)
            .with_context(|| format!("--{name} is required\n\n{USAGE}"))
    }

    fn number(&self, name: &str, default: usize) -> Result<usize> {
        self.get(name).map_or(Ok(default), |v| {
            v.parse()
                .with_context(|| format!("--{name} takes a number, not {v:?}"))
        })
    }

    fn data(&self) -> PathBuf {
        self.get("data").map_or_else(
            || {
                std::env::var_os("AGENTSTORE_BENCH_DATA")
                    .map_or_else(|| workspace_root().join("../shared/data"), PathBuf::from)
            },
            PathBuf::from,
        )
    }

    fn model_dir(&self) -> PathBuf {
        self.get("model-dir").map_or_else(
            || {
                std::env::var_os("AGENTSTORE_MODEL_DIR").map_or_else(
                    || workspace_root().join(".models/all-MiniLM-L6-v2"),
                    PathBuf::from,
                )
            },
            PathBuf::from,
        )
    }
}

// ------------------------------------------------------------------------- texts

/// The first `n` lines of a JSON Lines file, each turned into a text by `text`.
/// The first `n` lines of a JSON Lines file (all when `n` is None), each turned into a
/// text by `text`.
fn read_jsonl(
    path: &Path,
    n: Option<usize>,
    text: impl Fn(&serde_json::Value) -> Option<String>,
) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for line in BufReader::new(file).lines().take(n.unwrap_or(usize::MAX)) {
        let value: serde_json::Value = serde_json::from_str(&line?)?;
        out.push(text(&value).with_context(|| format!("{}: unexpected line", path.display()))?);
    }
    if let Some(n) = n {
        ensure!(
            out.len() == n,
            "{} has only {} lines, {n} wanted",
            path.display(),
            out.len()
        );
    }
    Ok(out)
}

fn load_workloads(data: &Path, short: usize, long: usize) -> Result<Vec<Vec<String>>> {
    let turns = read_jsonl(&data.join("locomo/turns.jsonl"), Some(short), |v| {
        Some(format!(
            "{}: {}",
            v["speaker"].as_str()?,
            v["text"].as_str()?
        ))
    })?;
    let docs = read_jsonl(&data.join("scifact/corpus.jsonl"), Some(long), |v| {
        Some(format!("{} {}", v["title"].as_str()?, v["text"].as_str()?))
    })?;
    Ok(vec![turns, docs])
}

fn cmd_texts(flags: &Flags) -> Result<bool> {
    let out = flags.path("out")?;
    std::fs::create_dir_all(&out)?;
    let workloads = load_workloads(
        &flags.data(),
        flags.number("short", 2000)?,
        flags.number("long", 1000)?,
    )?;
    for ((name, _), texts) in WORKLOADS.iter().zip(&workloads) {
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(out.join(format!("{name}.jsonl")))?);
        for text in texts {
            serde_json::to_writer(&mut file, text)?;
            file.write_all(b"\n")?;
        }
        file.flush()?;
    }
    Ok(true)
}

fn read_texts(dir: &Path, workload: &str) -> Result<Vec<String>> {
    read_jsonl(&dir.join(format!("{workload}.jsonl")), None, |v| {
        v.as_str().map(str::to_owned)
    })
}

// ------------------------------------------------------------------------- run

fn load_embedder(flags: &Flags) -> Result<BertEmbedder> {
    let model_dir = flags.model_dir();
    BertEmbedder::load_with(
        &model_dir,
        BertEmbedderOptions {
            batch_size: flags.number("batch-size", 32)?,
            ..BertEmbedderOptions::default()
        },
    )
    .with_context(|| format!("loading the model from {}", model_dir.display()))
}

/// Warms up, then embeds `texts` in one timed call, as a caller ingesting them would.
fn measure(
    embedder: &BertEmbedder,
    workload: &str,
    texts: &[String],
    rep: usize,
) -> Result<(Row, Vec<Vec<f32>>)> {
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens = texts
        .iter()
        .map(|t| embedder.token_ids(t).map(|ids| ids.len()))
        .sum::<Result<usize, _>>()?;
    embedder.embed(&texts[..WARM_UP.min(texts.len())])?;
    let started = Instant::now();
    let vectors = embedder.embed(&texts)?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(vectors.len() == texts.len(), "wrong number of vectors");
    let row = Row {
        engine: OURS.into(),
        workload: workload.into(),
        texts: texts.len(),
        tokens,
        seconds,
        rep,
        threads: Some(embedder.threads()),
    };
    Ok((row, vectors))
}

fn write_vectors(path: &Path, vectors: &[Vec<f32>]) -> Result<()> {
    let mut bytes = Vec::with_capacity(vectors.iter().map(|v| v.len() * 4).sum());
    for x in vectors.iter().flatten() {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn read_vectors(path: &Path, dimension: usize) -> Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        bytes.len().is_multiple_of(4 * dimension),
        "{}: not a whole number of {dimension}-d f32 vectors",
        path.display()
    );
    Ok(bytes
        .chunks_exact(4 * dimension)
        .map(|v| {
            v.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

fn cmd_run(flags: &Flags) -> Result<bool> {
    let texts_dir = flags.path("texts")?;
    let vectors_dir = flags.path("vectors")?;
    std::fs::create_dir_all(&vectors_dir)?;
    let rep = flags.number("rep", 1)?;
    let embedder = load_embedder(flags)?;
    for (name, _) in WORKLOADS {
        let texts = read_texts(&texts_dir, name)?;
        let (row, vectors) = measure(&embedder, name, &texts, rep)?;
        write_vectors(&vectors_dir.join(format!("{name}.f32")), &vectors)?;
        println!("{}", serde_json::to_string(&row)?);
    }
    Ok(true)
}

// ------------------------------------------------------------------------- report

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        f64::NAN
    } else if !n.is_multiple_of(2) {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Mean and minimum cosine of paired vectors, and how many pairs fall below MIN_COSINE.
fn agreement(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f64, f64, usize) {
    let cosines: Vec<f64> = a.iter().zip(b).map(|(x, y)| cosine(x, y)).collect();
    let mean = cosines.iter().sum::<f64>() / cosines.len().max(1) as f64;
    let min = cosines.iter().copied().fold(f64::INFINITY, f64::min);
    let below = cosines.iter().filter(|&&c| c < MIN_COSINE).count();
    (mean, min, below)
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn machine(flags: &Flags) -> String {
    let profile = if cfg!(debug_assertions) {
        "debug (numbers not meaningful)"
    } else {
        "release"
    };
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let mut s = format!(
        "- date: {}\n- machine: nproc {}, {}; load average when the report was written: {}\n\
         - build: {profile}, {}\n- commit: {}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        nproc(),
        cpu_model(),
        if load.is_empty() { "unknown" } else { &load },
        rustc(),
        commit(),
    );
    if let Some(versions) = flags.get("versions").filter(|v| !v.trim().is_empty()) {
        let _ = writeln!(s, "- peer: {}", versions.trim());
    }
    s
}

/// Rows of one engine and workload.
fn rows_of<'a>(rows: &'a [Row], engine: &str, workload: &str) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| r.engine == engine && r.workload == workload)
        .collect()
}

fn cmd_report(flags: &Flags) -> Result<bool> {
    let texts_dir = flags.path("texts")?;
    let results = flags.path("results")?;
    let ours_dir = flags.path("ours")?;
    let peer_dir = flags.path("peer")?;
    let out = flags.path("out")?;
    let rows: Vec<Row> = std::fs::read_to_string(&results)
        .with_context(|| format!("reading {}", results.display()))?
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("bad row {l:?}")))
        .collect::<Result<_>>()?;

    let mut table = String::from(
        "| workload | engine | texts/s | tokens/s | seconds (median) | runs |\n\
         | --- | --- | ---: | ---: | ---: | ---: |\n",
    );
    let mut agree = String::from(
        "| workload | mean cosine | min cosine | texts below 0.999 |\n| --- | ---: | ---: | ---: |\n",
    );
    let mut ok = true;
    for (name, what) in WORKLOADS {
        let texts = read_texts(&texts_dir, name)?;
        let ours = rows_of(&rows, OURS, name);
        let peer = rows_of(&rows, PEER, name);
        let Some(first) = ours.first().or(peer.first()) else {
            continue;
        };
        let tokens = first.tokens;
        let label = format!(
            "{name}: {} {what}, mean {:.1} tokens",
            thousands(texts.len() as f64),
            tokens as f64 / texts.len() as f64
        );
        let mut rates = Vec::new();
        for (engine, rs) in [(OURS, &ours), (PEER, &peer)] {
            if rs.is_empty() {
                let _ = writeln!(table, "| {label} | {engine} | n/a | n/a | n/a | 0 |");
                continue;
            }
            let seconds = median(rs.iter().map(|r| r.seconds).collect());
            rates.push(texts.len() as f64 / seconds);
            let _ = writeln!(
                table,
                "| {label} | {engine} | {} | {} | {seconds:.2} | {} |",
                thousands(texts.len() as f64 / seconds),
                thousands(tokens as f64 / seconds),
                rs.len()
            );
        }
        if let [o, p] = rates[..] {
            // Paired by repetition: the two runs of a pair ran back to back, so load from
            // other processes on the machine hits both alike.
            let paired: Vec<f64> = ours
                .iter()
                .filter_map(|o| {
                    peer.iter()
                        .find(|p| p.rep == o.rep)
                        .map(|p| p.seconds / o.seconds)
                })
                .collect();
            let (lo, hi) = paired
                .iter()
                .fold((f64::INFINITY, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            let _ = writeln!(
                table,
                "| {label} | **agentstore ÷ sentence-transformers** | **{:.2}×** | | | paired runs {lo:.2}–{hi:.2}× |",
                o / p
            );
        }
        if ours.iter().chain(&peer).any(|r| r.tokens != tokens) {
            let _ = writeln!(
                table,
                "| {label} | **token counts differ between engines or runs** | | | | |"
            );
        }
        let (a, b) = (
            ours_dir.join(format!("{name}.f32")),
            peer_dir.join(format!("{name}.f32")),
        );
        if a.exists() && b.exists() {
            let dimension = 384;
            let (va, vb) = (read_vectors(&a, dimension)?, read_vectors(&b, dimension)?);
            ensure!(
                va.len() == texts.len() && vb.len() == texts.len(),
                "{name}: {} and {} vectors for {} texts",
                va.len(),
                vb.len(),
                texts.len()
            );
            let (mean, min, below) = agreement(&va, &vb);
            ok &= min >= MIN_COSINE;
            let _ = writeln!(agree, "| {name} | {mean:.6} | {min:.6} | {below} |");
        } else {
            let _ = writeln!(agree, "| {name} | n/a | n/a | n/a |");
        }
    }

    let command = flags.get("command").unwrap_or("bench/embedding-speed.sh");
    let report = format!(
        "# Local embedding speed\n\nReproduce with:\n\n```sh\n{command}\n```\n\n{}\
         - model: all-MiniLM-L6-v2 (the files of `scripts/fetch-model.sh`), f32, CPU, mean \
         pooling, truncation at 256 tokens, batch size {}, {} threads for each engine\n\
         - each engine embeds a workload in one call (`Embedder::embed` / \
         `SentenceTransformer.encode`) after a warm-up on its first {WARM_UP} texts; the \
         engines alternate run by run, so noise from other processes hits both; rates are \
         over the median time\n\n{table}\n\
         Agreement of the two engines' vectors (last run of each), goal: min cosine ≥ \
         {MIN_COSINE}:\n\n{agree}",
        machine(flags),
        flags.number("batch-size", 32)?,
        flags.number("threads", 2)?,
    );
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    println!("{report}");
    eprintln!("report written to {}", out.display());
    Ok(ok)
}

// ------------------------------------------------------------------------- smoke

/// Texts per workload in a smoke run.
const SMOKE_TEXTS: usize = 32;

fn cmd_smoke(flags: &Flags, raw: &[String]) -> Result<bool> {
    let embedder = load_embedder(flags)?;
    let workloads = load_workloads(&flags.data(), SMOKE_TEXTS, SMOKE_TEXTS)?;
    let dimension = Embedder::model(&embedder).dimension;
    let mut table = String::from(
        "| workload | texts | texts/s | tokens/s | min cosine batched vs one at a time |\n\
         | --- | ---: | ---: | ---: | ---: |\n",
    );
    for ((name, _), texts) in WORKLOADS.iter().zip(&workloads) {
        let (row, vectors) = measure(&embedder, name, texts, 1)?;
        for v in &vectors {
            ensure!(
                v.len() == dimension,
                "{name}: a vector of length {}",
                v.len()
            );
            let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            ensure!((norm - 1.0).abs() < 1e-4, "{name}: a vector of norm {norm}");
        }
        // Batches pad to their longest text: each text alone must come out the same, or
        // padding leaks into the result.
        let alone: Vec<Vec<f32>> = texts
            .iter()
            .map(|t| embedder.embed_one(t))
            .collect::<Result<_, _>>()?;
        let (_, min, _) = agreement(&vectors, &alone);
        ensure!(
            min >= MIN_COSINE,
            "{name}: batched and single vectors differ (min cosine {min})"
        );
        let _ = writeln!(
            table,
            "| {name} | {} | {} | {} | {min:.6} |",
            row.texts,
            thousands(row.texts as f64 / row.seconds),
            thousands(row.tokens as f64 / row.seconds)
        );
    }
    let out = flags.path("out").unwrap_or_else(|_| {
        std::env::temp_dir().join(format!(
            "agentstore-embedding-speed-smoke-{}.md",
            std::process::id()
        ))
    });
    let report = format!(
        "# Local embedding speed (smoke: agentstore only, numbers mean nothing)\n\n\
         `embedding_speed {}`\n\n{}\n{table}",
        raw.iter()
            .map(|a| shell_word(a))
            .collect::<Vec<_>>()
            .join(" "),
        machine(flags),
    );
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    println!("{report}");
    eprintln!("report written to {}", out.display());
    Ok(true)
}
