#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time and reports executions and findings.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: 300 s each; targets verify normalize)
#   WK_FUZZ_ALLOW_NUMBER_RANGE=1 fuzz/run.sh 300 normalize   (skip a known finding's class;
#   also WK_FUZZ_ALLOW_LONE_SURROGATES=1, see fuzz_targets/normalize.rs)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); on a stable toolchain the nightly
# flags cargo-fuzz passes are allowed by RUSTC_BOOTSTRAP=1. Corpora grow in fuzz/corpus/<target>
# (seeded from tests/fixtures), crashes land in fuzz/artifacts/<target>/. Each target runs in
# libFuzzer's fork mode with one job (one core) and -ignore_crashes=1, so a known finding does
# not stop the search for others; PARALLEL=1 runs the targets side by side (two cores).
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-300}"
shift || true
if [[ $# -gt 0 ]]; then TARGETS=("$@"); else TARGETS=(verify normalize); fi
export RUSTC_BOOTSTRAP=1
mkdir -p corpus/verify corpus/normalize logs
cp ../tests/fixtures/*.json corpus/normalize/ 2>/dev/null || true
# verify seeds: mode byte, header length, header, body.
printf '\x00\x47sha256=0000000000000000000000000000000000000000000000000000000000000000{}' >corpus/verify/seed-zero
printf '\x01\x00{"object":"whatsapp_business_account"}' >corpus/verify/seed-empty-header
cargo fuzz build -O
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
run_one() {
    local target=$1 extra=()
    [[ "$target" == normalize ]] && extra=(-dict=json.dict -max_len=65536)
    cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$SECONDS_EACH" \
        -fork=1 -ignore_crashes=1 -print_final_stats=1 "${extra[@]}" >"logs/$target-$STAMP.log" 2>&1
}
pids=()
for target in "${TARGETS[@]}"; do
    touch "logs/$target-$STAMP.log.start"
    echo "== $target: ${SECONDS_EACH}s (log fuzz/logs/$target-$STAMP.log)"
    if [[ "${PARALLEL:-0}" == 1 ]]; then run_one "$target" & pids+=($!); else run_one "$target" || true; fi
done
for pid in "${pids[@]:-}"; do [[ -n "$pid" ]] && wait "$pid" || true; done
status=0
for target in "${TARGETS[@]}"; do
    log="logs/$target-$STAMP.log"
    last=$(grep -E '^#[0-9]+: cov' "$log" | tail -1)
    echo "== $target"
    echo "last status line: $last"
    echo "executions: $(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")"
    echo "corpus entries: $(find "corpus/$target" -type f | wc -l)"
    # Fork mode keeps the children's panic messages out of the log: replay every artifact.
    bin="target/x86_64-unknown-linux-gnu/release/$target"
    artifacts=(artifacts/"$target"/crash-* artifacts/"$target"/oom-* artifacts/"$target"/timeout-*)
    found=0
    for a in "${artifacts[@]}"; do [[ -f "$a" && "$a" -nt "logs/$target-$STAMP.log.start" ]] && found=1; done
    if [[ $found == 1 ]]; then
        status=1
        echo "FINDINGS (new artifacts, by panic message):"
        for a in "${artifacts[@]}"; do
            [[ -f "$a" && "$a" -nt "logs/$target-$STAMP.log.start" ]] || continue
            timeout 20 "$bin" "$a" 2>&1 | grep -A1 'panicked at\|ERROR: AddressSanitizer\|ERROR: libFuzzer: \(out-of-memory\|timeout\)' | grep -v 'panicked at\|^--' | head -1 \
                | sed -E 's/line: [0-9]+, column: [0-9]+/line L, column C/'
        done | sort | uniq -c | sort -rn
    else
        echo "no finding"
    fi
done
exit "$status"
