#!/usr/bin/env bash
# bench/http.sh: rinit's health endpoint under load. Builds the static
# release binary, runs it as PID 1 of a fresh PID namespace with 10 sleeping
# services and health on 127.0.0.1:PORT, and measures GET /healthz with wrk:
#   1. one connection, unloaded (the floor);
#   2. 64 connections, 2 threads, as fast as it goes (wrk --latency);
#   3. 64 connections pacing themselves to about 1,000, 2,500 and 10,000
#      requests/s (wrk has no rate option: a Lua delay() makes each
#      connection pause after every response, so the rate is
#      64 / (pause + latency));
# each run repeated against a minimal C epoll server that answers the same
# way (the yardstick of what this machine allows with one TCP connection per
# request), plus rinit's CPU share during each run and its VmRSS, VmHWM and
# thread count before, during (sampled every 100 ms) and after the load.
# Prints a markdown section; with --write it also puts it at the end of
# bench/RESULTS.md between <!-- section:http:... --> markers (replacing an
# earlier one), or into bench/HTTP_RESULTS.md if RESULTS.md does not exist.
#
#   sudo bash bench/http.sh [--write]
#
# Needs: cargo with the x86_64-unknown-linux-musl target, unshare
# (util-linux), curl, ss (iproute2), python3 (to pick free ports), gcc (for
# the reference server, optional), wrk (installed with apt-get when missing
# and running as root). Takes about 7 minutes: each run waits for the
# previous one's TIME_WAIT sockets to expire.
# Knobs (environment): DURATION (10s), CONNS (64), THREADS (2), SERVICES
# (10), PACES ("64 25 6"), REFERENCE (1; 0 skips the C server), RINIT (use
# this binary instead of building), KEEP_WORK=1 (keep the temp files).
set -euo pipefail
export LC_ALL=C

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
SERVICES=${SERVICES:-10}
# Pauses (ms) of the paced runs: with 64 connections about 1,000, 2,500 and
# 10,000 requests/s if each response came back at once; the last one is the
# run the 10,000 requests/s target is judged on.
PACES=${PACES:-64 25 6}
WRITE=0
[ "${1:-}" = "--write" ] && WRITE=1

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
WORK=$(mktemp -d /tmp/rinit-http-bench.XXXXXX)
UNSHARE_PID=""
SAMPLER_PID=""
REF_PID=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

cleanup() {
    # Only what this script started, by pid: the sampler, and the unshare
    # whose --kill-child takes the namespace (rinit and its services) down.
    for p in $SAMPLER_PID $REF_PID $UNSHARE_PID; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; else log "work files kept in $WORK"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---- tools and binary -------------------------------------------------------------

if ! command -v wrk >/dev/null; then
    [ "$(id -u)" -eq 0 ] || die "wrk is missing (apt-get install wrk)"
    log "installing wrk"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y wrk >"$WORK/apt.log" 2>&1 ||
        die "apt-get install wrk failed; see $WORK/apt.log"
fi
for tool in unshare curl python3 ss; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done

if [ -n "${RINIT:-}" ]; then
    cp "$RINIT" "$WORK/rinit"
else
    log "building the static release binary"
    (cd "$REPO_DIR" && timeout 900 cargo build --release --target x86_64-unknown-linux-musl) \
        >"$WORK/cargo.log" 2>&1 || {
        tail -20 "$WORK/cargo.log" >&2
        die "cargo build failed"
    }
    # A copy, so that someone else's rebuild cannot swap it mid-run.
    cp "$REPO_DIR/target/x86_64-unknown-linux-musl/release/rinit" "$WORK/rinit"
fi
BIN=$WORK/rinit

UNSHARE=(unshare --kill-child --pid --fork --mount-proc)
if [ "$(id -u)" -ne 0 ]; then
    UNSHARE=(unshare --user --map-root-user --kill-child --pid --fork --mount-proc)
fi

# ---- rinit as PID 1 ----------------------------------------------------------------

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT/healthz"
{
    echo "health:"
    echo "  listen: \"127.0.0.1:$PORT\""
    echo "services:"
    for i in $(seq 1 "$SERVICES"); do
        echo "  sleeper$i:"
        echo "    command: [\"sleep\", \"3600\"]"
    done
} >"$WORK/rinit.yaml"

"${UNSHARE[@]}" "$BIN" -c "$WORK/rinit.yaml" >"$WORK/rinit.log" 2>&1 &
UNSHARE_PID=$!

# The namespace's PID 1, once it runs our binary.
PID=""
for _ in $(seq 1 500); do
    c=$(cat "/proc/$UNSHARE_PID/task/$UNSHARE_PID/children" 2>/dev/null || true)
    c=${c%% *}
    if [ -n "$c" ] && [ "$(readlink "/proc/$c/exe" 2>/dev/null || true)" = "$BIN" ]; then
        PID=$c
        break
    fi
    sleep 0.01
done
[ -n "$PID" ] || die "rinit did not start; log: $(cat "$WORK/rinit.log")"

for _ in $(seq 1 500); do
    code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$URL" || true)
    [ "$code" = 200 ] && break
    sleep 0.02
done
[ "$code" = 200 ] || die "/healthz never answered 200 (last: $code); log: $(cat "$WORK/rinit.log")"
log "rinit is PID 1 (host pid $PID), $SERVICES services, health on 127.0.0.1:$PORT"

status_of() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$PID/status"; }
snapshot() { echo "$(status_of VmRSS) $(status_of VmHWM) $(status_of Threads)"; }

sampler_start() {
    : >"$WORK/samples"
    (
        while :; do
            snapshot >>"$WORK/samples"
            sleep 0.1
        done
    ) &
    SAMPLER_PID=$!
}
sampler_stop() {
    kill -KILL "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
}

# ---- a reference server -------------------------------------------------------------

# The simplest server that speaks like rinit's: one thread, epoll, for each
# connection read the head, write a fixed response of the same size as
# rinit's healthy /healthz, shut the write side, close at the client's EOF.
# What it gets is what this machine allows for one connection per request;
# REFERENCE=0 skips it (or it is skipped without gcc).
REF_URL=""
REF_PID=""
if [ "${REFERENCE:-1}" = 1 ] && command -v gcc >/dev/null; then
    body='{"status":"ok","shutting_down":false,"failing":[]}'
    cat >"$WORK/ref.c" <<'C'
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char BODY[] = "{\"status\":\"ok\",\"shutting_down\":false,\"failing\":[]}";
static char resp[512];
static char answered[1 << 16];

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                       "Cache-Control: no-store\r\nConnection: close\r\n\r\n%s",
                       strlen(BODY), BODY);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 128))
        return 1;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    char buf[8192];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd, c;
            if (fd == l) {
                while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= (int)sizeof answered) { close(c); continue; }
                    answered[c] = 0;
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r < 0 && errno == EAGAIN)
                continue;
            if (r <= 0) { close(fd); continue; }
            /* wrk sends each request head in one write */
            if (!answered[fd] && memmem(buf, r, "\r\n\r\n", 4)) {
                if (write(fd, resp, len) < 0) { close(fd); continue; }
                shutdown(fd, SHUT_WR);
                answered[fd] = 1;
            }
        }
    }
}
C
    if gcc -O2 -o "$WORK/ref" "$WORK/ref.c" 2>"$WORK/gcc.log"; then
        REF_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        "$WORK/ref" "$REF_PORT" &
        REF_PID=$!
        REF_URL="http://127.0.0.1:$REF_PORT/healthz"
        for _ in $(seq 1 100); do
            [ "$(curl -s -m 1 "$REF_URL" || true)" = "$body" ] && break
            sleep 0.02
        done
        [ "$(curl -s -m 1 "$REF_URL" || true)" = "$body" ] || die "the reference server does not answer"
    else
        log "cannot build the reference server (see $WORK/gcc.log); skipping it"
    fi
fi

# ---- wrk ---------------------------------------------------------------------------

# to_ms VALUE: wrk's "123.45us" / "1.23ms" / "1.10s" in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000
        else if (v ~ /ms$/) n = n
        else if (v ~ /m$/) n *= 60000
        else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

# run_wrk NAME URL ARGS...: runs wrk, keeps its output in $WORK/NAME.txt
# and fills RPS, P50, P99, MAXL, ERRS, NON2XX, REQS.
run_wrk() {
    local name=$1 url=$2
    shift 2
    timeout 120 wrk --latency "$@" "$url" >"$WORK/$name.txt" 2>&1 ||
        die "wrk $* failed: $(cat "$WORK/$name.txt")"
    local out="$WORK/$name.txt"
    RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
    P50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    P99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    MAXL=$(to_ms "$(awk '$1 == "Latency" {print $4; exit}' "$out")")
    REQS=$(awk '/requests in/ {print $1}' "$out")
    ERRS=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
    ERRS=${ERRS:-0}
    NON2XX=$(awk '/Non-2xx/ {print $NF}' "$out")
    NON2XX=${NON2XX:-0}
    log "$name: $RPS req/s, p50 $P50 ms, p99 $P99 ms, max $MAXL ms, $REQS requests, $ERRS socket errors, $NON2XX non-2xx"
}

cat >"$WORK/rate.lua" <<'LUA'
-- Each connection waits this many milliseconds after every response.
local pause = tonumber(os.getenv("RATE_DELAY_MS") or "6")
function delay()
    return pause
end
LUA

# wait_time_wait: every rinit response closes its connection, and rinit
# closes first, so each request leaves a TIME_WAIT socket on rinit's port for
# 60 s; with ~28,000 ephemeral ports a flat-out run reuses 4-tuples that are
# still in TIME_WAIT (SYN retransmissions on the client side). Each run
# starts once fewer than 100 of the previous run's are left (at most 75 s).
wait_time_wait() {
    local port=$1 n=0
    for _ in $(seq 1 150); do
        n=$(ss -Htan state time-wait "( sport = :$port )" | wc -l)
        [ "$n" -lt 100 ] && return 0
        sleep 0.5
    done
    log "still $n TIME_WAIT sockets on port $port; going on"
}

# cpu_ticks: rinit's utime + stime, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)

# syn_retrans: the machine-wide TcpExt TCPSynRetrans counter.
syn_retrans() {
    awk '$1 == "TcpExt:" {
        if (!seen) { for (i = 2; i <= NF; i++) key[i] = $i; seen = 1 }
        else { for (i = 2; i <= NF; i++) if (key[i] == "TCPSynRetrans") print $i }
    }' /proc/net/netstat
}

ROWS=()
# bench_run LABEL WRK-ARGS...: one row of the table: rinit, then the
# reference server under the same wrk arguments.
bench_run() {
    local label=$1
    shift
    wait_time_wait "$PORT"
    local syn0 syn1 t0 t1 c0 c1 cpu_pct ref="—"
    syn0=$(syn_retrans)
    c0=$(cpu_ticks)
    t0=$(date +%s%N)
    run_wrk "rinit${#ROWS[@]}" "$URL" "$@"
    t1=$(date +%s%N)
    c1=$(cpu_ticks)
    syn1=$(syn_retrans)
    cpu_pct=$(awk -v c=$((c1 - c0)) -v hz="$HZ" -v ns=$((t1 - t0)) 'BEGIN {printf "%.0f", 100 * c / hz / (ns / 1e9)}')
    LAST_RPS=$RPS
    LAST_P99=$P99
    local row="| $label | $RPS | $P50 | $P99 | $MAXL | $((ERRS + NON2XX)) | $cpu_pct % | $((syn1 - syn0))"
    if [ -n "$REF_URL" ]; then
        wait_time_wait "$REF_PORT"
        run_wrk "ref${#ROWS[@]}" "$REF_URL" "$@"
        row+=" | $RPS | $P50 | $P99 | $((ERRS + NON2XX))"
    else
        row+=" | $ref | $ref | $ref | $ref"
    fi
    ROWS+=("$row |")
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
read -r RSS0 HWM0 THR0 <<<"$(snapshot)"
log "before: VmRSS $RSS0 KiB, VmHWM $HWM0 KiB, $THR0 threads"

sampler_start
bench_run "1 connection, 1 thread, 5 s, flat out" -t1 -c1 -d5s
bench_run "$CONNS connections, $THREADS threads, $DURATION, flat out" -t"$THREADS" -c"$CONNS" -d"$DURATION"
BEST_OK=""
for pause in $PACES; do
    RATE_DELAY_MS=$pause bench_run "$CONNS connections, $THREADS threads, $DURATION, paced: $pause ms pause per connection" \
        -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$WORK/rate.lua"
    if awk -v p="$LAST_P99" 'BEGIN {exit !(p < 1)}'; then
        BEST_OK="$LAST_RPS requests/s (p99 $LAST_P99 ms, $pause ms pause)"
    fi
done
# The last paced run is the one aimed at 10,000 requests/s.
R_RPS=$LAST_RPS
R_P99=$LAST_P99
sampler_stop
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

RSS_MAX=$(awk 'max < $1 {max = $1} END {print max + 0}' "$WORK/samples")
HWM_MAX=$(awk 'max < $2 {max = $2} END {print max + 0}' "$WORK/samples")
THR_MAX=$(awk 'max < $3 {max = $3} END {print max + 0}' "$WORK/samples")
THR_MIN=$(awk 'NR == 1 || min > $3 {min = $3} END {print min + 0}' "$WORK/samples")
NSAMPLES=$(wc -l <"$WORK/samples")
read -r RSS1 HWM1 THR1 <<<"$(snapshot)"
GROWTH=$((HWM_MAX - HWM0))
log "during: VmRSS max $RSS_MAX KiB, VmHWM $HWM_MAX KiB, threads $THR_MIN..$THR_MAX; after: VmRSS $RSS1 KiB"

code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$URL" || true)
[ "$code" = 200 ] || die "/healthz answers $code after the load"
kill -TERM "$PID"
wait "$UNSHARE_PID" 2>/dev/null && EXIT=0 || EXIT=$?
UNSHARE_PID=""

# ---- report ------------------------------------------------------------------------

yes_no() { if [ "$1" = 1 ]; then echo yes; else echo "**no**"; fi; }
p99_ok=$(awk -v p="$R_P99" -v r="$R_RPS" 'BEGIN {print (p < 1 && r >= 9500) ? 1 : 0}')
rss_ok=$(( GROWTH < 512 ? 1 : 0 ))
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
git_rev=$(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown)

{
    echo "## HTTP (\`bench/http.sh\`)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(uname -srm), ${cpu:-unknown cpu}, $(nproc) CPUs; wrk and rinit share them; load average $LOAD0 before the runs, $LOAD1 after"
    echo "- rinit: $("$BIN" --version 2>/dev/null || echo rinit), git $git_rev, static musl release build"
    echo "- setup: rinit as PID 1 of a fresh namespace (\`${UNSHARE[*]}\`), $SERVICES services (\`sleep 3600\`), health on 127.0.0.1; $(wrk --version 2>&1 | head -1 | awk '{print $1, $2}') on the same machine, GET /healthz"
    echo "- every rinit response says \`Connection: close\`, so each request is a new TCP connection (wrk reconnects)"
    echo
    echo "Latencies in ms, as wrk measures them (from writing the request to the end of the response). \"errors\": socket errors plus non-2xx answers. \"SYN retransmits\": the machine-wide counter during the rinit run. The reference is the minimal C epoll server above, run right after rinit with the same wrk arguments."
    echo
    echo "| run | rinit req/s | p50 | p99 | max | errors | rinit CPU | SYN retransmits | reference req/s | p50 | p99 | errors |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for row in "${ROWS[@]}"; do echo "$row"; done
    echo
    echo "| rinit (PID 1) | VmRSS KiB | VmHWM KiB | threads |"
    echo "|---|---|---|---|"
    echo "| before the load | $RSS0 | $HWM0 | $THR0 |"
    echo "| during the load (max of $NSAMPLES samples, 100 ms apart) | $RSS_MAX | $HWM_MAX | $THR_MIN–$THR_MAX |"
    echo "| after the load | $RSS1 | $HWM1 | $THR1 |"
    echo
    echo "| target | result | met |"
    echo "|---|---|---|"
    echo "| p99 < 1 ms at 10,000 requests/s | p99 $R_P99 ms at $R_RPS requests/s (last paced run); fastest paced run with p99 < 1 ms: ${BEST_OK:-none} | $(yes_no "$p99_ok") |"
    echo "| RSS growth under load < 0.5 MiB | VmHWM +$GROWTH KiB | $(yes_no "$rss_ok") |"
    echo "| threads constant under load | $THR0 before, $THR_MIN–$THR_MAX during | $(yes_no $(( THR_MIN == THR0 && THR_MAX == THR0 ? 1 : 0 ))) |"
    echo
    echo "rinit's exit status after SIGTERM: $EXIT."
} >"$WORK/section.md"

cat "$WORK/section.md"

if [ "$WRITE" = 1 ]; then
    results=$BENCH_DIR/RESULTS.md
    if [ -f "$results" ]; then
        # Replace an earlier http section, or append one.
        awk -v b="<!-- section:http:begin -->" -v e="<!-- section:http:end -->" '
            $0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' "$results" >"$WORK/results.new"
        {
            cat -s "$WORK/results.new"
            echo
            echo "<!-- section:http:begin -->"
            cat "$WORK/section.md"
            echo "<!-- section:http:end -->"
        } >"$results"
    else
        results=$BENCH_DIR/HTTP_RESULTS.md
        {
            echo "# rinit HTTP benchmark results"
            echo
            cat "$WORK/section.md"
        } >"$results"
    fi
    log "written to $results"
fi
