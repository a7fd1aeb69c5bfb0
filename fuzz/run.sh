#!/bin/sh
# Runs every fuzz target for SECONDS (default 60), one after the other, at
# the lowest CPU priority, and prints per target: total execs, execs/s,
# coverage (libFuzzer's `cov:` edges and `ft:` features) and corpus size.
#
#   fuzz/run.sh 600            # 10 minutes per target
#   fuzz/run.sh 60 http_head   # one target
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# The working corpus grows in fuzz/corpus/TARGET (not committed), seeded
# from fuzz/seeds/TARGET; crashes land in fuzz/artifacts/TARGET. Keep each
# crash as a regression input in fuzz/regressions/TARGET: the stable test
# suite (tests/fuzz_regressions.rs) replays those.
set -eu
secs=${1:-60}
shift || true
cd "$(dirname "$0")"
targets=${*:-$(cargo +nightly fuzz list)}
mkdir -p logs
nice -n 19 cargo +nightly fuzz build -O >/dev/null 2>&1 || cargo +nightly fuzz build -O
for t in $targets; do
    mkdir -p "corpus/$t"
    log="logs/$t.log"
    # -max_len: room for a head past the 8 KiB limit (431 paths).
    status=0
    nice -n 19 cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -max_len=10000 -timeout=10 -rss_limit_mb=1024 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    # The last status line: "#N  <KIND> cov: C ft: F corp: K/S exec/s: E rss: R".
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    execs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}')
    secs_run=$(grep -E '^stat::total_time' "$log" 2>/dev/null | awk '{print $2}')
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    rate=$(echo "$last" | sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p')
    files=$(ls "corpus/$t" | wc -l)
    echo "$t: execs ${execs:-?} exec/s ${rate:-?} cov ${cov:-?} ft ${ft:-?} corpus ${files} files (exit $status, log fuzz/$log)"
    if [ "$status" -ne 0 ]; then
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -n 5
    fi
done
