# bench/lib.sh: what bench/run.sh and bench/services.sh share. Sourced, not run.
#
# Every process a script starts in the background goes through bg_start, so
# the EXIT trap can SIGKILL it by pid. Every init runs under
# `unshare --kill-child`: killing that unshare SIGKILLs the namespace's PID 1,
# and with it the whole namespace.

export LC_ALL=C
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
RESULTS=${RESULTS_FILE:-$BENCH_DIR/RESULTS.md} # RESULTS_FILE=/tmp/x.md for a trial run
WORK=$(mktemp -d /tmp/rinit-bench.XXXXXX)
BG_PIDS=()
WATCHDOG_PID=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

UNSHARE=(unshare --kill-child --pid --fork --mount-proc)
if [ "$(id -u)" -ne 0 ]; then
    UNSHARE=(unshare --user --map-root-user --kill-child --pid --fork --mount-proc)
fi

# ---- packages -----------------------------------------------------------------

# need_packages PKG...: apt-get install -y the ones that are not installed.
need_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages (run as root to install): ${missing[*]}"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 600 apt-get install -y "${missing[@]}" >"$WORK/apt.log" 2>&1; then
        timeout 600 apt-get update >>"$WORK/apt.log" 2>&1 || true
        timeout 600 apt-get install -y "${missing[@]}" >>"$WORK/apt.log" 2>&1 ||
            die "apt-get install ${missing[*]} failed; see $WORK/apt.log"
    fi
}

# ---- building -----------------------------------------------------------------

# build_rinit: the static release binary, copied to $WORK/rinit so that a
# rebuild by someone else during the run cannot swap it under us. RINIT=path
# skips the build. A failed build (a file mid-edit) is retried a few times.
build_rinit() {
    if [ -n "${RINIT:-}" ]; then
        cp "$RINIT" "$WORK/rinit"
        return 0
    fi
    command -v cargo >/dev/null || die "cargo not found (or set RINIT=/path/to/rinit)"
    local try
    for try in 1 2 3 4 5 6; do
        if (cd "$REPO_DIR" && timeout 900 cargo build --release --target x86_64-unknown-linux-musl) \
            >"$WORK/cargo.log" 2>&1; then
            cp "$REPO_DIR/target/x86_64-unknown-linux-musl/release/rinit" "$WORK/rinit"
            return 0
        fi
        log "cargo build failed (attempt $try; a file may be mid-edit), retrying in 20 s"
        sleep 20
    done
    tail -20 "$WORK/cargo.log" >&2
    die "cargo build failed; see above"
}

build_helper() {
    gcc -O2 -static -Wall -o "$WORK/helper" "$BENCH_DIR/helper.c" 2>"$WORK/gcc.log" ||
        { cat "$WORK/gcc.log" >&2; die "building bench/helper.c failed"; }
}

# ---- processes ------------------------------------------------------------------

# bg_start LOGFILE CMD...: runs CMD in the background, stdout+stderr to
# LOGFILE; its pid is left in BG_PID and remembered for the cleanup.
bg_start() {
    local out=$1
    shift
    "$@" >"$out" 2>&1 &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}

cleanup() {
    local p naps=""
    # The watchdog, then its sleep (in that order, or the watchdog would
    # report the death of its sleep), then everything else started here.
    [ -n "$WATCHDOG_PID" ] && naps=$(descendants "$WATCHDOG_PID")
    for p in $WATCHDOG_PID $naps "${BG_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    for p in "${BG_PIDS[@]}" $WATCHDOG_PID; do
        wait "$p" 2>/dev/null || true
    done
    if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; else log "work files kept in $WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# start_watchdog SECONDS: the whole script gets at most this long.
start_watchdog() {
    local me=$$ secs=$1
    (
        sleep "$secs"
        echo "watchdog: $secs s exceeded, stopping" >&2
        kill -TERM "$me"
    ) &
    WATCHDOG_PID=$!
}

now_us() { echo "${EPOCHREALTIME/./}"; }

# init_pid_of UNSHARE_PID EXE: the pid (outside) of the namespace's PID 1,
# once it has exec'd EXE. Prints nothing on a 5 s timeout.
init_pid_of() {
    local up=$1 exe=$2 c deadline=$(($(now_us) + 5000000))
    while [ "$(now_us)" -lt "$deadline" ]; do
        c=$(cat "/proc/$up/task/$up/children" 2>/dev/null || true)
        c=${c%% *}
        if [ -n "$c" ] && [ "$(readlink "/proc/$c/exe" 2>/dev/null || true)" = "$exe" ]; then
            echo "$c"
            return 0
        fi
        sleep 0.002
    done
    return 1
}

# wait_exit PID SECONDS: 0 once PID (a child of this shell) has exited.
wait_exit() {
    local pid=$1 deadline=$(($(now_us) + $2 * 1000000))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)" = Z ] && return 0
        [ "$(now_us)" -lt "$deadline" ] || return 1
        sleep 0.005
    done
    return 0
}

# exit_status PID: wait for a background child and print its status.
exit_status() {
    local rc=0
    wait "$1" 2>/dev/null || rc=$?
    echo "$rc"
}

# descendants PID: every process under PID (all its threads' children).
descendants() {
    local p c
    for p in $(cat /proc/"$1"/task/*/children 2>/dev/null || true); do
        echo "$p"
        descendants "$p"
    done
}

status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kib() { awk '$1 == "Pss:" {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

# ---- numbers --------------------------------------------------------------------

# Statistics of a file of numbers, one per line.
stat_of() { # stat_of median|p99|mean|min|max|count FILE
    sort -g "$2" | awk -v what="$1" '
        { v[NR] = $1; s += $1 }
        END {
            if (NR == 0) { print "n/a"; exit }
            if (what == "count") { print NR; exit }
            if (what == "mean") { printf "%.1f\n", s / NR; exit }
            if (what == "min") { print v[1]; exit }
            if (what == "max") { print v[NR]; exit }
            if (what == "median") {
                if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
                exit
            }
            if (what == "p99") { i = int(NR * 0.99); if (i < NR * 0.99) i++; if (i < 1) i = 1; print v[i]; exit }
        }'
}

# ratio A B: "×A/B" with two decimals, or "—" when it means nothing.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^-?[0-9.]+$/ || b !~ /^-?[0-9.]+$/ || b + 0 <= 0 || a + 0 < 0) { print "—"; exit }
        r = a / b
        if (r > 0 && r < 0.1) printf "×%.2g\n", r; else printf "×%.2f\n", r }'
}

# fmt NUMBER DECIMALS: a number rounded, or the text unchanged.
fmt() {
    awk -v a="$1" -v d="${2:-0}" 'BEGIN { if (a ~ /^-?[0-9.]+$/) printf "%.*f\n", d, a; else print a }'
}

# le A B: true when both are numbers and A <= B.
le() {
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a ~ /^-?[0-9.]+$/ && b ~ /^-?[0-9.]+$/ && a + 0 <= b + 0) }'
}

machine_line() {
    local cpu
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    printf '%s, %s, %s CPUs, %s MiB RAM' "$(uname -srm)" "${cpu:-unknown cpu}" "$(nproc)" \
        "$(awk '/^MemTotal/ {printf "%d", $2 / 1024}' /proc/meminfo)"
}

# ---- RESULTS.md -----------------------------------------------------------------

# write_section NAME FILE: puts FILE into RESULTS.md between the markers of
# section NAME. Everything else in the file (the other script's section, or
# sections other scripts add) is kept as it is; a missing section is appended.
write_section() {
    local name=$1 file=$2 out="$WORK/RESULTS.new"
    local b="<!-- section:$name:begin -->" e="<!-- section:$name:end -->"
    if [ ! -f "$RESULTS" ]; then
        {
            echo "# rinit benchmark results"
            echo
            echo "Written by \`bench/run.sh\` (single-command mode) and \`bench/services.sh\`"
            echo "(services mode); see \`bench/README.md\` for what each number means."
            echo
            echo "<!-- section:single:begin -->"
            echo "(not run yet)"
            echo "<!-- section:single:end -->"
            echo
            echo "<!-- section:services:begin -->"
            echo "(not run yet)"
            echo "<!-- section:services:end -->"
        } >"$RESULTS"
    fi
    if grep -qxF "$b" "$RESULTS" && grep -qxF "$e" "$RESULTS"; then
        awk -v b="$b" -v e="$e" -v f="$file" '
            $0 == b { print; while ((getline line < f) > 0) print line; skip = 1; next }
            $0 == e { skip = 0 }
            !skip { print }' "$RESULTS" >"$out"
    else
        { cat "$RESULTS"; echo; echo "$b"; cat "$file"; echo "$e"; } >"$out"
    fi
    cat -s "$out" >"$RESULTS"
}

# cpu_busy SECONDS: percentage of all CPUs' time spent busy (not idle or
# waiting for I/O) over the next SECONDS, from /proc/stat.
cpu_busy() {
    local a b
    a=$(head -1 /proc/stat)
    sleep "$1"
    b=$(head -1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x, " "); split(b, y, " "); t = 0
        for (i = 2; i <= n; i++) t += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%.0f\n", (t > 0 ? 100 * (t - idle) / t : 0) }'
}

# wait_quiet: these are timing benchmarks; on a machine busy with other work
# they measure the other work. Waits (at most QUIET_WAIT seconds, 600) until
# the CPUs are less than QUIET_BUSY (25) % busy over 5 s, then goes on either
# way; QUIET0 says how busy the machine was when the measurements started.
wait_quiet() {
    local limit=$(($(now_us) + ${QUIET_WAIT:-600} * 1000000)) busy
    while busy=$(cpu_busy 5) && [ "$busy" -ge "${QUIET_BUSY:-25}" ]; do
        if [ "$(now_us)" -gt "$limit" ]; then
            log "warning: the CPUs are still $busy % busy after ${QUIET_WAIT:-600} s; measuring anyway"
            break
        fi
        log "waiting for a quieter machine: CPUs $busy % busy with other work"
        sleep 10
    done
    QUIET0="CPUs $busy % busy with other work in the 5 s before, load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
