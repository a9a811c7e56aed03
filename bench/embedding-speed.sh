#!/usr/bin/env bash
# Local embedding speed: agentstore's BertEmbedder against sentence-transformers (PyTorch, CPU)
# on the same texts, same model files, same batch size and thread count, in one run.
#
#   bench/embedding-speed.sh [--short N] [--long N] [--repeat N] [--batch-size N] [--threads N]
#                            [--out bench/results/embedding-speed.md] [--no-peer] [--smoke]
#
# Workloads: short = the first N LoCoMo turns as "speaker: text" (default 2000); long = the first
# N SciFact docs as title + " " + text (default 1000), which the model truncates at 256 tokens.
# Each engine embeds a workload in one call after a warm-up; the engines alternate, --repeat
# times each (default 3), and the report takes each side's median time. It also compares the two
# engines' vectors text by text (goal: min cosine >= 0.999; exit 1 below that).
# --no-peer measures agentstore only (no virtualenv). --smoke: 32 texts of each workload,
# agentstore only, a debug build, report to a temp file: checks that everything runs (what
# scripts/test.sh runs); its numbers mean nothing.
#
# sentence-transformers runs in a throwaway virtualenv made here with pinned versions. PyPI's
# Linux torch wheel is the CUDA build and will not import without its nvidia-* libraries, so
# those come too (about 6 GB on disk; it runs on the CPU all the same).
#
# Environment:
#   AGENTSTORE_EMBED_BENCH_VENV  the virtualenv (default ${TMPDIR:-/tmp}/agentstore-embed-bench-venv)
#   AGENTSTORE_BENCH_PYTHON      the Python that creates it (default python3; 3.11 tested)
#   AGENTSTORE_BENCH_DATA        the evaluation sets (default ../shared/data beside the repo)
#   AGENTSTORE_MODEL_DIR         the model files (default: what scripts/fetch-model.sh prints)
#   BENCH_NICE                   niceness of every measured process (default 5)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SHORT=2000
LONG=1000
REPEAT=3
BATCH=32
THREADS=2
OUT="bench/results/embedding-speed.md"
PEER=1
SMOKE=0
COMMAND="bench/embedding-speed.sh $*"

usage() { sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --short) SHORT="$2"; shift 2 ;;
    --long) LONG="$2"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --batch-size) BATCH="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-peer) PEER=0; shift ;;
    --smoke) SMOKE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

TMP_ROOT="${TMPDIR:-/tmp}"
VENV="${AGENTSTORE_EMBED_BENCH_VENV:-$TMP_ROOT/agentstore-embed-bench-venv}"
PYTHON="${AGENTSTORE_BENCH_PYTHON:-python3}"
DATA="${AGENTSTORE_BENCH_DATA:-$ROOT/../shared/data}"
NICE="${BENCH_NICE:-5}"
MODEL_DIR="${AGENTSTORE_MODEL_DIR:-$(scripts/fetch-model.sh)}"
# Both engines get the same number of threads: candle's pool and gemm read these, PyTorch
# takes torch.set_num_threads below and OpenMP the last one.
export RAYON_NUM_THREADS="$THREADS" CANDLE_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ "$SMOKE" = 1 ]; then
  exec cargo run --quiet -p agentstore-bench --bin embedding_speed -- smoke \
    --data "$DATA" --model-dir "$MODEL_DIR"
fi

# Pinned versions (the ones this harness was written and tested with; sentence-transformers
# 6.2.0 with transformers 5.23.0 and torch 2.15.0 made the reference vectors in
# shared/data/MODELS.md).
PEER_PKGS="torch==2.15.0 sentence-transformers==6.2.0 transformers==5.23.0 numpy==2.4.6"

WORK="$(mktemp -d "$TMP_ROOT/embedding-speed.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
ROWS="$WORK/rows.jsonl"
: > "$ROWS"

log "building embedding_speed (release)"
nice -n "$NICE" cargo build --release -q -p agentstore-bench --bin embedding_speed
BIN=(cargo run --release -q -p agentstore-bench --bin embedding_speed --)

"${BIN[@]}" texts --data "$DATA" --short "$SHORT" --long "$LONG" --out "$WORK/texts"

VERSIONS=""
if [ "$PEER" = 1 ]; then
  stamp="$VENV/.installed-embedding-speed"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating the virtualenv in $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$PEER_PKGS" ]; then
    log "installing $PEER_PKGS (a few GB the first time)"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q $PEER_PKGS
    echo "$PEER_PKGS" > "$stamp"
  fi
  VERSIONS="$("$VENV/bin/python" -c '
import importlib.metadata as m
print(", ".join(f"{p} {m.version(p)}" for p in ("sentence-transformers", "transformers", "torch")))
') (PyTorch CPU, torch.set_num_threads($THREADS)), Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"

  cat > "$WORK/peer.py" <<'PY'
"""sentence-transformers on the workloads embedding_speed wrote: one JSON row per workload."""
import json
import sys
import time

import numpy as np
import torch

texts_dir, vectors_dir, model_dir, batch, threads, rep = sys.argv[1:7]
batch, threads, rep = int(batch), int(threads), int(rep)
torch.set_num_threads(threads)
from sentence_transformers import SentenceTransformer  # noqa: E402  (after the thread setting)

model = SentenceTransformer(model_dir, device="cpu")
assert model.max_seq_length == 256, model.max_seq_length
for name in ("short", "long"):
    with open(f"{texts_dir}/{name}.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line) for line in f]
    ids = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
    tokens = sum(len(x) for x in ids)
    model.encode(texts[:64], batch_size=batch, show_progress_bar=False)
    started = time.perf_counter()
    vectors = model.encode(texts, batch_size=batch, show_progress_bar=False, convert_to_numpy=True)
    seconds = time.perf_counter() - started
    np.ascontiguousarray(vectors, dtype="<f4").tofile(f"{vectors_dir}/{name}.f32")
    print(json.dumps({"engine": "sentence-transformers", "workload": name, "texts": len(texts),
                      "tokens": tokens, "seconds": seconds, "rep": rep,
                      "threads": torch.get_num_threads()}), flush=True)
PY
fi

mkdir -p "$WORK/ours" "$WORK/peer"
for rep in $(seq 1 "$REPEAT"); do
  log "run $rep/$REPEAT: agentstore"
  nice -n "$NICE" "${BIN[@]}" run --texts "$WORK/texts" --vectors "$WORK/ours" \
    --model-dir "$MODEL_DIR" --batch-size "$BATCH" --rep "$rep" | tee -a "$ROWS" >&2
  if [ "$PEER" = 1 ]; then
    log "run $rep/$REPEAT: sentence-transformers"
    nice -n "$NICE" "$VENV/bin/python" "$WORK/peer.py" "$WORK/texts" "$WORK/peer" "$MODEL_DIR" \
      "$BATCH" "$THREADS" "$rep" 2> "$WORK/peer.log" | tee -a "$ROWS" >&2 \
      || { tail -20 "$WORK/peer.log" >&2; exit 1; }
  fi
done

"${BIN[@]}" report --texts "$WORK/texts" --results "$ROWS" --ours "$WORK/ours" --peer "$WORK/peer" \
  --out "$OUT" --command "$COMMAND" --versions "$VERSIONS" --batch-size "$BATCH" --threads "$THREADS"
