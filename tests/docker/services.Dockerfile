# Services mode: /etc/rinit.yaml is read by default.
FROM scratch
COPY rootfs/ /
# A bad config fails the build, not the container.
RUN ["/sbin/rinit", "check"]
ENTRYPOINT ["/sbin/rinit"]
