//! API behaviour, metrics, persistence and a model-based property test.

mod common;

use std::collections::HashMap;

use agentstore_vector::{
    Hit, IndexError, IndexParams, Metric, Quantization, VectorIndex, similarity,
};
use common::*;
use proptest::prelude::*;

fn small(metric: Metric) -> VectorIndex {
    VectorIndex::new(4, metric, IndexParams::default())
}

#[test]
fn empty_index() {
    let ix = small(Metric::Cosine);
    assert!(ix.is_empty());
    assert_eq!(ix.len(), 0);
    assert!(
        ix.search(&[1.0, 0.0, 0.0, 0.0], 10, 10, None)
            .unwrap()
            .is_empty()
    );
    assert!(
        ix.exact(&[1.0, 0.0, 0.0, 0.0], 10, None)
            .unwrap()
            .is_empty()
    );
    assert!(ix.get(1).is_none());
    assert!(ix.keys().is_empty());
}

#[test]
fn insert_get_replace_remove() {
    let mut ix = small(Metric::Cosine);
    ix.insert(7, &[3.0, 0.0, 4.0, 0.0]).unwrap();
    ix.insert(u64::MAX, &[0.0, 1.0, 0.0, 0.0]).unwrap();
    assert_eq!(ix.len(), 2);
    assert!(ix.contains(7) && ix.contains(u64::MAX) && !ix.contains(8));
    // Cosine stores the normalised vector.
    assert_eq!(ix.get(7).unwrap(), vec![0.6, 0.0, 0.8, 0.0]);
    // Replace.
    ix.insert(7, &[0.0, 0.0, 0.0, 2.0]).unwrap();
    assert_eq!(ix.len(), 2);
    assert_eq!(ix.get(7).unwrap(), vec![0.0, 0.0, 0.0, 1.0]);
    let hits = ix.search(&[0.0, 0.0, 0.0, 1.0], 1, 10, None).unwrap();
    assert_eq!(hits, vec![Hit { key: 7, score: 1.0 }]);
    assert_eq!(ix.keys(), vec![7, u64::MAX]);
    assert!(ix.remove(7));
    assert!(!ix.remove(7));
    assert_eq!(ix.len(), 1);
    assert!(!ix.contains(7));
    let hits = ix.search(&[0.0, 0.0, 0.0, 1.0], 5, 10, None).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].key, u64::MAX);
    // Remove all: the index is empty and usable again.
    assert!(ix.remove(u64::MAX));
    assert!(ix.is_empty());
    assert_eq!(ix.removed(), 0);
    assert!(
        ix.search(&[1.0, 0.0, 0.0, 0.0], 3, 10, None)
            .unwrap()
            .is_empty()
    );
    ix.insert(1, &[1.0, 0.0, 0.0, 0.0]).unwrap();
    assert_eq!(
        ix.search(&[1.0, 0.0, 0.0, 0.0], 3, 10, None).unwrap().len(),
        1
    );
}

#[test]
fn invalid_input() {
    let mut ix = small(Metric::Cosine);
    assert!(matches!(
        ix.insert(1, &[1.0, 2.0]),
        Err(IndexError::DimensionMismatch {
            expected: 4,
            actual: 2
        })
    ));
    assert!(matches!(
        ix.insert(1, &[1.0, f32::NAN, 0.0, 0.0]),
        Err(IndexError::NonFinite)
    ));
    assert!(matches!(
        ix.insert(1, &[1.0, f32::INFINITY, 0.0, 0.0]),
        Err(IndexError::NonFinite)
    ));
    assert!(matches!(
        ix.insert(1, &[0.0; 4]),
        Err(IndexError::ZeroVector)
    ));
    assert!(ix.is_empty());
    // Batch validation is all-or-nothing.
    let batch = vec![
        (1, vec![1.0, 0.0, 0.0, 0.0]),
        (2, vec![f32::NAN, 0.0, 0.0, 0.0]),
    ];
    assert!(ix.insert_batch(&batch, 2).is_err());
    assert!(ix.is_empty());
    ix.insert(1, &[1.0, 0.0, 0.0, 0.0]).unwrap();
    assert!(matches!(
        ix.search(&[1.0], 1, 1, None),
        Err(IndexError::DimensionMismatch { .. })
    ));
    assert!(matches!(
        ix.search(&[f32::NAN; 4], 1, 1, None),
        Err(IndexError::NonFinite)
    ));
    assert!(matches!(
        ix.exact(&[1.0; 3], 1, None),
        Err(IndexError::DimensionMismatch { .. })
    ));
    // A zero vector is fine under Dot and L2.
    let mut d = small(Metric::Dot);
    d.insert(1, &[0.0; 4]).unwrap();
    let mut l = small(Metric::L2);
    l.insert(1, &[0.0; 4]).unwrap();
}

#[test]
fn k_larger_than_len_and_zero_k() {
    let mut ix = small(Metric::L2);
    let mut rng = Rng(5);
    for k in 0..20 {
        ix.insert(k, &rng.vec(4)).unwrap();
    }
    let q = rng.vec(4);
    assert_eq!(ix.search(&q, 100, 10, None).unwrap().len(), 20);
    assert_eq!(ix.search(&q, 0, 10, None).unwrap().len(), 0);
    assert_eq!(ix.exact(&q, 100, None).unwrap().len(), 20);
    let keys = [3, 3, 5, 999];
    let hits = ix.exact_keys(&q, 10, &keys).unwrap();
    assert_eq!(hits.len(), 2);
}

#[test]
fn scores_follow_the_metric_definitions() {
    let a = [1.0, 2.0, 2.0, 0.0];
    let b = [2.0, 0.0, 1.0, 0.0];
    assert!((similarity(Metric::Dot, &a, &b) - 4.0).abs() < 1e-6);
    assert!((similarity(Metric::Cosine, &a, &b) - 4.0 / (3.0 * 5f32.sqrt())).abs() < 1e-6);
    assert!((similarity(Metric::L2, &a, &b) + 6f32.sqrt()).abs() < 1e-6);
    for metric in [Metric::Dot, Metric::L2, Metric::Cosine] {
        let mut ix = small(metric);
        ix.insert(1, &b).unwrap();
        let h = ix.exact(&a, 1, None).unwrap()[0];
        assert!(
            (h.score - similarity(metric, &a, &b)).abs() < 1e-6,
            "{metric:?}"
        );
    }
}

/// Clustered data so that the graph has structure to exploit.
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<(u64, Vec<f32>)> {
    let mut rng = Rng(seed);
    let centres: Vec<Vec<f32>> = (0..20).map(|_| rng.vec(dim)).collect();
    (0..n)
        .map(|i| {
            let c = &centres[(rng.next() % 20) as usize];
            let v = c.iter().map(|x| x + 0.3 * rng.unit()).collect();
            (rng.next() >> 3 | i as u64, v)
        })
        .collect()
}

#[test]
fn l2_and_dot_metrics_against_exact() {
    for metric in [Metric::L2, Metric::Dot, Metric::Cosine] {
        for quantization in [Quantization::None, Quantization::I8] {
            let params = IndexParams {
                quantization,
                ..IndexParams::default()
            };
            let mut ix = VectorIndex::new(32, metric, params);
            let data = clustered(3000, 32, 11);
            ix.insert_batch(&data, 2).unwrap();
            let mut rng = Rng(99);
            let (mut ok, mut total) = (0, 0);
            for _ in 0..100 {
                let q: Vec<f32> = data[(rng.next() % 3000) as usize]
                    .1
                    .iter()
                    .map(|x| x + 0.2 * rng.unit())
                    .collect();
                let found = ix.search(&q, 10, 64, None).unwrap();
                let truth = ix.exact(&q, 10, None).unwrap();
                let (a, b) = recall_vs(&found, &truth, 1e-5);
                ok += a;
                total += b;
            }
            let r = ok as f64 / total as f64;
            assert!(r >= 0.95, "{metric:?} {quantization:?}: recall {r}");
        }
    }
}

/// Switching the traversal mode keeps the graph: back in the first mode, every search
/// answers exactly as before; in the other, the hits carry exact scores at the same recall.
#[test]
fn switching_the_traversal_mode_keeps_the_graph() {
    for metric in [Metric::L2, Metric::Cosine] {
        let mut ix = VectorIndex::new(32, metric, IndexParams::default());
        let data = clustered(2000, 32, 5);
        ix.insert_batch(&data, 2).unwrap();
        let mut rng = Rng(7);
        let queries: Vec<Vec<f32>> = (0..50).map(|_| rng.vec(32)).collect();
        let before: Vec<Vec<Hit>> = queries
            .iter()
            .map(|q| ix.search(q, 10, 48, None).unwrap())
            .collect();
        ix.set_quantization(Quantization::None);
        assert_eq!(ix.params().quantization, Quantization::None);
        let (mut ok, mut total) = (0, 0);
        for q in &queries {
            let found = ix.search(q, 10, 48, None).unwrap();
            for h in &found {
                let exact = similarity(metric, q, &data.iter().find(|d| d.0 == h.key).unwrap().1);
                assert!(
                    (h.score - exact).abs() < 1e-4,
                    "{metric:?}: {} vs {exact}",
                    h.score
                );
            }
            let (a, b) = recall_vs(&found, &ix.exact(q, 10, None).unwrap(), 1e-5);
            ok += a;
            total += b;
        }
        let r = ok as f64 / total as f64;
        assert!(r >= 0.95, "{metric:?}: recall {r} with f32 traversal");
        ix.set_quantization(Quantization::I8);
        let after: Vec<Vec<Hit>> = queries
            .iter()
            .map(|q| ix.search(q, 10, 48, None).unwrap())
            .collect();
        assert_eq!(after, before, "{metric:?}");
    }
}

/// `retune` takes on a new build breadth and traversal mode on the built graph, and
/// refuses a new degree, which would need a rebuild.
#[test]
fn retune_keeps_the_graph_unless_the_degree_changes() {
    let data = clustered(1500, 16, 9);
    let old = IndexParams {
        m: 16,
        ef_construction: 64,
        quantization: Quantization::None,
    };
    let mut ix = VectorIndex::new(16, Metric::Cosine, old.clone());
    ix.insert_batch(&data, 2).unwrap();
    let mut rng = Rng(3);
    let queries: Vec<Vec<f32>> = (0..30).map(|_| rng.vec(16)).collect();
    let before: Vec<Vec<Hit>> = queries
        .iter()
        .map(|q| ix.search(q, 10, 40, None).unwrap())
        .collect();
    let other_degree = IndexParams {
        m: 8,
        ..old.clone()
    };
    assert!(!ix.retune(&other_degree));
    assert_eq!(ix.params(), &old);
    let wider = IndexParams {
        ef_construction: 200,
        ..old.clone()
    };
    assert!(ix.retune(&wider));
    assert_eq!(ix.params(), &wider);
    let after: Vec<Vec<Hit>> = queries
        .iter()
        .map(|q| ix.search(q, 10, 40, None).unwrap())
        .collect();
    assert_eq!(after, before, "the graph is the same");
    assert!(ix.retune(&IndexParams::default()));
    assert_eq!(ix.params(), &IndexParams::default());
    // Later inserts link with the new breadth into the same graph; all are found.
    let more = clustered(300, 16, 10);
    for (k, v) in &more {
        ix.insert(*k, v).unwrap();
    }
    for (k, v) in more.iter().take(50) {
        assert_eq!(ix.search(v, 1, 40, None).unwrap()[0].key, *k);
    }
}

#[test]
fn manual_compact_keeps_content() {
    let data = clustered(500, 8, 3);
    let mut ix = VectorIndex::new(8, Metric::L2, IndexParams::default());
    ix.insert_batch(&data, 1).unwrap();
    for (k, _) in data.iter().take(100) {
        ix.remove(*k);
    }
    assert_eq!(ix.removed(), 100);
    let before = ix.memory_bytes();
    ix.compact();
    assert_eq!(ix.removed(), 0);
    assert_eq!(ix.len(), 400);
    assert!(ix.memory_bytes() < before);
    for (k, v) in data.iter().skip(100) {
        assert_eq!(ix.get(*k).as_ref(), Some(v));
    }
    // Auto-compaction: removing past half of the slots drops the tombstones.
    for (k, _) in data.iter().skip(100).take(250) {
        ix.remove(*k);
    }
    assert!(ix.removed() <= ix.len() + ix.removed() / 2);
    assert_eq!(ix.len(), 150);
}

#[test]
fn save_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for quantization in [Quantization::None, Quantization::I8] {
        let params = IndexParams {
            quantization,
            ..IndexParams::default()
        };
        let mut ix = VectorIndex::new(384, Metric::Cosine, params);
        let s = scifact();
        ix.insert_batch(&items(&s.base[..2000]), 2).unwrap();
        ix.remove(key_of(5));
        let path = dir.path().join("ix.bin");
        ix.save(&path, b"watermark 42").unwrap();
        assert!(!dir.path().join("ix.bin.tmp").exists());
        let (back, meta) = VectorIndex::load(&path).unwrap();
        assert_eq!(meta, b"watermark 42");
        assert_eq!(back.len(), ix.len());
        assert_eq!(back.removed(), ix.removed());
        assert_eq!(back.params(), ix.params());
        assert_eq!(back.keys(), ix.keys());
        for q in s.queries.iter().take(200) {
            assert_eq!(
                back.search(q, 10, 40, None).unwrap(),
                ix.search(q, 10, 40, None).unwrap()
            );
        }
    }
}

#[test]
fn every_byte_flip_and_truncation_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut ix = VectorIndex::new(
        3,
        Metric::L2,
        IndexParams {
            m: 4,
            ..IndexParams::default()
        },
    );
    let mut rng = Rng(1);
    for k in 0..12 {
        ix.insert(k * 3, &rng.vec(3)).unwrap();
    }
    ix.remove(3);
    let path = dir.path().join("small.bin");
    ix.save(&path, b"m").unwrap();
    let good = std::fs::read(&path).unwrap();
    let bad = dir.path().join("bad.bin");
    for len in 0..good.len() {
        std::fs::write(&bad, &good[..len]).unwrap();
        match VectorIndex::load(&bad) {
            Err(IndexError::Corrupt(_)) => {}
            other => panic!("truncation to {len}: {:?}", other.map(|_| ())),
        }
    }
    for pos in 0..good.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = good.clone();
            b[pos] ^= bit;
            std::fs::write(&bad, &b).unwrap();
            match VectorIndex::load(&bad) {
                Err(IndexError::Corrupt(_)) => {}
                other => panic!("flip at {pos}: {:?}", other.map(|_| ())),
            }
        }
    }
    // A trailing extra byte is damage too.
    let mut b = good.clone();
    b.push(0);
    std::fs::write(&bad, &b).unwrap();
    assert!(matches!(
        VectorIndex::load(&bad),
        Err(IndexError::Corrupt(_))
    ));
    assert!(matches!(
        VectorIndex::load(&dir.path().join("missing")),
        Err(IndexError::Io { .. })
    ));
    let (back, _) = VectorIndex::load(&path).unwrap();
    assert_eq!(back.len(), 11);
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u64, Vec<f32>),
    Remove(u64),
    Batch(Vec<(u64, Vec<f32>)>),
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    let v = || {
        prop::collection::vec(-4i8..=4, 4)
            .prop_map(|v| v.into_iter().map(f32::from).collect::<Vec<f32>>())
    };
    prop_oneof![
        5 => (0u64..40, v()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => (0u64..40).prop_map(Op::Remove),
        1 => prop::collection::vec((0u64..40, v()), 0..20).prop_map(Op::Batch),
        1 => Just(Op::Compact),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn model_based(
        ops in prop::collection::vec(op(), 1..80),
        metric in prop_oneof![Just(Metric::Cosine), Just(Metric::Dot), Just(Metric::L2)],
        quant in prop_oneof![Just(Quantization::None), Just(Quantization::I8)],
        q in prop::collection::vec(-4i8..=4, 4),
    ) {
        let params = IndexParams { m: 4, ef_construction: 8, quantization: quant };
        let mut ix = VectorIndex::new(4, metric, params);
        let mut model: HashMap<u64, Vec<f32>> = HashMap::new();
        let valid = |v: &[f32]| metric != Metric::Cosine || v.iter().any(|&x| x != 0.0);
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    let r = ix.insert(k, &v);
                    prop_assert_eq!(r.is_ok(), valid(&v));
                    if valid(&v) { model.insert(k, v); }
                }
                Op::Remove(k) => prop_assert_eq!(ix.remove(k), model.remove(&k).is_some()),
                Op::Batch(items) => {
                    let r = ix.insert_batch(&items, 2);
                    prop_assert_eq!(r.is_ok(), items.iter().all(|(_, v)| valid(v)));
                    if r.is_ok() {
                        for (k, v) in items { model.insert(k, v); }
                    }
                }
                Op::Compact => ix.compact(),
            }
            prop_assert_eq!(ix.len(), model.len());
        }
        let mut keys: Vec<u64> = model.keys().copied().collect();
        keys.sort_unstable();
        prop_assert_eq!(ix.keys(), keys);
        let q: Vec<f32> = q.into_iter().map(f32::from).collect();
        if !valid(&q) {
            return Ok(());
        }
        let k = 5;
        let exact = ix.exact(&q, k, None).unwrap();
        // With ef >= len (and so >= the slots once compacted) search equals exact.
        ix.compact();
        prop_assert_eq!(ix.search(&q, k, 1000, None).unwrap(), ix.exact(&q, k, None).unwrap());
        // exact equals the brute-force model.
        let mut want: Vec<Hit> = model
            .iter()
            .map(|(&key, v)| Hit { key, score: similarity(metric, &q, v) })
            .collect();
        want.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key)));
        want.truncate(k);
        prop_assert_eq!(exact.len(), want.len());
        for (got, w) in exact.iter().zip(&want) {
            prop_assert!((got.score - w.score).abs() < 1e-4, "{:?} vs {:?}", exact, want);
            let model_score = similarity(metric, &q, &model[&got.key]);
            prop_assert!((model_score - w.score).abs() < 1e-4, "{:?} vs {:?}", exact, want);
        }
        // A filter keeps only matching keys, and graph search agrees with exact here too.
        let odd = |key: u64| key % 2 == 1;
        let f = ix.search(&q, k, 1000, Some(&odd)).unwrap();
        prop_assert!(f.iter().all(|h| odd(h.key)));
        prop_assert_eq!(f, ix.exact(&q, k, Some(&odd)).unwrap());
        for (key, v) in &model {
            let stored = ix.get(*key).unwrap();
            if metric != Metric::Cosine {
                prop_assert_eq!(&stored, v);
            }
        }
    }
}

#[test]
fn filter_may_search_the_same_index() {
    let data = clustered(300, 8, 9);
    let mut ix = VectorIndex::new(8, Metric::L2, IndexParams::default());
    ix.insert_batch(&data, 2).unwrap();
    let ix = &ix;
    let q = data[0].1.clone();
    let inner = |key: u64| key.is_multiple_of(2) && !ix.search(&q, 1, 16, None).unwrap().is_empty();
    let hits = ix.search(&q, 5, 16, Some(&inner)).unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h.key.is_multiple_of(2)));
}
