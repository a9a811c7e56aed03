//! Approximate nearest-neighbour search: an HNSW graph (Malkov & Yashunin) over flat storage.
//!
//! Layout: every vector lives in a slot (`u32`); keys map to slots. Vectors are one
//! `Vec<f32>` of `slots * dim`, int8 codes one `Vec<i8>`, level-0 neighbour lists one flat
//! array of `slots * (1 + 2M)` (`[count, ids...]`), upper levels one small flat array per
//! node that has any. Neighbour lists are `AtomicU32` so a parallel build can update them
//! under per-node locks while other threads read them without a lock; with `Relaxed`
//! ordering a read is a plain load, so searches pay nothing for this.
//!
//! Removal leaves a tombstone: the node keeps routing searches but is never returned.
//! [`VectorIndex::compact`] rebuilds without tombstones; it runs automatically when
//! tombstones make up more than half of the slots ([`AUTO_COMPACT_SHARE`]).
//!
//! See `README.md` in this crate for measured numbers and the choice of defaults.

mod distance;
mod persist;

use std::cell::RefCell;
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use distance::Kind;
use parking_lot::Mutex;

/// Similarity measure. Scores are similarities: higher is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Cosine,
    Dot,
    L2,
}

/// How the graph is traversed during search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantization {
    /// Exact f32 distances everywhere.
    None,
    /// Graph traversal on int8 scalar-quantised codes (one global scale, see
    /// [`VectorIndex`]), then exact f32 rescoring of the `ef` best candidates.
    I8,
}

/// Build parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexParams {
    /// Neighbours per node on upper levels; level 0 keeps `2 * m`. Clamped to 2..=128.
    pub m: usize,
    /// Search breadth while building. Clamped to at least `m`.
    pub ef_construction: usize,
    pub quantization: Quantization,
}

impl Default for IndexParams {
    /// M = 16, ef_construction = 200, int8 traversal with exact rescoring.
    ///
    /// Measured on the 384-d MiniLM set (table in the crate README): M = 16 reaches
    /// recall@10 0.95 at ef ~24 where M = 8 needs ~48; M = 32 gains ~0.005 recall at equal
    /// ef but computes twice the distances per hop, and costs more memory.
    /// ef_construction 200 rather than 128 matters at scale: at 1M x 384 it lifts recall@10
    /// at ef 64 from 0.9407 to 0.9581, for about 40 % more build time (it is also what the
    /// peers in `bench/` are built with). Int8 traversal reads a quarter of the bytes per
    /// hop, which is what a search waits on once the vectors outgrow the CPU caches: at 1M
    /// it answered 1.15x the queries/s of f32 traversal of the same graph at the same
    /// recall in the side-by-side run of `bench/results/retrieval-speed.md` (1.4-1.6x in
    /// alternating runs on a loaded snapshot); rescoring makes the final scores exact. In
    /// cache (5k) the two are even. It costs 25 % more memory (the codes sit next to the
    /// f32 rows that rescoring reads).
    fn default() -> Self {
        IndexParams {
            m: 16,
            ef_construction: 200,
            quantization: Quantization::I8,
        }
    }
}

/// One search result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub key: u64,
    /// Similarity, higher is better: cosine similarity, dot product, or negated Euclidean
    /// distance.
    pub score: f32,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    #[error("dimension mismatch: expected {expected}, got {actual}")]
    DimensionMismatch { expected: usize, actual: usize },
    #[error("vector contains NaN or infinite values")]
    NonFinite,
    #[error("zero vector has no direction for cosine similarity")]
    ZeroVector,
    #[error("index is full (at most {max} vectors including tombstones)")]
    Full { max: usize },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt index snapshot: {0}")]
    Corrupt(String),
}

/// Tombstones may make up at most this share of the slots; past it, `remove` and `insert`
/// compact the index (a rebuild of the live vectors, on all available cores).
pub const AUTO_COMPACT_SHARE: f64 = 0.5;

const MAX_LEVEL: usize = 16;
const NONE_SLOT: u32 = u32::MAX;
/// Slots are `u32` and `u32::MAX` marks "none".
const MAX_SLOTS: usize = (u32::MAX - 1) as usize;
const LEVEL_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

type Filter<'a> = Option<&'a (dyn Fn(u64) -> bool + Sync)>;

/// An HNSW index. `Send + Sync`: `search`, `exact` and friends take `&self` and may run on
/// many threads at once; writers need `&mut self` (wrap it in an `RwLock`).
///
/// Int8 codes: `code = round(x * 127 / qmax)` clamped to ±127, with `qmax` the largest
/// absolute component seen so far. When new data exceeds `qmax` by more than 10 %, `qmax`
/// is raised and all codes are recomputed (cheap next to a graph insert, and it happens at
/// most a few times because the range grows geometrically); smaller excursions are clamped,
/// which only blurs traversal since final scores are rescored in f32.
pub struct VectorIndex {
    dim: usize,
    metric: Metric,
    params: IndexParams,
    kind: Kind,
    arch: pulp::Arch,
    prefetch: Prefetch,
    /// Level-0 capacity (2M) and upper-level capacity (M).
    m0: usize,
    m: usize,
    data: Vec<f32>,
    codes: Vec<i8>,
    qmax: f32,
    keys: Vec<u64>,
    deleted: Vec<bool>,
    levels: Vec<u8>,
    link0: Vec<AtomicU32>,
    upper: Vec<Vec<AtomicU32>>,
    map: HashMap<u64, u32>,
    /// Entry point slot and its level.
    entry: Option<(u32, usize)>,
    n_removed: usize,
}

#[derive(Clone, Copy, Debug)]
struct Cand {
    d: f32,
    id: u32,
}
impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == CmpOrdering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        self.d.total_cmp(&o.d).then(self.id.cmp(&o.id))
    }
}

/// Generation-stamped visited set, reused across searches on the same thread.
#[derive(Default)]
struct Scratch {
    marks: Vec<u16>,
    gen_: u16,
    cands: BinaryHeap<Reverse<Cand>>,
    res: BinaryHeap<Cand>,
    nb: Vec<u32>,
    ds: Vec<f32>,
}

impl Scratch {
    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.gen_ = self.gen_.wrapping_add(1);
        if self.gen_ == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.gen_ = 1;
        }
        self.cands.clear();
        self.res.clear();
    }
    /// Marks `id`; returns whether it was already visited.
    #[inline]
    fn visit(&mut self, id: u32) -> bool {
        let m = &mut self.marks[id as usize];
        if *m == self.gen_ {
            true
        } else {
            *m = self.gen_;
            false
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch space, or a fresh one if it is in use (a filter
/// closure that itself searches an index).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut sc) => f(&mut sc),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Software prefetch through `pulp`'s safe wrapper of `_mm_prefetch` (a no-op elsewhere).
/// A node's unvisited neighbours are prefetched as a batch before their distances are
/// computed, so their cache misses overlap instead of being paid one after another.
#[derive(Clone, Copy)]
struct Prefetch {
    #[cfg(target_arch = "x86_64")]
    v1: Option<pulp::x86::V1>,
}

impl Prefetch {
    fn new() -> Self {
        Prefetch {
            #[cfg(target_arch = "x86_64")]
            v1: pulp::x86::V1::try_new(),
        }
    }
    /// Prefetches up to `PREFETCH_LINES` cache lines of `s`.
    #[inline(always)]
    fn slice<T>(&self, s: &[T]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(v1) = self.v1 {
            let bytes = std::mem::size_of_val(s).min(PREFETCH_LINES * 64);
            let base = s.as_ptr().cast::<i8>();
            let mut off = 0;
            while off < bytes {
                v1.sse
                    ._mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(base.wrapping_add(off));
                off += 64;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = s;
    }
}

/// The first 512 bytes of a row: all of an int8 row of up to 512 dimensions, the start of
/// an f32 row, whose rest the hardware prefetcher streams once the row is being read.
/// Measured on a 1M x 384 graph (queries/s at ef 64, alternating runs): int8 traversal
/// 5,064-5,091 with 4 lines against 6,297-6,678 with 8 (4 lines left a third of each
/// 384-byte row to a demand miss); f32 4,059-4,083 against 4,177-4,507. At 5k (in cache)
/// the two are within noise. Earlier, at 100k x 384 (p50 at ef 64, f32): no prefetch
/// 0.38-0.41 ms, 4 lines 0.23-0.26 ms, whole rows (24 lines) 0.24-0.29 ms.
const PREFETCH_LINES: usize = 8;

/// The query in the space the graph is traversed in.
enum Space<'a> {
    F32(&'a [f32]),
    I8(&'a [i8]),
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn sort_hits(hits: &mut [Hit]) {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key)));
}

/// Exact similarity with the same definition as [`Hit::score`]. For `Cosine` the inputs need
/// not be normalised; a zero vector gives 0.
pub fn similarity(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    let arch = pulp::Arch::new();
    match metric {
        Metric::Dot => -distance::pair(arch, Kind::NegDot, a, b),
        Metric::L2 => -distance::pair(arch, Kind::L2Sq, a, b).max(0.0).sqrt(),
        Metric::Cosine => {
            let (Some(na), Some(nb)) = (normalized(a), normalized(b)) else {
                return 0.0;
            };
            -distance::pair(arch, Kind::NegDot, &na, &nb)
        }
    }
}

fn normalized(v: &[f32]) -> Option<Vec<f32>> {
    let n = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if n == 0.0 || !n.is_finite() {
        return None;
    }
    Some(v.iter().map(|&x| (f64::from(x) / n) as f32).collect())
}

impl VectorIndex {
    pub fn new(dim: usize, metric: Metric, params: IndexParams) -> Self {
        let mut params = params;
        params.m = params.m.clamp(2, 128);
        params.ef_construction = params.ef_construction.max(params.m);
        let kind = match metric {
            Metric::L2 => Kind::L2Sq,
            Metric::Cosine | Metric::Dot => Kind::NegDot,
        };
        VectorIndex {
            dim,
            metric,
            kind,
            arch: pulp::Arch::new(),
            prefetch: Prefetch::new(),
            m0: params.m * 2,
            m: params.m,
            params,
            data: Vec::new(),
            codes: Vec::new(),
            qmax: 0.0,
            keys: Vec::new(),
            deleted: Vec::new(),
            levels: Vec::new(),
            link0: Vec::new(),
            upper: Vec::new(),
            map: HashMap::new(),
            entry: None,
            n_removed: 0,
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn metric(&self) -> Metric {
        self.metric
    }
    pub fn params(&self) -> &IndexParams {
        &self.params
    }
    /// Live (not removed) vectors.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Tombstones still in the graph.
    pub fn removed(&self) -> usize {
        self.n_removed
    }
    pub fn contains(&self, key: u64) -> bool {
        self.map.contains_key(&key)
    }
    /// The stored vector (normalised for `Cosine`).
    pub fn get(&self, key: u64) -> Option<Vec<f32>> {
        self.map.get(&key).map(|&s| self.vector(s).to_vec())
    }
    /// Live keys in ascending order.
    pub fn keys(&self) -> Vec<u64> {
        let mut k: Vec<u64> = self.map.keys().copied().collect();
        k.sort_unstable();
        k
    }

    /// Approximate resident size in bytes.
    pub fn memory_bytes(&self) -> usize {
        let upper: usize = self
            .upper
            .iter()
            .map(|u| u.capacity() * 4 + std::mem::size_of::<Vec<AtomicU32>>())
            .sum();
        self.data.capacity() * 4
            + self.codes.capacity()
            + self.keys.capacity() * 8
            + self.deleted.capacity()
            + self.levels.capacity()
            + self.link0.capacity() * 4
            + upper
            // hashbrown: key + value + one control byte per bucket, buckets ~ 8/7 of items.
            + self.map.capacity() * (8 + 4 + 1) * 8 / 7
            + std::mem::size_of::<Self>()
    }

    fn slots(&self) -> usize {
        self.keys.len()
    }

    #[inline]
    fn vector(&self, slot: u32) -> &[f32] {
        let s = slot as usize * self.dim;
        &self.data[s..s + self.dim]
    }

    #[inline]
    fn links(&self, slot: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let st = 1 + self.m0;
            let s = slot as usize * st;
            &self.link0[s..s + st]
        } else {
            let st = 1 + self.m;
            &self.upper[slot as usize][(level - 1) * st..level * st]
        }
    }

    #[inline]
    fn read_links(&self, slot: u32, level: usize, out: &mut Vec<u32>) {
        let l = self.links(slot, level);
        let n = (l[0].load(Ordering::Relaxed) as usize).min(l.len() - 1);
        out.extend(l[1..=n].iter().map(|a| a.load(Ordering::Relaxed)));
    }

    fn random_level(&self, slot: usize) -> u8 {
        let h = splitmix64(LEVEL_SEED ^ slot as u64);
        // u in (0, 1]
        let u = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let ml = 1.0 / (self.m as f64).ln();
        ((-u.ln() * ml) as usize).min(MAX_LEVEL) as u8
    }

    /// Checks and prepares a vector for storage or as a query (normalised for Cosine).
    fn prepare(&self, v: &[f32]) -> Result<Vec<f32>, IndexError> {
        if v.len() != self.dim {
            return Err(IndexError::DimensionMismatch {
                expected: self.dim,
                actual: v.len(),
            });
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(IndexError::NonFinite);
        }
        match self.metric {
            Metric::Cosine => normalized(v).ok_or(IndexError::ZeroVector),
            Metric::Dot | Metric::L2 => Ok(v.to_vec()),
        }
    }

    fn quantize(&self, v: &[f32], out: &mut Vec<i8>) {
        let inv = if self.qmax > 0.0 {
            127.0 / self.qmax
        } else {
            0.0
        };
        out.extend(
            v.iter()
                .map(|&x| (x * inv).round().clamp(-127.0, 127.0) as i8),
        );
    }

    /// Raises the int8 range if `incoming_max` exceeds it by more than 10 % (see type docs).
    fn widen_quantization(&mut self, incoming_max: f32) {
        if self.params.quantization != Quantization::I8 {
            return;
        }
        if incoming_max > self.qmax * 1.1 {
            self.qmax = incoming_max;
            let mut codes = Vec::with_capacity(self.data.len());
            for s in 0..self.slots() {
                self.quantize(self.vector(s as u32), &mut codes);
            }
            self.codes = codes;
        }
    }

    /// Switches how searches traverse the graph, without rebuilding it: the graph is the
    /// same either way (it is always built on exact distances), only the codes differ.
    pub fn set_quantization(&mut self, quantization: Quantization) {
        self.params.quantization = quantization;
        self.codes = Vec::new();
        self.qmax = 0.0;
        if quantization == Quantization::I8 {
            let max = self.data.iter().fold(0.0f32, |a, &x| a.max(x.abs()));
            self.widen_quantization(max);
        }
    }

    /// Takes on `params` where the graph allows it, without a rebuild: a different
    /// `ef_construction` applies to later inserts (the links already made stay valid, and an
    /// HNSW graph may mix nodes linked with different breadths), a different traversal mode
    /// only recomputes the codes. A different `m` changes the size of every neighbour list,
    /// so it needs a rebuild: then this returns false and changes nothing.
    pub fn retune(&mut self, params: &IndexParams) -> bool {
        let wanted = VectorIndex::new(self.dim, self.metric, params.clone()).params;
        if wanted.m != self.params.m {
            return false;
        }
        self.params.ef_construction = wanted.ef_construction;
        if wanted.quantization != self.params.quantization {
            self.set_quantization(wanted.quantization);
        }
        true
    }

    /// Appends a prepared vector as a new slot, not yet linked.
    fn push_slot(&mut self, key: u64, v: &[f32]) -> u32 {
        let slot = self.slots();
        if let Some(old) = self.map.insert(key, slot as u32) {
            self.deleted[old as usize] = true;
            self.n_removed += 1;
        }
        self.data.extend_from_slice(v);
        if self.params.quantization == Quantization::I8 {
            let mut codes = std::mem::take(&mut self.codes);
            self.quantize(v, &mut codes);
            self.codes = codes;
        }
        self.keys.push(key);
        self.deleted.push(false);
        let level = self.random_level(slot);
        self.levels.push(level);
        self.link0
            .extend((0..1 + self.m0).map(|_| AtomicU32::new(0)));
        self.upper.push(
            (0..level as usize * (1 + self.m))
                .map(|_| AtomicU32::new(0))
                .collect(),
        );
        slot as u32
    }

    /// Inserts or replaces the vector of `key`.
    pub fn insert(&mut self, key: u64, v: &[f32]) -> Result<(), IndexError> {
        let p = self.prepare(v)?;
        if self.slots() >= MAX_SLOTS {
            return Err(IndexError::Full { max: MAX_SLOTS });
        }
        self.widen_quantization(p.iter().fold(0.0f32, |a, &x| a.max(x.abs())));
        let slot = self.push_slot(key, &p);
        let entry = Mutex::new(self.entry);
        self.link(slot, None, &entry);
        self.entry = entry.into_inner();
        self.maybe_compact();
        Ok(())
    }

    /// Inserts many vectors, linking them on `threads` threads. Every item is validated
    /// before anything changes; a key repeated in `items` keeps its last vector.
    pub fn insert_batch(
        &mut self,
        items: &[(u64, Vec<f32>)],
        threads: usize,
    ) -> Result<(), IndexError> {
        let prepared = items
            .iter()
            .map(|(k, v)| self.prepare(v).map(|p| (*k, p)))
            .collect::<Result<Vec<_>, _>>()?;
        if self.slots() + prepared.len() > MAX_SLOTS {
            return Err(IndexError::Full { max: MAX_SLOTS });
        }
        let incoming_max = prepared
            .iter()
            .flat_map(|(_, p)| p.iter())
            .fold(0.0f32, |a, &x| a.max(x.abs()));
        self.widen_quantization(incoming_max);
        let first = self.slots();
        self.data.reserve(prepared.len() * self.dim);
        self.link0.reserve(prepared.len() * (1 + self.m0));
        if self.params.quantization == Quantization::I8 {
            self.codes.reserve(prepared.len() * self.dim);
        }
        for (k, p) in &prepared {
            self.push_slot(*k, p);
        }
        drop(prepared);
        let total = self.slots();
        let entry = Mutex::new(self.entry);
        let threads = threads.max(1).min(total - first);
        if threads <= 1 {
            for s in first..total {
                self.link(s as u32, None, &entry);
            }
        } else {
            let locks: Vec<Mutex<()>> = (0..total).map(|_| Mutex::new(())).collect();
            let next = AtomicUsize::new(first);
            let this = &*self;
            std::thread::scope(|sc| {
                for _ in 0..threads {
                    sc.spawn(|| {
                        loop {
                            let s = next.fetch_add(1, Ordering::Relaxed);
                            if s >= total {
                                break;
                            }
                            this.link(s as u32, Some(&locks), &entry);
                        }
                    });
                }
            });
        }
        self.entry = entry.into_inner();
        self.maybe_compact();
        Ok(())
    }

    /// Removes `key`; the node stays in the graph as a tombstone until compaction.
    pub fn remove(&mut self, key: u64) -> bool {
        let Some(slot) = self.map.remove(&key) else {
            return false;
        };
        self.deleted[slot as usize] = true;
        self.n_removed += 1;
        self.maybe_compact();
        true
    }

    fn maybe_compact(&mut self) {
        if self.map.is_empty() && self.slots() > 0 {
            self.clear();
        } else if self.n_removed as f64 > self.slots() as f64 * AUTO_COMPACT_SHARE {
            self.compact();
        }
    }

    fn clear(&mut self) {
        *self = VectorIndex::new(self.dim, self.metric, self.params.clone());
    }

    /// Rebuilds the graph from the live vectors, dropping tombstones.
    pub fn compact(&mut self) {
        let mut live: Vec<(u64, Vec<f32>)> = Vec::with_capacity(self.len());
        for (s, &k) in self.keys.iter().enumerate() {
            if !self.deleted[s] {
                live.push((k, self.vector(s as u32).to_vec()));
            }
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut fresh = VectorIndex::new(self.dim, self.metric, self.params.clone());
        if !live.is_empty() {
            // The stored vectors are already validated (and normalised), so this cannot fail.
            fresh
                .insert_batch(&live, threads)
                .expect("stored vectors are valid");
        }
        *self = fresh;
    }

    // ---------------------------------------------------------------- graph construction

    fn dists_f32(&self, q: &[f32], ids: &[u32], out: &mut Vec<f32>) {
        out.resize(ids.len(), 0.0);
        distance::batch_f32(self.arch, self.kind, q, &self.data, self.dim, ids, out);
    }

    #[inline]
    fn dists(&self, q: &Space<'_>, ids: &[u32], out: &mut Vec<f32>) {
        out.resize(ids.len(), 0.0);
        match q {
            Space::F32(q) => {
                distance::batch_f32(self.arch, self.kind, q, &self.data, self.dim, ids, out)
            }
            Space::I8(q) => {
                distance::batch_i8(self.arch, self.kind, q, &self.codes, self.dim, ids, out)
            }
        }
    }

    #[inline(always)]
    fn prefetch_row(&self, q: &Space<'_>, id: u32) {
        let s = id as usize * self.dim;
        match q {
            Space::F32(_) => self.prefetch.slice(&self.data[s..s + self.dim]),
            Space::I8(_) => self.prefetch.slice(&self.codes[s..s + self.dim]),
        }
    }

    /// Greedy descent on one upper level.
    fn greedy(&self, q: &Space<'_>, mut cur: Cand, level: usize, sc: &mut Scratch) -> Cand {
        loop {
            sc.nb.clear();
            self.read_links(cur.id, level, &mut sc.nb);
            let nb = std::mem::take(&mut sc.nb);
            self.dists(q, &nb, &mut sc.ds);
            let mut changed = false;
            for (&id, &d) in nb.iter().zip(&sc.ds) {
                if d < cur.d {
                    cur = Cand { d, id };
                    changed = true;
                }
            }
            sc.nb = nb;
            if !changed {
                return cur;
            }
        }
    }

    /// Best-first search of one level. Only nodes passing `accept` enter the result set,
    /// all nodes route. Leaves up to `ef` results in `sc.res`.
    fn search_level<F: Fn(u32) -> bool>(
        &self,
        q: &Space<'_>,
        entry: &[Cand],
        ef: usize,
        level: usize,
        accept: F,
        sc: &mut Scratch,
    ) {
        sc.reset(self.slots());
        for &c in entry {
            if sc.visit(c.id) {
                continue;
            }
            sc.cands.push(Reverse(c));
            if accept(c.id) {
                sc.res.push(c);
                if sc.res.len() > ef {
                    sc.res.pop();
                }
            }
        }
        let mut lower = sc.res.peek().map_or(f32::INFINITY, |c| c.d);
        let mut nb = std::mem::take(&mut sc.nb);
        let mut ds = std::mem::take(&mut sc.ds);
        while let Some(Reverse(c)) = sc.cands.pop() {
            if c.d > lower && sc.res.len() >= ef {
                break;
            }
            nb.clear();
            let l = self.links(c.id, level);
            let n = (l[0].load(Ordering::Relaxed) as usize).min(l.len() - 1);
            for a in &l[1..=n] {
                let id = a.load(Ordering::Relaxed);
                if !sc.visit(id) {
                    nb.push(id);
                }
            }
            if nb.is_empty() {
                continue;
            }
            for &id in &nb {
                self.prefetch_row(q, id);
            }
            if let Some(Reverse(next)) = sc.cands.peek() {
                self.prefetch.slice(self.links(next.id, level));
            }
            self.dists(q, &nb, &mut ds);
            for (&id, &d) in nb.iter().zip(&ds) {
                if sc.res.len() < ef || d < lower {
                    sc.cands.push(Reverse(Cand { d, id }));
                    if accept(id) {
                        sc.res.push(Cand { d, id });
                        if sc.res.len() > ef {
                            sc.res.pop();
                        }
                        lower = sc.res.peek().map_or(f32::INFINITY, |c| c.d);
                    }
                }
            }
        }
        sc.nb = nb;
        sc.ds = ds;
    }

    /// The neighbour-selection heuristic: keep a candidate only if it is closer to the base
    /// than to every candidate kept so far. `cands` is sorted by distance to the base.
    fn select(&self, cands: &[Cand], max: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(max);
        let mut ds = Vec::with_capacity(max);
        for c in cands {
            if kept.len() >= max {
                break;
            }
            self.dists_f32(self.vector(c.id), &kept, &mut ds);
            if ds.iter().all(|&d| d >= c.d) {
                kept.push(c.id);
            }
        }
        kept
    }

    fn write_links(&self, slot: u32, level: usize, ids: &[u32]) {
        let l = self.links(slot, level);
        let n = ids.len().min(l.len() - 1);
        // Count first when shrinking, last when growing: a concurrent reader then only ever
        // sees valid slot ids.
        l[0].store(
            n.min(l[0].load(Ordering::Relaxed) as usize) as u32,
            Ordering::Relaxed,
        );
        for (a, &id) in l[1..].iter().zip(&ids[..n]) {
            a.store(id, Ordering::Relaxed);
        }
        l[0].store(n as u32, Ordering::Relaxed);
    }

    /// Adds the back-link `new` to `node`'s list, pruning with the heuristic when full.
    fn add_link(&self, node: u32, new: u32, level: usize) {
        let l = self.links(node, level);
        let cap = l.len() - 1;
        let n = (l[0].load(Ordering::Relaxed) as usize).min(cap);
        if l[1..=n].iter().any(|a| a.load(Ordering::Relaxed) == new) {
            return;
        }
        if n < cap {
            l[1 + n].store(new, Ordering::Relaxed);
            l[0].store(n as u32 + 1, Ordering::Relaxed);
            return;
        }
        let mut ids: Vec<u32> = l[1..=n].iter().map(|a| a.load(Ordering::Relaxed)).collect();
        ids.push(new);
        let mut ds = Vec::new();
        self.dists_f32(self.vector(node), &ids, &mut ds);
        let mut cands: Vec<Cand> = ids
            .iter()
            .zip(&ds)
            .map(|(&id, &d)| Cand { d, id })
            .collect();
        cands.sort_unstable();
        let sel = self.select(&cands, cap);
        self.write_links(node, level, &sel);
    }

    /// Links an already stored slot into the graph.
    fn link(&self, slot: u32, locks: Option<&[Mutex<()>]>, entry: &Mutex<Option<(u32, usize)>>) {
        let level = self.levels[slot as usize] as usize;
        let (ep, max_level) = {
            let mut e = entry.lock();
            match *e {
                None => {
                    *e = Some((slot, level));
                    return;
                }
                Some(x) => x,
            }
        };
        let q = self.vector(slot);
        let space = Space::F32(q);
        let lock = |s: u32| locks.map(|l| l[s as usize].lock());
        with_scratch(|sc| {
            let mut cur = Cand {
                d: distance::pair(self.arch, self.kind, q, self.vector(ep)),
                id: ep,
            };
            for lev in (level + 1..=max_level).rev() {
                cur = self.greedy(&space, cur, lev, sc);
            }
            // Search every level top-down first, then publish the links bottom-up (level 0
            // first). A concurrent insert can only reach `slot` on a level once its
            // back-links there exist; publishing bottom-up means every lower level of `slot`
            // already has its list by then. Top-down publishing let another thread reach
            // `slot` on level 1 while its level-0 list was still empty: that thread's level-0
            // search then found nothing but `slot`, linked only to it, and its back-link in
            // `slot`'s list was overwritten a moment later by `slot`'s own `write_links`,
            // leaving nodes with no in-edge (unreachable; 0-13 per 3,000 nodes in 16-d
            // clustered data on 2 threads). The search of a level reads only that level's
            // lists, so a sequential build is unchanged by the reordering.
            let top = level.min(max_level);
            let mut eps = vec![cur];
            let mut sels: Vec<Vec<u32>> = vec![Vec::new(); top + 1];
            for lev in (0..=top).rev() {
                self.search_level(
                    &space,
                    &eps,
                    self.params.ef_construction,
                    lev,
                    |id| id != slot,
                    sc,
                );
                let mut w: Vec<Cand> = sc.res.drain().collect();
                w.sort_unstable();
                sels[lev] = self.select(&w, self.m);
                if !w.is_empty() {
                    eps = w;
                }
            }
            for (lev, sel) in sels.iter().enumerate() {
                {
                    let _g = lock(slot);
                    debug_assert_eq!(
                        self.links(slot, lev)[0].load(Ordering::Relaxed),
                        0,
                        "slot {slot} got links on level {lev} before its own were written"
                    );
                    self.write_links(slot, lev, sel);
                }
                for &n in sel {
                    let _g = lock(n);
                    self.add_link(n, slot, lev);
                }
            }
        });
        if level > max_level {
            let mut e = entry.lock();
            if e.is_none_or(|(_, l)| level > l) {
                *e = Some((slot, level));
            }
        }
    }

    // ---------------------------------------------------------------------------- search

    fn to_score(&self, d: f32) -> f32 {
        match self.kind {
            Kind::NegDot => -d,
            Kind::L2Sq => -d.max(0.0).sqrt(),
        }
    }

    /// Approximate top-k. `ef` (search breadth) is clamped to at least `k`.
    ///
    /// Filtering: non-matching and removed nodes still route the search but never enter
    /// the result set, and the search only stops once it holds `ef` *matching* nodes (or
    /// runs out of reachable nodes), so a selective filter automatically widens the search
    /// (a 1 % filter explores ~100x as many nodes). If the graph search still returns fewer
    /// than `k` hits (a filter matching fewer than `k` items, or matches unreachable in the
    /// graph), the result is completed by an exact scan, so `k` results come back whenever
    /// `k` matching vectors exist. For filters matching only a few hundred items,
    /// [`VectorIndex::exact_keys`] is cheaper.
    ///
    /// When `ef` is at least the number of slots, the graph would visit every node anyway,
    /// so the exact scan is used directly (and the result equals [`VectorIndex::exact`]).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Filter<'_>,
    ) -> Result<Vec<Hit>, IndexError> {
        let q = self.prepare(query)?;
        let Some((ep, max_level)) = self.entry else {
            return Ok(Vec::new());
        };
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let ef = ef.max(k);
        if ef >= self.slots() {
            return Ok(self.exact_prepared(&q, k, filter));
        }
        let qcodes;
        let space = if self.params.quantization == Quantization::I8 {
            let mut c = Vec::with_capacity(self.dim);
            self.quantize(&q, &mut c);
            qcodes = c;
            Space::I8(&qcodes)
        } else {
            Space::F32(&q)
        };
        let mut found: Vec<Cand> = with_scratch(|sc| {
            let mut ds = Vec::with_capacity(1);
            self.dists(&space, &[ep], &mut ds);
            let mut cur = Cand { d: ds[0], id: ep };
            for lev in (1..=max_level).rev() {
                cur = self.greedy(&space, cur, lev, sc);
            }
            match (filter, self.n_removed) {
                (None, 0) => self.search_level(&space, &[cur], ef, 0, |_| true, sc),
                (None, _) => {
                    self.search_level(&space, &[cur], ef, 0, |s| !self.deleted[s as usize], sc)
                }
                (Some(f), _) => self.search_level(
                    &space,
                    &[cur],
                    ef,
                    0,
                    |s| !self.deleted[s as usize] && f(self.keys[s as usize]),
                    sc,
                ),
            }
            sc.res.drain().collect()
        });
        if let Space::I8(_) = space {
            let ids: Vec<u32> = found.iter().map(|c| c.id).collect();
            let mut ds = Vec::new();
            self.dists_f32(&q, &ids, &mut ds);
            for (c, d) in found.iter_mut().zip(ds) {
                c.d = d;
            }
        }
        let mut hits: Vec<Hit> = found
            .iter()
            .map(|c| Hit {
                key: self.keys[c.id as usize],
                score: self.to_score(c.d),
            })
            .collect();
        sort_hits(&mut hits);
        hits.truncate(k);
        if hits.len() < k && hits.len() < self.len() {
            return Ok(self.exact_prepared(&q, k, filter));
        }
        Ok(hits)
    }

    /// Exact top-k by brute force over every live vector passing the filter (f32).
    pub fn exact(
        &self,
        query: &[f32],
        k: usize,
        filter: Filter<'_>,
    ) -> Result<Vec<Hit>, IndexError> {
        let q = self.prepare(query)?;
        Ok(self.exact_prepared(&q, k, filter))
    }

    fn exact_prepared(&self, q: &[f32], k: usize, filter: Filter<'_>) -> Vec<Hit> {
        let ids: Vec<u32> = (0..self.slots() as u32)
            .filter(|&s| {
                !self.deleted[s as usize] && filter.is_none_or(|f| f(self.keys[s as usize]))
            })
            .collect();
        self.top_k_of(q, k, &ids)
    }

    fn top_k_of(&self, q: &[f32], k: usize, ids: &[u32]) -> Vec<Hit> {
        if k == 0 || ids.is_empty() {
            return Vec::new();
        }
        let mut ds = Vec::new();
        self.dists_f32(q, ids, &mut ds);
        let mut hits: Vec<Hit> = ids
            .iter()
            .zip(&ds)
            .map(|(&s, &d)| Hit {
                key: self.keys[s as usize],
                score: self.to_score(d),
            })
            .collect();
        let cmp = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key));
        if hits.len() > k {
            hits.select_nth_unstable_by(k - 1, cmp);
            hits.truncate(k);
        }
        hits.sort_by(cmp);
        hits
    }

    /// Exact top-k over the given keys only; unknown and repeated keys are ignored.
    pub fn exact_keys(
        &self,
        query: &[f32],
        k: usize,
        keys: &[u64],
    ) -> Result<Vec<Hit>, IndexError> {
        let q = self.prepare(query)?;
        let mut ids: Vec<u32> = keys
            .iter()
            .filter_map(|k| self.map.get(k).copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(self.top_k_of(&q, k, &ids))
    }

    /// Writes an atomic, checksummed snapshot (see `persist.rs` for the format).
    pub fn save(&self, path: &std::path::Path, meta: &[u8]) -> Result<(), IndexError> {
        persist::save(self, path, meta)
    }

    /// Loads a snapshot written by [`VectorIndex::save`]; any damage gives `Corrupt`.
    pub fn load(path: &std::path::Path) -> Result<(VectorIndex, Vec<u8>), IndexError> {
        persist::load(path)
    }
}

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn index_is_send_sync() {
        assert_send_sync::<super::VectorIndex>();
    }
}
