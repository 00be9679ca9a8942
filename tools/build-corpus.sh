#!/usr/bin/env bash
# Builds the multi-domain corpus (train/valid/test JSONL) from Debian packages.
#
#   bash tools/build-corpus.sh [OUT_DIR] [lory_corpus options...]
#   bash tools/build-corpus.sh data/corpus --mb-per-domain 5
#
# 1. Downloads the packages the recipes read (lory_corpus --list-packages)
#    with `apt-get download` into $LORY_DEB_CACHE (default ~/.cache/lory/debs).
#    That needs no root; only a machine without package lists needs one
#    `apt-get update`, done here when running as root (or with sudo), else
#    printed for you to run.
# 2. Runs lory_corpus on them (no installing, nothing unpacked to disk).
# The output is the same bytes on every machine with the same package versions.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${1:-data/corpus}
[[ $# -gt 0 ]] && shift
cache=${LORY_DEB_CACHE:-$HOME/.cache/lory/debs}
bin=${LORY_BIN:-build/bin}
if [[ ! -x $bin/lory_corpus ]]; then
  echo "build-corpus: $bin/lory_corpus not found; build first: make" >&2
  exit 1
fi

mkdir -p "$cache"
mapfile -t packages < <("$bin/lory_corpus" --list-packages)
missing=()
for p in "${packages[@]}"; do
  compgen -G "$cache/${p}_*.deb" >/dev/null || missing+=("$p")
done

if [[ ${#missing[@]} -gt 0 ]]; then
  echo "build-corpus: downloading ${#missing[@]} packages into $cache"
  download() { (cd "$cache" && apt-get download "${missing[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true); }
  download
  still=()
  for p in "${missing[@]}"; do compgen -G "$cache/${p}_*.deb" >/dev/null || still+=("$p"); done
  if [[ ${#still[@]} -gt 0 ]]; then
    # Most likely no package lists yet (a fresh machine or container).
    if [[ $(id -u) -eq 0 ]]; then
      apt-get update -qq
    elif command -v sudo >/dev/null 2>&1; then
      sudo apt-get update -qq
    else
      echo "build-corpus: cannot download ${still[*]}; run as root: apt-get update" >&2
      exit 1
    fi
    missing=("${still[@]}")
    download
    for p in "${missing[@]}"; do
      compgen -G "$cache/${p}_*.deb" >/dev/null || { echo "build-corpus: apt-get download $p failed" >&2; exit 1; }
    done
  fi
fi

"$bin/lory_corpus" --debs "$cache" --out "$out" "$@"
