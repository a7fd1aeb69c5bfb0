#!/usr/bin/env bash
# bench/services.sh: services mode, rinit against s6-svscan and supervisord,
# each as PID 1 of a fresh PID namespace supervising 10 `sleep 3600`
# services with no readiness probes, all in one run. Writes the "services"
# section of bench/RESULTS.md. See bench/README.md.
#
#   bash bench/services.sh            (as root, or unprivileged with user namespaces)
#
# Debian packages it needs (installed with apt-get if missing):
PACKAGES=(s6 execline supervisor gcc libc6-dev util-linux procps jq gawk coreutils)
# Knobs (environment): NSVC (services, 10; the section is "services" for 10,
# "services-N" otherwise), REPS (start/stop cycles per supervisor, 5), KILLS
# (restarts measured per cycle, 10), IDLE_SECS (3), RINIT (use this binary
# instead of building), KEEP_WORK=1 (keep temp files).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPS=${REPS:-5}
KILLS=${KILLS:-10}
IDLE_SECS=${IDLE_SECS:-3}
NSVC=${NSVC:-10}
# Bounds that grow with the number of services (supervisord starts them one by one).
START_LIMIT_MS=$((15000 + 200 * NSVC))
SECTION=services
[ "$NSVC" = 10 ] || SECTION=services-$NSVC
start_watchdog "${MAX_SECONDS:-1200}"

need_packages "${PACKAGES[@]}"
log "building rinit and the helper"
build_rinit
build_helper
HELPER=$WORK/helper
wait_quiet

SYSTEMS=(rinit rinit-inherit s6 supervisord)
declare -A LABEL=(
    [rinit]="rinit"
    [rinit-inherit]="rinit, \`output: inherit\`"
    [s6]="s6-svscan"
    [supervisord]="supervisord"
)

# ---- the four configurations ----------------------------------------------------
# SPEC section 4: each service is `sleep 3600`, no probe, restarted at once.
for variant in prefix inherit; do
    {
        echo "# $NSVC services, no probes, zero restart backoff (bench/services.sh)"
        echo "services:"
        for i in $(seq "$NSVC"); do
            echo "  s$i:"
            echo "    command: [\"sleep\", \"3600\"]"
            echo "    backoff: { initial: 0s, max: 0s }"
            [ "$variant" = inherit ] && echo "    output: inherit"
        done
    } >"$WORK/rinit-$variant.yaml"
done
# s6: a scan directory, one service directory with a `run` script each; the
# execline script execs straight into sleep, like rinit's list command.
make_s6_scandir() {
    rm -rf "$WORK/s6scan"
    mkdir -p "$WORK/s6scan"
    local i
    for i in $(seq "$NSVC"); do
        mkdir "$WORK/s6scan/s$i"
        printf '#!/usr/bin/execlineb -P\nsleep 3600\n' >"$WORK/s6scan/s$i/run"
        chmod +x "$WORK/s6scan/s$i/run"
    done
}
# supervisord: 10 programs, restarted always, RUNNING as soon as spawned
# (startsecs=0: no probe, like the others), output to its log files (default).
mkdir -p "$WORK/sv-logs"
{
    echo "[supervisord]"
    echo "nodaemon=true"
    echo "user=root"
    echo "logfile=$WORK/supervisord.log"
    echo "pidfile=$WORK/supervisord.pid"
    echo "childlogdir=$WORK/sv-logs"
    for i in $(seq "$NSVC"); do
        echo
        echo "[program:s$i]"
        echo "command=sleep 3600"
        echo "autorestart=true"
        echo "startsecs=0"
    done
} >"$WORK/supervisord.conf"

sys_argv() {
    case $1 in
    rinit) SYS_ARGV=("$WORK/rinit" -c "$WORK/rinit-prefix.yaml") ;;
    rinit-inherit) SYS_ARGV=("$WORK/rinit" -c "$WORK/rinit-inherit.yaml") ;;
    s6) make_s6_scandir; SYS_ARGV=(s6-svscan "$WORK/s6scan") ;;
    supervisord) SYS_ARGV=(supervisord -n -c "$WORK/supervisord.conf") ;;
    esac
}

declare -A R BROKEN
kv() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# The supervision tree: the init and every descendant that is not a service.
tree_pids() {
    local p
    echo "$1"
    for p in $(descendants "$1"); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null || true)" = sleep ] || echo "$p"
    done
}
ctxt_tree() {
    local p s=0 v
    for p in $(tree_pids "$1"); do
        v=$(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s + 0}')
        s=$((s + v))
    done
    echo "$s"
}
ticks_tree() {
    local p s=0 v
    for p in $(tree_pids "$1"); do
        v=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)
        s=$((s + v))
    done
    echo "$s"
}

# ---- one start / restarts / stop cycle ---------------------------------------------

cycle() { # cycle SYSTEM REP
    local sys=$1 rep=$2 t0 up out init el k rc p
    sys_argv "$sys"
    t0=$(now_us)
    bg_start "$WORK/$sys.$rep.log" "${UNSHARE[@]}" "${SYS_ARGV[@]}"
    up=$BG_PID
    out=$("$HELPER" nswait "$up" "$NSVC" "$t0" "$START_LIMIT_MS" || true)
    el=$(kv elapsed_us "$out")
    init=$(kv init "$out")
    if [ -z "$el" ] || [ "$el" = timeout ] || [ -z "$init" ]; then
        log "$sys: the $NSVC services were not all running after $((START_LIMIT_MS / 1000)) s ($out); see $WORK/$sys.$rep.log"
        BROKEN[$sys]=1
        kill -KILL "$up" 2>/dev/null || true
        wait "$up" 2>/dev/null || true
        return 0
    fi
    echo "$el" >>"$WORK/start.$sys"

    sleep 1.2 # s6-supervise will not relaunch a service within 1 s of launching it
    if [ "$rep" = 1 ]; then
        R[init_rss:$sys]=$(status_kib "$init" VmRSS)
        R[init_hwm:$sys]=$(status_kib "$init" VmHWM)
        local rss=0 pss=0 procs=0 threads=0
        for p in $(tree_pids "$init"); do
            rss=$((rss + $(status_kib "$p" VmRSS)))
            pss=$((pss + $(pss_kib "$p")))
            threads=$((threads + $(status_kib "$p" Threads)))
            procs=$((procs + 1))
        done
        R[tree_rss:$sys]=$rss R[tree_pss:$sys]=$pss R[procs:$sys]=$procs R[threads:$sys]=$threads
        local c0 k0
        c0=$(ctxt_tree "$init") k0=$(ticks_tree "$init")
        sleep "$IDLE_SECS"
        R[wake:$sys]=$(($(ctxt_tree "$init") - c0))
        R[ticks:$sys]=$(($(ticks_tree "$init") - k0))
    fi

    for k in $(seq "$KILLS"); do
        out=$("$HELPER" restart "$up" 5000 || true)
        el=$(kv elapsed_us "$out")
        echo "${el:-failed}" >>"$WORK/restart.$sys"
        sleep 0.15
    done
    # Every service back before the stop, so each stop stops ten.
    "$HELPER" nswait "$up" "$NSVC" "$(now_us)" "$START_LIMIT_MS" >/dev/null || true

    out=$("$HELPER" stop "$init" 30000 || true)
    el=$(kv elapsed_us "$out")
    echo "${el:-failed}" >>"$WORK/stop.$sys"
    if wait_exit "$up" 10; then rc=$(exit_status "$up"); else
        rc="still running after 10 s"
        kill -KILL "$up" 2>/dev/null || true
        wait "$up" 2>/dev/null || true
    fi
    R[exit:$sys]=$rc
}

for sys in "${SYSTEMS[@]}"; do : >"$WORK/start.$sys"; : >"$WORK/restart.$sys"; : >"$WORK/stop.$sys"; done
for rep in $(seq "$REPS"); do
    for sys in "${SYSTEMS[@]}"; do
        [ -n "${BROKEN[$sys]:-}" ] && continue
        log "cycle $rep/$REPS: $sys"
        cycle "$sys" "$rep"
    done
done

# ---- numbers -------------------------------------------------------------------------

ms() { awk -v v="$1" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%.2f\n", v / 1000; else print v }'; }
for sys in "${SYSTEMS[@]}"; do
    for m in start restart stop; do
        grep -E '^[0-9.]+$' "$WORK/$m.$sys" >"$WORK/$m.$sys.ok" || true
        R[${m}_fail:$sys]=$(grep -cvE '^[0-9.]+$' "$WORK/$m.$sys" || true)
        R[${m}_n:$sys]=$(stat_of count "$WORK/$m.$sys.ok")
        for s in median p99 max; do R[${m}_$s:$sys]=$(ms "$(stat_of "$s" "$WORK/$m.$sys.ok")"); done
    done
done
NA="n/a (not yet working)"
for sys in rinit rinit-inherit; do
    if [ -n "${BROKEN[$sys]:-}" ] && [ "${R[start_n:$sys]}" = n/a ]; then
        for key in start_median start_p99 start_max restart_median restart_p99 restart_max stop_median \
            stop_p99 stop_max init_rss init_hwm tree_rss tree_pss procs threads wake ticks exit; do
            R[$key:$sys]=$NA
        done
    fi
done

# ---- the report ------------------------------------------------------------------------

log "writing $RESULTS"
S=$WORK/section.md
cell() { # cell KEY SYSTEM DECIMALS: value (×ratio to s6)
    local v=${R[$1:$2]:-n/a} b=${R[$1:s6]:-n/a}
    if [ "$2" = s6 ] || [[ $v == n/a* ]]; then fmt "$v" "$3"; else echo "$(fmt "$v" "$3") ($(ratio "$v" "$b"))"; fi
}
row() { # row LABEL KEY DECIMALS TARGET MET
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(cell "$2" rinit "$3")" "$(cell "$2" rinit-inherit "$3")" \
        "$(cell "$2" s6 "$3")" "$(cell "$2" supervisord "$3")" "$4" "$5"
}
met() { # met VALUE LIMIT
    if [[ ${1:-n/a} == n/a* ]]; then echo "n/a"; elif le "$1" "$2"; then echo yes; else echo "**no**"; fi
}
met_start=$(met "${R[start_median:rinit]}" "${R[start_median:s6]}")
met_restart=$(met "${R[restart_median:rinit]}" 5)
met_stop=$(met "${R[stop_median:rinit]}" "${R[stop_median:s6]}")
RSS_TARGET=1536
[ "$NSVC" -gt 10 ] && RSS_TARGET=4096
met_rss=$(met "${R[init_hwm:rinit]}" "$RSS_TARGET")
if [[ ${R[procs:rinit]:-n/a} == n/a* ]]; then met_procs=n/a; elif [ "${R[procs:rinit]}" = 1 ]; then met_procs=yes; else met_procs="**no**"; fi

{
    if [ "$NSVC" = 10 ]; then echo "## Services mode (\`bench/services.sh\`)"; else echo "## Services mode, $NSVC services (\`NSVC=$NSVC bench/services.sh\`)"; fi
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(machine_line)"
    echo "- at the start: $QUIET0"
    echo "- rinit: $("$WORK/rinit" --version 2>&1 | head -1), git $(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO_DIR" && git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' + uncommitted changes in src/')"
    echo "- others: s6 $(dpkg-query -W -f='${Version}' s6), supervisor $(dpkg-query -W -f='${Version}' supervisor) (Debian packages)"
    echo "- each supervisor is PID 1 of a fresh namespace (\`${UNSHARE[*]} ...\`) with $NSVC services, each \`sleep 3600\`, no probes; rinit and supervisord restart with zero delay (s6 has no such setting)"
    echo "- $REPS start/stop cycles per supervisor, $KILLS restarts measured in each"
    echo
    echo "Each cell: the absolute number, then (×ratio to s6-svscan in this run)."
    echo
    echo "| measurement | rinit | rinit, \`output: inherit\` | s6-svscan | supervisord | rinit target | met |"
    echo "|---|---|---|---|---|---|---|"
    row "start: launch → all $NSVC \`sleep\`s exec'd, ms (median)" start_median 2 "≤ s6's" "$met_start"
    row "restart: \`kill -9\` of a service → its new process exec'd, ms (median)" restart_median 2 "≤ 5 ms" "$met_restart"
    row "restart, ms (p99 of $((REPS * KILLS)))" restart_p99 2 "—" "—"
    row "graceful stop: SIGTERM to PID 1 → PID 1 has exited, ms (median)" stop_median 2 "≤ s6's" "$met_stop"
    row "peak RSS (VmHWM) of PID 1, KiB" init_hwm 0 "≤ $RSS_TARGET KiB" "$met_rss"
    row "RSS of PID 1, KiB" init_rss 0 "—" "—"
    row "RSS summed over the supervision tree (PID 1 + s6-supervise), KiB" tree_rss 0 "—" "—"
    row "PSS summed over the supervision tree, KiB" tree_pss 0 "—" "—"
    row "processes in the supervision tree (services excluded)" procs 0 "1 (no helper per service)" "$met_procs"
    row "threads in the supervision tree" threads 0 "—" "—"
    row "idle wake-ups of the tree over $IDLE_SECS s" wake 0 "—" "—"
    row "idle CPU ticks of the tree over $IDLE_SECS s" ticks 0 "—" "—"
    echo
    echo "### Spread (ms)"
    echo
    echo "| supervisor | start median / p99 / max | restart median / p99 / max | stop median / p99 / max | samples (start, restart, stop) | failed samples | exit status after SIGTERM |"
    echo "|---|---|---|---|---|---|---|"
    for sys in "${SYSTEMS[@]}"; do
        printf '| %s | %s / %s / %s | %s / %s / %s | %s / %s / %s | %s, %s, %s | %s | %s |\n' "${LABEL[$sys]}" \
            "${R[start_median:$sys]}" "${R[start_p99:$sys]}" "${R[start_max:$sys]}" \
            "${R[restart_median:$sys]}" "${R[restart_p99:$sys]}" "${R[restart_max:$sys]}" \
            "${R[stop_median:$sys]}" "${R[stop_p99:$sys]}" "${R[stop_max:$sys]}" \
            "${R[start_n:$sys]}" "${R[restart_n:$sys]}" "${R[stop_n:$sys]}" \
            "$((${R[start_fail:$sys]} + ${R[restart_fail:$sys]} + ${R[stop_fail:$sys]}))" "${R[exit:$sys]:-n/a}"
    done
} >"$S"
write_section "$SECTION" "$S"
cat "$S"
log "done"
