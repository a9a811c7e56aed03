//! Same sweep as `agentstore-vector`'s `ann` example, for three engines on one data set:
//! agentstore-vector (Cosine), usearch (IP, F32 scalars set explicitly) and hnsw_rs (DistDot;
//! the inputs are unit-norm). All with M = 16, ef_construction = 128, 2 build threads,
//! single-thread queries, recall@10 with the near-tie rule (hit counts if its exact score
//! >= 10th exact score - 1e-6; exact scores by brute force in f32).
//!
//! usage: ann-crates BASE.fvecs QUERY.fvecs DATASET [engines, default agentstore,usearch,hnsw_rs]

use std::time::Instant;

use agentstore_vector::{IndexParams, Metric, VectorIndex, similarity};

const K: usize = 10;
const M: usize = 16;
const EFC: usize = 128;
const THREADS: usize = 2;
const EFS: [usize; 8] = [16, 32, 64, 96, 128, 192, 256, 384];

fn fvecs(path: &str) -> Vec<Vec<f32>> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= b.len() {
        let d = u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
        out.push(
            b[i + 4..i + 4 + 4 * d]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        );
        i += 4 + 4 * d;
    }
    out
}

/// Runs `search` (returning row ids) over all queries for each ef and prints one row each.
fn sweep(
    engine: &str,
    build_s: f64,
    base: &[Vec<f32>],
    queries: &[Vec<f32>],
    kth: &[f32],
    set_ef: &mut dyn FnMut(usize),
    search: &mut dyn FnMut(&[f32], usize) -> Vec<usize>,
) {
    for ef in EFS {
        set_ef(ef);
        let mut lat = Vec::with_capacity(queries.len());
        let mut ok = 0;
        let t = Instant::now();
        for (q, &kt) in queries.iter().zip(kth) {
            let t1 = Instant::now();
            let ids = search(q, ef);
            lat.push(t1.elapsed().as_secs_f64() * 1e3);
            ok += ids
                .iter()
                .filter(|&&id| similarity(Metric::Cosine, q, &base[id]) >= kt - 1e-6)
                .count();
        }
        let total = t.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        println!(
            "| {engine} | {build_s:.1} | {ef} | {:.4} | {:.0} | {:.3} | {:.3} |",
            ok as f64 / (K * queries.len()) as f64,
            queries.len() as f64 / total,
            lat[lat.len() / 2],
            lat[(lat.len() * 99 / 100).min(lat.len() - 1)]
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = fvecs(&args[1]);
    let queries = fvecs(&args[2]);
    let dataset = &args[3];
    let engines = args
        .get(4)
        .map_or("agentstore,usearch,hnsw_rs", String::as_str);
    let n = base.len();
    let dim = base[0].len();
    rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build_global()
        .unwrap();

    let items: Vec<(u64, Vec<f32>)> = base
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    let mut ours = VectorIndex::new(dim, Metric::Cosine, IndexParams::default());
    let t = Instant::now();
    ours.insert_batch(&items, THREADS).unwrap();
    let ours_build = t.elapsed().as_secs_f64();
    drop(items);
    let kth: Vec<f32> = queries
        .iter()
        .map(|q| ours.exact(q, K, None).unwrap()[K - 1].score)
        .collect();
    println!(
        "{dataset}: n={n} dim={dim} queries={} M={M} ef_construction={EFC} build threads={THREADS}\n",
        queries.len()
    );
    println!("| engine | build s | ef | recall@10 | qps | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|");

    if engines.contains("agentstore") {
        let ours = &ours;
        sweep(
            "agentstore-vector",
            ours_build,
            &base,
            &queries,
            &kth,
            &mut |_| {},
            &mut |q, ef| {
                ours.search(q, K, ef, None)
                    .unwrap()
                    .iter()
                    .map(|h| h.key as usize)
                    .collect()
            },
        );
    }
    drop(ours);

    if engines.contains("usearch") {
        use usearch::{Index, IndexOptions, MetricKind, ScalarKind};
        let opts = IndexOptions {
            dimensions: dim,
            metric: MetricKind::IP,
            quantization: ScalarKind::F32,
            connectivity: M,
            expansion_add: EFC,
            expansion_search: 64,
            multi: false,
        };
        let ix = Index::new(&opts).unwrap();
        ix.reserve_capacity_and_threads(n, THREADS).unwrap();
        let t = Instant::now();
        std::thread::scope(|s| {
            for th in 0..THREADS {
                let (ix, base) = (&ix, &base);
                s.spawn(move || {
                    for i in (th..n).step_by(THREADS) {
                        ix.add(i as u64, &base[i]).unwrap();
                    }
                });
            }
        });
        let build = t.elapsed().as_secs_f64();
        let ixr = &ix;
        sweep(
            "usearch 2.26.6 (f32)",
            build,
            &base,
            &queries,
            &kth,
            &mut |ef| ixr.change_expansion_search(ef),
            &mut |q, _| {
                ixr.search(q, K)
                    .unwrap()
                    .keys
                    .iter()
                    .map(|&k| k as usize)
                    .collect()
            },
        );
    }

    if engines.contains("hnsw_rs") {
        use hnsw_rs::prelude::*;
        let h = Hnsw::<f32, DistDot>::new(M, n, 16, EFC, DistDot {});
        let data: Vec<(&Vec<f32>, usize)> = base.iter().enumerate().map(|(i, v)| (v, i)).collect();
        let t = Instant::now();
        h.parallel_insert(&data);
        let build = t.elapsed().as_secs_f64();
        let hr = &h;
        sweep(
            "hnsw_rs 0.3.5 (DistDot)",
            build,
            &base,
            &queries,
            &kth,
            &mut |_| {},
            &mut |q, ef| hr.search(q, K, ef).iter().map(|nb| nb.d_id).collect(),
        );
    }
}
