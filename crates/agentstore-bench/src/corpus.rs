//! The search corpus of `hybrid_speed` and of the PostgreSQL benchmark: document chunks
//! of real English (the sentences of the SciFact abstracts, shuffled into new documents)
//! with synthetic 384-d clustered vectors. Shared so both benchmarks search the same
//! store contents and report comparable latencies.

use std::time::{Duration, Instant};

use agentstore::text::ChunkOptions;
use agentstore::{Embedder, NewDocument, Scope, Store};
use anyhow::Result;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::data;

/// Dimension of the synthetic vectors (all-MiniLM-L6-v2's).
pub const DIM: usize = 384;
const CENTRES: usize = 1000;
/// Chunking for the generated documents: about 80 words per chunk.
const CHUNK: ChunkOptions = ChunkOptions {
    size: 500,
    overlap: 50,
};
/// Chunks per generated document (about).
const CHUNKS_PER_DOC: usize = 100;
/// The vector model id the synthetic embedder reports.
pub const MODEL_ID: &str = "synthetic-clustered-384d";

/// Text to a vector near one of [`CENTRES`] fixed centres, chosen and perturbed by a hash
/// of the text: the same text always gets the same vector, and the set has the cluster
/// structure of real embeddings, which is what an index's speed depends on. Meaning plays
/// no part: this benchmark measures speed, the quality benchmark measures ranking.
pub struct SyntheticEmbedder {
    centres: Vec<Vec<f32>>,
}

impl SyntheticEmbedder {
    /// The embedder; its centres come from a fixed seed, so every process agrees.
    pub fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(7);
        let centres = (0..CENTRES)
            .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
            .collect();
        SyntheticEmbedder { centres }
    }

    /// The unit-length vector of `text`.
    pub fn vector(&self, text: &str) -> Vec<f32> {
        // FNV-1a: a stable hash (std's is randomly seeded per process).
        let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut rng = StdRng::seed_from_u64(h);
        let centre = &self.centres[(h % CENTRES as u64) as usize];
        let v: Vec<f32> = centre
            .iter()
            .map(|c| c + 0.6 * rng.random_range(-1.0f32..1.0))
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }
}

impl Embedder for SyntheticEmbedder {
    fn model_id(&self) -> &str {
        MODEL_ID
    }
    fn dimension(&self) -> usize {
        DIM
    }
    fn embed(&self, texts: &[&str]) -> agentstore::Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
}

/// Sentences of the SciFact abstracts.
pub fn sentences(sf: &data::SciFact) -> Vec<String> {
    let mut out = Vec::new();
    for d in &sf.docs {
        for s in d.indexed_text().split(". ") {
            let s = s.trim();
            if s.len() > 20 {
                out.push(format!("{s}."));
            }
        }
    }
    out
}

/// Fills the store with documents until it holds `want` chunks. Returns the seconds taken.
pub fn build(store: &Store, scope: &Scope, sentences: &[String], want: usize) -> Result<f64> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(42);
    let mut order: Vec<usize> = (0..sentences.len()).collect();
    let mut have = 0usize;
    let mut doc = 0usize;
    let mut next = 0usize;
    while have < want {
        let mut content = String::new();
        let target = (want - have).min(CHUNKS_PER_DOC) * (CHUNK.size - CHUNK.overlap);
        while content.len() < target {
            if next == 0 {
                order.shuffle(&mut rng);
            }
            content.push_str(&sentences[order[next]]);
            content.push(' ');
            next = (next + 1) % order.len();
        }
        let out = store.put_document(
            scope,
            NewDocument {
                id: Some(format!("doc-{doc}")),
                title: Some(format!("generated {doc}")),
                chunking: CHUNK,
                ..NewDocument::new(content)
            },
        )?;
        have += match out {
            agentstore::DocumentOutcome::Created { chunks, .. }
            | agentstore::DocumentOutcome::Replaced { chunks, .. } => chunks,
            agentstore::DocumentOutcome::Unchanged { .. } => 0,
        };
        doc += 1;
        if doc.is_multiple_of(100) {
            eprintln!(
                "  {have} chunks in {:.0} s ({:.0}/s)",
                started.elapsed().as_secs_f64(),
                have as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The `p` quantile (0..=1) of sorted latencies, in milliseconds (nearest rank).
pub fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}
