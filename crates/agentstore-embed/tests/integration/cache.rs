//! `Cached`: repeats are computed once, models never share vectors, the bound holds, and
//! failures cache nothing.

use std::sync::Mutex;

use agentstore_embed::{Cached, EmbedError, Embedder, EmbeddingCache, ModelInfo};

/// An embedder that records what it was asked and derives a vector from the text and a
/// per-model salt, so that wrong cache hits (across texts or models) show up as wrong values.
struct Recording {
    info: ModelInfo,
    salt: f32,
    calls: Mutex<Vec<Vec<String>>>,
    /// Length of the vectors returned, to simulate a misbehaving inner embedder.
    returned_dimension: usize,
}

impl Recording {
    fn new(id: &str, salt: f32) -> Self {
        Recording {
            info: ModelInfo::new(id, 3),
            salt,
            calls: Mutex::new(Vec::new()),
            returned_dimension: 3,
        }
    }

    fn vector(&self, text: &str) -> Vec<f32> {
        let bytes: f32 = text.bytes().map(f32::from).sum();
        let mut v = vec![text.len() as f32, bytes, self.salt];
        v.resize(self.returned_dimension, 0.0);
        v
    }

    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }
}

impl Embedder for Recording {
    fn model(&self) -> &ModelInfo {
        &self.info
    }

    fn embed(&self, texts: &[&str]) -> agentstore_embed::Result<Vec<Vec<f32>>> {
        self.calls
            .lock()
            .unwrap()
            .push(texts.iter().map(|t| t.to_string()).collect());
        if texts.contains(&"fail") {
            return Err(EmbedError::Inference("asked to fail".into()));
        }
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
}

#[test]
fn repeated_texts_are_computed_once() {
    let cached = Cached::new(Recording::new("m", 0.5), 100);
    let inner = |t: &str| cached.inner().vector(t);

    let first = cached.embed(&["a", "bb", "a"]).unwrap();
    assert_eq!(first, vec![inner("a"), inner("bb"), inner("a")]);
    let second = cached.embed(&["bb", "ccc"]).unwrap();
    assert_eq!(second, vec![inner("bb"), inner("ccc")]);
    let third = cached.embed(&["ccc", "a"]).unwrap();
    assert_eq!(third, vec![inner("ccc"), inner("a")]);

    assert_eq!(cached.inner().calls(), vec![vec!["a", "bb"], vec!["ccc"]]);
    let stats = cached.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (4, 3, 3));
    assert!((stats.hit_rate() - 4.0 / 7.0).abs() < 1e-12);
    assert_eq!(cached.model().id, "m");
}

#[test]
fn a_shared_cache_keeps_models_apart() {
    let cache = EmbeddingCache::new(100);
    let m1 = Cached::with_cache(Recording::new("m1", 1.0), cache.clone());
    let m2 = Cached::with_cache(Recording::new("m2", 2.0), cache.clone());

    assert_eq!(m1.embed(&["same text"]).unwrap()[0][2], 1.0);
    assert_eq!(m2.embed(&["same text"]).unwrap()[0][2], 2.0);
    assert_eq!(m1.embed(&["same text"]).unwrap()[0][2], 1.0);
    assert_eq!(m2.inner().calls().len(), 1);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (1, 2, 2));
}

#[test]
fn the_cache_stays_within_its_bound() {
    let cached = Cached::new(Recording::new("m", 0.0), 10);
    let texts: Vec<String> = (0..200).map(|i| format!("text {i}")).collect();
    for chunk in texts.chunks(7) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        cached.embed(&refs).unwrap();
    }
    let stats = cached.stats();
    assert_eq!(stats.misses, 200);
    assert!(
        stats.entries <= 10,
        "{} entries in a cache of 10",
        stats.entries
    );
    cached.cache().clear();
    assert_eq!(cached.stats().entries, 0);
}

#[test]
fn failures_cache_nothing() {
    let cached = Cached::new(Recording::new("m", 0.0), 100);
    let error = cached.embed(&["ok", "fail"]).expect_err("inner failure");
    assert_eq!(error.code(), "inference_error");
    assert_eq!(cached.stats().entries, 0);

    let mut wrong = Recording::new("m", 0.0);
    wrong.returned_dimension = 4;
    let cached = Cached::new(wrong, 100);
    let error = cached.embed(&["x"]).expect_err("wrong dimension");
    assert!(
        matches!(
            error,
            EmbedError::DimensionMismatch {
                expected: 3,
                actual: 4,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(cached.stats().entries, 0);

    assert!(cached.embed(&[]).unwrap().is_empty());
    assert!(
        cached.inner().calls().len() == 1,
        "an empty call reaches no embedder"
    );
}

#[test]
fn model_info_checks_caller_supplied_vectors() {
    let info = ModelInfo::new("caller/model", 3).with_max_tokens(512);
    assert_eq!(info.max_tokens, Some(512));
    info.check_vector(&[0.1, 0.2, 0.3]).unwrap();
    let error = info.check_vector(&[0.1, 0.2]).unwrap_err();
    assert_eq!(error.code(), "dimension_mismatch");
    assert_eq!(
        error.to_string(),
        "model caller/model has dimension 3, got a vector of 2"
    );
    let error = info.check_vector(&[0.1, f32::NAN, 0.3]).unwrap_err();
    assert_eq!(error.code(), "invalid_vector");
}

/// GDPR erasure reaches the cache: vectors of an erased subject's texts are not served
/// from it afterwards (the same text is computed again).
#[test]
fn erasing_a_subject_clears_the_cache() {
    use agentstore::{NewMemory, NewSubject, Scope, SearchRequest};
    let dir = tempfile::tempdir().unwrap();
    let cached = std::sync::Arc::new(Cached::new(Recording::new("m", 0.5), 100));
    let store = agentstore_sqlite::open(&agentstore_sqlite::OpenOptions::new(dir.path()).create())
        .unwrap()
        .with_embedder(cached.clone());
    store.create_tenant("test", "t1", "Tenant One").unwrap();
    let sc = Scope::new("t1", "test");
    let mut s = NewSubject::new("alice@example.com");
    s.consent = true;
    let alice = store.create_subject(&sc, s).unwrap().id;
    let text = "alice's secret text";
    let mut m = NewMemory::new(text);
    m.subject_id = Some(alice.clone());
    store.remember(&sc, m).unwrap();
    // A search for the same text embeds it: from the cache.
    store.search(&sc, SearchRequest::text(text)).unwrap();
    assert_eq!(
        cached.inner().calls().len(),
        1,
        "the repeat came from the cache"
    );

    store.erase_subject(&sc, &alice).unwrap();
    store.search(&sc, SearchRequest::text(text)).unwrap();
    assert_eq!(
        cached.inner().calls().len(),
        2,
        "the erased subject's text was served from the cache"
    );
}
