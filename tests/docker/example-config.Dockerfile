# An example config on top of the image built from examples/single.Dockerfile.
ARG BASE
FROM ${BASE}
COPY rinit.yaml /etc/rinit.yaml
RUN ["/sbin/rinit", "check"]
