#!/usr/bin/env bash
# berth's first benchmark, side by side with moto's server and nginx (the machine's ceiling):
#   1. startup: spawn to first HTTP 200 for a signed GetCallerIdentity (20 starts, median and p90),
#   2. idle RSS after start + one request + 2 s idle,
#   3. throughput and latency percentiles: wrk replaying one pre-signed GetCallerIdentity,
#   4. authorization cost (issue 3): wrk replaying one pre-signed IAM GetUser, signed by root and by a
#      user with a 20-statement inline policy, against the same berth process.
# Run from the repository root:  ./bench/run.sh
# Installs what is missing (as root: apt-get install nginx wrk; moto into bench/.venv from
# bench/requirements.txt), builds berth in release mode, runs everything on 127.0.0.1 only, and writes
# bench/RESULTS.md. Logs and raw numbers go to bench/out/ (not committed). Takes about 8 minutes on a
# quiet machine (plus the build); it waits (at most 5 minutes in all) for other processes to quiet down and repeats a
# disturbed measurement (at most 3 attempts).
# Environment: BERTH_BIN=path measures that berth binary instead of building one (the results say so,
# with BERTH_BIN_NOTE, e.g. the commit it was built from);
# BENCH_STARTS (default 20), BENCH_DURATION seconds per wrk run (default 10),
# BENCH_CONNECTIONS comma-separated wrk connection counts (default 16,64), BENCH_ROUNDS interleaved
# wrk rounds per connection count (default 3).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$BERTH_ROOT"
BENCH="$BERTH_ROOT/bench"
started=$SECONDS

step "Prerequisites"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) and run this script again"
ensure_c_toolchain
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
WRK="$(command -v wrk)"
note "$("$NGINX" -v 2>&1), $("$WRK" -v 2>&1 | head -n1 | cut -d' ' -f1-2), $(nproc) CPUs"

step "Python environment for moto (bench/.venv)"
ensure_venv "$BENCH/.venv" "$BENCH/requirements.txt"
MOTO="$BENCH/.venv/bin/moto_server"
[ -x "$MOTO" ] || die "$MOTO is missing after installing bench/requirements.txt"
note "moto $("$BENCH/.venv/bin/python" -c 'from importlib.metadata import version; print(version("moto"))')"

command_line="./bench/run.sh"
if [ -n "${BERTH_BIN:-}" ]; then
  step "berth: using BERTH_BIN=$BERTH_BIN (not building)"
  BERTH="$BERTH_BIN"
  [ -x "$BERTH" ] || die "BERTH_BIN=$BERTH_BIN is not an executable"
  command_line="BERTH_BIN=$BERTH_BIN ./bench/run.sh"
else
  step "Build: cargo build --release -p berth --locked"
  # What the binary is built from, recorded before the build (the report names it).
  build_commit="$(git -C "$BERTH_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if [ -n "$(git -C "$BERTH_ROOT" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    build_dirty=1
  else
    build_dirty=0
  fi
  note "work tree at $build_commit$([ "$build_dirty" = 1 ] && echo ', with uncommitted changes under crates/ or Cargo.*')"
  cargo build --release -p berth --locked
  BERTH="${CARGO_TARGET_DIR:-$BERTH_ROOT/target}/release/berth"
  [ -x "$BERTH" ] || die "the build did not produce $BERTH"
fi
for var in BENCH_CONNECTIONS BENCH_DURATION BENCH_ROUNDS BENCH_STARTS; do
  if [ -n "${!var:-}" ]; then command_line="$var=${!var} $command_line"; fi
done

step "Benchmark (servers and clients on 127.0.0.1 only)"
rm -rf "$BENCH/out"
mkdir -p "$BENCH/out"
# bench.py stops every server it started, also on error or Ctrl-C; the timeout bounds the whole run.
timeout -k 10 1500 "$BENCH/.venv/bin/python" "$BENCH/bench.py" \
  --repo "$BERTH_ROOT" \
  --berth "$BERTH" \
  --moto "$MOTO" \
  --nginx "$NGINX" \
  --wrk "$WRK" \
  --out "$BENCH/out" \
  --results "$BENCH/RESULTS.md" \
  --command "$command_line" \
  ${BERTH_BIN:+--prebuilt-note "${BERTH_BIN_NOTE:-}"} \
  ${build_commit:+--build-commit "$build_commit" --build-dirty "$build_dirty"} \
  --starts "${BENCH_STARTS:-20}" \
  --duration "${BENCH_DURATION:-10}" \
  --rounds "${BENCH_ROUNDS:-3}" \
  --connections "${BENCH_CONNECTIONS:-16,64}"

step "Done in $((SECONDS - started)) s: bench/RESULTS.md"
