# The stack image with supervisord as PID 1 instead of rinit.
ARG STACK
FROM ${STACK}
COPY supervisord.conf /etc/supervisor/stack.conf
ENTRYPOINT ["/usr/bin/supervisord", "-c", "/etc/supervisor/stack.conf"]
