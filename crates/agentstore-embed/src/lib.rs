//! Text embedders for agentstore, behind one trait.
//!
//! - [`BertEmbedder`]: a local sentence-transformers BERT model (all-MiniLM-L6-v2 and its kin)
//!   loaded from a directory of `config.json`, `tokenizer.json` and `model.safetensors`, run
//!   on the CPU in pure Rust. It reproduces sentence-transformers (on SciFact documents the
//!   cosine is 1.0 to f32 precision) and never touches the network: the files are fetched
//!   beforehand by `scripts/fetch-model.sh`.
//! - [`OpenAiCompatible`]: any server speaking the OpenAI `POST /embeddings` protocol.
//! - [`Cached`]: wraps either of them with an in-memory cache keyed by model and the SHA-256
//!   of the text, so repeated texts are embedded once.
//!
//! Each of them also implements [`agentstore::Embedder`], so it can be handed to
//! [`agentstore::Store::with_embedder`].
//!
//! Vectors a caller computed elsewhere need no embedder: describe their model with a
//! [`ModelInfo`] and check each one with [`ModelInfo::check_vector`].
//!
//! Every vector an embedder returns belongs to the model in [`Embedder::model`], which is
//! what a store records next to it (model id and dimension), so vectors of different models
//! are never compared with each other.

mod bert;
mod cache;
mod encoder;
mod error;
mod openai;

use std::sync::Arc;

pub use bert::{BertEmbedder, BertEmbedderOptions};
pub use cache::{CacheStats, Cached, EmbeddingCache};
pub use error::EmbedError;
pub use openai::{OpenAiCompatible, OpenAiOptions};

/// Result alias for this crate.
pub type Result<T, E = EmbedError> = std::result::Result<T, E>;

/// What produced a vector: recorded with every stored vector so that only vectors of the
/// same model (and dimension) are ever compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ModelInfo {
    /// Stable model name, e.g. `sentence-transformers/all-MiniLM-L6-v2` or
    /// `text-embedding-3-small`.
    pub id: String,
    /// Length of every vector the model returns.
    pub dimension: usize,
    /// Tokens the model reads per text (longer texts are truncated), when known. Chunkers
    /// use it to size chunks so that nothing is cut off silently.
    pub max_tokens: Option<usize>,
}

impl ModelInfo {
    /// A model with an unknown token limit.
    pub fn new(id: impl Into<String>, dimension: usize) -> Self {
        ModelInfo {
            id: id.into(),
            dimension,
            max_tokens: None,
        }
    }

    /// Sets the token limit.
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Checks a vector claimed to come from this model: right dimension, every value finite.
    /// Meant for caller-supplied vectors, which no embedder has vouched for.
    pub fn check_vector(&self, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dimension {
            return Err(EmbedError::DimensionMismatch {
                model: self.id.clone(),
                expected: self.dimension,
                actual: vector.len(),
            });
        }
        if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
            return Err(EmbedError::InvalidVector(format!(
                "value {i} of a {} vector is {}",
                self.id, vector[i]
            )));
        }
        Ok(())
    }
}

/// Turns texts into vectors.
///
/// Contract, for every implementation:
/// - `embed` returns exactly one vector per input text, in input order, each of length
///   `model().dimension`; an empty input gives an empty output without any work.
/// - The same text always gives the same vector (up to floating-point noise between batch
///   compositions), which is what makes [`Cached`] correct.
/// - Failure is all or nothing: on `Err`, no partial result is returned.
/// - Implementations split large inputs into batches themselves; callers pass whatever
///   they have.
pub trait Embedder: Send + Sync {
    /// The model every returned vector belongs to.
    fn model(&self) -> &ModelInfo;

    /// Embeds `texts`, one vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;

    /// Counters of the cache in front of the model, if there is one.
    fn cache_stats(&self) -> Option<CacheStats> {
        None
    }

    /// Drops every cached vector; nothing to do without a cache.
    fn clear_cache(&self) {}

    /// Embeds a single text.
    fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        let mut vectors = self.embed(&[text])?;
        vectors.pop().ok_or_else(|| {
            EmbedError::BadResponse(format!(
                "{} returned no vector for one text",
                self.model().id
            ))
        })
    }
}

impl<E: Embedder + ?Sized> Embedder for &E {
    fn model(&self) -> &ModelInfo {
        (**self).model()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        (**self).embed(texts)
    }
}

impl<E: Embedder + ?Sized> Embedder for Box<E> {
    fn model(&self) -> &ModelInfo {
        (**self).model()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        (**self).embed(texts)
    }
}

impl<E: Embedder + ?Sized> Embedder for Arc<E> {
    fn model(&self) -> &ModelInfo {
        (**self).model()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        (**self).embed(texts)
    }
}

impl From<EmbedError> for agentstore::Error {
    fn from(e: EmbedError) -> Self {
        agentstore::Error::Embedding {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// The engine's view of an embedder ([`agentstore::Embedder`], which a
/// [`agentstore::Store`] calls on writes and searches), for every embedder of this crate.
macro_rules! store_embedder {
    ($(impl$(<$g:ident: $bound:path>)? for $t:ty;)*) => {$(
        impl$(<$g: $bound>)? agentstore::Embedder for $t {
            fn model_id(&self) -> &str {
                &Embedder::model(self).id
            }
            fn dimension(&self) -> usize {
                Embedder::model(self).dimension
            }
            fn embed(&self, texts: &[&str]) -> agentstore::Result<Vec<Vec<f32>>> {
                Ok(Embedder::embed(self, texts)?)
            }
            fn cache_stats(&self) -> Option<agentstore::embedding::CacheCounters> {
                Embedder::cache_stats(self).map(|c| agentstore::embedding::CacheCounters {
                    hits: c.hits,
                    misses: c.misses,
                    entries: c.entries,
                })
            }
            fn clear_cache(&self) {
                Embedder::clear_cache(self)
            }
        }
    )*};
}
store_embedder! {
    impl for BertEmbedder;
    impl for OpenAiCompatible;
    impl<E: Embedder> for Cached<E>;
}

/// Cosine similarity of two vectors of equal length (0 when either is all zeros),
/// accumulated in f64 so that comparisons near 1.0 are not dominated by rounding.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    agentstore::embedding::cosine(a, b) as f32
}
