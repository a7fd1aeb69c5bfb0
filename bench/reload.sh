#!/usr/bin/env bash
# bench/reload.sh: applying an edited config (issue 10), rinit against
# supervisord (supervisorctl reread + update), 100 services of which one is
# edited, each supervisor PID 1 of a fresh namespace, in one run. Writes the
# "reload" section of bench/RESULTS.md. See bench/reload.py.
#
#   bash bench/reload.sh          (REPS=10 reloads per cell)
#
# Debian packages it needs (installed with apt-get if missing):
PACKAGES=(supervisor util-linux coreutils python3)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPS=${REPS:-10}
start_watchdog "${MAX_SECONDS:-900}"
need_packages "${PACKAGES[@]}"
log "building rinit"
build_rinit
wait_quiet
section="$WORK/section.md"
python3 "$BENCH_DIR/reload.py" "$WORK/rinit" "$WORK" "$REPS" >"$section"
cat "$section"
write_section reload "$section"
log "wrote the reload section of $RESULTS"
