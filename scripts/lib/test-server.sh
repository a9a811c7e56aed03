# Sourced by scripts/api-fuzz.sh and bench/server-load.sh: builds the binary, creates a
# store in a temp dir with one API key, and serves it on a free loopback port.
#
#   start_test_server PROFILE SCOPES KEY_NAME
#
# Sets BIN, WORK (the temp dir, removed at exit), KEY (the key's secret) and BASE
# (http://ADDR); the server is stopped at exit. Expects ROOT (the repository).

start_test_server() {
  local profile="$1" scopes="$2" name="$3"
  if [ "$profile" = release ]; then
    cargo build --release --quiet -p agentstore-cli
  else
    cargo build --quiet -p agentstore-cli
  fi
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$profile/agentstore"
  WORK="$(mktemp -d)"
  SERVER_PID=""
  trap stop_test_server EXIT
  export AGENTSTORE_DATA_DIR="$WORK/data"
  unset AGENTSTORE_MODEL_DIR AGENTSTORE_TENANT
  "$BIN" init >/dev/null
  KEY="$("$BIN" --json keys create --scopes "$scopes" --name "$name" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')"
  "$BIN" serve --preset test --addr 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
  SERVER_PID=$!
  for _ in $(seq 100); do grep -q listening "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
  BASE="$(sed -n 's/^agentstore listening on //p' "$WORK/serve.out")"
  [ -n "$BASE" ] || { cat "$WORK/serve.err" >&2; exit 1; }
}

stop_test_server() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
