# Services mode with Docker's health check answered by rinit itself (no curl).
FROM scratch
COPY rootfs/ /
RUN ["/sbin/rinit", "check"]
HEALTHCHECK --interval=1s --timeout=3s --retries=1 CMD ["/sbin/rinit", "probe"]
ENTRYPOINT ["/sbin/rinit"]
