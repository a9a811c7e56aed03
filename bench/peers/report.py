#!/usr/bin/env python3
"""Merges and reports the JSON lines of the retrieval-speed benchmark (agentstore and its peers).

    report.py --jsonl bench/results/retrieval-speed.jsonl [--new RUN.jsonl] [--out REPORT.md]
              [--command "bench/retrieval-speed.sh ..."] [--timings FILE] [--versions FILE]

--new: rows of a fresh run. They replace the rows in --jsonl of every (engine, dataset) pair that the
new run produced (so a run of one engine or one size keeps the others' rows), and --jsonl is
rewritten. Without --new the report is made from --jsonl as it is.

The markdown has, per data set: the best qps reached at recall@10 >= 0.90 / 0.95 / 0.99 by each
engine, with build time and memory; agentstore's qps at recall >= 0.95 divided by each peer's; and
the full sweep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys

ENGINE_ORDER = ["agentstore", "agentstore-f32", "hnswlib", "faiss-hnsw", "chromadb", "lancedb", "sqlite-vec"]
TARGETS = [0.90, 0.95, 0.99]


def read_rows(path: str) -> list[dict]:
    rows = []
    if not path or not os.path.exists(path):
        return rows
    with open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                rows.append({"engine": "?", "dataset": "?", "error": f"{path}:{i}: bad JSON line ({e})"})
    return rows


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    replaced = {(r.get("engine"), r.get("dataset")) for r in new}
    return [r for r in old if (r.get("engine"), r.get("dataset")) not in replaced] + new


def engine_key(e: str):
    return (ENGINE_ORDER.index(e) if e in ENGINE_ORDER else len(ENGINE_ORDER), e)


def fmt_int(x) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}"


def fmt(x, digits=2) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return str(x)


def best_at(rows: list[dict], target: float):
    ok = [r for r in rows if r.get("recall_at_10") is not None and r["recall_at_10"] >= target and r.get("qps")]
    return max(ok, key=lambda r: r["qps"]) if ok else None


def params_str(p) -> str:
    """params is a short string for the peers; agentstore's runner may print an object."""
    if isinstance(p, dict):
        return ",".join(f"{k}={v}" for k, v in p.items())
    return "" if p is None else str(p)


def setting_of(r: dict) -> str:
    p = params_str(r.get("params"))
    if r.get("ef") is not None:
        extra = [t for t in p.split(",") if t.startswith("refine=")]
        return ",".join([f"ef={r['ef']}"] + extra)
    if "exact" in p.lower():
        return "exact"
    return p.split(",")[0] if p else ""


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 2**20:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}){mem}, {platform.system()} {platform.release()}"


def commit() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(rows: list[dict], command: str, timings: str, versions: str) -> str:
    out = []
    w = out.append
    w("# Retrieval speed: agentstore's vector index and its peers\n")
    w("Reproduce with:\n")
    w("```sh")
    w(command or "bench/retrieval-speed.sh")
    w("```\n")
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    w(f"- date: {now} (report written; each row's `run_at` in the JSON lines says when it was measured)")
    w(f"- machine: {machine()}")
    w(f"- commit: {commit()}")
    if versions.strip():
        w(f"- peer packages: {versions.strip()}")
    loads = [r["load1"] for r in rows if isinstance(r.get("load1"), (int, float))]
    if loads:
        w(
            f"- 1-minute load average while measuring: {min(loads):.1f} to {max(loads):.1f} "
            f"(the machine has {os.cpu_count()} CPUs; above that, other work was competing)"
        )
    w(
        "\nEvery engine answers the same queries one at a time on one thread (one CPU for the peers: every "
        "thread of the peer's process is pinned to one CPU while it queries) and is scored against the same "
        "exact ground truth with the same near-tie rule. **qps** is queries per second at that setting; "
        "**mem** is the peak resident memory of the engine's process minus its resident memory after "
        "loading the vectors (so the index and its runtime, not the input arrays), up to the end of the "
        "first setting of its sweep; the full sweep shows the running peak. See "
        "`bench/peers/README.md` for what each peer runs and its caveats.\n"
    )

    datasets = {}
    for r in rows:
        datasets.setdefault(r.get("dataset", "?"), []).append(r)

    def ds_key(name):
        ns = [r.get("n") for r in datasets[name] if isinstance(r.get("n"), int)]
        return (ns[0] if ns else 0, name)

    for ds in sorted(datasets, key=ds_key):
        drs = datasets[ds]
        ns = {r.get("n") for r in drs if r.get("n")}
        dims = {r.get("dim") for r in drs if r.get("dim")}
        n = ", ".join(f"{x:,}" for x in sorted(ns)) or "?"
        w(f"## {ds} (n = {n}, dim = {', '.join(map(str, sorted(dims))) or '?'})\n")
        engines = sorted({r.get("engine", "?") for r in drs}, key=engine_key)
        by_engine = {e: [r for r in drs if r.get("engine") == e] for e in engines}

        w("Best qps at a recall@10 of at least:\n")
        w("| engine | ≥ 0.90 | ≥ 0.95 | ≥ 0.99 | best recall@10 | build s | mem MB | p50 / p99 ms at ≥ 0.95 |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        best95 = {}
        for e in engines:
            ers = [r for r in by_engine[e] if "error" not in r]
            errs = [r for r in by_engine[e] if "error" in r]
            if not ers:
                msg = errs[0]["error"] if errs else "no rows"
                w(f"| {e} | n/a (error: {msg[:160]}) | | | | | | |")
                continue
            cells = []
            for t in TARGETS:
                b = best_at(ers, t)
                cells.append(f"{fmt_int(b['qps'])} ({setting_of(b)})" if b else "not reached")
            b95 = best_at(ers, 0.95)
            best95[e] = b95
            top = max(r.get("recall_at_10") or 0 for r in ers)
            build = min(r["build_s"] for r in ers if r.get("build_s") is not None) if any(
                r.get("build_s") is not None for r in ers
            ) else None
            # mem_mb is a running peak; the first setting's is the index after its build and one
            # pass of queries (chromadb's grows later as each ef change reopens its client)
            mem = min(r["mem_mb"] for r in ers if r.get("mem_mb") is not None) if any(
                r.get("mem_mb") is not None for r in ers
            ) else None
            lat = f"{fmt(b95.get('p50_ms'), 3)} / {fmt(b95.get('p99_ms'), 3)}" if b95 else "—"
            err = f" — then error: {errs[0]['error'][:120]}" if errs else ""
            w(f"| {e} | {' | '.join(cells)} | {top:.4f} | {fmt(build)} | {fmt(mem, 0)} | {lat}{err} |")
        w("")

        if "agentstore" in best95 and best95["agentstore"]:
            ours = best95["agentstore"]["qps"]
            # agentstore-f32: the same graph traversed on f32 rows instead of int8 codes
            # (`ann --also-f32`), in its own column, so the default's gain is not hidden.
            f32 = best95.get("agentstore-f32")
            w("agentstore ÷ peer, qps at recall@10 ≥ 0.95 (above 1: agentstore is faster):\n")
            if "agentstore-f32" in by_engine:
                w("| peer | agentstore (default: int8 traversal, f32 rescoring) | agentstore-f32 (f32 traversal, same graph) |")
                w("|---|---:|---:|")
            else:
                w("| peer | ratio |")
                w("|---|---:|")
            for e in engines:
                if e.startswith("agentstore"):
                    continue
                b = best95.get(e)
                if not b:
                    w(f"| {e} | peer never reached 0.95 |" + (" |" if "agentstore-f32" in by_engine else ""))
                    continue
                cells = [f"{ours / b['qps']:.2f}×"]
                if "agentstore-f32" in by_engine:
                    cells.append(f"{f32['qps'] / b['qps']:.2f}×" if f32 else "did not reach 0.95")
                w(f"| {e} | {' | '.join(cells)} |")
            w("")
        elif "agentstore" in by_engine:
            w("agentstore did not reach recall@10 ≥ 0.95 here, so there is no ratio.\n")
        else:
            w("No agentstore rows for this data set yet, so there are no ratios.\n")

        w("<details><summary>Full sweep</summary>\n")
        w("| engine | params | ef | recall@10 | qps | p50 ms | p99 ms | build s | mem MB | queries | cpu util | qps per CPU s | load |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for e in engines:
            for r in by_engine[e]:
                if "error" in r:
                    w(f"| {e} | error: {r['error'][:300]} | | | | | | | | | | | |")
                    continue
                w(
                    f"| {e} | {params_str(r.get('params'))} | {fmt(r.get('ef'))} | {fmt(r.get('recall_at_10'), 4)} | "
                    f"{fmt_int(r.get('qps'))} | {fmt(r.get('p50_ms'), 3)} | {fmt(r.get('p99_ms'), 3)} | "
                    f"{fmt(r.get('build_s'))} | {fmt(r.get('mem_mb'), 1)} | {fmt(r.get('queries'))} | "
                    f"{fmt(r.get('cpu_util'))} | {fmt_int(r.get('qps_cpu'))} | {fmt(r.get('load1'), 1)} |"
                )
        notes = sorted({f"{r.get('engine')}: {r['note']}" for r in drs if r.get("note")})
        w("\n</details>\n")
        if notes:
            w("Notes:\n")
            for nline in notes:
                w(f"- {nline}")
            w("")

    if timings.strip():
        w("## Run time of each step\n")
        w(
            "Wall time of each step of the run(s) given to this report; rows of engine/data-set pairs not "
            "listed here come from earlier runs (each row's `run_at` in the JSON lines). The engines ran "
            "under `nice`, so on a busy machine these times say more about the other load than about the "
            "engines.\n"
        )
        w("| step | seconds | status |")
        w("|---|---:|---|")
        for line in timings.strip().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                w(f"| {parts[0]} | {parts[1]} | {parts[2]} |")
        w("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jsonl", required=True, help="the collected JSON lines (rewritten when --new is given)")
    ap.add_argument("--new", default=None, help="JSON lines of a fresh run to merge in")
    ap.add_argument("--out", default=None, help="markdown file (default: stdout)")
    ap.add_argument("--command", default="", help="the command line to show")
    ap.add_argument("--timings", default=None, help="file of 'step<TAB>seconds<TAB>status' lines")
    ap.add_argument("--versions", default=None, help="file with the peer package versions (one line)")
    a = ap.parse_args()

    rows = read_rows(a.jsonl)
    if a.new is not None:
        rows = merge(rows, read_rows(a.new))
        tmp = a.jsonl + ".tmp"
        with open(tmp, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, a.jsonl)
    timings = open(a.timings).read() if a.timings and os.path.exists(a.timings) else ""
    versions = open(a.versions).read() if a.versions and os.path.exists(a.versions) else ""
    md = render(rows, a.command, timings, versions)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write(md + "\n")
        print(f"wrote {a.out}", file=sys.stderr)
    else:
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
