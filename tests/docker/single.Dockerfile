# Single-command mode: rinit as ENTRYPOINT, the command comes from `docker run`.
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/sbin/rinit"]
CMD ["sh", "-c", "echo hello from rinit"]
