//! Vectors and the embedders that make them.
//!
//! Every stored vector carries the id of the model that produced it ([`Embedding::model`])
//! and its dimension, and only vectors of one model are ever compared: a store keeps one
//! index per model, and `reembed` moves a store from one model to another.
//!
//! Vectors come from two places:
//! - the caller (`NewMemory::vector`, `NewEvent::vector`, `SearchRequest::vector`): they
//!   belong to the store's vector model, or, in a store without one, to the model
//!   [`external_model_id`] names after their dimension;
//! - an [`Embedder`] given to the store ([`crate::Store::with_embedder`]), which embeds
//!   memories and chunks as they are written and query text as it is searched.
//!
//! The trait lives here, not in `agentstore-embed`, so the engine can call any embedder
//! without depending on a model runtime; `agentstore-embed` implements it for a local
//! BERT model, an OpenAI-compatible endpoint and a cache.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest vector accepted (OpenAI's largest models return 3,072 dimensions).
pub const MAX_DIMENSION: usize = 8192;

/// Turns texts into vectors of one model.
///
/// Contract: one vector per text, in order, each of length [`Embedder::dimension`]; the
/// same text always gives the same vector; on error nothing is returned.
pub trait Embedder: Send + Sync {
    /// Stable model id recorded with every vector, e.g.
    /// `sentence-transformers/all-MiniLM-L6-v2`.
    fn model_id(&self) -> &str;
    /// Length of every vector.
    fn dimension(&self) -> usize;
    /// Embeds `texts`, one vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
    /// Counters of the cache in front of the model, if there is one (for metrics).
    fn cache_stats(&self) -> Option<CacheCounters> {
        None
    }
    /// Drops every cached vector (after a subject's erasure: its texts' vectors must not
    /// outlive it anywhere). Nothing to do without a cache.
    fn clear_cache(&self) {}
}

/// Hit and miss counts of an embedding cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CacheCounters {
    /// Texts answered from the cache.
    pub hits: u64,
    /// Texts the model had to compute.
    pub misses: u64,
    /// Vectors held now.
    pub entries: u64,
}

/// How vectors of a model are compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Cosine similarity (vectors are normalised when indexed). Sentence-embedding models
    /// are trained for it, so it is the default.
    #[default]
    Cosine,
    /// Dot product of the vectors as given.
    Dot,
    /// Negated Euclidean distance, so that higher is still better.
    L2,
}

impl Metric {
    /// `cosine`, `dot` or `l2`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::L2 => "l2",
        }
    }

    /// Parses [`Metric::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cosine" => Ok(Metric::Cosine),
            "dot" => Ok(Metric::Dot),
            "l2" => Ok(Metric::L2),
            other => Err(Error::invalid(
                "metric",
                format!("'{}' is not one of cosine, dot, l2", other.escape_debug()),
            )),
        }
    }
}

/// The model a store's vectors belong to: what an embedder produces, or what the caller
/// declared for the vectors it sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VectorModel {
    /// Model id recorded with every vector.
    pub id: String,
    /// Vector length.
    pub dimension: usize,
    /// Comparison.
    pub metric: Metric,
}

/// A vector and the model it belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Embedding {
    /// Model id.
    pub model: String,
    /// The vector.
    pub vector: Vec<f32>,
}

/// Model id of caller-supplied vectors in a store that has no vector model configured:
/// vectors of an unnamed model are grouped by their dimension.
pub fn external_model_id(dimension: usize) -> String {
    format!("external-{dimension}d")
}

/// Checks a vector: 1 to [`MAX_DIMENSION`] finite values, of `dimension` values when
/// that is known, and not all zeros (a zero vector has no direction to compare).
pub fn check_vector(field: &str, v: &[f32], dimension: Option<usize>) -> Result<()> {
    if v.is_empty() || v.len() > MAX_DIMENSION {
        return Err(Error::invalid(
            field,
            format!("must have 1 to {MAX_DIMENSION} values, has {}", v.len()),
        ));
    }
    if let Some(d) = dimension
        && v.len() != d
    {
        return Err(Error::invalid(
            field,
            format!("has {} values, the vector model has {d}", v.len()),
        ));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(
            field,
            format!("value {i} is not a finite number"),
        ));
    }
    if v.iter().all(|x| *x == 0.0) {
        return Err(Error::invalid(field, "must not be all zeros"));
    }
    Ok(())
}

/// Cosine similarity, accumulated in f64 (0 when either vector is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_checked() {
        check_vector("v", &[0.1, 0.2], Some(2)).unwrap();
        check_vector("v", &[0.1, 0.2], None).unwrap();
        for (v, dim, needle) in [
            (vec![], None, "1 to"),
            (vec![0.1], Some(2), "has 1 values"),
            (vec![f32::NAN, 1.0], None, "finite"),
            (vec![1.0, f32::INFINITY], None, "finite"),
            (vec![0.0, 0.0], None, "zeros"),
        ] {
            let e = check_vector("v", &v, dim).unwrap_err();
            assert_eq!(e.code(), "invalid_input");
            assert!(e.to_string().contains(needle), "{e}");
        }
        assert!(check_vector("v", &vec![1.0; MAX_DIMENSION + 1], None).is_err());
    }

    #[test]
    fn metrics_parse() {
        for m in [Metric::Cosine, Metric::Dot, Metric::L2] {
            assert_eq!(Metric::parse(m.as_str()).unwrap(), m);
        }
        assert!(Metric::parse("hamming").is_err());
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
