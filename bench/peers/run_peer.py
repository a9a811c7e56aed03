#!/usr/bin/env python3
"""Runs ONE peer vector-search engine on one data set, in this process, and prints JSON lines.

    run_peer.py ENGINE --data DIR [--dataset NAME] [--threads-build 2] [--sweep 16,32,64]
                [--max-queries 1000] [--setting-cap-s 60] [--query-cpu auto|none|N]

ENGINE is one of: hnswlib, faiss-hnsw, chromadb, lancedb, sqlite-vec.

DIR holds base.fvecs, query.fvecs and groundtruth.ivecs (TEXMEX). Each line printed on stdout is
one setting of the engine's sweep, in the same shape as agentstore's own runner:

    {"engine", "dataset", "n", "dim", "params", "ef", "build_s", "mem_mb", "recall_at_10", "qps",
     "p50_ms", "p99_ms", ...}

plus "queries" (how many were timed), "cpu_util" (process CPU time / wall time over the timed
queries: about 1.0 means one core was used and nothing else competed for it), "qps_cpu" (timed
queries / process CPU seconds: less sensitive to other load on a shared machine, since CPU time
stops while the process waits for its core), "query_cpu", "load1" and, where useful, "note". A failure prints
one row with an "error" field and exits with status 1.

How it measures (see README.md beside this file):
- Build: the engine's own bulk-load path with --threads-build threads; build_s is wall time.
- Queries: ONE at a time, in order, each through the engine's public API, timed with
  perf_counter around the call; single-threaded settings for every library (OMP_NUM_THREADS=1,
  faiss.omp_set_num_threads(1), hnswlib num_threads=1) and, unless --query-cpu none, every thread of
  the process pinned to one CPU for the query phase, so libraries with their own thread pools
  (chromadb, lancedb) cannot use a second core either. A few untimed warm-up queries precede each
  setting. qps = timed queries / their total wall time.
- recall@10 with the near-tie rule (datasets.RecallScorer).
- mem_mb: peak resident set size of this process (VmHWM, reset after loading the data) minus the
  resident set size after loading the data and importing the engine's modules.
- Bounds: at most --max-queries queries per setting; a setting stops after --setting-cap-s seconds
  of queries (reporting the rate over what it did), and then the rest of the sweep is skipped.
"""

from __future__ import annotations

import os

# Before numpy / faiss / anything that reads it at import time.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("LANCE_LOG", "error")  # lance logs a warning per query otherwise

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
import traceback

import numpy as np


def _load_local_datasets():
    """Loads datasets.py beside this file under another module name, and takes this directory off
    sys.path: libraries probe for Hugging Face's `datasets` package (lancedb does at import time)
    and must not find this file instead."""
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.util.spec_from_file_location("agentstore_bench_datasets", os.path.join(here, "datasets.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


datasets = _load_local_datasets()

ENGINES = ["hnswlib", "faiss-hnsw", "chromadb", "lancedb", "sqlite-vec"]
HNSW_M = 16
HNSW_EFC = 200
EF_SWEEP = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
K = 10
WARMUP = 20


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ memory


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float:
    kb = _status_kb("VmRSS")
    if kb is None:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    return kb / 1024


def trim_heap() -> None:
    """Returns freed heap memory to the OS (glibc), so memory freed while loading the data is not
    counted in the baseline and then reused by the index for free."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak() -> bool:
    """Resets VmHWM (Linux >= 4.0: writing 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return kb / 1024


# ------------------------------------------------------------------------------------- CPU pinning


def pin_all_threads(cpus: set[int]) -> int:
    """Pins every existing thread of this process (and so the threads they start later) to cpus."""
    n = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
            n += 1
        except OSError:
            pass
    return n


def unpin_all_threads() -> None:
    pin_all_threads(set(range(os.cpu_count() or 1)))


# ----------------------------------------------------------------------------------------- engines


class Engine:
    name = ""
    params = ""

    def import_modules(self) -> None:
        """Imports the library (before the memory baseline, so library code is not counted)."""

    def build(self, base: np.ndarray, threads: int, workdir: str) -> None:
        raise NotImplementedError

    def settings(self, n: int, sweep: list | None) -> list:
        """A list of (label, ef or None, opaque setting) in increasing cost order."""
        efs = sweep or EF_SWEEP
        return [(f"ef={ef}", ef, ef) for ef in efs]

    def apply(self, setting) -> None:
        pass

    def query(self, q: np.ndarray) -> list:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Hnswlib(Engine):
    name = "hnswlib"
    params = f"M={HNSW_M},efC={HNSW_EFC},space=ip"

    def import_modules(self):
        import hnswlib

        self.lib = hnswlib

    def build(self, base, threads, workdir):
        n, d = base.shape
        self.index = self.lib.Index(space="ip", dim=d)
        self.index.init_index(max_elements=n, ef_construction=HNSW_EFC, M=HNSW_M, random_seed=100)
        self.index.set_num_threads(threads)
        self.index.add_items(base, np.arange(n), num_threads=threads)
        self.index.set_num_threads(1)

    def apply(self, ef):
        self.index.set_ef(ef)

    def query(self, q):
        labels, _ = self.index.knn_query(q.reshape(1, -1), k=K, num_threads=1)
        return labels[0]


class FaissHnsw(Engine):
    name = "faiss-hnsw"
    params = f"IndexHNSWFlat,M={HNSW_M},efC={HNSW_EFC},metric=ip"

    def import_modules(self):
        import faiss

        self.lib = faiss

    def build(self, base, threads, workdir):
        faiss = self.lib
        faiss.omp_set_num_threads(threads)
        self.index = faiss.IndexHNSWFlat(base.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = HNSW_EFC
        self.index.add(base)
        faiss.omp_set_num_threads(1)

    def apply(self, ef):
        self.index.hnsw.efSearch = ef

    def query(self, q):
        _, ids = self.index.search(q.reshape(1, -1), K)
        return ids[0]


class Chroma(Engine):
    name = "chromadb"

    def import_modules(self):
        import chromadb
        from chromadb.config import Settings

        self.lib = chromadb
        self.Settings = Settings
        self.params = f"M={HNSW_M},efC={HNSW_EFC},space=cosine,PersistentClient,v{chromadb.__version__}"

    def build(self, base, threads, workdir):
        self.path = os.path.join(workdir, "chroma")
        self.settings_obj = self.Settings(anonymized_telemetry=False)
        self.client = self.lib.PersistentClient(path=self.path, settings=self.settings_obj)
        self.coll = self.client.create_collection(
            name="bench",
            embedding_function=None,
            configuration={
                "hnsw": {
                    "space": "cosine",
                    "max_neighbors": HNSW_M,
                    "ef_construction": HNSW_EFC,
                    "ef_search": self.cur_ef,
                    "num_threads": threads,
                }
            },
        )
        batch = min(self.client.get_max_batch_size(), 5000)
        ids = [str(i) for i in range(base.shape[0])]
        for s in range(0, base.shape[0], batch):
            self.coll.add(ids=ids[s : s + batch], embeddings=base[s : s + batch])
        # Make sure everything is indexed before the clock stops: a count forces nothing, but a
        # query reads through the whole log.
        self.coll.query(query_embeddings=base[:1], n_results=K, include=[])

    def settings(self, n, sweep):
        efs = [ef for ef in (sweep or EF_SWEEP) if ef >= K]
        return [(f"ef={ef}", ef, ef) for ef in efs]

    cur_ef = EF_SWEEP[0]

    def apply(self, ef):
        if ef == self.cur_ef:
            return
        # modify() stores the new ef_search, but a loaded index keeps the ef it was loaded with: drop
        # the client's cached system and reopen, so the index is loaded again with the new ef.
        # (Reopening is not timed; the warm-up queries that follow load the index.)
        from chromadb.api.client import SharedSystemClient

        self.coll.modify(configuration={"hnsw": {"ef_search": ef}})
        del self.coll, self.client
        gc.collect()
        SharedSystemClient.clear_system_cache()
        self.client = self.lib.PersistentClient(path=self.path, settings=self.settings_obj)
        self.coll = self.client.get_collection("bench", embedding_function=None)
        got = self.coll.configuration["hnsw"]["ef_search"]
        if got != ef:
            raise RuntimeError(f"chromadb kept ef_search={got} after setting {ef}")
        self.cur_ef = ef

    def query(self, q):
        res = self.coll.query(query_embeddings=q.reshape(1, -1), n_results=K, include=[])
        return [int(i) for i in res["ids"][0]]


class Lance(Engine):
    name = "lancedb"

    def import_modules(self):
        import lancedb
        import pyarrow as pa
        from lancedb.index import IvfHnswSq

        self.lib = lancedb
        self.pa = pa
        self.IvfHnswSq = IvfHnswSq
        self.version = lancedb.__version__

    def build(self, base, threads, workdir):
        pa = self.pa
        n, d = base.shape
        self.n = n
        os.environ["LANCE_CPU_THREADS"] = str(threads)
        self.db = self.lib.connect(os.path.join(workdir, "lance"))
        vec = pa.FixedSizeListArray.from_arrays(pa.array(base.reshape(-1)), d)
        t0 = time.perf_counter()
        self.tbl = self.db.create_table(
            "bench", pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), "vector": vec})
        )
        self.load_s = time.perf_counter() - t0
        self.partitions = max(1, n // 1_048_576)  # the docs' start for HNSW-backed IVF indexes
        t0 = time.perf_counter()
        self.tbl.create_index(
            "vector",
            config=self.IvfHnswSq(
                distance_type="cosine", num_partitions=self.partitions, m=HNSW_M, ef_construction=HNSW_EFC
            ),
        )
        self.index_s = time.perf_counter() - t0
        self.build_note = f"table load {self.load_s:.2f}s + index {self.index_s:.2f}s"

    def settings(self, n, sweep):
        out = []
        efs = sweep or [16, 32, 64, 128, 256, 512]
        for refine in (None, 4):
            for ef in efs:
                if ef < K * (refine or 1):  # lance requires ef >= the number of rows it fetches
                    continue
                label = f"IVF_HNSW_SQ,parts={self.partitions},M={HNSW_M},efC={HNSW_EFC},ef={ef}"
                if refine:
                    label += f",refine={refine}"
                out.append((label, ef, ("ann", ef, refine)))
        # last: the flat scan is the slowest setting at 100k and above, and a setting that hits the
        # time cap ends the sweep
        out.append(("exact (bypass_vector_index)", None, ("exact", None, None)))
        return out

    def apply(self, setting):
        self.setting = setting

    def query(self, q):
        mode, ef, refine = self.setting
        s = self.tbl.search(q).distance_type("cosine").limit(K).select(["id", "_distance"])
        if mode == "exact":
            s = s.bypass_vector_index()
        else:
            s = s.ef(ef)
            if refine:
                s = s.refine_factor(refine)
        return s.to_arrow()["id"].to_pylist()

    def params_for(self, label):
        return f"{label},v{self.version}"


class SqliteVec(Engine):
    name = "sqlite-vec"

    def import_modules(self):
        import sqlite3

        import sqlite_vec

        self.sqlite_vec = sqlite_vec
        self.driver = None
        if hasattr(sqlite3.connect(":memory:"), "enable_load_extension"):
            self.driver = "sqlite3"
            self.sqlite3 = sqlite3
        else:
            # This Python's sqlite3 module was built without extension loading; apsw bundles its own
            # SQLite and can load extensions.
            import apsw

            self.driver = "apsw"
            self.apsw = apsw

    def build(self, base, threads, workdir):
        path = os.path.join(workdir, "vec.db")
        n, d = base.shape
        if self.driver == "sqlite3":
            conn = self.sqlite3.connect(path, isolation_level=None)
            conn.enable_load_extension(True)
            self.sqlite_vec.load(conn)
            conn.enable_load_extension(False)
            version = self.sqlite3.sqlite_version
        else:
            conn = self.apsw.Connection(path)
            conn.enable_load_extension(True)
            conn.load_extension(self.sqlite_vec.loadable_path())
            conn.enable_load_extension(False)
            version = self.apsw.sqlite_lib_version()
        self.conn = conn
        vec_version = conn.execute("select vec_version()").fetchone()[0]
        self.params = f"vec0 float[{d}],cosine,exact,{vec_version},{self.driver} (SQLite {version})"
        conn.execute("pragma journal_mode=wal")
        conn.execute(f"create virtual table vec using vec0(embedding float[{d}] distance_metric=cosine)")
        conn.execute("begin")
        rows = ((i, base[i].tobytes()) for i in range(n))
        conn.executemany("insert into vec(rowid, embedding) values (?, ?)", rows)
        conn.execute("commit")
        self.sql = "select rowid from vec where embedding match ? and k = 10"

    def settings(self, n, sweep):
        return [("exact", None, None)]

    def query(self, q):
        return [r[0] for r in self.conn.execute(self.sql, (q.tobytes(),))]

    def close(self):
        self.conn.close()


def make_engine(name: str) -> Engine:
    return {
        "hnswlib": Hnswlib,
        "faiss-hnsw": FaissHnsw,
        "chromadb": Chroma,
        "lancedb": Lance,
        "sqlite-vec": SqliteVec,
    }[name]()


# ------------------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("engine", choices=ENGINES)
    ap.add_argument("--data", required=True, help="directory with base.fvecs, query.fvecs, groundtruth.ivecs")
    ap.add_argument("--dataset", default=None, help="name in the output (default: the directory's name)")
    ap.add_argument("--threads-build", type=int, default=2)
    ap.add_argument("--sweep", default=None, help="comma-separated ef values (default 16..512)")
    ap.add_argument("--max-queries", type=int, default=1000)
    ap.add_argument("--setting-cap-s", type=float, default=60.0)
    ap.add_argument(
        "--query-cpu",
        default="auto",
        help="pin every thread to this CPU while querying: a number, 'auto' (the last allowed CPU) or 'none'",
    )
    ap.add_argument("--workdir", default=None, help="scratch directory (default: a new temp dir, removed)")
    a = ap.parse_args()

    dataset = a.dataset or os.path.basename(os.path.normpath(a.data))
    row0 = {"engine": a.engine, "dataset": dataset}
    engine = make_engine(a.engine)
    sweep = [int(x) for x in a.sweep.split(",")] if a.sweep else None
    scratch = a.workdir or tempfile.mkdtemp(prefix=f"peer-{a.engine}-")
    os.makedirs(scratch, exist_ok=True)
    emitted = 0
    try:
        engine.import_modules()
        base = datasets.read_fvecs(os.path.join(a.data, "base.fvecs"))
        queries = datasets.read_fvecs(os.path.join(a.data, "query.fvecs"))[: a.max_queries]
        gt = datasets.read_ivecs(os.path.join(a.data, "groundtruth.ivecs"))[: a.max_queries]
        n, dim = base.shape
        row0.update(n=int(n), dim=int(dim))
        scorer = datasets.RecallScorer(base, queries, gt, K)
        gc.collect()
        trim_heap()
        baseline = rss_mb()
        if not reset_peak():
            log("warning: cannot reset the peak RSS; mem_mb includes the data-loading peak")
        log(f"{a.engine} on {dataset}: n={n} dim={dim} queries={len(queries)}; RSS after load {baseline:.0f} MB")

        if isinstance(engine, Chroma):
            # built with the first ef of the sweep, so the first setting needs no reopen
            engine.cur_ef = max(K, (sweep or EF_SWEEP)[0])
        unpin_all_threads()
        t0 = time.perf_counter()
        engine.build(base, a.threads_build, scratch)
        build_s = time.perf_counter() - t0
        gc.collect()
        log(f"built in {build_s:.2f}s; peak RSS over baseline {peak_mb() - baseline:.0f} MB")

        if a.query_cpu == "none":
            query_cpu = None
        elif a.query_cpu == "auto":
            query_cpu = max(os.sched_getaffinity(0))
        else:
            query_cpu = int(a.query_cpu)
        if query_cpu is not None:
            pin_all_threads({query_cpu})

        settings = engine.settings(n, sweep)
        for si, (label, ef, setting) in enumerate(settings):
            engine.apply(setting)
            if query_cpu is not None:
                pin_all_threads({query_cpu})  # threads the engine started since
            for q in queries[-WARMUP:]:
                engine.query(q)
            lat = []
            results = []
            cpu0 = time.process_time()
            start = time.perf_counter()
            capped = False
            for q in queries:
                t = time.perf_counter()
                ids = engine.query(q)
                lat.append(time.perf_counter() - t)
                results.append(ids)
                if t - start > a.setting_cap_s:
                    capped = True
                    break
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu0
            lat_ms = np.array(lat) * 1000
            row = dict(row0)
            params = engine.params_for(label) if hasattr(engine, "params_for") else engine.params
            row.update(
                params=params,
                ef=ef,
                build_s=round(build_s, 3),
                mem_mb=round(peak_mb() - baseline, 1),
                recall_at_10=round(scorer.recall(results), 4),
                qps=round(len(lat) / wall, 1),
                p50_ms=round(float(np.percentile(lat_ms, 50)), 4),
                p99_ms=round(float(np.percentile(lat_ms, 99)), 4),
                queries=len(lat),
                cpu_util=round(cpu / wall, 2),
                qps_cpu=round(len(lat) / cpu, 1) if cpu > 0 else None,
                query_cpu=query_cpu,
                load1=round(os.getloadavg()[0], 2),
            )
            notes = []
            if getattr(engine, "build_note", None):
                notes.append(engine.build_note)
            if capped:
                notes.append(f"{label}: stopped at the {a.setting_cap_s:.0f} s cap after {len(lat)} queries")
                if si + 1 < len(settings):
                    notes.append(f"{len(settings) - si - 1} slower setting(s) after it skipped")
            if notes:
                row["note"] = "; ".join(notes)
            print(json.dumps(row), flush=True)
            emitted += 1
            log(
                f"{label}: recall@10 {row['recall_at_10']:.4f} qps {row['qps']:.0f} "
                f"p50 {row['p50_ms']:.3f} ms p99 {row['p99_ms']:.3f} ms mem {row['mem_mb']:.0f} MB"
            )
            if capped:
                break
        engine.close()
        return 0
    except Exception as e:  # a failing peer must leave a visible row
        traceback.print_exc()
        row = dict(row0)
        row["error"] = f"{type(e).__name__}: {e}"[:500]
        row["rows_before_error"] = emitted
        print(json.dumps(row), flush=True)
        return 1
    finally:
        if a.workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
