#!/usr/bin/env bash
# Runs berth's demo from the repository root: builds berth and plays the seed's deployment flow
# against an embedded berth (its own temporary data dir and a free port).
# Missing system prerequisites are installed with apt-get when run as root.
# Extra arguments go to `berth demo`, e.g. ./scripts/demo.sh --data-dir /tmp/berth-demo
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$BERTH_ROOT"

step "Prerequisites"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) and run this script again"
ensure_c_toolchain

step "Build: cargo build --release -p berth --locked"
cargo build --release -p berth --locked

step "berth demo"
exec "${CARGO_TARGET_DIR:-$BERTH_ROOT/target}/release/berth" demo "$@"
