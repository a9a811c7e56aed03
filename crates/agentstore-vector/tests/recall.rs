//! Recall on the real SciFact / MiniLM set, unfiltered and filtered, and after removals;
//! recall and graph connectivity on low-dimensional clustered synthetic data.

mod common;

use agentstore_vector::{IndexParams, Metric, Quantization, VectorIndex};
use common::*;

fn recall_at_10(ix: &VectorIndex, ef: usize) -> f64 {
    let s = scifact();
    let mut ok = 0;
    for (q, &kth) in s.queries.iter().zip(&s.kth10) {
        let hits = ix.search(q, 10, ef, None).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        // Near-tie rule of the data set's README.
        ok += hits.iter().filter(|h| h.score >= kth - 1e-6).count();
    }
    ok as f64 / (10 * s.queries.len()) as f64
}

#[test]
fn scifact_recall_f32() {
    let r = recall_at_10(scifact_index(), 64);
    println!("recall@10 f32 ef=64: {r:.4}");
    assert!(r >= 0.95, "recall {r}");
}

#[test]
fn scifact_recall_i8_single_thread_build() {
    let ix = build(Quantization::I8, 1);
    let r = recall_at_10(&ix, 64);
    println!("recall@10 i8 ef=64: {r:.4}");
    assert!(r >= 0.95, "recall {r}");
}

fn filtered_recall(ix: &VectorIndex, modulo: u64, ef: usize) -> f64 {
    let s = scifact();
    let filter = move |key: u64| (key / 7) % modulo == modulo / 2;
    let (mut ok, mut total) = (0, 0);
    for q in s.queries.iter().step_by(4) {
        let found = ix.search(q, 10, ef, Some(&filter)).unwrap();
        let truth = ix.exact(q, 10, Some(&filter)).unwrap();
        assert_eq!(found.len(), truth.len());
        assert!(!truth.is_empty());
        assert!(found.iter().all(|h| filter(h.key)));
        let (a, b) = recall_vs(&found, &truth, 1e-6);
        ok += a;
        total += b;
    }
    ok as f64 / total as f64
}

#[test]
fn filtered_recall_50_10_1_percent() {
    for quant in [Quantization::None, Quantization::I8] {
        let built;
        let ix = if quant == Quantization::None {
            scifact_index()
        } else {
            built = build(quant, 2);
            &built
        };
        for modulo in [2, 10, 100] {
            let r = filtered_recall(ix, modulo, 64);
            println!("{quant:?} filter 1/{modulo}: recall {r:.4}");
            assert!(r >= 0.95, "{quant:?} filter 1/{modulo}: recall {r}");
        }
    }
}

#[test]
fn recall_after_removals_and_replacements() {
    let s = scifact();
    let mut ix = build(Quantization::None, 2);
    // Remove a third (stays below the auto-compaction share, so tombstones route).
    for row in (0..s.base.len()).filter(|r| r.is_multiple_of(3)) {
        assert!(ix.remove(key_of(row)));
    }
    // Replace some vectors by another row's vector.
    for row in (1..s.base.len())
        .step_by(50)
        .filter(|r| !r.is_multiple_of(3))
    {
        ix.insert(key_of(row), &s.base[(row * 7) % s.base.len()])
            .unwrap();
    }
    assert!(ix.removed() > 0);
    assert_eq!(ix.len(), s.base.len() - s.base.len().div_ceil(3));
    let (mut ok, mut total) = (0, 0);
    for q in s.queries.iter().step_by(3) {
        let found = ix.search(q, 10, 64, None).unwrap();
        let truth = ix.exact(q, 10, None).unwrap();
        let (a, b) = recall_vs(&found, &truth, 1e-6);
        ok += a;
        total += b;
    }
    let r = ok as f64 / total as f64;
    println!("recall after removals: {r:.4}");
    assert!(r >= 0.95, "recall {r}");
    ix.compact();
    assert_eq!(ix.removed(), 0);
    assert_eq!(ix.len(), s.base.len() - s.base.len().div_ceil(3));
    let q = &s.queries[0];
    let found = ix.search(q, 10, 64, None).unwrap();
    let truth = ix.exact(q, 10, None).unwrap();
    assert!(recall_vs(&found, &truth, 1e-6).0 >= 8);
}

#[test]
fn concurrent_searches() {
    let ix = scifact_index();
    let s = scifact();
    std::thread::scope(|sc| {
        for t in 0..4 {
            sc.spawn(move || {
                for q in s.queries.iter().skip(t).step_by(8) {
                    let a = ix.search(q, 10, 48, None).unwrap();
                    assert_eq!(a.len(), 10);
                }
            });
        }
    });
}

// ------------------------------------------------------------ low-dimensional clusters

const LOW_DIM: usize = 16;

/// `n` unit vectors around `centres`: centre + uniform noise of ±0.4 per component,
/// normalised (the distribution of the 16-d reproduction that looked like a graph bug).
fn clustered(rng: &mut Rng, centres: &[Vec<f32>], n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let c = &centres[(rng.next() % centres.len() as u64) as usize];
            let v: Vec<f32> = c.iter().map(|&x| x + 0.4 * rng.unit()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn centres(rng: &mut Rng) -> Vec<Vec<f32>> {
    (0..20).map(|_| rng.vec(LOW_DIM)).collect()
}

fn low_dim_index(base: &[Vec<f32>], threads: usize) -> VectorIndex {
    let mut ix = VectorIndex::new(LOW_DIM, Metric::Cosine, IndexParams::default());
    ix.insert_batch(&items(base), threads).unwrap();
    ix
}

/// recall@10 of `search(q, 10, ef)` against `exact`, by key.
fn key_recall(ix: &VectorIndex, queries: &[Vec<f32>], ef: usize) -> f64 {
    let mut ok = 0;
    for q in queries {
        let truth: Vec<u64> = ix
            .exact(q, 10, None)
            .unwrap()
            .iter()
            .map(|h| h.key)
            .collect();
        let found = ix.search(q, 10, ef, None).unwrap();
        assert_eq!(found.len(), 10);
        ok += found.iter().filter(|h| truth.contains(&h.key)).count();
    }
    ok as f64 / (10 * queries.len()) as f64
}

/// 16-d, 20 clusters, queries drawn from the same clusters as the data: hnswlib (same M and
/// ef_construction) gets 1.0 here, and so must we, on both build paths.
#[test]
fn low_dim_clustered_recall() {
    let mut rng = Rng(16_001);
    let cs = centres(&mut rng);
    let base = clustered(&mut rng, &cs, 6000);
    let queries = clustered(&mut rng, &cs, 200);
    for threads in [1, 2] {
        let ix = low_dim_index(&base, threads);
        for ef in [50, 100] {
            let r = key_recall(&ix, &queries, ef);
            println!("16-d clustered, {threads} build thread(s), ef {ef}: recall@10 {r:.4}");
            if ef == 100 {
                assert!(r >= 0.95, "{threads} thread(s): recall@10 {r} at ef 100");
            }
        }
    }
}

/// Every node must be reachable at level 0. With `ef` one below the slot count (so `search`
/// still walks the graph instead of scanning) the search visits every reachable node, so each
/// stored vector must come back as its own nearest neighbour (tried at ef 64 first, for speed). The parallel build used to
/// publish a node's links top-down, which let another thread link a new node only to a node
/// whose level-0 list was still empty and then lose that back-link to the list's first
/// write: 0-13 unreachable nodes per 3,000 on 2 threads. The interleaving is timing
/// dependent, hence several 2-thread builds.
#[test]
fn low_dim_clustered_graph_is_connected() {
    let mut rng = Rng(16_002);
    let cs = centres(&mut rng);
    let base = clustered(&mut rng, &cs, 2500);
    for threads in [1, 2, 2, 2, 2] {
        let ix = low_dim_index(&base, threads);
        let lost: Vec<usize> = base
            .iter()
            .enumerate()
            .filter(|(_, v)| {
                let found = |ef| ix.search(v, 1, ef, None).unwrap()[0].score >= 1.0 - 1e-5;
                !found(64) && !found(base.len() - 1)
            })
            .map(|(row, _)| row)
            .collect();
        assert!(
            lost.is_empty(),
            "{threads} thread(s): {} unreachable node(s), rows {lost:?}",
            lost.len()
        );
    }
}
