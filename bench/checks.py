#!/usr/bin/env python3
"""bench/checks.py RINIT WORKDIR REPS: health checks of issue 11, measured
with rinit as PID 1 of a fresh PID namespace (unshare). Prints a markdown
section on stdout (bench/checks.sh puts it into RESULTS.md).

1. Hung-service detection: a python HTTP server with
   `liveness: {http, interval: 200ms, timeout: 100ms, failures: 3}` is
   SIGSTOPped; from the signal to rinit's "unhealthy" log line and to the
   restarted process's spawn, against the ideal failures x interval, with
   10 and 200 services (the others have a tcp liveness check every 1 s).
2. READY=1 -> dependent spawned: a service sends READY=1 on its notify
   socket, stamping the time just before; its dependent (bash) stamps
   $EPOCHREALTIME first thing. With 10 and 200 services.
3. CPU: rinit's utime+stime per second with 200 services, each with a tcp
   liveness check every 1 s, against the same 200 services without checks.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

RINIT, WORK, REPS = sys.argv[1], sys.argv[2], int(sys.argv[3])
CLK = os.sysconf("SC_CLK_TCK")
PY = sys.executable

HTTP_SERVER = r'''
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''

NOTIFIER = r'''
import os, socket, sys, time
d = sys.argv[1]
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"): addr = "\0" + addr[1:]
while not os.path.exists(d + "/go"): time.sleep(0.005)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
t = time.time()
s.sendto(b"READY=1", addr)
open(d + "/ready_at", "w").write(repr(t))
time.sleep(1000)
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sink_listener():
    """A listener that accepts and drops: the filler services' check target."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(512)

    def loop():
        while True:
            c, _ = lst.accept()
            c.close()

    threading.Thread(target=loop, daemon=True).start()
    return lst.getsockname()[1]


def fillers(n, port, liveness=True):
    out = []
    for i in range(n):
        out.append("  f%d:\n    command: [sleep, \"100000\"]\n" % i)
        if liveness:
            out.append("    liveness: { tcp: \"127.0.0.1:%d\", interval: 1s, timeout: 500ms }\n" % port)
    return "".join(out)


class Rinit:
    def __init__(self, name, yaml):
        self.dir = os.path.join(WORK, name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "rinit.yaml")
        with open(self.conf, "w") as f:
            f.write(yaml.replace("{d}", self.dir))
        self.err = open(os.path.join(self.dir, "stderr"), "wb")
        env = dict(os.environ, RINIT_LOG_FORMAT="json", RINIT_RUNTIME_DIR=self.dir + "/run")
        self.proc = subprocess.Popen(
            ["unshare", "--kill-child", "--pid", "--fork", "--mount-proc", RINIT, "-c", self.conf],
            stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        self.pid = None
        end = time.time() + 20
        while self.pid is None and time.time() < end:
            for p in os.listdir("/proc"):
                if p.isdigit():
                    try:
                        st = open("/proc/%s/status" % p).read()
                    except OSError:
                        continue
                    if "PPid:\t%d\n" % self.proc.pid in st and "Name:\trinit" in st:
                        self.pid = int(p)
            time.sleep(0.01)
        if self.pid is None:
            raise SystemExit("rinit did not start")

    def lines(self):
        out = []
        for raw in open(os.path.join(self.dir, "stderr"), "rb").read().splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                pass
        return out

    def wait_line(self, pred, limit=60):
        end = time.time() + limit
        while time.time() < end:
            for o in self.lines():
                if pred(o):
                    return o
            time.sleep(0.02)
        raise SystemExit("timed out waiting for a log line in " + self.dir)

    def cpu_ticks(self):
        f = open("/proc/%d/stat" % self.pid).read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])

    def stop(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def ts(o):
    """The log line's RFC 3339 ms timestamp as epoch seconds."""
    t = time.strptime(o["ts"][:19], "%Y-%m-%dT%H:%M:%S")
    import calendar
    return calendar.timegm(t) + int(o["ts"][20:23]) / 1000.0


def service_pid(r, name, not_pid=None, limit=30):
    o = r.wait_line(lambda o: o.get("service") == "rinit"
                    and o["msg"].startswith(name + ": started (pid")
                    and (not_pid is None or "pid %d)" % not_pid not in o["msg"]), limit)
    return int(o["msg"].split("pid ")[1].rstrip(")")), o


def host_pid(r, ns_pid):
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            st = open("/proc/%s/status" % p).read()
        except OSError:
            continue
        for line in st.splitlines():
            if line.startswith("NSpid:"):
                f = line.split()
                if len(f) >= 3 and int(f[-1]) == ns_pid and int(p) != r.pid:
                    # the namespace's pid of our process; the namespace is rinit's
                    try:
                        if os.readlink("/proc/%s/ns/pid" % p) == os.readlink("/proc/%d/ns/pid" % r.pid):
                            return int(p)
                    except OSError:
                        pass
    return None


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def detection(n_total):
    sink = sink_listener()
    samples_unhealthy, samples_restart = [], []
    for rep in range(REPS):
        port = free_port()
        srv = os.path.join(WORK, "srv.py")
        open(srv, "w").write(HTTP_SERVER)
        yaml = ("services:\n  web:\n    command: [\"%s\", \"%s\", \"%d\"]\n"
                "    ready: { tcp: \"127.0.0.1:%d\", interval: 20ms }\n"
                "    liveness: { http: \"http://127.0.0.1:%d/\", interval: 200ms, timeout: 100ms, failures: 3 }\n"
                % (PY, srv, port, port, port)) + fillers(n_total - 1, sink)
        r = Rinit("detect-%d-%d" % (n_total, rep), yaml)
        try:
            ns, _ = service_pid(r, "web")
            r.wait_line(lambda o: o.get("msg") == "web: running")
            time.sleep(0.5)
            hp = host_pid(r, ns)
            t0 = time.time()
            os.kill(hp, signal.SIGSTOP)
            u = r.wait_line(lambda o: o.get("msg", "").startswith("web: unhealthy"))
            _, s = service_pid(r, "web", not_pid=ns)
            samples_unhealthy.append((ts(u) - t0) * 1000)
            samples_restart.append((ts(s) - t0) * 1000)
        finally:
            r.stop()
    return median(samples_unhealthy), median(samples_restart), max(samples_restart)


def ready_to_dependent(n_total):
    sink = sink_listener()
    samples = []
    for rep in range(REPS):
        d = os.path.join(WORK, "ready-%d-%d" % (n_total, rep))
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "notifier.py"), "w").write(NOTIFIER)
        yaml = ("services:\n  db:\n    command: [\"%s\", \"{d}/notifier.py\", \"{d}\"]\n"
                "    ready: { sd_notify: true }\n"
                "  app:\n    depends_on: [db]\n"
                "    command: [bash, -c, 'echo $EPOCHREALTIME > {d}/app_at; exec sleep 100000']\n"
                % PY) + fillers(n_total - 2, sink, liveness=False)
        r = Rinit("ready-%d-%d" % (n_total, rep), yaml)
        try:
            r.wait_line(lambda o: o.get("msg", "").startswith("db: started"))
            time.sleep(0.3)
            open(os.path.join(d, "go"), "w").close()
            end = time.time() + 20
            while not os.path.exists(os.path.join(d, "app_at")) and time.time() < end:
                time.sleep(0.01)
            time.sleep(0.05)
            t_ready = float(open(os.path.join(d, "ready_at")).read())
            t_app = float(open(os.path.join(d, "app_at")).read())
            samples.append((t_app - t_ready) * 1000)
        finally:
            r.stop()
    return median(samples), max(samples)


def cpu(liveness):
    sink = sink_listener()
    yaml = "services:\n" + fillers(200, sink, liveness)
    r = Rinit("cpu-%s" % liveness, yaml)
    try:
        r.wait_line(lambda o: o.get("msg", "").startswith("f199: running"))
        time.sleep(2)
        a = r.cpu_ticks()
        time.sleep(20)
        b = r.cpu_ticks()
        return (b - a) * 1000.0 / CLK / 20
    finally:
        r.stop()


def main():
    rows = []
    for n in (10, 200):
        u, s, worst = detection(n)
        rows.append((n, u, s, worst))
    ready = [(n,) + ready_to_dependent(n) for n in (10, 200)]
    idle, checked = cpu(False), cpu(True)
    print("## Health checks (`bench/checks.sh`)")
    print()
    print("- date: %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print("- rinit as PID 1 of a fresh PID namespace; %d runs per cell (median, and worst)" % REPS)
    print()
    print("| hung service (SIGSTOP), liveness http every 200 ms, timeout 100 ms, 3 failures | services | SIGSTOP -> unhealthy, ms | SIGSTOP -> restarted process spawned, ms (worst) | ideal (failures x interval), ms |")
    print("|---|---|---|---|---|")
    for n, u, s, worst in rows:
        print("| | %d | %.0f | %.0f (%.0f) | 600 |" % (n, u, s, worst))
    print()
    print("| READY=1 (sd_notify) -> dependent running its first shell line | services | median ms | worst ms |")
    print("|---|---|---|---|")
    for n, m, w in ready:
        print("| | %d | %.2f | %.2f |" % (n, m, w))
    print()
    print("| CPU of rinit, 200 services | ms of CPU per second |")
    print("|---|---|")
    print("| no checks (idle) | %.2f |" % idle)
    print("| a tcp liveness check each, every 1 s (200 checks/s) | %.2f |" % checked)


main()
