#!/usr/bin/env bash
# Vector-search speed: agentstore's index against peer libraries on the same vectors.
#
#   bench/retrieval-speed.sh [--sizes 5k,100k] [--peers hnswlib,faiss-hnsw,chromadb,lancedb,sqlite-vec]
#                            [--out bench/results/retrieval-speed.md] [--no-ours] [--max-queries N]
#
# Sizes: 5k = the real SciFact/all-MiniLM-L6-v2 set in shared/data/ann-scifact-minilm; 100k and 1m =
# seeded synthetic embedding-like sets (bench/peers/datasets.py), generated once into a cache dir.
# 1m is supported but not in the default sizes: it takes about an hour on a 2-core machine.
# --peers none runs only agentstore.
#
# Each engine runs in its own process, one after the other, under `nice -n $BENCH_NICE` (default 10).
# Rows go to bench/results/retrieval-speed.jsonl (rows of the engine/data-set pairs that this run
# measured replace the old ones; the others stay), then bench/peers/report.py writes the markdown.
# A step that fails leaves an error row and the run goes on; the exit status is then 1.
#
# Environment:
#   AGENTSTORE_BENCH_VENV   the peers' virtualenv (default ${TMPDIR:-/tmp}/agentstore-bench-venv)
#   AGENTSTORE_BENCH_PYTHON the Python that creates it (default python3; 3.11 tested)
#   AGENTSTORE_BENCH_DATA   cache of the synthetic sets (default ${TMPDIR:-/tmp}/agentstore-bench-data)
#   AGENTSTORE_BENCH_REAL5K the real 5k set (default ../shared/data/ann-scifact-minilm beside the repo)
#   BENCH_NICE              niceness of every measured process (default 10)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SIZES="5k,100k"
PEERS="hnswlib,faiss-hnsw,chromadb,lancedb,sqlite-vec"
OUT="bench/results/retrieval-speed.md"
OURS=1
MAX_QUERIES=1000
COMMAND="bench/retrieval-speed.sh $*"

usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES="$2"; shift 2 ;;
    --peers) PEERS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-ours) OURS=0; shift ;;
    --max-queries) MAX_QUERIES="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ "$PEERS" = "none" ] && PEERS=""

TMP_ROOT="${TMPDIR:-/tmp}"
VENV="${AGENTSTORE_BENCH_VENV:-$TMP_ROOT/agentstore-bench-venv}"
PYTHON="${AGENTSTORE_BENCH_PYTHON:-python3}"
DATA_ROOT="${AGENTSTORE_BENCH_DATA:-$TMP_ROOT/agentstore-bench-data}"
REAL5K="${AGENTSTORE_BENCH_REAL5K:-$ROOT/../shared/data/ann-scifact-minilm}"
NICE="${BENCH_NICE:-10}"
JSONL="$(dirname "$OUT")/retrieval-speed.jsonl"
LOG_DIR="$TMP_ROOT/agentstore-bench-logs"  # each engine's stderr, kept after the run
PEERS_DIR="$ROOT/bench/peers"

# Pinned versions (the ones this harness was written and tested with).
BASE_PKGS="numpy==2.4.6 psutil==7.2.2"
pkgs_for() {
  case "$1" in
    hnswlib) echo "hnswlib==0.8.0" ;;
    faiss-hnsw) echo "faiss-cpu==1.15.1" ;;
    chromadb) echo "chromadb==1.5.9" ;;
    lancedb) echo "lancedb==0.40.0" ;;
    # apsw: a SQLite driver that can load extensions, for Pythons whose sqlite3 module cannot
    sqlite-vec) echo "sqlite-vec==0.1.9 apsw==3.54.1.0" ;;
    *) return 1 ;;
  esac
}

WORK="$(mktemp -d "$TMP_ROOT/retrieval-speed.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
RUN_JSONL="$WORK/run.jsonl"
TIMINGS="$WORK/timings.tsv"
: > "$RUN_JSONL"
: > "$TIMINGS"
FAILED=0
mkdir -p "$LOG_DIR"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# error_row ENGINE DATASET MESSAGE: a visible row for a step that failed without writing its own.
error_row() {
  "$VENV/bin/python" -c 'import json,sys; print(json.dumps({"engine": sys.argv[1], "dataset": sys.argv[2], "error": sys.argv[3][-500:]}))' \
    "$1" "$2" "$3" >> "$RUN_JSONL"
}

# tag DATASET < rows > rows: sets the data-set label (keeping a different original as dataset_src)
# and the measuring time on every row.
tag() {
  "$VENV/bin/python" -c '
import json, sys, datetime
label = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if r.get("dataset") not in (None, label):
        r["dataset_src"] = r["dataset"]
    r["dataset"] = label
    r.setdefault("run_at", now)
    print(json.dumps(r))
' "$1"
}

# timed STEP CMD...: runs CMD, records its wall time and status; returns CMD's status.
timed() {
  local step="$1"; shift
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  "$@" || rc=$?
  t1=$(date +%s.%N)
  printf '%s\t%s\t%s\n' "$step" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" "$([ $rc -eq 0 ] && echo ok || echo "failed (exit $rc)")" >> "$TIMINGS"
  return $rc
}

# ---------------------------------------------------------------------------------------- venv
make_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating the peers' virtualenv in $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
  fi
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $BASE_PKGS
}

# install_peer PEER: installs its pinned packages unless already there.
install_peer() {
  local pkgs stamp
  pkgs="$(pkgs_for "$1")"
  stamp="$VENV/.installed-$1"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pkgs" ]; then
    return 0
  fi
  log "installing $pkgs"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $pkgs
  echo "$pkgs" > "$stamp"
}

STEP_T0=$(date +%s)
timed "create/reuse venv ($VENV)" make_venv

IFS=',' read -r -a PEER_LIST <<< "$PEERS"
declare -A PEER_OK=()
for p in "${PEER_LIST[@]}"; do
  if ! pkgs_for "$p" > /dev/null; then
    echo "unknown peer: $p (known: hnswlib, faiss-hnsw, chromadb, lancedb, sqlite-vec)" >&2
    exit 2
  fi
  if timed "install $p" install_peer "$p" 2> "$WORK/install-$p.log"; then
    PEER_OK[$p]=1
  else
    log "installing $p failed:"; tail -5 "$WORK/install-$p.log" >&2
    PEER_OK[$p]=0
    FAILED=1
  fi
done
"$VENV/bin/pip" freeze 2>/dev/null \
  | grep -iE '^(numpy|hnswlib|faiss-cpu|chromadb|lancedb|pylance|pyarrow|sqlite-vec|apsw)==' \
  | tr '\n' ' ' > "$WORK/versions.txt"

# ---------------------------------------------------------------------------------------- data
dataset_dir() {  # SIZE -> directory (generating it if needed)
  case "$1" in
    5k) echo "$REAL5K" ;;
    *) nice -n "$NICE" "$VENV/bin/python" "$PEERS_DIR/datasets.py" synth --n "$1" --out "$DATA_ROOT/synth-$1" ;;
  esac
}
dataset_label() {
  case "$1" in
    5k) echo "scifact-minilm-5k" ;;
    *) echo "synth-$1" ;;
  esac
}

# ---------------------------------------------------------------------------------------- ours
OURS_CMD=()
if [ "$OURS" = 1 ]; then
  OURS_CRATE=""
  for toml in crates/*/Cargo.toml; do
    if grep -qE '^name *= *"agentstore-vector"' "$toml"; then OURS_CRATE="$(dirname "$toml")"; fi
  done
  if [ -n "$OURS_CRATE" ] && [ -f "$OURS_CRATE/examples/ann.rs" ]; then
    log "building agentstore's ann example (release)"
    if timed "cargo build agentstore ann example" nice -n "$NICE" cargo build --release -q -p agentstore-vector --example ann; then
      OURS_CMD=(cargo run --release -q -p agentstore-vector --example ann --)
    else
      log "building the ann example failed; agentstore rows will be errors"
      FAILED=1
      OURS_CMD=(false)
    fi
  else
    log "NOTE: the agentstore runner (crate agentstore-vector, example ann) does not exist yet;"
    log "      measuring the peers only. Rerun with --peers none once it exists to add agentstore's rows."
    OURS=0
  fi
fi

# ---------------------------------------------------------------------------------------- runs
IFS=',' read -r -a SIZE_LIST <<< "$SIZES"
for size in "${SIZE_LIST[@]}"; do
  size="$(echo "$size" | tr 'A-Z' 'a-z')"
  label="$(dataset_label "$size")"
  if ! dir="$(timed "dataset $label" dataset_dir "$size")"; then
    log "could not make data set $size"
    FAILED=1
    for p in "${PEER_LIST[@]}"; do error_row "$p" "$label" "data set $size could not be made"; done
    continue
  fi
  missing=""
  for f in base.fvecs query.fvecs groundtruth.ivecs; do
    [ -f "$dir/$f" ] || missing="$missing $dir/$f"
  done
  if [ -n "$missing" ]; then
    log "data set $label is incomplete, missing:$missing"
    FAILED=1
    [ "$OURS" = 1 ] && error_row agentstore "$label" "data set incomplete, missing:$missing"
    for p in "${PEER_LIST[@]}"; do error_row "$p" "$label" "data set incomplete, missing:$missing"; done
    continue
  fi

  if [ "$OURS" = 1 ]; then
    log "agentstore on $label"
    if timed "agentstore on $label" nice -n "$NICE" "${OURS_CMD[@]}" --base "$dir/base.fvecs" --query "$dir/query.fvecs" \
         --gt "$dir/groundtruth.ivecs" --json --threads 2 --ef 16,24,32,48,64,96,128,192,256,384,512 --also-f32 \
         > "$WORK/out.jsonl" 2> "$WORK/err.log"; then
      tag "$label" < "$WORK/out.jsonl" >> "$RUN_JSONL"
      cp "$WORK/err.log" "$LOG_DIR/agentstore-$label.log"
    else
      cp "$WORK/err.log" "$LOG_DIR/agentstore-$label.log"
      log "agentstore failed on $label:"; tail -5 "$WORK/err.log" >&2
      tag "$label" < "$WORK/out.jsonl" >> "$RUN_JSONL"
      error_row agentstore "$label" "runner failed: $(tail -3 "$WORK/err.log" | tr '\n' ' ')"
      FAILED=1
    fi
  fi

  for p in "${PEER_LIST[@]}"; do
    if [ "${PEER_OK[$p]}" != 1 ]; then
      error_row "$p" "$label" "pip install $(pkgs_for "$p") failed: $(tail -2 "$WORK/install-$p.log" | tr '\n' ' ')"
      continue
    fi
    log "$p on $label"
    if timed "$p on $label" nice -n "$NICE" "$VENV/bin/python" "$PEERS_DIR/run_peer.py" "$p" --data "$dir" \
         --dataset "$label" --threads-build 2 --max-queries "$MAX_QUERIES" > "$WORK/out.jsonl" 2> "$WORK/err.log"; then
      tag "$label" < "$WORK/out.jsonl" >> "$RUN_JSONL"
    else
      log "$p failed on $label:"; grep -v '^\[' "$WORK/err.log" | tail -5 >&2
      tag "$label" < "$WORK/out.jsonl" >> "$RUN_JSONL"
      if ! grep -q '"error"' "$WORK/out.jsonl"; then
        error_row "$p" "$label" "exited without a result: $(tail -3 "$WORK/err.log" | tr '\n' ' ')"
      fi
      FAILED=1
    fi
    cp "$WORK/err.log" "$LOG_DIR/$p-$label.log"
  done
done

printf '%s\t%s\t%s\n' "total" "$(( $(date +%s) - STEP_T0 ))" "$([ $FAILED = 0 ] && echo ok || echo 'some steps failed')" >> "$TIMINGS"
mkdir -p "$(dirname "$OUT")"
touch "$JSONL"
"$VENV/bin/python" "$PEERS_DIR/report.py" --jsonl "$JSONL" --new "$RUN_JSONL" --out "$OUT" \
  --command "$COMMAND" --timings "$TIMINGS" --versions "$WORK/versions.txt"
cat "$TIMINGS" >&2
log "logs of each engine in $LOG_DIR"
exit $FAILED
