#!/usr/bin/env bash
# What the tracker's transactions cost: bench/tracker-throughput.sh on one copy of the binary,
# alternating --processing-guarantee exactly-once (A) and at-least-once (B), A B A B ...
# (ROUNDS pairs), each run on its own fresh broker. Prints per run the inbound events/s from
# ready to all opened and the tracker's CPU µs per event, then per mode the mean and the
# ratio exactly-once / at-least-once (also of the tracker's and the broker's CPU per event).
#
# PAUSE seconds between runs (20) let the previous broker's exit settle. The broker's CPU is
# counted from the tracker's start to all opened.
#
# Environment: N (50000), ROUNDS (2), PAUSE (20), PARTITIONS (12), WK_BIN, KAFKA_HEAP, BENCH_OUT.
source "$(dirname "$0")/lib.sh"

N="${N:-50000}"
ROUNDS="${ROUNDS:-2}"
PAUSE="${PAUSE:-20}"

need_venv
prepare

RESULTS="$BENCH_OUT/results.tsv"
printf 'run\tguarantee\tload_at_start\tevents_per_s\tcpu_us_per_event\tbroker_cpu_us_per_event\tstart_to_ready_s\n' >"$RESULTS"
run=0
for round in $(seq 1 "$ROUNDS"); do
    for mode in exactly-once at-least-once; do
        run=$((run + 1))
        out="$BENCH_OUT/run$run-$mode"
        [[ $run == 1 ]] || sleep "$PAUSE"
        load=$(cut -d" " -f1 /proc/loadavg)
        log "run $run: $mode (load average $load)"
        N="$N" PROCESSING_GUARANTEE="$mode" WK_BIN="$WK_BIN" BENCH_OUT="$out" \
            "$BENCH_DIR/tracker-throughput.sh" >"$out.log" 2>&1 || { log "run $run failed: see $out.log"; exit 1; }
        python3 - "$out/summary.txt" "$run" "$mode" "$load" >>"$RESULTS" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rate = re.search(r"ready -> all \d+ opened: [0-9.]+ s = ([0-9,]+) inbound events/s", text).group(1).replace(",", "")
cpu = re.search(r"= ([0-9.]+) µs per inbound event", text).group(1)
broker = re.search(r"broker CPU time, start -> all opened: [0-9.]+ s = ([0-9.]+) µs", text).group(1)
ready = re.search(r"start -> ready \(group join \+ state restore\): ([0-9.]+) s", text).group(1)
print("\t".join([sys.argv[2], sys.argv[3], sys.argv[4], rate, cpu, broker, ready]))
EOF
        tail -1 "$RESULTS" >&2
    done
done

python3 - "$RESULTS" <<'EOF' | tee "$BENCH_OUT/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("| run | guarantee | load avg at start | events/s | tracker CPU µs/event | broker CPU µs/event | start → ready |")
print("|---:|---|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['run']} | {r['guarantee']} | {r['load_at_start']} | {int(r['events_per_s']):,} | {r['cpu_us_per_event']} | {r['broker_cpu_us_per_event']} | {r['start_to_ready_s']} s |")
mean = {}
for mode in ("exactly-once", "at-least-once"):
    rs = [r for r in rows if r["guarantee"] == mode]
    mean[mode] = [statistics.mean(float(r[k]) for r in rs) for k in ("events_per_s", "cpu_us_per_event", "broker_cpu_us_per_event")]
    print(f"{mode}: mean {mean[mode][0]:,.0f} events/s, tracker {mean[mode][1]:.1f} µs CPU per event, broker {mean[mode][2]:.1f}")
eo, alo = mean["exactly-once"], mean["at-least-once"]
print(f"exactly-once / at-least-once: events/s {eo[0] / alo[0]:.2f}×, tracker CPU per event {eo[1] / alo[1]:.2f}×, broker CPU per event {eo[2] / alo[2]:.2f}×")
EOF
