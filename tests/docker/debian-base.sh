#!/usr/bin/env bash
# Builds the Debian base image of the stack tests without a registry:
# debootstrap a minimal bookworm root with the daemons of examples/stack,
# strip what a container never reads, `docker import` it.
#
# The tag is a hash of this script (which holds the package list), so a
# machine builds it once; later runs print the tag at once.
#
# stdout: the image tag. Exit 77: no Docker engine, or the Debian mirror
# cannot be reached (the caller skips); any other failure exits 1 with
# the reason on stderr.
set -euo pipefail

suite=bookworm
mirror=${RINIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# supervisor and s6: the peers of bench/stack.sh, a few MB.
packages=postgresql,redis-server,redis-tools,nginx-light,python3,ca-certificates,supervisor,s6

here=$(cd "$(dirname "$0")" && pwd)
hash=$(sha256sum "$here/debian-base.sh" | cut -c1-12)
tag="rinit-debian-stack:$hash"

if ! docker info >/dev/null 2>&1; then
    echo "skipped: no Docker engine (docker info failed)" >&2
    exit 77
fi
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
if ! timeout 20 python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/dists/$suite/Release', timeout=15)" "$mirror" 2>/dev/null; then
    echo "skipped: cannot reach the Debian mirror $mirror" >&2
    exit 77
fi

root=$(mktemp -d /var/tmp/rinit-debian.XXXXXX)
trap 'rm -rf "$root"' EXIT
start=$(date +%s)
# Documentation and locales are dropped as dpkg unpacks them (dpkg's
# path-exclude), then the apt caches afterwards.
mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
cat > "$root/etc/dpkg/dpkg.cfg.d/01-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1; then
    tail -20 "$root.log" >&2
    echo "debootstrap failed (full log: $root.log)" >&2
    exit 1
fi
rm -f "$root.log"
# The package's own cluster (pg_createcluster ran in postinst) is not used:
# the stack initialises its data directory on first start.
rm -rf "$root"/var/lib/postgresql/15/main "$root"/etc/postgresql/15/main
# PostgreSQL's JIT is an optional module; without llvmjit.so the server
# runs with jit unavailable, and LLVM (with its z3) is 130 MB of the image.
rm -rf "$root"/usr/lib/postgresql/15/lib/llvmjit* "$root"/usr/lib/postgresql/15/lib/bitcode \
    "$root"/usr/lib/x86_64-linux-gnu/libLLVM-14.so* "$root"/usr/lib/x86_64-linux-gnu/libz3.so*
# Translations and locale sources (initdb runs with --no-locale).
find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf "$root"/usr/share/i18n
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
    "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/info
tar -C "$root" -c . | docker import - "$tag" >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$tag")
echo "built $tag: $((size / 1000000)) MB in $(($(date +%s) - start)) s" >&2
echo "$tag"
