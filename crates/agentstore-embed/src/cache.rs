//! An in-memory embedding cache in front of any embedder.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::{EmbedError, Embedder, ModelInfo, Result};

/// What identifies a vector: the model (id and dimension, since one API model can be asked
/// for several dimensions) and the text's SHA-256. Hashing keeps keys small however long
/// the text; with SHA-256, a collision is not a practical concern.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    model: Arc<str>,
    dimension: usize,
    text: [u8; 32],
}

/// Hit and miss counts of an [`EmbeddingCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Texts answered without calling the embedder (including repeats within one call).
    pub hits: u64,
    /// Texts the embedder had to compute.
    pub misses: u64,
    /// Vectors held now.
    pub entries: u64,
}

impl CacheStats {
    /// hits / (hits + misses); 0 before any lookup.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// A bounded, thread-safe map from (model, text hash) to vector, with hit counters. Cheap to
/// clone: clones share the entries and counters, so several [`Cached`] embedders (of
/// different models) can share one memory budget.
///
/// Built on `moka` rather than a `Mutex<LruCache>`: embedders are called from many threads
/// at once and moka's lookups do not serialise on one lock; its TinyLFU admission keeps
/// often-used vectors (queries, frequent chunks) when a bulk import streams through
/// thousands of texts seen once, where plain LRU would flush them. It is also the cache
/// crate the server side plans to use, so the tree gains no second one.
#[derive(Clone)]
pub struct EmbeddingCache {
    entries: moka::sync::Cache<Key, Arc<[f32]>>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl fmt::Debug for EmbeddingCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl EmbeddingCache {
    /// A cache holding at most `max_entries` vectors (a 384-d vector takes ~1.6 kB).
    pub fn new(max_entries: u64) -> Self {
        EmbeddingCache {
            entries: moka::sync::Cache::new(max_entries),
            hits: Arc::new(AtomicU64::new(0)),
            misses: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Current counters. Entry counts are exact after pending evictions have run, which
    /// this call does first.
    pub fn stats(&self) -> CacheStats {
        self.entries.run_pending_tasks();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.entries.entry_count(),
        }
    }

    /// Drops every entry; counters are kept.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }
}

/// Wraps an embedder so that each (model, text) is computed once while its vector stays in
/// the cache. Returns exactly what the inner embedder returned for the text.
///
/// Repeats inside one call are embedded once too, and only the texts not in the cache are
/// sent to the inner embedder, in one call (which batches them itself).
pub struct Cached<E> {
    inner: E,
    cache: EmbeddingCache,
    model: Arc<str>,
}

impl<E: fmt::Debug> fmt::Debug for Cached<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cached")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .finish()
    }
}

impl<E: Embedder> Cached<E> {
    /// Wraps `inner` with a cache of its own holding at most `max_entries` vectors.
    pub fn new(inner: E, max_entries: u64) -> Self {
        Self::with_cache(inner, EmbeddingCache::new(max_entries))
    }

    /// Wraps `inner` with a (possibly shared) cache.
    pub fn with_cache(inner: E, cache: EmbeddingCache) -> Self {
        let model = Arc::from(inner.model().id.as_str());
        Cached {
            inner,
            cache,
            model,
        }
    }

    /// The wrapped embedder.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// The cache, e.g. to share it with another embedder.
    pub fn cache(&self) -> &EmbeddingCache {
        &self.cache
    }

    /// Hit and miss counts of the cache (shared with every embedder using it).
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    fn key(&self, text: &str) -> Key {
        Key {
            model: Arc::clone(&self.model),
            dimension: self.inner.model().dimension,
            text: Sha256::digest(text.as_bytes()).into(),
        }
    }
}

impl<E: Embedder> Embedder for Cached<E> {
    fn model(&self) -> &ModelInfo {
        self.inner.model()
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        Some(self.stats())
    }

    fn clear_cache(&self) {
        self.cache.clear();
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let keys: Vec<Key> = texts.iter().map(|text| self.key(text)).collect();
        let mut out: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
        // Texts to compute, once each, and which output positions wait for which of them.
        let mut to_embed: Vec<&str> = Vec::new();
        let mut slot_of: HashMap<&Key, usize> = HashMap::new();
        let mut waiting: Vec<(usize, usize)> = Vec::new();
        let mut hits = 0u64;
        for (position, (text, key)) in texts.iter().zip(&keys).enumerate() {
            if let Some(vector) = self.cache.entries.get(key) {
                hits += 1;
                out.push(vector.to_vec());
                continue;
            }
            out.push(Vec::new());
            let slot = match slot_of.get(key) {
                Some(&slot) => {
                    hits += 1;
                    slot
                }
                None => {
                    to_embed.push(text);
                    slot_of.insert(key, to_embed.len() - 1);
                    to_embed.len() - 1
                }
            };
            waiting.push((position, slot));
        }

        if !to_embed.is_empty() {
            let fresh = self.inner.embed(&to_embed)?;
            if fresh.len() != to_embed.len() {
                return Err(EmbedError::BadResponse(format!(
                    "{} returned {} vectors for {} texts",
                    self.model,
                    fresh.len(),
                    to_embed.len()
                )));
            }
            // Checked before anything is cached: a wrong vector must not outlive this call.
            for vector in &fresh {
                self.inner.model().check_vector(vector)?;
            }
            let fresh: Vec<Arc<[f32]>> = fresh.into_iter().map(Arc::from).collect();
            for (key, &slot) in &slot_of {
                self.cache
                    .entries
                    .insert((*key).clone(), Arc::clone(&fresh[slot]));
            }
            for (position, slot) in waiting {
                out[position] = fresh[slot].to_vec();
            }
        }
        self.cache.hits.fetch_add(hits, Ordering::Relaxed);
        self.cache
            .misses
            .fetch_add(to_embed.len() as u64, Ordering::Relaxed);
        Ok(out)
    }
}
