#!/usr/bin/env python3
"""Vector data sets for the retrieval-speed benchmark.

- TEXMEX fvecs/ivecs read and write (little-endian; each row is an int32 dim, then dim values).
- A seeded synthetic generator of "embedding-like" vectors: unit-norm, 384-d, drawn around ~1,000
  gaussian centres that live in a low-rank subspace, with within-cluster spread in that subspace plus
  isotropic noise in all 384 dimensions, so nearest neighbours are neither trivial (one cluster per
  query) nor random. Queries come from the same distribution, from a different random stream, and are
  not base vectors.
- Exact top-100 ground truth by inner product, computed in float32 blocks with numpy, ties broken by the
  lower id.
- recall@k with the near-tie rule of the real 5k set (see its README): a returned id counts as correct
  when its exact score (float64 inner product) is >= the k-th true score - 1e-6.

CLI:
    datasets.py synth --n 100000 [--out DIR]     # writes DIR/{base,query,groundtruth}.{f,i}vecs
    datasets.py info DIR
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

REAL_5K = "/work/shared/data/ann-scifact-minilm"
TIE_EPS = 1e-6


# ---------------------------------------------------------------------------------------------- I/O


def read_vecs(path: str, dtype) -> np.ndarray:
    raw = np.fromfile(path, dtype="<i4")
    if raw.size == 0:
        return np.zeros((0, 0), dtype=dtype)
    dim = int(raw[0])
    if dim <= 0 or raw.size % (dim + 1) != 0:
        raise ValueError(f"{path}: not a TEXMEX file with a constant dimension (first dim {dim})")
    rows = raw.reshape(-1, dim + 1)
    if not np.all(rows[:, 0] == dim):
        raise ValueError(f"{path}: rows have different dimensions")
    out = rows[:, 1:].view(np.dtype(dtype).newbyteorder("<"))
    return np.ascontiguousarray(out.astype(dtype, copy=False))


def read_fvecs(path: str) -> np.ndarray:
    return read_vecs(path, np.float32)


def read_ivecs(path: str) -> np.ndarray:
    return read_vecs(path, np.int32)


def write_vecs(path: str, arr: np.ndarray, dtype, append: bool = False) -> None:
    arr = np.asarray(arr)
    n, dim = arr.shape
    rows = np.empty((n, dim + 1), dtype="<i4")
    rows[:, 0] = dim
    rows[:, 1:] = arr.astype(np.dtype(dtype).newbyteorder("<")).view("<i4")
    with open(path, "ab" if append else "wb") as f:
        rows.tofile(f)


def write_fvecs(path: str, arr: np.ndarray, append: bool = False) -> None:
    write_vecs(path, arr, np.float32, append)


def write_ivecs(path: str, arr: np.ndarray, append: bool = False) -> None:
    write_vecs(path, arr, np.int32, append)


# ---------------------------------------------------------------------------------------- synthetic

DIM = 384
N_CENTRES = 1000
RANK = 64  # dimension of the subspace that holds the centres and the within-cluster spread
SEED = 20261130


class SynthModel:
    """The fixed parameters of the distribution (centres, subspace, cluster weights)."""

    def __init__(self, seed: int = SEED, dim: int = DIM, n_centres: int = N_CENTRES, rank: int = RANK):
        rng = np.random.default_rng([seed, 0])
        self.dim = dim
        # Orthonormal basis of the low-rank subspace.
        basis, _ = np.linalg.qr(rng.standard_normal((dim, rank)))
        self.basis = basis.astype(np.float64)  # dim x rank
        # A shared mean direction (real sentence embeddings are anisotropic: random pairs have a
        # positive cosine), inside the subspace.
        mean = rng.standard_normal(rank)
        self.mean = 0.6 * mean / np.linalg.norm(mean)
        # Centres: gaussian in the subspace, with a decaying spectrum (a few directions dominate).
        spectrum = 1.0 / np.sqrt(1.0 + np.arange(rank) / 8.0)
        c = rng.standard_normal((n_centres, rank)) * spectrum
        c /= np.linalg.norm(c, axis=1, keepdims=True)
        self.centres = c  # n_centres x rank (subspace coordinates)
        # Zipf-like cluster sizes: a few big topics, many small ones.
        w = 1.0 / (1.0 + np.arange(n_centres)) ** 0.7
        self.weights = rng.permutation(w / w.sum())
        self.spectrum = spectrum
        self.n_centres = n_centres
        self.rank = rank

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.choice(self.n_centres, size=n, p=self.weights)
        # within-cluster spread in the subspace, and isotropic noise in the full space
        local = rng.standard_normal((n, self.rank)) * (0.55 * self.spectrum / np.sqrt(self.rank / 8.0))
        sub = self.mean + self.centres[z] + local  # n x rank
        x = sub @ self.basis.T
        x += rng.standard_normal((n, self.dim)) * (0.75 / np.sqrt(self.dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x.astype(np.float32)


CHUNK = 50_000


def generate_base(path: str, n: int, seed: int = SEED, model: SynthModel | None = None) -> None:
    """Writes n base vectors to path, chunk by chunk (each chunk its own seeded stream, so the output
    does not depend on memory or on where a previous run stopped)."""
    model = model or SynthModel(seed)
    tmp = path + ".partial"
    if os.path.exists(tmp):
        os.remove(tmp)
    for i, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        rng = np.random.default_rng([seed, 1, i])
        write_fvecs(tmp, model.sample(m, rng), append=True)
    os.replace(tmp, path)


def generate_queries(path: str, nq: int, seed: int = SEED, model: SynthModel | None = None) -> None:
    model = model or SynthModel(seed)
    rng = np.random.default_rng([seed, 2])
    write_fvecs(path, model.sample(nq, rng))


# ------------------------------------------------------------------------------------- ground truth


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int = 100, block: int = 32768) -> np.ndarray:
    """Exact top-k ids by inner product, best first, ties to the lower id; float32 blocks."""
    nq = queries.shape[0]
    q = np.ascontiguousarray(queries, dtype=np.float32)
    best_s = np.full((nq, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((nq, 0), dtype=np.int64)
    rows = np.arange(nq)[:, None]
    for start in range(0, base.shape[0], block):
        b = base[start : start + block]
        s = q @ b.T  # nq x block, float32
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, s[rows, part]], axis=1)
        cand_i = np.concatenate([best_i, part + start], axis=1)
        # sort each row by (-score, id) and keep the first k
        order = np.lexsort((cand_i, -cand_s), axis=-1)[:, :k]
        best_s = np.take_along_axis(cand_s, order, axis=1)
        best_i = np.take_along_axis(cand_i, order, axis=1)
    return best_i.astype(np.int32)


# ------------------------------------------------------------------------------------------- recall


class RecallScorer:
    """recall@k with the near-tie rule: a returned id is correct if its exact score is >= the k-th
    true score - 1e-6. Exact scores are float64 inner products computed here with numpy."""

    def __init__(self, base: np.ndarray, queries: np.ndarray, gt: np.ndarray, k: int = 10):
        self.base = base
        self.queries = queries
        self.k = k
        kth = gt[:, k - 1].astype(np.int64)
        self.threshold = (
            np.einsum("ij,ij->i", base[kth].astype(np.float64), queries.astype(np.float64)) - TIE_EPS
        )

    def hits(self, qi: int, ids) -> int:
        seen = []
        for i in ids:
            i = int(i)
            if 0 <= i < self.base.shape[0] and i not in seen:
                seen.append(i)
            if len(seen) == self.k:
                break
        if not seen:
            return 0
        scores = self.base[seen].astype(np.float64) @ self.queries[qi].astype(np.float64)
        return int(np.count_nonzero(scores >= self.threshold[qi]))

    def recall(self, results: list) -> float:
        """results[i] = the ids returned for query i (queries 0..len(results)-1)."""
        if not results:
            return float("nan")
        return sum(self.hits(i, r) for i, r in enumerate(results)) / (self.k * len(results))


# ------------------------------------------------------------------------------------------ helpers


def default_cache_root() -> str:
    return os.path.join(os.environ.get("TMPDIR", "/tmp"), "agentstore-bench-data")


SIZES = {"100k": 100_000, "1m": 1_000_000}


def size_label(n: int) -> str:
    for label, v in SIZES.items():
        if v == n:
            return label
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def ensure_synth(n: int, out: str | None = None, nq: int = 1000, seed: int = SEED, log=sys.stderr) -> str:
    """Creates (or reuses) a synthetic set of n base vectors; returns its directory."""
    out = out or os.path.join(default_cache_root(), f"synth-{size_label(n)}")
    os.makedirs(out, exist_ok=True)
    base_p, query_p, gt_p = (os.path.join(out, f) for f in ("base.fvecs", "query.fvecs", "groundtruth.ivecs"))
    stamp = os.path.join(out, "PARAMS")
    params = f"n={n} nq={nq} dim={DIM} centres={N_CENTRES} rank={RANK} seed={seed} generator=v1\n"
    if all(os.path.exists(p) for p in (base_p, query_p, gt_p, stamp)) and open(stamp).read() == params:
        print(f"[datasets] reusing {out}", file=log)
        return out
    if os.path.exists(stamp):
        os.remove(stamp)
    model = SynthModel(seed)
    t0 = time.time()
    generate_base(base_p, n, seed, model)
    generate_queries(query_p, nq, seed, model)
    t1 = time.time()
    base = read_fvecs(base_p)
    queries = read_fvecs(query_p)
    gt = exact_topk(base, queries, 100)
    write_ivecs(gt_p + ".partial", gt)
    os.replace(gt_p + ".partial", gt_p)
    t2 = time.time()
    with open(stamp, "w") as f:
        f.write(params)
    print(f"[datasets] wrote {out}: generate {t1 - t0:.1f}s, ground truth {t2 - t1:.1f}s", file=log)
    return out


def describe(d: str) -> str:
    base = read_fvecs(os.path.join(d, "base.fvecs"))
    q = read_fvecs(os.path.join(d, "query.fvecs"))
    gt = read_ivecs(os.path.join(d, "groundtruth.ivecs"))
    rng = np.random.default_rng(0)
    sample = base[rng.choice(base.shape[0], size=min(2000, base.shape[0]), replace=False)]
    rand_cos = (sample[:1000] @ sample[1000:].T).mean() if sample.shape[0] >= 2000 else float("nan")
    nq = min(200, q.shape[0])
    s = np.einsum("ijk,ik->ij", base[gt[:nq, :100]], q[:nq])
    return (
        f"{d}: base {base.shape}, query {q.shape}, gt {gt.shape}; norms {np.linalg.norm(base[:1000], axis=1).mean():.4f}; "
        f"mean random-pair cos {rand_cos:.3f}; mean top-1 {s[:, 0].mean():.3f}, top-10 {s[:, 9].mean():.3f}, "
        f"top-100 {s[:, 99].mean():.3f}; mean gap top10-top11 {(s[:, 9] - s[:, 10]).mean():.4f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth", help="generate (or reuse) a synthetic set")
    s.add_argument("--n", required=True, help="base size: 100k, 1m or a number")
    s.add_argument("--nq", type=int, default=1000)
    s.add_argument("--seed", type=int, default=SEED)
    s.add_argument("--out", default=None, help="default: $TMPDIR/agentstore-bench-data/synth-<n>")
    i = sub.add_parser("info", help="print shape and neighbour statistics of a set")
    i.add_argument("dir")
    a = ap.parse_args()
    if a.cmd == "synth":
        n = SIZES.get(a.n.lower()) or int(a.n)
        print(ensure_synth(n, a.out, a.nq, a.seed))
    else:
        print(describe(a.dir))


if __name__ == "__main__":
    main()
