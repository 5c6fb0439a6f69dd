#!/usr/bin/env bash
# Fuzzing: builds the cargo-fuzz targets of fuzz/ (fuzz/src/lib.rs says what each checks) and
# runs each for a bounded time; fails if any target finds a crash (a panic, a failed check,
# a timeout or running out of memory).
#
#   bash scripts/fuzz.sh                          # every target, 60 s each
#   bash scripts/fuzz.sh changeset query          # only these targets
#   SHOAL_FUZZ_SECONDS=3600 bash scripts/fuzz.sh  # longer: an hour per target
#
# Settings (environment):
#   SHOAL_FUZZ_SECONDS    seconds per target (default 60)
#   SHOAL_FUZZ_JOBS       targets run at once (default: the number of cores)
#   SHOAL_FUZZ_SANITIZER  cargo-fuzz's --sanitizer (default none: Shoal has no unsafe code
#                         outside src/ffi/, which no target reaches, so AddressSanitizer
#                         would only halve the executions; `address` for long runs)
#   SHOAL_FUZZ_TMPDIR     where the targets' scratch state goes (default /dev/shm if it
#                         exists, else $TMPDIR or /tmp); removed afterwards
#
# Works on stable Rust: RUSTC_BOOTSTRAP=1 lets stable rustc take the -Z flags cargo-fuzz
# passes. Installs cargo-fuzz (`cargo install cargo-fuzz --locked`) if it is missing.
#
# The checked-in seeds (fuzz/corpus/<target>/, written by fuzz/examples/gen_corpus.rs) are
# only read; what the fuzzer adds goes to a scratch corpus that is thrown away. A crash
# leaves its input in fuzz/artifacts/<target>/ and the script prints how to replay it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${SHOAL_FUZZ_SECONDS:-60}"
jobs="${SHOAL_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}"
sanitizer="${SHOAL_FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi
for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "no fuzz target '$t' (fuzz/fuzz_targets/)" >&2; exit 2; }
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz has no --locked: check the lock file first, so CI never resolves anew.
if ! cargo fetch --locked --manifest-path fuzz/Cargo.toml >/dev/null; then
    echo "fuzz/Cargo.lock is out of date (did a dependency of shoal or shoal-server change?):" >&2
    echo "run 'cargo fetch --manifest-path fuzz/Cargo.toml' and commit fuzz/Cargo.lock" >&2
    exit 1
fi
# Debug assertions and overflow checks on; 16 codegen units build much faster than
# cargo-fuzz's default of 1 on a small machine, for somewhat slower runs.
build_flags=(--debug-assertions --sanitizer "$sanitizer" --codegen-units 16)
echo "== building ${#targets[@]} fuzz target(s) (sanitizer: $sanitizer)"
started=$(date +%s)
if [ "$#" -gt 0 ]; then
    for t in "${targets[@]}"; do cargo fuzz build "${build_flags[@]}" "$t"; done
else
    cargo fuzz build "${build_flags[@]}"
fi
echo "   built in $(( $(date +%s) - started )) s"
host="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="${CARGO_TARGET_DIR:-fuzz/target}/$host/release"

scratch_root="${SHOAL_FUZZ_TMPDIR:-}"
if [ -z "$scratch_root" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch_root=/dev/shm; else scratch_root="${TMPDIR:-/tmp}"; fi
fi
work="$(mktemp -d "$scratch_root/shoal-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# One target: libFuzzer writes new inputs to the first folder and reads the seeds from the
# second. An input that runs for 30 s or needs 2 GiB is a crash too (a peer could send it).
run_target() {
    local t="$1"
    mkdir -p "$work/corpus/$t" "$work/tmp/$t" "fuzz/artifacts/$t"
    TMPDIR="$work/tmp/$t" "$bin_dir/$t" \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" \
        "$work/corpus/$t" "fuzz/corpus/$t" >"$work/$t.log" 2>&1
}

echo "== fuzzing ${targets[*]}: $seconds s each, $jobs at a time"
declare -A pid_of
failed=()
running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_target "$t" &
    pid_of[$t]=$!
    running=$((running + 1))
done
for t in "${targets[@]}"; do
    if ! wait "${pid_of[$t]}"; then failed+=("$t"); fi
done

total=0
for t in "${targets[@]}"; do
    runs="$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$work/$t.log" | tail -n 1)"
    cov="$(sed -n 's/.*DONE *cov: \([0-9]*\).*/\1/p' "$work/$t.log" | tail -n 1)"
    printf '   %-14s %10s runs  %6s edges\n' "$t" "${runs:-?}" "${cov:-?}"
    total=$((total + ${runs:-0}))
done

if [ "${#failed[@]}" -gt 0 ]; then
    for t in "${failed[@]}"; do
        echo
        echo "== fuzz target $t FAILED; the end of its log:"
        tail -n 60 "$work/$t.log"
        echo "-- its input is in fuzz/artifacts/$t/; replay it with"
        echo "   RUSTC_BOOTSTRAP=1 cargo fuzz run ${build_flags[*]} $t fuzz/artifacts/$t/<file>"
    done
    echo "fuzzing: ${#failed[@]} of ${#targets[@]} target(s) found a crash: ${failed[*]}"
    echo "fuzz: $(( ${#targets[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
    exit 1
fi
echo "fuzzing: ${#targets[@]} target(s), $total runs, no crash"
echo "fuzz: ${#targets[@]} passed, 0 failed"
