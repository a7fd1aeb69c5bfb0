#!/usr/bin/env bash
# bench/stack.sh: the examples/stack image (PostgreSQL, Redis, a python3
# app, nginx) in Docker under rinit, supervisord and plain s6-svscan as
# PID 1, in one run. For each: `docker run` -> the first 200 through nginx
# (the whole stack answering), `docker stop` -> exited, the exit code,
# whether PostgreSQL and Redis logged a clean shutdown, and the init's RSS.
# Writes the "stack" section of bench/RESULTS.md.
#
#   bash bench/stack.sh        (needs a Docker engine; REPS=5 by default)
#
# The images derive from one Debian root (tests/docker/debian-base.sh,
# debootstrap'd once per machine); supervisord's and s6's configs are in
# bench/stack/. Neither has dependencies or readiness, so their app and
# nginx wait for what they need in their own start scripts (what users of
# plain supervisord and s6 write).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPS=${REPS:-5}
start_watchdog "${MAX_SECONDS:-1800}"
command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "no Docker engine"

log "building rinit and the Debian base"
build_rinit
base=$(bash "$REPO_DIR/tests/docker/debian-base.sh")
tag=rinit-bench-stack-$$
images=()
containers=()
drop_docker() {
    local c
    for c in "${containers[@]}"; do docker rm -f -v "$c" >/dev/null 2>&1 || true; done
    [ "${#images[@]}" -gt 0 ] && docker rmi -f "${images[@]}" >/dev/null 2>&1 || true
    cleanup
}
trap drop_docker EXIT

ctx="$WORK/ctx"
mkdir -p "$ctx"
cp "$REPO_DIR"/examples/stack/{Dockerfile,rinit.yaml,app.py,nginx.conf,redis.conf} "$ctx/"
cp "$WORK/rinit" "$ctx/rinit"
docker build -q --build-arg "BASE=$base" -t "$tag:rinit" "$ctx" >/dev/null
images+=("$tag:rinit")
for peer in supervisord s6; do
    docker build -q --build-arg "STACK=$tag:rinit" -f "$BENCH_DIR/stack/$peer.Dockerfile" \
        -t "$tag:$peer" "$BENCH_DIR/stack" >/dev/null
    images+=("$tag:$peer")
done

# first_ok PORT: waits (every 20 ms, at most 120 s) for GET / through nginx
# to answer 200.
first_ok() {
    python3 - "$1" <<'EOF'
import sys, time, urllib.request
url = "http://127.0.0.1:%s/" % sys.argv[1]
end = time.time() + 120
while time.time() < end:
    try:
        if urllib.request.urlopen(url, timeout=1).status == 200:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.02)
sys.exit(1)
EOF
}

# init_rss_kib CONTAINER INIT: the summed VmRSS of the init's own processes
# (rinit; supervisord; s6-svscan and its s6-supervise children).
init_rss_kib() {
    local pat total=0 pid comm
    case $2 in
        rinit) pat='^rinit$' ;;
        supervisord) pat='^supervisord$' ;;
        s6) pat='^s6-sv(scan|ise)$|^s6-supervise$' ;;
    esac
    for pid in $(docker top "$1" -o pid | tail -n +2); do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        if [[ $comm =~ $pat ]]; then total=$((total + $(status_kib "$pid" VmRSS))); fi
    done
    echo "$total"
}

for init in rinit supervisord s6; do
    : >"$WORK/$init.up"
    : >"$WORK/$init.stop"
    : >"$WORK/$init.rss"
    : >"$WORK/$init.codes"
    : >"$WORK/$init.clean"
done

for rep in $(seq "$REPS"); do
    for init in rinit supervisord s6; do
        name=$tag-$init-$rep
        containers+=("$name")
        t0=$(now_us)
        docker run -d --name "$name" -p 127.0.0.1::8080 "$tag:$init" >/dev/null
        port=$(docker port "$name" 8080/tcp | head -1 | sed 's/.*://')
        if first_ok "$port"; then
            echo $((($(now_us) - t0) / 1000)) >>"$WORK/$init.up"
        else
            log "$init: the stack never answered"; echo "n/a" >>"$WORK/$init.up"
        fi
        # Settled, serving: the init's memory now.
        sleep 1
        init_rss_kib "$name" "$init" >>"$WORK/$init.rss"
        t0=$(now_us)
        docker stop "$name" >/dev/null
        echo $((($(now_us) - t0) / 1000)) >>"$WORK/$init.stop"
        docker inspect -f '{{.State.ExitCode}}' "$name" >>"$WORK/$init.codes"
        logs=$(docker logs "$name" 2>&1)
        pg=no redis=no
        grep -q "database system is shut down" <<<"$logs" && pg=yes
        grep -q "DB saved on disk" <<<"$logs" && redis=yes
        echo "$pg/$redis" >>"$WORK/$init.clean"
        docker rm -f -v "$name" >/dev/null
        log "rep $rep $init: up $(tail -1 "$WORK/$init.up") ms, stop $(tail -1 "$WORK/$init.stop") ms, exit $(tail -1 "$WORK/$init.codes"), clean pg/redis $pg/$redis, rss $(tail -1 "$WORK/$init.rss") KiB"
    done
done

section="$WORK/section.md"
{
    echo "## A real stack in Docker (\`bench/stack.sh\`)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(machine_line)"
    echo "- rinit: git $(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown); supervisord $(docker run --rm --entrypoint supervisord "$tag:rinit" --version 2>/dev/null); s6 $(docker run --rm --entrypoint sh "$tag:rinit" -c "dpkg-query -W -f '\${Version}' s6" 2>/dev/null)"
    echo "- image: examples/stack on $base (PostgreSQL 15, Redis 7, nginx 1.22, python3); $REPS runs each, interleaved"
    echo
    echo "Each cell: the median of $REPS, then (×ratio to rinit in this run)."
    echo
    echo "| measurement | rinit | supervisord | s6-svscan |"
    echo "|---|---|---|---|"
    row() { # row LABEL KIND
        local r s x
        r=$(stat_of median "$WORK/rinit.$2")
        s=$(stat_of median "$WORK/supervisord.$2")
        x=$(stat_of median "$WORK/s6.$2")
        echo "| $1 | $r | $s ($(ratio "$s" "$r")) | $x ($(ratio "$x" "$r")) |"
    }
    row '`docker run` → first 200 through nginx, ms' up
    row '`docker stop` → exited, ms' stop
    row "the init's RSS while serving, KiB" rss
    echo "| exit codes after \`docker stop\` | $(sort "$WORK/rinit.codes" | uniq -c | awk '{printf "%s×%s ", $1, $2}') | $(sort "$WORK/supervisord.codes" | uniq -c | awk '{printf "%s×%s ", $1, $2}') | $(sort "$WORK/s6.codes" | uniq -c | awk '{printf "%s×%s ", $1, $2}') |"
    echo "| clean shutdown logged (PostgreSQL/Redis) | $(sort "$WORK/rinit.clean" | uniq -c | awk '{printf "%s×%s ", $1, $2}') | $(sort "$WORK/supervisord.clean" | uniq -c | awk '{printf "%s×%s ", $1, $2}') | $(sort "$WORK/s6.clean" | uniq -c | awk '{printf "%s×%s ", $1, $2}') |"
} >"$section"
cat "$section"
write_section stack "$section"
log "wrote the stack section of $RESULTS"
