"""hnswlib reference sweep on the same fvecs files and the same recall rule as
crates/agentstore-vector/examples/ann.rs (near-tie: a hit counts if its exact score is
>= the 10th exact score - 1e-6; exact scores by numpy brute force in float32).

usage: python hnswlib_bench.py BASE.fvecs QUERY.fvecs DATASET [M] [EFC] [THREADS]
Prints one JSON object per ef, same fields as `ann --json`.
"""
import json, sys, time
import numpy as np
import hnswlib


def fvecs(path):
    a = np.fromfile(path, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].copy().view(np.float32)


base, queries, dataset = fvecs(sys.argv[1]), fvecs(sys.argv[2]), sys.argv[3]
m = int(sys.argv[4]) if len(sys.argv) > 4 else 16
efc = int(sys.argv[5]) if len(sys.argv) > 5 else 128
threads = int(sys.argv[6]) if len(sys.argv) > 6 else 2
n, dim = base.shape
ix = hnswlib.Index(space="ip", dim=dim)
ix.init_index(max_elements=n, ef_construction=efc, M=m, random_seed=100)
ix.set_num_threads(threads)
t = time.perf_counter()
ix.add_items(base, np.arange(n))
build_s = time.perf_counter() - t
scores = queries @ base.T
kth = -np.sort(-scores, axis=1)[:, 9]
ix.set_num_threads(1)
for ef in [16, 32, 64, 96, 128, 192, 256, 384]:
    ix.set_ef(ef)
    lat, correct = [], 0
    t = time.perf_counter()
    for i, q in enumerate(queries):
        t1 = time.perf_counter()
        labels, _ = ix.knn_query(q, k=10)
        lat.append((time.perf_counter() - t1) * 1e3)
        correct += int((scores[i, labels[0]] >= kth[i] - 1e-6).sum())
    total = time.perf_counter() - t
    lat.sort()
    print(json.dumps({
        "engine": "hnswlib", "dataset": dataset, "n": n, "dim": dim,
        "params": {"m": m, "ef_construction": efc}, "ef": ef, "build_s": build_s,
        "mem_mb": None, "recall_at_10": correct / (10 * len(queries)),
        "qps": len(queries) / total, "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[min(len(lat) - 1, len(lat) * 99 // 100)], "threads": threads,
    }))
