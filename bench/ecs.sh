#!/usr/bin/env bash
# Task start-up (issue 5): RunTask → RUNNING → first answered request, beside `docker run` of the
# same image, and 50 tasks at once. Run from the repository root:  ./bench/ecs.sh
# Needs a running Docker Engine (installed and started as root, like the tests) and busybox-static;
# builds berth in release mode (or measures BERTH_BIN); writes section 6 of bench/RESULTS.md.
# BENCH_ECS_ROUNDS (default 5) and BENCH_ECS_MANY (default 50). Exit code 3: a target was missed.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$BERTH_ROOT"
BENCH="$BERTH_ROOT/bench"

step "Prerequisites"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) and run this script again"
ensure_c_toolchain
ensure_docker
ensure_venv "$BENCH/.venv" "$BENCH/requirements.txt"

command_line="./bench/ecs.sh"
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
for var in BENCH_ECS_ROUNDS BENCH_ECS_MANY; do
  if [ -n "${!var:-}" ]; then command_line="$var=${!var} $command_line"; fi
done

step "Benchmark: RunTask against docker run"
timeout -k 10 1800 "$BENCH/.venv/bin/python" "$BENCH/ecs.py" \
  --berth "$BERTH" \
  --out "$BENCH/out/ecs" \
  --results "$BENCH/RESULTS.md" \
  --rounds "${BENCH_ECS_ROUNDS:-5}" \
  --many "${BENCH_ECS_MANY:-50}" \
  --command "$command_line" \
  --berth-note "$note_text"
