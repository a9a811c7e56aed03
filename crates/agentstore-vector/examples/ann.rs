//! ANN benchmark: build an index, sweep `ef`, print recall@10, single-thread queries/s,
//! latency percentiles and memory.
//!
//! ```text
//! cargo run --release -p agentstore-vector --example ann -- \
//!     --base ../shared/data/ann-scifact-minilm/base.fvecs \
//!     --query ../shared/data/ann-scifact-minilm/query.fvecs \
//!     [--gt groundtruth.ivecs] [--threads 2] [--m 16] [--efc 200] [--quant none|i8] [--json]
//!     [--also-f32]
//! cargo run --release -p agentstore-vector --example ann -- --synthetic 100000 [--queries 1000]
//! ```
//!
//! Recall uses the near-tie rule of the SciFact set: a returned key counts as correct if its
//! exact score is >= the k-th exact score - 1e-6. Without `--gt`, ground truth is computed
//! by brute force with `VectorIndex::exact` (f32).
//!
//! `--also-f32`: after the sweep with int8 traversal, the same graph is swept again with f32
//! traversal (rows named `agentstore-f32`), so the two modes are compared on one graph.

use std::time::Instant;

use agentstore_vector::{IndexParams, Metric, Quantization, VectorIndex, similarity};

const K: usize = 10;

fn read_vecs(path: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= bytes.len() {
        let d = u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        out.push(bytes[i + 4..i + 4 + 4 * d].to_vec());
        i += 4 + 4 * d;
    }
    out
}

fn fvecs(path: &str) -> Vec<Vec<f32>> {
    read_vecs(path)
        .into_iter()
        .map(|r| {
            r.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        })
        .collect()
}

fn ivecs(path: &str) -> Vec<Vec<u32>> {
    read_vecs(path)
        .into_iter()
        .map(|r| {
            r.chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        })
        .collect()
}

fn write_fvecs(path: &str, rows: &[Vec<f32>]) {
    let mut out = Vec::with_capacity(rows.len() * (4 + 4 * rows.first().map_or(0, Vec::len)));
    for r in rows {
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        r.iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("write {path}: {e}"));
}

/// Seeded generator (splitmix64 + Box-Muller), so the synthetic set is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

/// Embedding-like data: 1,000 gaussian centres in a 64-d latent space, mapped to 384-d by a
/// fixed random matrix, plus within-cluster latent noise and a little isotropic noise,
/// then normalised. Queries come from the same distribution (different draws).
fn synthetic(n: usize, nq: usize, dim: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let rank = 64;
    let mut rng = Rng(seed);
    let proj: Vec<f32> = (0..rank * dim)
        .map(|_| rng.gauss() / (rank as f32).sqrt())
        .collect();
    let centres: Vec<Vec<f32>> = (0..1000)
        .map(|_| (0..rank).map(|_| rng.gauss()).collect())
        .collect();
    let draw = |rng: &mut Rng| {
        let c = &centres[(rng.next() % centres.len() as u64) as usize];
        let z: Vec<f32> = c.iter().map(|&x| x + 0.9 * rng.gauss()).collect();
        let mut v: Vec<f32> = (0..dim)
            .map(|j| (0..rank).map(|r| z[r] * proj[r * dim + j]).sum::<f32>() + 0.2 * rng.gauss())
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    };
    let base = (0..n).map(|_| draw(&mut rng)).collect();
    let queries = (0..nq).map(|_| draw(&mut rng)).collect();
    (base, queries)
}

struct Args {
    base: Option<String>,
    query: Option<String>,
    gt: Option<String>,
    synthetic: Option<usize>,
    queries: usize,
    threads: usize,
    m: usize,
    efc: usize,
    quant: Quantization,
    efs: Vec<usize>,
    json: bool,
    dataset: String,
    save_data: Option<String>,
    cache: Option<String>,
    also_f32: bool,
}

fn parse_args() -> Args {
    let d = IndexParams::default();
    let mut a = Args {
        base: None,
        query: None,
        gt: None,
        synthetic: None,
        queries: 1000,
        threads: 2,
        m: d.m,
        efc: d.ef_construction,
        quant: d.quantization,
        efs: vec![16, 32, 64, 96, 128, 192, 256, 384],
        json: false,
        dataset: String::new(),
        save_data: None,
        cache: None,
        also_f32: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--base" => a.base = Some(val()),
            "--query" => a.query = Some(val()),
            "--gt" => a.gt = Some(val()),
            "--synthetic" => a.synthetic = Some(val().parse().unwrap()),
            "--queries" => a.queries = val().parse().unwrap(),
            "--threads" => a.threads = val().parse().unwrap(),
            "--m" => a.m = val().parse().unwrap(),
            "--efc" => a.efc = val().parse().unwrap(),
            "--quant" => {
                a.quant = match val().as_str() {
                    "i8" => Quantization::I8,
                    _ => Quantization::None,
                }
            }
            "--ef" => a.efs = val().split(',').map(|x| x.parse().unwrap()).collect(),
            "--json" => a.json = true,
            "--dataset" => a.dataset = val(),
            "--save-data" => a.save_data = Some(val()),
            "--cache" => a.cache = Some(val()),
            "--also-f32" => a.also_f32 = true,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn main() {
    let a = parse_args();
    let (base, queries, dataset) = match (a.synthetic, &a.base, &a.query) {
        (Some(n), _, _) => {
            let (b, q) = synthetic(n, a.queries, 384, 42);
            (b, q, format!("synthetic-{n}"))
        }
        (None, Some(b), Some(q)) => (fvecs(b), fvecs(q), b.clone()),
        _ => panic!("give --base and --query, or --synthetic N"),
    };
    if let Some(dir) = &a.save_data {
        // Lets other engines (bench/ann-crates) run on exactly the same vectors.
        std::fs::create_dir_all(dir).unwrap();
        write_fvecs(&format!("{dir}/base.fvecs"), &base);
        write_fvecs(&format!("{dir}/query.fvecs"), &queries);
    }
    let dataset = if a.dataset.is_empty() {
        dataset
    } else {
        a.dataset.clone()
    };
    let dim = base[0].len();
    let params = IndexParams {
        m: a.m,
        ef_construction: a.efc,
        quantization: a.quant,
    };
    let items: Vec<(u64, Vec<f32>)> = base
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    let n = items.len();
    // `--cache FILE`: load the index from FILE if it exists (build_s is then the load time),
    // else build and save it there; lets search-side changes be measured without rebuilding.
    let cached = a
        .cache
        .as_ref()
        .filter(|c| std::path::Path::new(c).exists());
    let t = Instant::now();
    let mut ix = if let Some(c) = cached {
        let (mut ix, _) = VectorIndex::load(std::path::Path::new(c)).unwrap();
        if ix.params().quantization != a.quant {
            ix.set_quantization(a.quant);
        }
        eprintln!("loaded {c} in {:.2} s", t.elapsed().as_secs_f64());
        ix
    } else {
        let mut ix = VectorIndex::new(dim, Metric::Cosine, params.clone());
        ix.insert_batch(&items, a.threads).unwrap();
        ix
    };
    let build_s = t.elapsed().as_secs_f64();
    if let (Some(c), None) = (&a.cache, cached) {
        let t = Instant::now();
        ix.save(std::path::Path::new(c), b"").unwrap();
        eprintln!("saved {c} in {:.2} s", t.elapsed().as_secs_f64());
    }
    let params = ix.params().clone();
    let mem_mb = ix.memory_bytes() as f64 / (1 << 20) as f64;

    // k-th exact score per query, for the near-tie rule.
    let t = Instant::now();
    let kth: Vec<f32> = match &a.gt {
        Some(g) => ivecs(g)
            .iter()
            .zip(&queries)
            .map(|(ids, q)| similarity(Metric::Cosine, q, &items[ids[K - 1] as usize].1))
            .collect(),
        None => {
            let chunks: Vec<&[Vec<f32>]> = queries
                .chunks(queries.len().div_ceil(a.threads.max(1)))
                .collect();
            std::thread::scope(|s| {
                let hs: Vec<_> = chunks
                    .iter()
                    .map(|c| {
                        let ix = &ix;
                        s.spawn(move || {
                            c.iter()
                                .map(|q| ix.exact(q, K, None).unwrap()[K - 1].score)
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
            })
        }
    };
    let gt_s = t.elapsed().as_secs_f64();
    if !a.json {
        println!(
            "dataset {dataset}: n={n} dim={dim} queries={} m={} efc={} quant={:?} | build {build_s:.2} s on {} threads | memory {mem_mb:.1} MB | ground truth {gt_s:.1} s",
            queries.len(),
            params.m,
            params.ef_construction,
            params.quantization,
            a.threads
        );
        println!(
            "{:>5} {:>10} {:>10} {:>9} {:>9}",
            "ef", "recall@10", "qps", "p50 ms", "p99 ms"
        );
    }
    let mut engine = "agentstore";
    loop {
        let params = ix.params().clone();
        let mem_mb = ix.memory_bytes() as f64 / (1 << 20) as f64;
        sweep(&ix, &a, &queries, &kth, |ef, recall, qps, p50, p99| {
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "engine": engine, "dataset": dataset, "n": n, "dim": dim,
                        "params": params, "ef": ef, "build_s": build_s, "mem_mb": mem_mb,
                        "recall_at_10": recall, "qps": qps, "p50_ms": p50, "p99_ms": p99,
                        "threads": a.threads,
                    })
                );
            } else {
                println!("{ef:>5} {recall:>10.4} {qps:>10.0} {p50:>9.3} {p99:>9.3}");
            }
        });
        if !(a.also_f32 && params.quantization == Quantization::I8) {
            break;
        }
        ix.set_quantization(Quantization::None);
        engine = "agentstore-f32";
        if !a.json {
            println!("f32 traversal of the same graph:");
        }
    }
}

/// Runs the `ef` sweep; `row` gets ef, recall@10, queries/s, p50 and p99 in ms.
fn sweep(
    ix: &VectorIndex,
    a: &Args,
    queries: &[Vec<f32>],
    kth: &[f32],
    mut row: impl FnMut(usize, f64, f64, f64, f64),
) {
    for &ef in &a.efs {
        let mut lat = Vec::with_capacity(queries.len());
        let mut correct = 0usize;
        let t = Instant::now();
        for (q, &kt) in queries.iter().zip(kth) {
            let t1 = Instant::now();
            let hits = ix.search(q, K, ef, None).unwrap();
            lat.push(t1.elapsed().as_secs_f64() * 1e3);
            correct += hits.iter().filter(|h| h.score >= kt - 1e-6).count();
        }
        let total = t.elapsed().as_secs_f64();
        let qps = queries.len() as f64 / total;
        let recall = correct as f64 / (K * queries.len()) as f64;
        lat.sort_by(f64::total_cmp);
        let p50 = lat[lat.len() / 2];
        let p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];
        row(ef, recall, qps, p50, p99);
    }
}
