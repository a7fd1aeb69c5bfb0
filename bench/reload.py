#!/usr/bin/env python3
"""bench/reload.py RINIT WORKDIR REPS: applying a changed config (issue 10)
with 100 services, rinit against supervisord, each PID 1 of a fresh PID
namespace (unshare), in one run. Prints a markdown section on stdout
(bench/reload.sh puts it into RESULTS.md).

Two edits, each made REPS times (toggling between two versions of the
file), to one service (svc050) of 100 `sleep` services:
1. its command changes: from the start of `rinit ctl reload` to svc050
   running its new process, against `supervisorctl reread` +
   `supervisorctl update` and polling `supervisorctl status svc050` until
   it is RUNNING with a new pid;
2. a policy key only (rinit: `backoff`; supervisord: `startretries`):
   the time to the command's answer, and whether the process survived.
For both: how many of the 100 processes were restarted (pids compared).
"""

import os
import re
import signal
import statistics
import subprocess
import sys
import time

RINIT, WORK, REPS = sys.argv[1], sys.argv[2], int(sys.argv[3])
N = 100
CHANGED = "svc050"
UNSHARE = ["unshare", "--kill-child", "--pid", "--fork", "--mount-proc"]
if os.getuid() != 0:
    UNSHARE = ["unshare", "--user", "--map-root-user"] + UNSHARE[1:]


def names():
    return [f"svc{i:03d}" for i in range(N)]


def rinit_conf(version, policy):
    out = ["services:"]
    for n in names():
        secs = 3600 + (version if n == CHANGED and not policy else 0)
        out.append(f"  {n}:")
        out.append(f'    command: ["sleep", "{secs}"]')
        if n == CHANGED and policy:
            out.append(f"    backoff: {{ initial: {100 + version}ms }}")
    return "\n".join(out) + "\n"


def supervisord_conf(version, policy):
    out = [
        "[unix_http_server]",
        f"file={WORK}/supervisor.sock",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{WORK}/supervisor.sock",
        "[supervisord]",
        "nodaemon=true",
        "user=root",
        f"logfile={WORK}/supervisord.log",
        f"pidfile={WORK}/supervisord.pid",
    ]
    for n in names():
        secs = 3600 + (version if n == CHANGED and not policy else 0)
        retries = 3 + (version if n == CHANGED and policy else 0)
        out += [
            f"[program:{n}]",
            f"command=sleep {secs}",
            "autorestart=true",
            "startsecs=0",
            f"startretries={retries}",
        ]
    return "\n".join(out) + "\n"


def wait(cond, limit=60.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.01)
    raise SystemExit(f"timed out after {limit}s")


class Rinit:
    name = "rinit"

    def __init__(self, policy):
        self.policy = policy
        self.conf = f"{WORK}/rinit.yaml"
        self.sock = f"{WORK}/rinit.sock"
        open(self.conf, "w").write(rinit_conf(0, policy))
        self.proc = subprocess.Popen(
            UNSHARE + [RINIT, "-c", self.conf, "--control", self.sock],
            stdout=subprocess.DEVNULL,
            stderr=open(f"{WORK}/rinit.log", "w"),
        )
        wait(lambda: len(self.pids()) == N)

    def ctl(self, *args):
        return subprocess.run(
            [RINIT, "ctl", "--control", self.sock, *args],
            capture_output=True,
            text=True,
        )

    def pids(self):
        out = self.ctl("status").stdout
        pids = {}
        for line in out.splitlines()[1:]:
            f = line.split()
            if len(f) > 3 and f[1] == "running" and f[3].isdigit():
                pids[f[0]] = int(f[3])
        return pids

    def apply(self, version):
        open(self.conf, "w").write(rinit_conf(version, self.policy))
        t0 = time.monotonic()
        r = self.ctl("reload")
        if r.returncode != 0:
            raise SystemExit(f"rinit ctl reload failed: {r.stdout}{r.stderr}")
        return time.monotonic() - t0

    def stop(self):
        self.ctl("shutdown")
        end_of(self.proc)


class Supervisord:
    name = "supervisord"

    def __init__(self, policy):
        self.policy = policy
        self.conf = f"{WORK}/supervisord.conf"
        open(self.conf, "w").write(supervisord_conf(0, policy))
        self.proc = subprocess.Popen(
            UNSHARE + ["supervisord", "-c", self.conf],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait(lambda: len(self.pids()) == N)

    def ctl(self, *args):
        return subprocess.run(
            ["supervisorctl", "-c", self.conf, *args], capture_output=True, text=True
        )

    def pids(self, only=None):
        out = self.ctl("status", *([only] if only else [])).stdout
        return {
            m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\S+)\s+RUNNING\s+pid (\d+)", out, re.M)
        }

    def apply(self, version):
        open(self.conf, "w").write(supervisord_conf(version, self.policy))
        before = self.pids(CHANGED).get(CHANGED)
        t0 = time.monotonic()
        for verb in ("reread", "update"):
            r = self.ctl(verb)
            if r.returncode != 0:
                raise SystemExit(f"supervisorctl {verb} failed: {r.stdout}{r.stderr}")
        if not self.policy:
            wait(lambda: self.pids(CHANGED).get(CHANGED, before) != before)
        return time.monotonic() - t0

    def stop(self):
        self.ctl("shutdown")
        end_of(self.proc)


def end_of(proc):
    """Waits for the supervisor to exit; SIGKILL to unshare (whose
    --kill-child takes the namespace down) if it does not in time."""
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def measure(kind, policy):
    sup = kind(policy)
    times, restarted = [], []
    try:
        for rep in range(REPS):
            before = sup.pids()
            times.append(sup.apply(1 + rep % 2))
            after = wait(lambda: (p := sup.pids()) and len(p) == N and p)
            restarted.append(sum(1 for n in names() if before.get(n) != after.get(n)))
    finally:
        sup.stop()
    return statistics.median(times) * 1000, max(times) * 1000, restarted


def main():
    rows = []
    for policy, what in ((False, "command of 1 of 100 changed"),
                         (True, "policy key of 1 of 100 changed")):
        got = {k.name: measure(k, policy) for k in (Rinit, Supervisord)}
        r, s = got["rinit"], got["supervisord"]
        rows.append((what, r, s))
    print("## Reload (`bench/reload.sh`)")
    print()
    print("Applying an edited config: 100 `sleep` services, one of them edited,")
    print(f"{REPS} reloads each, toggling between two versions of the file.")
    print("rinit: `rinit ctl reload` (it answers once what it restarted is")
    print("ready). supervisord: `supervisorctl reread` + `update`, then polling")
    print("`status` until the changed program runs a new pid. Policy key: rinit")
    print("`backoff`, supervisord `startretries`. Restarted: processes of the 100")
    print("whose pid changed, per reload.")
    print()
    print("| edit | rinit median (max) ms | supervisord median (max) ms | ratio | restarted: rinit | restarted: supervisord |")
    print("|---|---|---|---|---|---|")
    for what, r, s in rows:
        ratio = s[0] / r[0] if r[0] > 0 else float("inf")
        print(
            f"| {what} | {r[0]:.1f} ({r[1]:.1f}) | {s[0]:.1f} ({s[1]:.1f}) | "
            f"{ratio:.1f}x | {sorted(set(r[2]))} | {sorted(set(s[2]))} |"
        )


if __name__ == "__main__":
    main()
