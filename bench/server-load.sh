#!/usr/bin/env bash
# Load on the HTTP server over loopback with wrk (Debian package `wrk`): event appends,
# then keyword searches over what was appended, each for DURATION at CONNECTIONS
# concurrent connections. Prints a table and writes bench/results/server.md.
#
#   bench/server-load.sh [--duration 60s] [--connections 64] [--smoke]
#
# The server runs the release build with the default durability (fsync at every commit)
# and no rate limit; wrk and the server share the machine's cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION=60s
CONNECTIONS=64
OUT=bench/results/server.md
PROFILE=release
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    # The test suite's check that the harness runs: the debug build it already has.
    --smoke) DURATION=2s; CONNECTIONS=8; OUT="$(mktemp)"; PROFILE=debug; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (Debian package wrk)" >&2; exit 1; }

# shellcheck source=scripts/lib/test-server.sh
source "$ROOT/scripts/lib/test-server.sh"
start_test_server "$PROFILE" read,write load
SESSION="$(python3 - "$BASE" "$KEY" <<'PY'
import json, sys, urllib.request
base, key = sys.argv[1], sys.argv[2]
req = urllib.request.Request(base + "/v1/sessions", data=b'{"kind":"run","title":"load"}',
    headers={"authorization": "Bearer " + key, "content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["id"])
PY
)"
export KEY SESSION

run() {  # name script
  echo "== $1: wrk -t2 -c$CONNECTIONS -d$DURATION" >&2
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "bench/server/$2" "$BASE" | tee "$WORK/$1.txt" >&2
}
run appends append.lua
run searches search.lua

EVENTS="$(python3 - "$BASE" "$KEY" "$SESSION" <<'PY'
import json, sys, urllib.request
base, key, sid = sys.argv[1:4]
req = urllib.request.Request(f"{base}/v1/sessions/{sid}/events?descending=true&limit=1",
    headers={"authorization": "Bearer " + key})
items = json.load(urllib.request.urlopen(req))["items"]
print(items[0]["seq"] if items else 0)
PY
)"

python3 - "$WORK" "$OUT" "$DURATION" "$CONNECTIONS" "$EVENTS" "$(git rev-parse --short HEAD)" "$PROFILE" <<'PY'
import re, sys, os, datetime
work, out, duration, conns, events, commit, profile = sys.argv[1:8]
def parse(name):
    t = open(os.path.join(work, name + ".txt")).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    total = int(re.search(r"(\d+) requests in", t).group(1))
    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return rps, total, pct(50), pct(99), errors
rows = [("event appends (POST /v1/sessions/{id}/events)", *parse("appends")),
        ("keyword searches (POST /v1/search, events)", *parse("searches"))]
cpus = os.cpu_count()
load = open("/proc/loadavg").read().split()[0]
lines = [
    "# HTTP server under load",
    "",
    "Reproduce with:",
    "",
    "```sh",
    f"bench/server-load.sh --duration {duration} --connections {conns}",
    "```",
    "",
    f"wrk (2 threads, {conns} connections, {duration} per workload) against `agentstore serve` "
    f"({profile} build, one SQLite store, durability `full`: fsync at every commit, no rate limit) "
    f"on loopback; wrk and the server share the machine's {cpus} CPUs.",
    "",
    "| workload | requests/s | requests | p50 ms | p99 ms | errors |",
    "|---|---:|---:|---:|---:|---:|",
]
for name, rps, total, p50, p99, err in rows:
    lines.append(f"| {name} | {rps:,.0f} | {total:,} | {p50:.2f} | {p99:.2f} | {err} |")
appended = rows[0][2]
lines += ["", f"Events in the session after the append run: {int(events):,}; wrk counted {appended:,} "
          "completed appends (a request still in flight when wrk stopped is in the store but not "
          "counted), so no acknowledged append is missing." if int(events) >= appended else
          f"MISSING APPENDS: the store holds {int(events):,} events, wrk completed {appended:,}.", "",
          f"- date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; commit {commit}; 1-minute load average at the end: {load}"]
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
if int(events) < appended or any(r[5] for r in rows):
    sys.exit("errors or missing appends")
PY
echo "wrote $OUT" >&2
