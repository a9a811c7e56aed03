#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use agentstore_vector::{Hit, IndexParams, Metric, Quantization, VectorIndex};

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ann-scifact-minilm")
}

fn read_vecs(name: &str) -> Vec<Vec<[u8; 4]>> {
    let path = data_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let d = u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        out.push(
            bytes[i + 4..i + 4 + 4 * d]
                .chunks_exact(4)
                .map(|c| c.try_into().unwrap())
                .collect(),
        );
        i += 4 + 4 * d;
    }
    out
}

pub struct SciFact {
    pub base: Vec<Vec<f32>>,
    pub queries: Vec<Vec<f32>>,
    /// Exact inner product of the 10th true neighbour of each query.
    pub kth10: Vec<f32>,
}

pub fn scifact() -> &'static SciFact {
    static S: OnceLock<SciFact> = OnceLock::new();
    S.get_or_init(|| {
        let f = |name| {
            read_vecs(name)
                .into_iter()
                .map(|r| r.into_iter().map(f32::from_le_bytes).collect::<Vec<f32>>())
                .collect::<Vec<_>>()
        };
        let base = f("base.fvecs");
        let queries = f("query.fvecs");
        let scores = f("groundtruth_scores.fvecs");
        assert_eq!(base.len(), 5183);
        assert_eq!(queries.len(), 1109);
        SciFact {
            base,
            queries,
            kth10: scores.iter().map(|s| s[9]).collect(),
        }
    })
}

pub fn items(base: &[Vec<f32>]) -> Vec<(u64, Vec<f32>)> {
    // Sparse keys, to exercise the key -> slot map.
    base.iter()
        .enumerate()
        .map(|(i, v)| (key_of(i), v.clone()))
        .collect()
}

pub fn key_of(row: usize) -> u64 {
    row as u64 * 1_000_003 + 17
}

pub fn build(quantization: Quantization, threads: usize) -> VectorIndex {
    let params = IndexParams {
        quantization,
        ..IndexParams::default()
    };
    let mut ix = VectorIndex::new(384, Metric::Cosine, params);
    ix.insert_batch(&items(&scifact().base), threads).unwrap();
    ix
}

pub fn scifact_index() -> &'static VectorIndex {
    static I: OnceLock<VectorIndex> = OnceLock::new();
    I.get_or_init(|| build(Quantization::None, 2))
}

/// Recall with the near-tie rule: a hit is correct if its score reaches the k-th true score
/// (within `tol`).
pub fn recall_vs(found: &[Hit], truth: &[Hit], tol: f32) -> (usize, usize) {
    let Some(kth) = truth.last() else {
        return (0, 0);
    };
    let ok = found
        .iter()
        .filter(|h| h.score >= kth.score - tol)
        .count()
        .min(truth.len());
    (ok, truth.len())
}

/// Seeded generator for test data.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    pub fn vec(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.unit()).collect()
    }
}
