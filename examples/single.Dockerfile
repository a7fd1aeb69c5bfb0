# rinit in single-command mode (like tini): the smallest possible image,
# FROM scratch with a static busybox for the shell and tools.
#
# Build context: a directory holding
#   rinit     from `cargo build --release --target x86_64-unknown-linux-musl`
#             (target/x86_64-unknown-linux-musl/release/rinit)
#   busybox   a static busybox, e.g. /bin/busybox from Debian's busybox-static
#
#   docker build -f single.Dockerfile -t rinit-single <context>
#   docker run --rm rinit-single                       # runs the CMD below
#   docker run --rm rinit-single sh -c 'exit 3'; echo $?   # 3: exit codes pass through
#
# tests/docker/single.Dockerfile is the same recipe, used by tests/docker_e2e.rs.
FROM scratch
# A static busybox and the applets the command needs. RUN works in a scratch
# image once the binary it runs is in it.
COPY busybox /bin/busybox
RUN ["/bin/busybox", "mkdir", "-p", "/sbin", "/usr/bin", "/usr/sbin", "/tmp"]
RUN ["/bin/busybox", "chmod", "1777", "/tmp"]
RUN ["/bin/busybox", "--install", "-s"]
# rinit itself: one static file.
COPY rinit /sbin/rinit
# No /etc/rinit.yaml in the image, so rinit runs the command alone: it execs
# it in its own process group, forwards signals to that group, reaps every
# orphan and exits with the command's status (128+N if killed by signal N).
ENTRYPOINT ["/sbin/rinit"]
# Docker's SIGTERM starts rinit's grace period (--grace / RINIT_GRACE, 9s by
# default, inside docker stop's 10s); after it the command's group is SIGKILLed.
ENV RINIT_GRACE=8s
CMD ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo hello from rinit; while :; do sleep 1 & wait $!; done"]
