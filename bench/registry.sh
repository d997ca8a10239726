#!/usr/bin/env bash
# Registry throughput (issue 4): skopeo push and pull of a one-layer 512 MiB image against berth and
# against Debian's docker-registry, beside a plain copy of the same bytes on the same disk.
# Run from the repository root:  ./bench/registry.sh
# Installs what is missing (as root: apt-get install skopeo docker-registry; boto3 into bench/.venv),
# builds berth in release mode (or measures BERTH_BIN), and writes section 5 of bench/RESULTS.md.
# BENCH_REGISTRY_MIB (default 512) and BENCH_REGISTRY_ROUNDS (default 3) change the size and rounds.
# Exit code 3: a target was missed (the results are still written).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$BERTH_ROOT"
BENCH="$BERTH_ROOT/bench"

step "Prerequisites"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) and run this script again"
ensure_c_toolchain
missing=()
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi
# Debian starts the packaged registry as a service; the benchmark runs its own instance.
ensure_venv "$BENCH/.venv" "$BENCH/requirements.txt"

command_line="./bench/registry.sh"
note_text=""
if [ -n "${BERTH_BIN:-}" ]; then
  BERTH="$BERTH_BIN"
  command_line="BERTH_BIN=$BERTH_BIN $command_line"
else
  step "Build: cargo build --release -p berth --locked"
  dirty=""
  if [ -n "$(git status --porcelain -- crates Cargo.toml Cargo.lock)" ]; then dirty=" with uncommitted changes"; fi
  note_text="(release build of commit $(git rev-parse --short HEAD)$dirty)"
  cargo build --release -p berth --locked
  BERTH="${CARGO_TARGET_DIR:-$BERTH_ROOT/target}/release/berth"
fi
for var in BENCH_REGISTRY_MIB BENCH_REGISTRY_ROUNDS; do
  if [ -n "${!var:-}" ]; then command_line="$var=${!var} $command_line"; fi
done

step "Benchmark: skopeo against berth and docker-registry on 127.0.0.1"
timeout -k 10 1800 "$BENCH/.venv/bin/python" "$BENCH/registry.py" \
  --berth "$BERTH" \
  --registry /usr/bin/docker-registry \
  --out "$BENCH/out/registry" \
  --results "$BENCH/RESULTS.md" \
  --size-mib "${BENCH_REGISTRY_MIB:-512}" \
  --rounds "${BENCH_REGISTRY_ROUNDS:-3}" \
  --command "$command_line" \
  --berth-note "$note_text"
