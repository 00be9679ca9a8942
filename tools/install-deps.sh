#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Lory builds against (and matplotlib, for
# the figures of tools/lory_plot.py), if any are missing.
# Idempotent and silent when everything is there. As root it uses apt-get, as
# a user sudo; otherwise it prints the command to run and exits 1.
# The CUDA toolkit is not installed here: it is optional (detected by CMake).
set -euo pipefail

packages=(build-essential cmake libeigen3-dev doctest-dev nlohmann-json3-dev libcli11-dev libarchive-dev zlib1g-dev libsentencepiece-dev pkg-config libsimdjson-dev libtomlplusplus-dev libfaiss-dev libopenblas0-pthread libopenmpi-dev openmpi-bin python3-matplotlib)

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: not a Debian/Ubuntu system; make sure these (or your distribution's equivalents) are installed: ${packages[*]}" >&2
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ $status == ii* ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

install_cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root:  apt-get update && $install_cmd" >&2
  exit 1
fi

sudo="${as_root[*]:+sudo }"
log=$(mktemp "${TMPDIR:-/tmp}/lory-install-deps.XXXXXX.log")
run_apt() { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >>"$log" 2>&1; }
fail() {
  tail -n 30 "$log" >&2
  echo "install-deps: failed (full log: $log); to retry by hand: ${sudo}apt-get update && ${sudo}$install_cmd" >&2
  exit 1
}

echo "install-deps: installing ${missing[*]} with ${sudo}apt-get (log: $log)"
# Refresh the package lists only when apt does not know a package (a fresh
# system or container has none), or when an install from stale lists fails.
updated=0
for p in "${missing[@]}"; do
  if ! apt-cache show --no-all-versions "$p" >/dev/null 2>&1; then
    run_apt update || fail
    updated=1
    break
  fi
done
if ! run_apt install -y --no-install-recommends "${missing[@]}"; then
  [[ $updated -eq 1 ]] && fail
  run_apt update || fail
  run_apt install -y --no-install-recommends "${missing[@]}" || fail
fi
rm -f "$log"
echo "install-deps: done"
