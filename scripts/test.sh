#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (including the C program against the
# static library, once more under AddressSanitizer/UBSan/LeakSanitizer, and the header
# check), every fuzz target for a short while (scripts/fuzz.sh; SHOAL_FUZZ_SECONDS per
# target, 45 by default here, 0 skips fuzzing), the Python binding's pytest suite, then the
# install check (scripts/check_install.sh: a release build installed into a temporary prefix,
# C and C++ programs built with pkg-config and CMake against it, the Python package
# pip-installed into a fresh virtualenv and syncing; SHOAL_INSTALL_CHECK=0 skips it).
# Installs what it needs on a fresh machine (pytest, cargo-fuzz) and needs cargo, a C and C++
# compiler and Python 3, plus pkg-config, cmake and Python's venv for the install check
# (.ci/run installs those).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo build (library, header, benches compile)"
cargo build --all-targets --locked

echo "== cargo test"
cargo test --locked --no-fail-fast

echo "== a local-only library (--no-default-features: no users, no sync)"
# Only the library: its tests would bring the default features back through shoal-server.
cargo clippy -p shoal --lib --no-default-features --locked -- -D warnings
networking="$(cargo tree -p shoal --no-default-features -e normal --prefix none --locked \
    | grep -E '^(tokio|tokio-tungstenite|tungstenite|rustls|ring|ureq) ' || true)"
if [ -n "$networking" ]; then
    echo "a local-only build links networking crates:" >&2
    echo "$networking" >&2
    exit 1
fi

fuzz_seconds="${SHOAL_FUZZ_SECONDS:-45}"
if [ "$fuzz_seconds" != 0 ]; then
    echo "== fuzzing ($fuzz_seconds s per target)"
    SHOAL_FUZZ_SECONDS="$fuzz_seconds" bash scripts/fuzz.sh
fi

echo "== python binding"
if ! python3 -c "import pytest" 2>/dev/null; then
    python3 -m pip install --quiet "pytest>=7"
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
SHOAL_LIBRARY="${SHOAL_LIBRARY:-$TARGET_DIR/debug/libshoal.so}" \
SHOAL_SERVER="${SHOAL_SERVER:-$TARGET_DIR/debug/shoal-server}" \
    python3 -m pytest bindings/python/tests -q

echo "== third-party notices"
python3 scripts/third_party_notices.py --check

if [ "${SHOAL_INSTALL_CHECK:-1}" != 0 ]; then
    echo "== install check (scripts/check_install.sh)"
    bash scripts/check_install.sh
fi
