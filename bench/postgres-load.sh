#!/usr/bin/env bash
# Request throughput of `agentstore serve` on PostgreSQL, with one server and with two
# servers sharing one database (and one Redis for the shared rate limit), beside one
# server on SQLite: the workloads of bench/server-load.sh (event appends, then keyword
# searches over them), driven by wrk over loopback. Prints a table and writes it as the
# last section of bench/results/postgres.md (replacing the section an earlier run wrote;
# the rest of that file is the postgres benchmark binary's, which keeps this section).
#
#   bench/postgres-load.sh [--duration 60s] [--connections 64] [--no-sqlite] [--out FILE]
#                          [--smoke]
#
# PostgreSQL is a throwaway cluster with fsync and synchronous_commit on, started by the
# postgres benchmark binary (`postgres --services`, which also starts the Redis); the
# SQLite server runs the default durability (`full`). Every server gets the same
# settings: Redis for the rate limit, a rate so high that it never refuses (each request
# still charges its key's bucket in Redis, as in a group of servers).
#
# Two servers: wrk has one target, so two wrk processes run at once, one per server,
# each with half the connections and one of the two threads, and their counts are
# summed. No proxy in front: it would take CPU from the same two cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION=60s
CONNECTIONS=64
SQLITE=1
OUT=bench/results/postgres.md
PROFILE=release
ARGS="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --no-sqlite) SQLITE=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    # A check that the harness runs: the debug builds, 8 connections, 2 s per workload.
    --smoke) DURATION=2s; CONNECTIONS=8; OUT="$(mktemp)"; PROFILE=debug; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ $((CONNECTIONS % 2)) = 0 ] || { echo "--connections must be even (split over two servers)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is not installed (Debian package wrk)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is not installed (Debian package redis-server)" >&2; exit 1; }

if [ "$PROFILE" = release ]; then
  cargo build --release --quiet -p agentstore-cli
  cargo build --release --quiet -p agentstore-bench --bin postgres
else
  cargo build --quiet -p agentstore-cli
  cargo build --quiet -p agentstore-bench --bin postgres
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
BIN="$TARGET/agentstore"
AGENTSTORE_PG_BIN="${AGENTSTORE_PG_BIN:-$(scripts/fetch-postgres.sh)}"
export AGENTSTORE_PG_BIN

WORK="$(mktemp -d)"
PIDS=()
SERVICES_PID=""
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  # Closing its stdin makes `postgres --services` stop Redis and the cluster and exit.
  if [ -n "$SERVICES_PID" ]; then
    exec {SERVICES[1]}>&- 2>/dev/null || true
    wait "$SERVICES_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

coproc SERVICES { exec "$TARGET/postgres" --services 2>"$WORK/services.err"; }
SERVICES_PID=$SERVICES_PID
while IFS= read -r line <&"${SERVICES[0]}"; do
  case "$line" in
    DATABASE_URL=*) DATABASE_URL="${line#DATABASE_URL=}" ;;
    REDIS_URL=*) REDIS_URL="${line#REDIS_URL=}" ;;
    PG_SETTINGS=*) PG_SETTINGS="${line#PG_SETTINGS=}" ;;
    PG_VERSION=*) PG_VERSION="${line#PG_VERSION=}" ;;
    READY) break ;;
  esac
done
[ -n "${DATABASE_URL:-}" ] || { cat "$WORK/services.err" >&2; exit 1; }

# The same settings for every server: the test preset (free port, quiet logs), Redis,
# and a rate limit that charges every request but never refuses one.
unset AGENTSTORE_DATA_DIR AGENTSTORE_DATABASE_URL AGENTSTORE_MODEL_DIR AGENTSTORE_TENANT
export AGENTSTORE_REDIS_URL="$REDIS_URL" AGENTSTORE_RATE_PER_SECOND=1000000 AGENTSTORE_RATE_BURST=1000000

new_key() {  # creates an API key in the store the environment names; prints its secret
  "$BIN" --json keys create --scopes read,write --name load |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'
}

serve() {  # name [env...]: starts a server, sets PID_<name> and URL_<name>
  local name="$1"; shift
  env "$@" "$BIN" serve --preset test --addr 127.0.0.1:0 >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do grep -q listening "$WORK/$name.out" 2>/dev/null && break; sleep 0.1; done
  local base
  base="$(sed -n 's/^agentstore listening on //p' "$WORK/$name.out")"
  [ -n "$base" ] || { cat "$WORK/$name.err" >&2; exit 1; }
  printf -v "PID_$name" %s "$pid"
  printf -v "URL_$name" %s "$base"
}

new_session() {  # base key: prints a new session's id
  python3 - "$1" "$2" <<'PY'
import json, sys, urllib.request
base, key = sys.argv[1], sys.argv[2]
req = urllib.request.Request(base + "/v1/sessions", data=b'{"kind":"run","title":"load"}',
    headers={"authorization": "Bearer " + key, "content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["id"])
PY
}

last_seq() {  # base key session: prints the session's last seq
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys, urllib.request
base, key, sid = sys.argv[1:4]
req = urllib.request.Request(f"{base}/v1/sessions/{sid}/events?descending=true&limit=1",
    headers={"authorization": "Bearer " + key})
items = json.load(urllib.request.urlopen(req))["items"]
print(items[0]["seq"] if items else 0)
PY
}

# CPU ticks since boot: the whole machine, then per group of processes (the servers by
# pid, PostgreSQL's and Redis's processes by name, wrk as this shell's waited-for
# children, since wrk has exited by the end of a phase). Differences over a phase show
# where the two cores went. A PostgreSQL backend that ended within the phase is missed.
cpu() {
  python3 - "${PID_pg1:-0}" "${PID_pg2:-0}" "${PID_sqlite:-0}" "$$" <<'PY'
import os, sys, json
pids = {p: n for p, n in zip(sys.argv[1:4], ["pg1", "pg2", "sqlite"])}
shell = sys.argv[4]
f = open("/proc/stat").readline().split()[1:]
v = list(map(int, f))
out = {"busy": sum(v) - v[3] - v[4], "total": sum(v)}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        s = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    ticks = int(rest[11]) + int(rest[12])
    if d == shell:
        out["wrk"] = int(rest[13]) + int(rest[14])
    group = pids.get(d) or {"postgres": "postgres", "redis-server": "redis"}.get(comm)
    if group:
        out[group] = out.get(group, 0) + ticks
print(json.dumps(out))
PY
}

run() {  # phase script base,connections,threads...: wrk against each target at once
  local phase="$1" script="$2"; shift 2
  local i=0 pids=() t base c th
  cpu >"$WORK/$phase.cpu0"
  for t in "$@"; do
    IFS=, read -r base c th <<<"$t"
    echo "== $phase: wrk -t$th -c$c -d$DURATION $base" >&2
    wrk -t"$th" -c"$c" -d"$DURATION" --latency -s "bench/server/$script" "$base" >"$WORK/$phase.$i.txt" &
    pids+=($!)
    i=$((i + 1))
  done
  for t in "${pids[@]}"; do wait "$t"; done
  cpu >"$WORK/$phase.cpu1"
  cat "$WORK/$phase".*.txt >&2
}

HALF=$((CONNECTIONS / 2))
LOAD_START="$(cut -d' ' -f1 /proc/loadavg)"

if [ "$SQLITE" = 1 ]; then
  export AGENTSTORE_DATA_DIR="$WORK/sqlite"
  "$BIN" init >/dev/null
  KEY="$(new_key)"
  unset AGENTSTORE_DATA_DIR
  serve sqlite AGENTSTORE_DATA_DIR="$WORK/sqlite"
  SESSION="$(new_session "$URL_sqlite" "$KEY")"
  export KEY SESSION
  run sqlite-appends append.lua "$URL_sqlite,$CONNECTIONS,2"
  last_seq "$URL_sqlite" "$KEY" "$SESSION" >"$WORK/sqlite.events"
  run sqlite-searches search.lua "$URL_sqlite,$CONNECTIONS,2"
  kill "$PID_sqlite"; wait "$PID_sqlite" 2>/dev/null || true
fi

AGENTSTORE_DATABASE_URL="$DATABASE_URL" "$BIN" init >/dev/null
KEY="$(AGENTSTORE_DATABASE_URL="$DATABASE_URL" new_key)"
serve pg1 AGENTSTORE_DATABASE_URL="$DATABASE_URL"
serve pg2 AGENTSTORE_DATABASE_URL="$DATABASE_URL"
SESSION="$(new_session "$URL_pg1" "$KEY")"
export KEY SESSION
# Appends first, one server then two, into one session; then the searches, one server
# then two, over the same events (all of both append phases), so the two search phases
# search the same store.
run pg1-appends append.lua "$URL_pg1,$CONNECTIONS,2"
last_seq "$URL_pg1" "$KEY" "$SESSION" >"$WORK/pg1.events"
run pg2-appends append.lua "$URL_pg1,$HALF,1" "$URL_pg2,$HALF,1"
last_seq "$URL_pg2" "$KEY" "$SESSION" >"$WORK/pg2.events"
run pg1-searches search.lua "$URL_pg1,$CONNECTIONS,2"
run pg2-searches search.lua "$URL_pg1,$HALF,1" "$URL_pg2,$HALF,1"

# Uncommitted changes outside the benchmarks' own files: the servers run that code.
FOREIGN="$(git status --porcelain | cut -c4- | grep -v -e '^bench/' -e '^crates/agentstore-bench/' -e '^Cargo.lock$' -e '^tests/' -e '/tests/' | paste -sd, - || true)"
python3 - "$WORK" "$OUT" "$DURATION" "$CONNECTIONS" "$SQLITE" "$(git rev-parse --short HEAD)" \
  "$(git status --porcelain | head -c1)" "$PROFILE" "$PG_SETTINGS" "$PG_VERSION" "bench/postgres-load.sh${ARGS:+ $ARGS}" \
  "$FOREIGN" "$LOAD_START" <<'PY'
import datetime, glob, json, os, re, sys
(work, out, duration, conns, sqlite, commit, dirty, profile, pg_settings, pg_version,
 command, foreign, load_start) = sys.argv[1:14]
if dirty:
    commit += " with uncommitted changes"
tck = os.sysconf("SC_CLK_TCK")

def parse(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    total = int(re.search(r"(\d+) requests in", t).group(1))
    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return dict(rps=rps, total=total, p50=pct(50), p99=pct(99), errors=errors)

def phase(name):
    parts = [parse(p) for p in sorted(glob.glob(os.path.join(work, name + ".*.txt")))]
    c0 = json.load(open(os.path.join(work, name + ".cpu0")))
    c1 = json.load(open(os.path.join(work, name + ".cpu1")))
    secs = (c1["total"] - c0["total"]) / tck / (os.cpu_count() or 1)
    d = lambda k: max(0, c1.get(k, 0) - c0.get(k, 0)) / tck / max(secs, 1e-9)
    servers = d("pg1") + d("pg2") + d("sqlite")
    cpu = dict(busy=d("busy"), servers=servers, postgres=d("postgres"), wrk=d("wrk"), redis=d("redis"))
    cpu["other"] = max(0.0, cpu["busy"] - servers - cpu["postgres"] - cpu["wrk"] - cpu["redis"])
    return parts, cpu

def events(name):
    return int(open(os.path.join(work, name + ".events")).read())

configs = []
if sqlite == "1":
    configs.append(("SQLite, 1 server", "sqlite", events("sqlite"), events("sqlite")))
configs += [("PostgreSQL, 1 server", "pg1", None, None), ("PostgreSQL, 2 servers", "pg2", None, None)]
pg_events = events("pg2")

rows, failures = [], []
appended = {}
for workload, kind in [("event appends (POST /v1/sessions/{id}/events)", "appends"),
                       ("keyword searches (POST /v1/search, events)", "searches")]:
    for label, key, _, _ in configs:
        parts, cpu = phase(f"{key}-{kind}")
        rps = sum(p["rps"] for p in parts)
        total = sum(p["total"] for p in parts)
        errors = sum(p["errors"] for p in parts)
        p50 = " / ".join(f"{p['p50']:.2f}" for p in parts)
        p99 = " / ".join(f"{p['p99']:.2f}" for p in parts)
        if kind == "appends":
            appended[key] = total
            store = events("sqlite") if key == "sqlite" else events(key)
        else:
            store = events("sqlite") if key == "sqlite" else pg_events
        rows.append((workload, label, rps, total, p50, p99, errors, store, cpu))
        if errors:
            failures.append(f"{label}, {kind}: {errors} errors")

# Every acknowledged append must be in the store: the session's last seq against the
# appends wrk completed (a request in flight when wrk stopped may be stored uncounted).
checks = []
if sqlite == "1":
    checks.append(("SQLite", events("sqlite"), appended["sqlite"]))
checks.append(("PostgreSQL, after the 1-server appends", events("pg1"), appended["pg1"]))
checks.append(("PostgreSQL, after both append phases", pg_events, appended["pg1"] + appended["pg2"]))
for name, have, done in checks:
    if have < done:
        failures.append(f"MISSING APPENDS ({name}): the store holds {have:,} events, wrk completed {done:,}")

cpus = os.cpu_count()
load = open("/proc/loadavg").read().split()[0]
MARKER = "<!-- bench/postgres-load.sh writes from here to the end -->"
lines = [
    MARKER,
    "## Request throughput: one and two servers on PostgreSQL, one on SQLite",
    "",
    "Reproduce with:",
    "",
    "```sh",
    command,
    "```",
    "",
    f"wrk against `agentstore serve` ({profile} build) over loopback, {conns} connections and 2 wrk "
    f"threads in all, {duration} per row. Two servers: two wrk processes at once, one per server, "
    f"each with {int(conns) // 2} connections and 1 thread; requests/s and requests are their sums, "
    "latencies are given per server (first / second). Every server uses Redis for its rate limit "
    "(AGENTSTORE_REDIS_URL; a rate of 1,000,000/s, so every request charges the key's bucket in "
    "Redis and none is refused). Appends all go to one session; searches look for two of the 15 "
    "words the appends use, over every event in the store.",
    "",
    f"- PostgreSQL: {pg_version}; a cluster of this run with {pg_settings}; both servers share one "
    "database (16 pooled connections each)",
    "- SQLite: durability `full` (fsync at every commit), its own store" if sqlite == "1" else
    "- SQLite: not run (--no-sqlite)",
    f"- machine: {cpus} CPUs, shared by the servers, PostgreSQL, Redis and wrk (and anything else "
    "running): the two-server rows measure two servers contending for the same cores, not scale-out",
    "",
    "| workload | servers | requests/s | requests | p50 ms | p99 ms | errors | events in the store | "
    "cores busy: all / servers / PostgreSQL / wrk / Redis / other |",
    "|---|---|---:|---:|---:|---:|---:|---:|---|",
]
for workload, label, rps, total, p50, p99, err, store, c in rows:
    lines.append(
        f"| {workload} | {label} | {rps:,.0f} | {total:,} | {p50} | {p99} | {err} | {store:,} | "
        f"{c['busy']:.2f} / {c['servers']:.2f} / {c['postgres']:.2f} / {c['wrk']:.2f} / "
        f"{c['redis']:.2f} / {c['other']:.2f} |")
lines += ["", "Events in the store: for appends, after that row; for searches, what they searched "
          "(PostgreSQL's searches run after both append rows, so over both rows' events; SQLite's "
          "over its own appends). \"cores busy\" is CPU time over the row's wall time (at most "
          f"{cpus}), from /proc; \"other\" is everything else on the machine.", ""]
for name, have, done in checks:
    lines.append(f"- {name}: the session holds {have:,} events, wrk completed {done:,} appends"
                 + (" — none missing" if have >= done else " — MISSING APPENDS"))
lines += ["", f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; commit {commit}; "
          f"1-minute load average at the start and the end: {load_start} and {load}",
          "- uncommitted changes outside the benchmarks (test files not counted): "
          + (foreign.replace(",", ", ") or "none")]
text = "\n".join(lines) + "\n"
# The rest of the file (the postgres binary's report) stays; an earlier section goes.
before = open(out).read() if os.path.exists(out) else ""
before = before.split(MARKER)[0]
open(out, "w").write((before.rstrip("\n") + "\n\n" if before.strip() else "") + text)
print(text)
if failures:
    sys.exit("; ".join(failures))
PY
echo "wrote $OUT" >&2
