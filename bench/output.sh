#!/usr/bin/env bash
# bench/output.sh: output throughput through rinit's `prefix` relay, against
# the physical baseline (`cat` relaying the same bytes pipe to pipe) and
# against s6-log (`s6-log 1`, which copies each line to its stdout), from one
# producer and from ten at once. Writes the "output" section of
# bench/RESULTS.md. See bench/README.md.
#
#   bash bench/output.sh
#
# Debian packages it needs (installed with apt-get if missing):
PACKAGES=(s6 python3 util-linux coreutils gawk)
# Knobs (environment): MB (megabytes per run, 200), REPS (runs per relay, 3),
# RINIT (use this binary instead of building), KEEP_WORK=1.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MB=${MB:-200}
REPS=${REPS:-3}
LINE=100 # bytes per line, newline included
start_watchdog "${MAX_SECONDS:-1200}"
need_packages "${PACKAGES[@]}"
log "building rinit"
build_rinit
wait_quiet

# The data: MB megabytes of 100-byte lines, in one file per producer.
LINES_TOTAL=$((MB * 1000 * 1000 / LINE))
make_data() { # make_data PRODUCERS
    local n=$1 i
    rm -f "$WORK"/data.*
    for i in $(seq "$n"); do
        awk -v n=$((LINES_TOTAL / n)) -v i="$i" 'BEGIN {
            pad = sprintf("%099d", 0)
            for (k = 0; k < n; k++) {
                head = sprintf("p%d line %09d ", i, k)
                print head substr(pad, 1, 99 - length(head))
            }
        }' >"$WORK/data.$i"
    done
}

# The consumer: reads its stdin until it has seen LINES newlines, then prints
# the seconds from its first byte to its last and the CPU seconds (utime +
# stime) the relay process has used so far (/proc/RELAY_PID/stat).
cat >"$WORK/consume.py" <<'EOF'
import os, sys, time
want, pid_file = int(sys.argv[1]), sys.argv[2]
seen, first, buf = 0, None, bytearray(1 << 16)
fd = sys.stdin.buffer.fileno()
# The relay's CPU time is sampled as the bytes arrive: `cat` exits at EOF,
# possibly before the last line is counted, and its /proc entry goes with it.
cpu, reads = 0.0, 0
def sample():
    global cpu
    try:
        pid = open(pid_file).read().split()[0]
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        pass
while seen < want:
    n = os.readv(fd, [buf])
    if n == 0:
        break
    if first is None:
        first = time.monotonic()
    seen += buf.count(b"\n", 0, n)
    reads += 1
    if reads % 256 == 0:
        sample()
last = time.monotonic()
sample()
print(f"lines={seen} seconds={last - (first or last):.4f} relay_cpu={cpu:.2f}")
EOF

kv() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$2"; }
declare -A R

# run_one RELAY PRODUCERS: one run; appends "MB/s CPU-s" to $WORK/res.RELAY.PRODUCERS
run_one() {
    local relay=$1 n=$2 out pidf=$WORK/relay.pid i
    rm -f "$pidf"
    case $relay in
    rinit)
        {
            echo "services:"
            for i in $(seq "$n"); do
                echo "  p$i:"
                echo "    command: [\"/bin/sh\", \"-c\", \"cat $WORK/data.$i; exec sleep 3600\"]"
            done
        } >"$WORK/out.yaml"
        # rinit is PID 1 and never exits by itself: it writes into a FIFO
        # the consumer reads in the foreground; its host pid (what the
        # consumer reads the CPU time of) is found meanwhile.
        local fifo=$WORK/rinit.fifo
        rm -f "$fifo"
        mkfifo "$fifo"
        "${UNSHARE[@]}" "$WORK/rinit" -q -c "$WORK/out.yaml" >"$fifo" 2>/dev/null &
        local up=$!
        (
            for _ in $(seq 500); do
                for p in $(pgrep -x rinit); do
                    if [ "$(awk '/^NSpid/ {print $NF}' "/proc/$p/status" 2>/dev/null)" = 1 ] &&
                        grep -q "$WORK/out.yaml" "/proc/$p/cmdline" 2>/dev/null; then
                        echo "$p" >"$pidf"
                        exit 0
                    fi
                done
                sleep 0.01
            done
        ) &
        python3 "$WORK/consume.py" "$LINES_TOTAL" "$pidf" <"$fifo" >"$WORK/one.out"
        kill -KILL "$up" 2>/dev/null || true
        wait "$up" 2>/dev/null || true
        ;;
    cat | s6-log)
        local relay_cmd=(cat)
        [ "$relay" = s6-log ] && relay_cmd=(s6-log 1)
        # The relay says its pid, then becomes the relay (same process).
        {
            for i in $(seq "$n"); do cat "$WORK/data.$i" & done
            wait
        } | sh -c 'echo $$ >"$1"; shift; exec "$@"' relay "$pidf" "${relay_cmd[@]}" |
            python3 "$WORK/consume.py" "$LINES_TOTAL" "$pidf" >"$WORK/one.out"
        ;;
    esac
    out=$(cat "$WORK/one.out")
    local secs cpu lines
    secs=$(kv seconds "$out") cpu=$(kv relay_cpu "$out") lines=$(kv lines "$out")
    if [ "${lines:-0}" != "$LINES_TOTAL" ]; then
        log "$relay x$n: got ${lines:-0} of $LINES_TOTAL lines ($out)"
        return 0
    fi
    awk -v mb="$MB" -v s="$secs" -v c="$cpu" 'BEGIN { printf "%.1f %.3f\n", mb / s, c / mb * 1000 }' >>"$WORK/res.$relay.$n"
}

RELAYS=(rinit cat s6-log)
for n in 1 10; do
    make_data "$n"
    for relay in "${RELAYS[@]}"; do : >"$WORK/res.$relay.$n"; done
    for rep in $(seq "$REPS"); do
        for relay in "${RELAYS[@]}"; do
            log "$relay, $n producer(s), run $rep/$REPS"
            run_one "$relay" "$n"
        done
    done
    for relay in "${RELAYS[@]}"; do
        awk '{print $1}' "$WORK/res.$relay.$n" >"$WORK/mbs.$relay.$n"
        awk '{print $2}' "$WORK/res.$relay.$n" >"$WORK/cpu.$relay.$n"
        R[mbs:$relay:$n]=$(stat_of median "$WORK/mbs.$relay.$n")
        R[cpu:$relay:$n]=$(stat_of median "$WORK/cpu.$relay.$n")
    done
done

log "writing $RESULTS"
S=$WORK/section.md
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a ~ /^[0-9.]+$/) printf "%.0f %%", 100 * a / b; else print "n/a" }'; }
{
    echo "## Output throughput (\`bench/output.sh\`)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(machine_line)"
    echo "- at the start: $QUIET0"
    echo "- rinit: $("$WORK/rinit" --version 2>&1 | head -1), git $(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "- $MB MB of ${LINE}-byte lines per run, from 1 producer or 10 at once (\`cat\` of a file), relayed into a pipe read by a Python consumer; median of $REPS runs"
    echo "- rinit: PID 1 of a fresh namespace, each producer a \`prefix\` service (lines come out as \`pN | ...\`); cat: \`producers | cat | consumer\`, the physical baseline; s6-log: \`producers | s6-log 1 | consumer\`"
    echo "- CPU: utime+stime of the relay process (rinit, cat or s6-log) when the last line arrived, per MB"
    echo
    echo "| producers | rinit MB/s | cat MB/s | s6-log MB/s | rinit ÷ cat | rinit CPU ms/MB | cat CPU ms/MB | s6-log CPU ms/MB |"
    echo "|---|---|---|---|---|---|---|---|"
    for n in 1 10; do
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "${R[mbs:rinit:$n]}" "${R[mbs:cat:$n]}" "${R[mbs:s6-log:$n]}" \
            "$(pct "${R[mbs:rinit:$n]}" "${R[mbs:cat:$n]}")" "${R[cpu:rinit:$n]}" "${R[cpu:cat:$n]}" "${R[cpu:s6-log:$n]}"
    done
    echo
    echo "Target: rinit ≥ 50 % of cat's throughput."
} >"$S"
write_section output "$S"
cat "$S"
log "done"
