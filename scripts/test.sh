#!/usr/bin/env bash
# Runs berth's whole test suite from the repository root:
#   1. prepares .venv/ with the pinned boto3, aws CLI (v1) and pytest (tests/compat/requirements.txt),
#   2. builds the workspace,
#   3. runs the Rust tests (cargo nextest when installed, else cargo test),
#   4. runs the compatibility tests (tests/compat) against the freshly built target/debug/berth.
# Missing system prerequisites (a C toolchain, python3-venv, Docker Engine, skopeo, busybox-static)
# are installed with apt-get, and dockerd is started, when run as root.
# Extra arguments are passed to pytest, e.g. ./scripts/test.sh -k presigned
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$BERTH_ROOT"

started=$SECONDS

step "Prerequisites"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) and run this script again"
ensure_c_toolchain
note "$(cargo --version)"
ensure_docker

step "Python environment (.venv)"
ensure_venv "$BERTH_ROOT/.venv" "$BERTH_ROOT/tests/compat/requirements.txt"
note "$("$BERTH_ROOT/.venv/bin/python" --version), $("$BERTH_ROOT/.venv/bin/aws" --version 2>&1)"

step "Build: cargo build --workspace --all-targets --locked"
cargo build --workspace --all-targets --locked

if cargo nextest --version >/dev/null 2>&1; then
  step "Rust tests: cargo nextest run --workspace --locked"
  cargo nextest run --workspace --locked
  # nextest does not run doctests; cargo does.
  step "Rust doctests: cargo test --workspace --doc --locked"
  cargo test --workspace --doc --locked
else
  step "Rust tests: cargo test --workspace --locked"
  cargo test --workspace --locked
fi

step "Compatibility tests: pytest tests/compat (boto3 + aws CLI against target/debug/berth)"
export BERTH_BIN="${CARGO_TARGET_DIR:-$BERTH_ROOT/target}/debug/berth"
[ -x "$BERTH_BIN" ] || die "the build did not produce $BERTH_BIN"
note "BERTH_BIN=$BERTH_BIN"
pytest_rc=0
timeout -k 10 900 "$BERTH_ROOT/.venv/bin/python" -m pytest tests/compat -q "$@" || pytest_rc=$?
case "$pytest_rc" in
  0) ;;
  5) die "pytest collected no tests in tests/compat" ;;
  124) die "pytest did not finish within 900 s" ;;
  *) die "compatibility tests failed (pytest exit code $pytest_rc)" ;;
esac

step "All tests passed in $((SECONDS - started)) s"
