"""A small app that uses both PostgreSQL and Redis: each GET / counts a hit
in Redis and records a visit in PostgreSQL, and answers with both counts.
Only the standard library: Redis is spoken directly (RESP), PostgreSQL
through psql."""

import signal
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PSQL = ["/usr/lib/postgresql/15/bin/psql", "-h", "127.0.0.1", "-U", "postgres",
        "-qtAX", "-v", "ON_ERROR_STOP=1", "-c"]


def sql(statement):
    out = subprocess.run(PSQL + [statement], capture_output=True, text=True, timeout=5)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return out.stdout.strip()


def redis_incr(key):
    with socket.create_connection(("127.0.0.1", 6379), timeout=2) as s:
        s.sendall(b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(key), key))
        reply = s.recv(64)
    if not reply.startswith(b":"):
        raise RuntimeError("redis: %r" % reply)
    return int(reply[1:].split(b"\r\n")[0])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/ping":
            return self.answer(200, "pong\n")
        if self.path != "/":
            return self.answer(404, "not found\n")
        try:
            hits = redis_incr(b"hits")
            visits = sql("INSERT INTO visits DEFAULT VALUES; SELECT count(*) FROM visits")
        except Exception as e:  # the app reports, rinit's checks decide
            return self.answer(503, "backend error: %s\n" % e)
        self.answer(200, "hits=%d visits=%s\n" % (hits, visits))

    def answer(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stdout.write("%s\n" % (fmt % args))
        sys.stdout.flush()


def main():
    # SIGTERM (rinit's stop signal for this service) ends serve_forever and
    # the process exits 0: a clean stop, not a death by signal.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sql("CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
    server = ThreadingHTTPServer(("127.0.0.1", 8000), Handler)
    print("app: listening on 127.0.0.1:8000", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
