#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (including the C program against the
# static library and the header check), then the Python binding's pytest suite.
# Installs what it needs on a fresh machine (pytest) and needs only cargo, a C compiler and
# Python 3.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo build (library, header, benches compile)"
cargo build --all-targets --locked

echo "== cargo test"
cargo test --locked --no-fail-fast

echo "== python binding"
if ! python3 -c "import pytest" 2>/dev/null; then
    python3 -m pip install --quiet "pytest>=7"
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
SHOAL_LIBRARY="${SHOAL_LIBRARY:-$TARGET_DIR/debug/libshoal.so}" \
SHOAL_SERVER="${SHOAL_SERVER:-$TARGET_DIR/debug/shoal-server}" \
    python3 -m pytest bindings/python/tests -q
