#!/usr/bin/env bash
# bench/checks.sh: health checks (issue 11) measured with rinit as PID 1:
# hung-service detection latency against failures x interval, READY=1 ->
# dependent spawned, and the CPU cost of 200 liveness checks per second.
# Writes the "checks" section of bench/RESULTS.md. See bench/checks.py.
#
#   bash bench/checks.sh          (REPS=5 runs per cell)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPS=${REPS:-5}
start_watchdog "${MAX_SECONDS:-1200}"
log "building rinit"
build_rinit
section="$WORK/section.md"
python3 "$BENCH_DIR/checks.py" "$WORK/rinit" "$WORK" "$REPS" >"$section"
cat "$section"
write_section checks "$section"
log "wrote the checks section of $RESULTS"
