#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a set time and prints how many
# inputs each one executed; exits non-zero if any target crashed (a panic, a
# failed property assertion, a timeout or an out-of-memory).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (or FUZZ_SECONDS=…; default 60)
#
# Why RUSTC_BOOTSTRAP=1: libFuzzer needs the compiler's sanitizer-coverage
# instrumentation, which cargo-fuzz turns on with unstable (`-Z`) flags that
# only a nightly compiler accepts. Only the stable toolchain is installed here
# (no nightly can be fetched), and RUSTC_BOOTSTRAP=1 lets that stable compiler
# accept the flags. It is set for the fuzz build alone, never for the product,
# which builds on stable without it.
#
# Built with `--sanitizer none`: the workspace forbids `unsafe` code, so
# AddressSanitizer would mostly re-check the standard library and slow each
# run several times over; debug assertions and overflow checks stay on
# (fuzz/Cargo.toml). cargo-fuzz is installed, pinned, under target/ if it is
# not there yet. New corpus entries go to target/fuzz/corpus/<target> (the
# committed seeds in fuzz/corpus/<target> are only read); a crashing input is
# saved under target/fuzz/artifacts/<target>/ and named in the output.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.1
SECONDS_EACH=${1:-${FUZZ_SECONDS:-60}}
shift || true
case "$SECONDS_EACH" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac

TOOLS=target/cargo-fuzz
if ! "$TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION under $TOOLS"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --root "$TOOLS" --quiet
fi
export PATH="$PWD/$TOOLS/bin:$PATH"
export RUSTC_BOOTSTRAP=1
BUILD_DIR="$PWD/target/fuzz-build"
WORK="$PWD/target/fuzz"

if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cd fuzz && cargo fuzz list)
fi

# fuzz/Cargo.lock is committed so runs use known versions, but not enforced
# with --locked (cargo-fuzz has no such flag anyway): the fuzz crate depends
# on the workspace crates by path, and when one of them gains a dependency
# cargo adds just that to the fuzz lock here instead of failing the run.
(cd fuzz && cargo fetch --quiet)
(cd fuzz && cargo fuzz build --sanitizer none --target-dir "$BUILD_DIR")

failed=()
summary=()
for t in "${TARGETS[@]}"; do
    mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t"
    log="$WORK/$t.log"
    echo "=== fuzz target '$t' for ${SECONDS_EACH} s"
    status=0
    # Scratch files of a target (http_bodies' SQLite database) go here and
    # are removed after the run: libFuzzer exits without running destructors.
    export TMPDIR="$WORK/tmp/$t"
    rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
    (cd fuzz && cargo fuzz run --sanitizer none --target-dir "$BUILD_DIR" "$t" \
        "$WORK/corpus/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$WORK/artifacts/$t/") >"$log" 2>&1 || status=$?
    rm -rf "$TMPDIR"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    line="$t: ${execs:-?} executions (${rate:-?}/s), budget ${SECONDS_EACH} s"
    if [ "$status" != 0 ]; then
        line="$line — FAILED (exit $status)"
        failed+=("$t")
        tail -n 60 "$log"
        ls "$WORK/artifacts/$t/" 2>/dev/null | sed 's,^,  artifact: target/fuzz/artifacts/'"$t"'/,'
    fi
    echo "$line"
    summary+=("$line")
done

echo "=== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets failed: ${failed[*]}" >&2
    exit 1
fi
