#!/usr/bin/env bash
# bench/ctl.sh: operating one service of a running supervisor: `rinit ctl
# restart web` until web runs again, and `rinit ctl status`, against
# `supervisorctl restart web` / `supervisorctl status` and `s6-svc -r` +
# `s6-svwait -u` / `s6-svstat`, each supervisor PID 1 of a fresh namespace
# with the same three `sleep` services, in one run. Writes the "ctl"
# section of bench/RESULTS.md. See bench/README.md.
#
#   bash bench/ctl.sh
#
# Debian packages it needs (installed with apt-get if missing):
PACKAGES=(s6 execline supervisor util-linux coreutils)
# Knobs: N (samples per measurement, 30), RINIT, KEEP_WORK=1.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${N:-30}
start_watchdog "${MAX_SECONDS:-900}"
need_packages "${PACKAGES[@]}"
log "building rinit"
build_rinit
wait_quiet

SVCS=(db web worker)
{
    echo "services:"
    for s in "${SVCS[@]}"; do
        echo "  $s:"
        echo "    command: [\"sleep\", \"3600\"]"
    done
} >"$WORK/rinit.yaml"
mkdir -p "$WORK/s6scan"
for s in "${SVCS[@]}"; do
    mkdir -p "$WORK/s6scan/$s"
    printf '#!/usr/bin/execlineb -P\nsleep 3600\n' >"$WORK/s6scan/$s/run"
    chmod +x "$WORK/s6scan/$s/run"
done
{
    echo "[unix_http_server]"
    echo "file=$WORK/supervisor.sock"
    echo "[rpcinterface:supervisor]"
    echo "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface"
    echo "[supervisorctl]"
    echo "serverurl=unix://$WORK/supervisor.sock"
    echo "[supervisord]"
    echo "nodaemon=true"
    echo "user=root"
    echo "logfile=$WORK/supervisord.log"
    echo "pidfile=$WORK/supervisord.pid"
    for s in "${SVCS[@]}"; do
        printf '[program:%s]\ncommand=sleep 3600\nautorestart=true\nstartsecs=0\n' "$s"
    done
} >"$WORK/supervisord.conf"

RCTL=("$WORK/rinit" ctl --control "$WORK/rinit.sock")
SCTL=(supervisorctl -c "$WORK/supervisord.conf")

# time_ms CMD...: wall milliseconds of one run (fails the sample on error)
time_ms() {
    local t0 t1
    t0=$(now_us)
    "$@" >/dev/null 2>&1 || return 1
    t1=$(now_us)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1000 }'
}

declare -A R
measure() { # measure KEY CMD...: N samples of CMD into $WORK/KEY
    local key=$1 i
    shift
    : >"$WORK/$key"
    for i in $(seq "$N"); do
        time_ms "$@" >>"$WORK/$key" || echo failed >>"$WORK/$key"
        sleep 0.05
    done
    grep -E '^[0-9.]+$' "$WORK/$key" >"$WORK/$key.ok" || true
    R[$key]=$(stat_of median "$WORK/$key.ok")
    R[$key.p99]=$(stat_of p99 "$WORK/$key.ok")
    R[$key.fail]=$(grep -c failed "$WORK/$key" || true)
}

log "rinit"
bg_start "$WORK/rinit.log" "${UNSHARE[@]}" "$WORK/rinit" -c "$WORK/rinit.yaml" --control "$WORK/rinit.sock"
until "${RCTL[@]}" status >/dev/null 2>&1; do sleep 0.05; done
measure rinit_restart "${RCTL[@]}" restart web
measure rinit_status "${RCTL[@]}" status

log "supervisord"
bg_start "$WORK/sv.log" "${UNSHARE[@]}" supervisord -n -c "$WORK/supervisord.conf"
for _ in $(seq 200); do "${SCTL[@]}" status web 2>/dev/null | grep -q RUNNING && break; sleep 0.05; done
measure sv_restart "${SCTL[@]}" restart web
measure sv_status "${SCTL[@]}" status

log "s6"
bg_start "$WORK/s6.log" "${UNSHARE[@]}" s6-svscan "$WORK/s6scan"
for _ in $(seq 200); do s6-svstat "$WORK/s6scan/web" 2>/dev/null | grep -q '^up' && break; sleep 0.05; done
# s6-svwait -u returns at once while web is still up: wait for the down first.
s6_restart() { s6-svc -d "$WORK/s6scan/web" && s6-svwait -d -t 10000 "$WORK/s6scan/web" && s6-svc -u "$WORK/s6scan/web" && s6-svwait -u -t 10000 "$WORK/s6scan/web"; }
measure s6_restart s6_restart
measure s6_status s6-svstat "$WORK/s6scan/web" "$WORK/s6scan/db" "$WORK/s6scan/worker"

log "writing $RESULTS"
S=$WORK/section.md
{
    echo "## Operating one service (\`bench/ctl.sh\`)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(machine_line)"
    echo "- at the start: $QUIET0"
    echo "- rinit: $("$WORK/rinit" --version 2>&1 | head -1), git $(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "- each supervisor PID 1 of a fresh namespace with 3 \`sleep 3600\` services; $N samples each; wall time of the whole client command"
    echo "- restart: until the new \`web\` process runs (rinit: \`ctl restart web\` replies once web is ready again; supervisorctl: \`restart web\`; s6: \`s6-svc -d\` + \`s6-svwait -d\` + \`s6-svc -u\` + \`s6-svwait -u\`)"
    echo
    echo "| measurement | rinit | supervisorctl | s6 | rinit ÷ s6 | target |"
    echo "|---|---|---|---|---|---|"
    printf '| restart web, median ms | %s | %s | %s | %s | ≤ s6 |\n' "${R[rinit_restart]}" "${R[sv_restart]}" "${R[s6_restart]}" "$(ratio "${R[rinit_restart]}" "${R[s6_restart]}")"
    printf '| restart web, p99 ms | %s | %s | %s | — | — |\n' "${R[rinit_restart.p99]}" "${R[sv_restart.p99]}" "${R[s6_restart.p99]}"
    printf '| status, median ms | %s | %s | %s | %s | ≤ 2 ms |\n' "${R[rinit_status]}" "${R[sv_status]}" "${R[s6_status]}" "$(ratio "${R[rinit_status]}" "${R[s6_status]}")"
    printf '| status, p99 ms | %s | %s | %s | — | — |\n' "${R[rinit_status.p99]}" "${R[sv_status.p99]}" "${R[s6_status.p99]}"
    printf '| failed samples | %s | %s | %s | — | 0 |\n' "$((${R[rinit_restart.fail]} + ${R[rinit_status.fail]}))" "$((${R[sv_restart.fail]} + ${R[sv_status.fail]}))" "$((${R[s6_restart.fail]} + ${R[s6_status.fail]}))"
} >"$S"
write_section ctl "$S"
cat "$S"
log "done"
