# The stack image with s6-svscan as PID 1 instead of rinit.
ARG STACK
FROM ${STACK}
COPY s6 /etc/s6
ENTRYPOINT ["/usr/bin/s6-svscan", "/etc/s6"]
