#!/usr/bin/env bash
# bench/run.sh: single-command mode, rinit against tini-static, tini and
# dumb-init, each as PID 1 of a fresh PID namespace, all in one run.
# Writes the "single" section of bench/RESULTS.md. See bench/README.md.
#
#   sudo bash bench/run.sh
#
# Debian packages it needs (installed with apt-get if missing):
PACKAGES=(tini dumb-init hyperfine gcc libc6-dev util-linux procps file binutils jq gawk coreutils)
# Knobs (environment): RUNS (hyperfine runs per command, 500, in ROUNDS (5)
# interleaved rounds), SIG_N (SIGTERM
# samples per init, 100), ORPHANS (10000), ORPHAN_REPS (3), IDLE_SECS (10),
# RINIT (use this binary instead of building), KEEP_WORK=1 (keep temp files).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${RUNS:-500}
ROUNDS=${ROUNDS:-5}
SIG_N=${SIG_N:-100}
ORPHANS=${ORPHANS:-10000}
ORPHAN_REPS=${ORPHAN_REPS:-3}
IDLE_SECS=${IDLE_SECS:-10}
start_watchdog "${MAX_SECONDS:-1200}"

need_packages "${PACKAGES[@]}"
log "building rinit and the helper"
build_rinit
build_helper
HELPER=$WORK/helper
wait_quiet

NAMES=(rinit tini-static tini dumb-init)
declare -A BIN=(
    [rinit]="$WORK/rinit"
    [tini-static]=/usr/bin/tini-static
    [tini]=/usr/bin/tini
    [dumb-init]=/usr/bin/dumb-init
)
# init_argv NAME: the init's command line up to (not including) the child's,
# into INIT_ARGV. rinit runs with its default logging (info, to stderr).
init_argv() {
    case $1 in
    dumb-init) INIT_ARGV=("${BIN[$1]}") ;;
    *) INIT_ARGV=("${BIN[$1]}" --) ;;
    esac
}
exe_of() { readlink -f "${BIN[$1]}"; }

declare -A R # every result, keyed "measurement:init"

# ---- 1. start+exit overhead -----------------------------------------------------

log "start+exit overhead: hyperfine, $RUNS runs per command in $ROUNDS interleaved rounds"
hf=(-n bare /bin/true -n pid1-true "${UNSHARE[*]} /bin/true")
for n in "${NAMES[@]}"; do
    init_argv "$n"
    hf+=(-n "$n" "${UNSHARE[*]} ${INIT_ARGV[*]} /bin/true")
done
hf+=(-n rinit-q "${UNSHARE[*]} $WORK/rinit -q -- /bin/true")
# Several short rounds rather than one long one, so that a change in the
# machine's load during the run spreads over every command alike.
for round in $(seq "$ROUNDS"); do
    timeout 900 hyperfine -N --style basic --warmup 10 --runs $((RUNS / ROUNDS)) \
        --export-json "$WORK/start.$round.json" "${hf[@]}" >>"$WORK/hyperfine.log" 2>&1 ||
        { tail -30 "$WORK/hyperfine.log" >&2; die "hyperfine failed"; }
done
# Every single run's time, pooled over the rounds: mean, sd, median in µs.
while IFS=$'\t' read -r name mean sd median; do
    R[mean:$name]=$mean R[sd:$name]=$sd R[median:$name]=$median
done < <(jq -r -s '[.[].results[]] | group_by(.command)[]
    | {c: .[0].command, t: ([.[].times[]] | map(. * 1e6) | sort)}
    | (.t | length) as $n | (.t | add / $n) as $m
    | [.c, $m, ((.t | map((. - $m) * (. - $m)) | add) / ($n - 1) | sqrt),
       (if $n % 2 == 1 then .t[($n - 1) / 2] else (.t[$n / 2 - 1] + .t[$n / 2]) / 2 end)]
    | map(if type == "number" then (. * 10 | round / 10) else . end) | @tsv' "$WORK"/start.*.json)
for n in "${NAMES[@]}" rinit-q; do
    R[over_ns:$n]=$(awk -v a="${R[mean:$n]}" -v b="${R[mean:pid1-true]}" 'BEGIN {printf "%.1f", a - b}')
    R[over_bare:$n]=$(awk -v a="${R[mean:$n]}" -v b="${R[mean:bare]}" 'BEGIN {printf "%.1f", a - b}')
    R[over_med:$n]=$(awk -v a="${R[median:$n]}" -v b="${R[median:pid1-true]}" 'BEGIN {printf "%.1f", a - b}')
    # Noise of the difference: two standard errors of the two means.
    R[over_err:$n]=$(awk -v a="${R[sd:$n]}" -v b="${R[sd:tini-static]}" -v n="$RUNS" \
        'BEGIN {printf "%.1f", 2 * sqrt((a * a + b * b) / n)}')
done

# ---- 2. peak RSS and idle, all four side by side ----------------------------------

log "peak RSS and idle wake-ups: $IDLE_SECS s supervising sleep 60"
declare -A UP IP
for n in "${NAMES[@]}"; do
    init_argv "$n"
    bg_start "$WORK/idle.$n.log" "${UNSHARE[@]}" "${INIT_ARGV[@]}" sleep 60
    UP[$n]=$BG_PID
done
for n in "${NAMES[@]}"; do
    IP[$n]=$(init_pid_of "${UP[$n]}" "$(exe_of "$n")") || die "$n did not start"
done
sleep 1
ctxt() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s + 0}'; }
ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
declare -A C0 T0
for n in "${NAMES[@]}"; do
    C0[$n]=$(ctxt "${IP[$n]}")
    T0[$n]=$(ticks "${IP[$n]}")
done
sleep "$IDLE_SECS"
for n in "${NAMES[@]}"; do
    p=${IP[$n]}
    R[wake:$n]=$(($(ctxt "$p") - ${C0[$n]}))
    R[ticks:$n]=$(($(ticks "$p") - ${T0[$n]}))
    R[hwm:$n]=$(status_kib "$p" VmHWM)
    R[rss:$n]=$(status_kib "$p" VmRSS)
    R[threads:$n]=$(status_kib "$p" Threads)
done
for n in "${NAMES[@]}"; do kill -TERM "${IP[$n]}"; done
for n in "${NAMES[@]}"; do
    if wait_exit "${UP[$n]}" 10; then
        R[term_exit:$n]=$(exit_status "${UP[$n]}")
    else
        R[term_exit:$n]="did not exit in 10 s"
        kill -KILL "${UP[$n]}" 2>/dev/null || true
    fi
done

# ---- 3. orphans ---------------------------------------------------------------------

log "orphans: $ORPHANS double-forked and $ORPHANS released at once, $ORPHAN_REPS reps"
# orphan_run MODE N TIMEOUT_MS ARGV...: prints the helper's elapsed_us.
orphan_run() {
    local mode=$1 n=$2 ms=$3 out
    shift 3
    out=$(timeout -s KILL 180 "${UNSHARE[@]}" "$@" "$HELPER" orphans "$mode" "$n" "$ms" 2>>"$WORK/orphans.log" || true)
    echo "$mode $* -> $out" >>"$WORK/orphans.log"
    out=$(sed -n 's/.*elapsed_us=\([^ ]*\).*/\1/p' <<<"$out")
    echo "${out:-failed}"
}
for rep in $(seq "$ORPHAN_REPS"); do
    for n in "${NAMES[@]}"; do
        init_argv "$n"
        orphan_run double "$ORPHANS" 30000 "${INIT_ARGV[@]}" >>"$WORK/orph_double.$n"
        orphan_run burst "$ORPHANS" 60000 "${INIT_ARGV[@]}" >>"$WORK/orph_burst.$n"
    done
done
for n in "${NAMES[@]}"; do
    for m in double burst; do
        grep -E '^[0-9.]+$' "$WORK/orph_$m.$n" >"$WORK/orph_$m.$n.ok" || true
        R[orph_$m:$n]=$(stat_of median "$WORK/orph_$m.$n.ok")
        R[orph_${m}_max:$n]=$(stat_of max "$WORK/orph_$m.$n.ok")
        R[orph_${m}_fail:$n]=$(grep -cvE '^[0-9.]+$' "$WORK/orph_$m.$n" || true)
    done
done
# Negative control: the helper itself as PID 1 reaps nothing, so the same
# check must time out with the zombies still there.
R[control]=$(orphan_run double 1000 1000)

# ---- 4. SIGTERM forwarding latency ---------------------------------------------------

log "SIGTERM forwarding latency: $SIG_N samples per init"
declare -A LOST
for n in "${NAMES[@]}"; do LOST[$n]=0; : >"$WORK/sig.$n"; done
for i in $(seq "$SIG_N"); do
    for n in "${NAMES[@]}"; do
        init_argv "$n"
        f="$WORK/recv.$n"
        rm -f "$f"
        bg_start "$WORK/sig.$n.log" "${UNSHARE[@]}" "${INIT_ARGV[@]}" "$HELPER" recv "$f"
        up=$BG_PID
        deadline=$(($(now_us) + 5000000))
        until grep -q ready "$f" 2>/dev/null || [ "$(now_us)" -gt "$deadline" ]; do sleep 0.002; done
        ip=$(init_pid_of "$up" "$(exe_of "$n")") || ip=""
        sent=""
        if [ -n "$ip" ] && grep -q ready "$f" 2>/dev/null; then
            sent=$("$HELPER" send "$ip" | sed -n 's/^sent_ns=//p')
        fi
        if ! wait_exit "$up" 5; then kill -KILL "$up" 2>/dev/null || true; fi
        wait "$up" 2>/dev/null || true
        got=$(sed -n 's/^got_ns=//p' "$f" 2>/dev/null || true)
        if [ -n "$sent" ] && [ -n "$got" ]; then
            awk -v a="$got" -v b="$sent" 'BEGIN {printf "%.1f\n", (a - b) / 1000}' >>"$WORK/sig.$n"
        else
            LOST[$n]=$((${LOST[$n]} + 1))
        fi
    done
done
for n in "${NAMES[@]}"; do
    for s in median p99 min max; do R[sig_$s:$n]=$(stat_of "$s" "$WORK/sig.$n"); done
    R[sig_lost:$n]=${LOST[$n]}
done

# ---- 5. binary size -------------------------------------------------------------------

for n in "${NAMES[@]}"; do
    strip -o "$WORK/stripped.$n" "${BIN[$n]}" 2>/dev/null || cp "${BIN[$n]}" "$WORK/stripped.$n"
    R[size:$n]=$(stat -c %s "$WORK/stripped.$n")
    R[file:$n]=$(file -b "${BIN[$n]}" | sed 's/, BuildID\[[^]]*\]=[0-9a-f]*//')
    case ${R[file:$n]} in *"statically linked"*) R[static:$n]=static ;; *) R[static:$n]=dynamic ;; esac
done

# ---- the report -------------------------------------------------------------------------

log "writing $RESULTS"
S=$WORK/section.md
# cell KEY NAME DECIMALS: the value for NAME and its ratio to tini-static's.
cell() {
    local v=${R[$1:$2]:-n/a} b=${R[$1:tini-static]:-n/a}
    if [ "$2" = tini-static ]; then fmt "$v" "$3"; else echo "$(fmt "$v" "$3") ($(ratio "$v" "$b"))"; fi
}
row() { # row LABEL KEY DECIMALS TARGET MET
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(cell "$2" rinit "$3")" \
        "$(cell "$2" tini-static "$3")" "$(cell "$2" tini "$3")" "$(cell "$2" dumb-init "$3")" "$4" "$5"
}
yesno() { if "$@"; then echo yes; else echo "**no**"; fi; }

d=${R[over_ns:rinit]} t=${R[over_ns:tini-static]} e=${R[over_err:rinit]}
if le "$d" "$t"; then met_start=yes
elif le "$d" "$(awk -v t="$t" -v e="$e" 'BEGIN {print t + e}')"; then met_start="within noise (±$(fmt "$e" 0) µs)"
else met_start="**no**"; fi
met_rss=$(yesno le "${R[hwm:rinit]}" 1024)
met_orph=$(yesno le "${R[orph_double_max:rinit]}" 5000)
met_sig=$(yesno le "${R[sig_median:rinit]}" "$(awk -v t="${R[sig_median:tini]}" 'BEGIN {print t + 100}')")
met_wake=$(yesno le "${R[wake:rinit]}" 0)
met_ticks=$(yesno le "${R[ticks:rinit]}" 0)
met_size="$(yesno le "${R[size:rinit]}" 1048576), ${R[static:rinit]}"

{
    echo "## Single-command mode (\`bench/run.sh\`)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(machine_line)"
    echo "- at the start: $QUIET0"
    echo "- rinit: $("$WORK/rinit" --version 2>&1 | head -1), git $(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO_DIR" && git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' + uncommitted changes in src/')"
    echo "- others: tini $(dpkg-query -W -f='${Version}' tini), dumb-init $(dpkg-query -W -f='${Version}' dumb-init) (Debian packages)"
    echo "- each init is PID 1 of a fresh namespace: \`${UNSHARE[*]} INIT ...\`"
    echo
    echo "Each cell: the absolute number, then (×ratio to tini-static in this run)."
    echo
    echo "| measurement | rinit | tini-static | tini | dumb-init | rinit target | met |"
    echo "|---|---|---|---|---|---|---|"
    row "start+exit overhead, µs per run (mean, minus \`/bin/true\` as PID 1 of the same kind of namespace)" over_ns 1 "≤ tini-static's" "$met_start"
    row "same, medians instead of means" over_med 1 "—" "—"
    row "start+exit overhead, µs per run (mean, minus bare \`/bin/true\` with no namespace)" over_bare 1 "—" "—"
    row "peak RSS (VmHWM) supervising \`sleep\`, KiB" hwm 0 "≤ 1024 KiB" "$met_rss"
    row "$ORPHANS double-forked orphans: last fork → no zombie left, µs (median of $ORPHAN_REPS)" orph_double 0 "≤ 5000 µs (every rep)" "$met_orph"
    row "$ORPHANS orphans released at once: release → all reaped, µs (median of $ORPHAN_REPS)" orph_burst 0 "—" "—"
    row "SIGTERM forwarding latency, median µs ($SIG_N samples)" sig_median 0 "≤ tini's + 100 µs" "$met_sig"
    row "SIGTERM forwarding latency, p99 µs" sig_p99 0 "—" "—"
    row "idle wake-ups (context switches, all threads) over $IDLE_SECS s" wake 0 "0" "$met_wake"
    row "idle CPU ticks (utime+stime) over $IDLE_SECS s" ticks 0 "0" "$met_ticks"
    row "binary size after \`strip\`, bytes" size 0 "≤ 1 MiB, static" "$met_size"
    echo
    echo "### Start+exit (hyperfine, $RUNS runs each in $ROUNDS rounds, µs)"
    echo
    echo "| command | mean ± sd | median | overhead vs PID-1 \`/bin/true\` | overhead vs bare \`/bin/true\` | overhead ÷ tini-static's |"
    echo "|---|---|---|---|---|---|"
    for n in bare pid1-true "${NAMES[@]}" rinit-q; do
        case $n in
        bare) label="\`/bin/true\`" ;;
        pid1-true) label="\`unshare … /bin/true\` (baseline)" ;;
        rinit-q) label="rinit -q (logging off)" ;;
        *) label=$n ;;
        esac
        if [ "$n" = bare ] || [ "$n" = pid1-true ]; then
            printf '| %s | %s ± %s | %s | — | — | — |\n' "$label" "${R[mean:$n]}" "${R[sd:$n]}" "${R[median:$n]}"
        else
            printf '| %s | %s ± %s | %s | %s | %s | %s |\n' "$label" "${R[mean:$n]}" "${R[sd:$n]}" \
                "${R[median:$n]}" "${R[over_ns:$n]}" "${R[over_bare:$n]}" "$(ratio "${R[over_ns:$n]}" "${R[over_ns:tini-static]}")"
        fi
    done
    echo
    echo "### SIGTERM forwarding (µs from just before \`kill\` to the child's handler)"
    echo
    echo "| init | median | p99 | min | max | signals lost |"
    echo "|---|---|---|---|---|---|"
    for n in "${NAMES[@]}"; do
        printf '| %s | %s | %s | %s | %s | %s |\n' "$n" "${R[sig_median:$n]}" "${R[sig_p99:$n]}" \
            "${R[sig_min:$n]}" "${R[sig_max:$n]}" "${R[sig_lost:$n]}"
    done
    echo
    echo "### Orphans (µs; every rep)"
    echo
    echo "| init | double fork: each rep | burst: each rep | failed reps |"
    echo "|---|---|---|---|"
    for n in "${NAMES[@]}"; do
        printf '| %s | %s | %s | %s |\n' "$n" "$(paste -sd' ' "$WORK/orph_double.$n")" \
            "$(paste -sd' ' "$WORK/orph_burst.$n")" "$((${R[orph_double_fail:$n]} + ${R[orph_burst_fail:$n]}))"
    done
    echo
    echo "Negative control (the helper itself as PID 1, reaping nothing, 1,000 orphans, 1 s limit): \`${R[control]}\` (must be \`timeout\`)."
    echo
    echo "### Idle, memory, exit"
    echo
    echo "| init | VmHWM KiB | VmRSS KiB | threads | wake-ups | CPU ticks | exit status after SIGTERM |"
    echo "|---|---|---|---|---|---|---|"
    for n in "${NAMES[@]}"; do
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$n" "${R[hwm:$n]}" "${R[rss:$n]}" "${R[threads:$n]}" \
            "${R[wake:$n]}" "${R[ticks:$n]}" "${R[term_exit:$n]}"
    done
    echo
    echo "### Binaries"
    echo
    echo "| init | stripped bytes | \`file\` |"
    echo "|---|---|---|"
    for n in "${NAMES[@]}"; do
        printf '| %s | %s | %s |\n' "$n" "${R[size:$n]}" "${R[file:$n]}"
    done
} >"$S"
write_section single "$S"
cat "$S"
log "done"
