#!/usr/bin/env python3
"""berth's first benchmark, driven by ./bench/run.sh (which installs the prerequisites and builds berth).

Measures, in one run and side by side, berth, moto's server and nginx (`return 200`, one worker):
  1. startup: time from just before spawn to the first HTTP 200 answer to a signed GetCallerIdentity
     (berth with an existing data dir), N starts, median and p90;
  2. idle RSS: VmRSS of the server's process tree after start + one request + 2 s idle;
  3. throughput and latency: wrk replaying one pre-signed GetCallerIdentity request;
  4. authorization cost (issue 3): wrk replaying one pre-signed IAM GetUser, signed by root and by a
     user whose 20-statement inline policy allows it, against the same berth process.

Everything listens on and talks to 127.0.0.1 only; every wait and loop is bounded. The servers run
pinned to one core and the clients (the startup poller, wrk) to the other, when there are two.
Writes the results as markdown to --results and the raw numbers as JSON next to the logs in --out.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time

import botocore
import botocore.auth
import botocore.awsrequest
import botocore.credentials

ACCESS_KEY_ID = "AKIABENCHROOT0000001"
SECRET_ACCESS_KEY = "bench/secret/bench/secret/bench/secret/00"
REGION = "us-east-1"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"

# Targets from issue 2, section "Benchmark".
TARGET_STARTUP_MS = 50.0
TARGET_RSS_MIB = 15.0
TARGET_VS_NGINX = 0.5
TARGET_VS_MOTO = 100.0
# Target from issue 3, section "Benchmark": signed-request throughput of a caller with a
# 20-statement policy at least this much of root's, in the same run.
TARGET_AUTHZ_VS_ROOT = 0.9

# The authorization measurement: IAM GetUser (authorized by the caller's identity policy, unlike
# GetCallerIdentity, which AWS answers for any valid credential), the same request for both callers.
ACCOUNT_ID = "000000000000"  # berth's default account
AUTHZ_TARGET_USER = "bench-target"
AUTHZ_CALLER_USER = "bench-caller"
AUTHZ_OTHER_USER = "other"
AUTHZ_CONTROL_USER = "bench-caller-eu"
AUTHZ_POLICY_NAME = "deploy"
AUTHZ_BODY = f"Action=GetUser&Version=2010-05-08&UserName={AUTHZ_TARGET_USER}"

# Bounds on every wait.
READY_TIMEOUT_S = {"berth": 15.0, "moto": 60.0, "nginx": 15.0}
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.001
IO_TIMEOUT_S = 5.0
# An idle server that has not exited this long after SIGTERM (sent right after its first 200) is
# counted as having ignored it, and killed.
STARTUP_STOP_TIMEOUT_S = 5.0
# Before each phase, wait (at most QUIET_WAIT_S) for the machine to use at most QUIET_PCT of a core.
QUIET_PCT = 15.0
QUIET_WAIT_S = 120.0
# A run during which the rest of the machine used more than this (in % of one core) is flagged.
NOISY_PCT = 15.0
NOISY_TRIES = 3  # attempts at a disturbed measurement
QUIET_BUDGET_S = 300.0  # total waiting for quiet over the whole run

_children = []  # every Popen this script started, stopped on exit


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# The signed request


def signed_request(port, body=BODY, service="sts", key_id=ACCESS_KEY_ID, secret=SECRET_ACCESS_KEY, region=REGION):
    """One SigV4-signed awsQuery request (by default GetCallerIdentity with the root key) for
    127.0.0.1:port, as (headers, raw HTTP/1.1 bytes).

    botocore signs content-type, host and x-amz-date; the signature stays valid for 15 minutes, so
    the same bytes are replayed for the whole run (the script signs again for each server's port)."""
    creds = botocore.credentials.Credentials(key_id, secret)
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=f"http://127.0.0.1:{port}/", data=body, headers={"Content-Type": CONTENT_TYPE}
    )
    botocore.auth.SigV4Auth(creds, service, region).add_auth(req)
    headers = {"Host": f"127.0.0.1:{port}"}
    for name in ("Content-Type", "X-Amz-Date", "Authorization"):
        headers[name] = req.headers[name]
    raw = "POST / HTTP/1.1\r\n"
    for name, value in headers.items():
        raw += f"{name}: {value}\r\n"
    raw += f"Content-Length: {len(body)}\r\n\r\n{body}"
    return headers, raw.encode()


def exchange(port, raw, timeout=IO_TIMEOUT_S):
    """Send raw on a new connection to 127.0.0.1:port; return (status, body) of the answer.

    Reads exactly one response (by Content-Length), then closes from the client side, so
    TIME_WAIT stays with the client and the server can rebind its port at once."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(raw)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the response headers")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:  # not expected from any of the three; read to EOF
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        else:
            while len(body) < length:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        return status, body.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, env, logfile, core):
    """Start argv with its CPU affinity set to {core} (None: no pinning).

    The child inherits the affinity this process has at fork time, so this process pins itself to
    the server's core around Popen and then moves back to the client core. No extra exec (taskset)
    lands inside the measured time."""
    out = open(logfile, "ab")
    if core is not None:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {core})
    try:
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if core is not None:
            os.sched_setaffinity(0, before)
        out.close()
    _children.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
    """Stop p: sig, then SIGKILL after timeout (p.escalated says so). Returns the exit code."""
    p.escalated = False
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.escalated = True
            p.kill()
            p.wait(STOP_TIMEOUT_S)
    if p in _children:
        _children.remove(p)
    return p.returncode


def stop_all():
    for p in list(_children):
        try:
            stop(p)
        except Exception:  # best effort on the way out
            pass


def wait_ready(p, port, raw, timeout, name):
    """Poll with the signed request every POLL_INTERVAL_S until an HTTP 200 arrives.

    Returns (t_listen, t_200, body): perf_counter() times of the first accepted TCP connection and
    of the first 200 answer."""
    deadline = time.perf_counter() + timeout
    t_listen = None
    last = "no attempt"
    while True:
        try:
            status, body = exchange(port, raw, timeout=max(0.05, deadline - time.perf_counter()))
            now = time.perf_counter()
            if t_listen is None:
                t_listen = now
            if status == 200:
                return t_listen, now, body
            last = f"HTTP {status}: {body[:300]}"
        except OSError as e:  # refused, reset, closed early, timed out
            if t_listen is None and not isinstance(e, ConnectionRefusedError):
                t_listen = time.perf_counter()
            last = repr(e)
        if p.poll() is not None:
            raise RuntimeError(f"{name} exited with code {p.returncode} before answering 200 (last: {last})")
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{name} did not answer 200 within {timeout:.0f} s (last: {last})")
        time.sleep(POLL_INTERVAL_S)


def tree_pids(pid):
    """pid and all its descendants (from /proc/PID/task/*/children)."""
    pids, todo = [], [pid]
    while todo:
        cur = todo.pop()
        pids.append(cur)
        try:
            for task in os.listdir(f"/proc/{cur}/task"):
                with open(f"/proc/{cur}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            pass
    return pids


def status_field(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])  # kB
    return 0


def tree_rss_kib(pid):
    """[(pid, comm, VmRSS kB)] for pid and its descendants."""
    rows = []
    for q in tree_pids(pid):
        try:
            with open(f"/proc/{q}/comm") as f:
                comm = f.read().strip()
            rows.append((q, comm, status_field(q, "VmRSS")))
        except FileNotFoundError:
            pass
    return rows


def tree_cpu_ticks(pid):
    total = 0
    for q in tree_pids(pid):
        try:
            with open(f"/proc/{q}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except FileNotFoundError:
            pass
    return total


def all_cpu_ticks():
    """{pid: (comm, utime + stime)} for every process on the machine."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                raw = f.read()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        comm = raw[raw.find("(") + 1 : raw.rfind(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[int(d)] = (comm, int(fields[11]) + int(fields[12]))
    return out


def other_cpu(before, after, ours, elapsed):
    """CPU used by processes that are not ours between two all_cpu_ticks() samples, in % of one
    core, and the top users. Processes that started and ended between the samples are missed."""
    per = {}
    for pid, (comm, ticks) in after.items():
        if pid in ours:
            continue
        delta = ticks - before.get(pid, (comm, 0))[1]
        if delta > 0:
            per[comm] = per.get(comm, 0) + delta
    hz = os.sysconf("SC_CLK_TCK")
    total = 100.0 * sum(per.values()) / hz / elapsed
    top = sorted(per.items(), key=lambda kv: -kv[1])[:3]
    return total, [(c, round(100.0 * t / hz / elapsed, 1)) for c, t in top]


def machine_ticks():
    """(busy, steal) clock ticks of all CPUs together, from /proc/stat. Unlike per-process
    samples, this also counts processes that start and end between two samples, and softirq work."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


def machine_pct(before, after, elapsed):
    """(busy, steal) between two machine_ticks() samples, in % of one core."""
    hz = os.sysconf("SC_CLK_TCK")
    return tuple(100.0 * (a - b) / hz / elapsed for a, b in zip(after, before))


def background_load(seconds=1.0):
    """The machine's CPU use while this script sleeps, in % of one core, and the top other processes."""
    procs, mach, t0 = all_cpu_ticks(), machine_ticks(), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    busy, _ = machine_pct(mach, machine_ticks(), elapsed)
    _, top = other_cpu(procs, all_cpu_ticks(), {os.getpid()}, elapsed)
    return busy, top


def noise(r, steal=True):
    """How much a measurement was disturbed: CPU used by the rest of the machine plus (for the load
    runs, where both cores are busy) CPU the hypervisor stole, in % of one core. In the startup
    phase the CPUs mostly sleep and wake, and steal there mostly counts wake-up latency: left out."""
    return r["other_cpu_pct"] + (r.get("steal_pct", 0.0) if steal else 0.0)


def rusage_total():
    """CPU seconds of this process and of every child it has reaped (with their reaped children)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


_quiet_budget = {"left_s": 0.0}


def wait_quiet(limit_pct, max_wait_s):
    """Waits until the machine's CPU use over a second is at most limit_pct of a core: at most
    max_wait_s here, and at most QUIET_BUDGET_S over the whole run."""
    t0 = time.monotonic()
    deadline = t0 + min(max_wait_s, _quiet_budget["left_s"])
    busy, top = background_load()
    while busy > limit_pct and time.monotonic() < deadline:
        log(f"    the machine is busy ({busy:.0f}% of a core: {top}); waiting for it to quiet down")
        time.sleep(4.0)
        busy, top = background_load()
    _quiet_budget["left_s"] = max(0.0, _quiet_budget["left_s"] - (time.monotonic() - t0))
    return busy, top


def threads_of(pid):
    return status_field(pid, "Threads")


# ---------------------------------------------------------------------------------------------
# The three servers


class Server:
    def __init__(self, name, label, argv, env, port, note):
        self.name, self.label, self.argv, self.env, self.port, self.note = name, label, argv, env, port, note


def make_servers(args):
    env = dict(os.environ)
    env.pop("BERTH_LISTEN", None)
    env.pop("BERTH_DATA_DIR", None)
    env["BERTH_ROOT_ACCESS_KEY_ID"] = ACCESS_KEY_ID
    env["BERTH_ROOT_SECRET_ACCESS_KEY"] = SECRET_ACCESS_KEY
    env["RUST_LOG"] = env.get("RUST_LOG", "info")

    berth_port, moto_port, nginx_port = free_port(), free_port(), free_port()
    berth = Server(
        "berth",
        "berth",
        [args.berth, "server", "--listen", f"127.0.0.1:{berth_port}", "--data-dir", os.path.join(args.out, "berth-data")],
        env,
        berth_port,
        "verifies the SigV4 signature and authorizes every request",
    )
    moto_env = dict(os.environ)
    moto_env["AWS_ACCESS_KEY_ID"] = ACCESS_KEY_ID
    moto_env["AWS_SECRET_ACCESS_KEY"] = SECRET_ACCESS_KEY
    moto = Server(
        "moto",
        "moto_server",
        [args.moto, "-H", "127.0.0.1", "-p", str(moto_port)],
        moto_env,
        moto_port,
        "does NOT verify signatures (accepts any)",
    )
    prefix = os.path.join(args.out, "nginx")
    os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    nginx = Server(
        "nginx",
        "nginx",
        [args.nginx, "-p", prefix + "/", "-c", conf, "-e", os.path.join(prefix, "error.log")],
        dict(os.environ),
        nginx_port,
        "`return 200` with a fixed body, one worker: the ceiling",
    )
    nginx.conf = conf
    nginx.prefix = prefix
    return berth, moto, nginx


def write_nginx_conf(nginx, response_body):
    p = nginx.prefix
    # nginx's `return` takes a quoted string; the body has no single quotes or backslashes.
    body = response_body.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    conf = f"""# Written by bench/bench.py: the machine's ceiling for one signed GetCallerIdentity.
daemon off;
master_process on;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{nginx.port};
        location / {{
            default_type text/xml;
            return 200 '{body}';
        }}
    }}
}}
"""
    with open(nginx.conf, "w") as f:
        f.write(conf)


# ---------------------------------------------------------------------------------------------
# Measurements


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of values."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def measure_startup(server, n, cores, out):
    log(f"    {server.name}: {n} starts")
    _, raw = signed_request(server.port)
    to_200, to_listen = [], []
    logfile = os.path.join(out, f"{server.name}-startup.log")
    body = None
    stops = {"clean": 0, "default": 0, "ignored": 0, "other": 0}
    for i in range(n):
        t0 = time.perf_counter()
        p = spawn(server.argv, server.env, logfile, cores["server"])
        t_listen, t_200, body = wait_ready(p, server.port, raw, READY_TIMEOUT_S[server.name], server.name)
        to_200.append((t_200 - t0) * 1000)
        to_listen.append((t_listen - t0) * 1000)
        rc = stop(p, timeout=STARTUP_STOP_TIMEOUT_S)
        if p.escalated:
            stops["ignored"] += 1
            log(f"    warning: {server.name} (start {i + 1}) did not exit within {STARTUP_STOP_TIMEOUT_S:.0f} s of "
                f"SIGTERM; killed it")
        elif rc == 0:
            stops["clean"] += 1
        elif rc == -signal.SIGTERM:
            stops["default"] += 1
        else:
            stops["other"] += 1
            log(f"    warning: {server.name} (start {i + 1}) exited with code {rc} on SIGTERM")
    res = {
        "n": n,
        "ms_to_200": [round(v, 2) for v in to_200],
        "ms_to_listen": [round(v, 2) for v in to_listen],
        "median_ms": statistics.median(to_200),
        "p90_ms": percentile(to_200, 90),
        "min_ms": min(to_200),
        "max_ms": max(to_200),
        "listen_median_ms": statistics.median(to_listen),
        "stops": stops,
    }
    log(
        f"    {server.name}: first 200 after median {res['median_ms']:.1f} ms, p90 {res['p90_ms']:.1f} ms "
        f"(min {res['min_ms']:.1f}, max {res['max_ms']:.1f}); port open after median {res['listen_median_ms']:.1f} ms"
    )
    return res, body


def spawn_baseline(n, cores):
    """Time to spawn and reap /bin/true the same way: the part of the startup figures that is fork+exec."""
    true = "/bin/true"
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = spawn([true], dict(os.environ), os.devnull, cores["server"])
        p.wait(STOP_TIMEOUT_S)
        _children.remove(p)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


WRK_LUA = r"""-- Written by bench/bench.py: replays one pre-signed request and counts non-200 answers.
wrk.method = "POST"
wrk.body = %(body)s
%(headers)s
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
  first_status = 0
  first_body = ""
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if first_status == 0 then
      first_status = status
      first_body = string.sub(body or "", 1, 300)
    end
  end
end

local function q(s)
  return '"' .. string.gsub(tostring(s), '[%%c"\\]', function(c) return string.format("\\u%%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local bad, fs, fb = 0, 0, ""
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non200") or 0)
    if fs == 0 and (t:get("first_status") or 0) ~= 0 then
      fs = t:get("first_status")
      fb = t:get("first_body")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %%d, "duration_us": %%d, "bytes": %%d, "non200": %%d, ' ..
    '"first_non200_status": %%d, "first_non200_body": %%s, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, ' ..
    '"latency_us": {"p50": %%d, "p75": %%d, "p90": %%d, "p99": %%d, "max": %%d, "mean": %%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, bad, fs, q(fb),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(75), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_lua(path, headers, body):
    lines = "\n".join(f"wrk.headers[{lua_str(k)}] = {lua_str(v)}" for k, v in headers.items())
    with open(path, "w") as f:
        f.write(WRK_LUA % {"body": lua_str(body), "headers": lines})
    return path


def write_wrk_script(server, out):
    headers, _ = signed_request(server.port)
    return write_lua(os.path.join(out, f"{server.name}.lua"), headers, BODY)


def run_wrk(args, server, pid, script, conns, duration, cores, out, tag):
    argv = [args.wrk, "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", script, f"http://127.0.0.1:{server.port}/"]
    if cores["client"] is not None:
        argv = ["taskset", "-c", str(cores["client"])] + argv
    mach0 = machine_ticks()
    all0, ticks0, ru0, t0 = all_cpu_ticks(), tree_cpu_ticks(pid), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    ticks1, ru1, t1 = tree_cpu_ticks(pid), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    ours = set(tree_pids(pid)) | {os.getpid()}  # wrk has exited: it is in neither sample
    _, other_top = other_cpu(all0, all_cpu_ticks(), ours, t1 - t0)
    busy_pct, steal_pct = machine_pct(mach0, machine_ticks(), t1 - t0)
    with open(os.path.join(out, f"{server.name}-wrk-{tag}.txt"), "w") as f:
        f.write("$ " + " ".join(argv) + "\n" + cp.stdout + cp.stderr)
    if cp.returncode != 0:
        raise RuntimeError(f"wrk against {server.name} failed ({cp.returncode}): {cp.stderr.strip()}")
    m = re.search(r"^BENCH_RESULT (.*)$", cp.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk against {server.name} printed no BENCH_RESULT line:\n{cp.stdout}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["server_cpu_pct"] = 100.0 * (ticks1 - ticks0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)
    wrk_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    r["wrk_cpu_pct"] = 100.0 * wrk_s / (t1 - t0)
    # The rest of the machine's busy time: other processes, plus this run's loopback softirq work
    # when the kernel accounts it apart from the processes (a few % on a quiet machine).
    r["machine_busy_pct"], r["steal_pct"] = busy_pct, steal_pct
    r["other_cpu_pct"] = max(0.0, busy_pct - r["server_cpu_pct"] - r["wrk_cpu_pct"])
    r["other_cpu_top"] = other_top
    r["command"] = " ".join(argv)
    return r


def start_for_load(server, cores, out):
    """Starts server for the load phase: idle RSS after one request + 2 s idle, then checks that the
    replayed request answers 200 with an <Arn>. Returns (process, results)."""
    _, raw = signed_request(server.port)
    p = spawn(server.argv, server.env, os.path.join(out, f"{server.name}-run.log"), cores["server"])
    wait_ready(p, server.port, raw, READY_TIMEOUT_S[server.name], server.name)  # the one request
    time.sleep(2.0)
    rows = tree_rss_kib(p.pid)
    res = {
        "rss_kib": sum(r[2] for r in rows),
        "rss_processes": [{"pid": r[0], "comm": r[1], "rss_kib": r[2]} for r in rows],
        "threads": sum(threads_of(r[0]) for r in rows),
    }
    log(
        f"    {server.name}: idle RSS {res['rss_kib'] / 1024:.1f} MiB ("
        + ", ".join(f"{r[1]} {r[2] / 1024:.1f}" for r in rows)
        + f"), {res['threads']} threads"
    )
    # The replayed request must succeed: a 200 that carries an <Arn>.
    status, body = exchange(server.port, raw)
    res["check_status"], res["check_body"] = status, body
    if status != 200 or "<Arn>" not in body:
        raise RuntimeError(f"{server.name} answered the replayed request with HTTP {status}: {body[:400]}")
    log(f"    {server.name}: replayed request answered 200 with <Arn>")
    res["script"] = write_wrk_script(server, out)
    return p, res


def measure_wrk(args, server, pid, script, conns, duration, cores, out, tag):
    """One wrk measurement; a run disturbed by the rest of the machine is repeated (bounded), and the
    least disturbed attempt counts."""
    tries = []
    for attempt in range(1, NOISY_TRIES + 1):
        if attempt > 1:
            wait_quiet(QUIET_PCT, QUIET_WAIT_S)
        r = run_wrk(args, server, pid, script, conns, duration, cores, out, f"{tag}-{attempt}")
        tries.append(r)
        bad = r["non200"] + sum(r["errors"].values())
        log(
            f"    {server.name} -c{conns} {tag}: {r['rps']:.0f} req/s, p50 {r['latency_us']['p50'] / 1000:.2f} ms, "
            f"p99 {r['latency_us']['p99'] / 1000:.2f} ms, non-200 {r['non200']}, socket errors "
            f"{sum(r['errors'].values()) - r['errors']['status']}, CPU: server {r['server_cpu_pct']:.0f}%, "
            f"wrk {r['wrk_cpu_pct']:.0f}%, rest of the machine {r['other_cpu_pct']:.0f}%, steal {r['steal_pct']:.0f}%"
            + (f"  <-- {bad} failures" if bad else "")
        )
        if noise(r) <= NOISY_PCT:
            break
        log(f"    {server.name} -c{conns} {tag}: disturbed ({noise(r):.0f}% of a core elsewhere)")
    best = min(tries, key=noise)
    best["attempts"] = len(tries)
    return best


def measure_load(args, servers, cores, out, durations):
    """Idle RSS of each server, then interleaved rounds of wrk runs, then (against the same berth
    process) the authorization measurement. Returns (running, authz).

    All three servers run at once (pinned to the same core; the idle ones cost nothing), and each
    round measures each of them in turn, rotating the order. The host's load drifts over minutes
    (more than steal time shows, e.g. a busy hyperthread sibling), so interleaving keeps the
    comparison fair: the ratios are taken per round, between runs seconds apart."""
    names = list(servers)
    procs, running = {}, {}
    try:
        for name in names:
            wait_quiet(QUIET_PCT, QUIET_WAIT_S)
            procs[name], running[name] = start_for_load(servers[name], cores, out)
        for name in names:
            run_wrk(args, servers[name], procs[name].pid, running[name]["script"], 16, durations["warmup"], cores, out,
                    "warmup")
        for name in names:
            running[name]["rounds"] = {str(c): [] for c in args.connections}
        for conns in args.connections:
            for rnd in range(args.rounds):
                order = names[rnd % len(names):] + names[: rnd % len(names)]
                for name in order:
                    r = measure_wrk(args, servers[name], procs[name].pid, running[name]["script"], conns,
                                    durations["measure"], cores, out, f"round{rnd + 1}")
                    r["round"] = rnd + 1
                    running[name]["rounds"][str(conns)].append(r)
        for name in names:
            running[name]["rss_after_load_kib"] = sum(r[2] for r in tree_rss_kib(procs[name].pid))
        log("\n==> Authorization cost: GetUser signed by root and by a user with a 20-statement policy")
        authz = measure_authz(args, servers["berth"], procs["berth"].pid, cores, out, durations)
    finally:
        for name, p in procs.items():
            running[name]["exit_code"] = stop(p)
    # Per server and concurrency: the round with the median req/s stands for it.
    for name in names:
        running[name]["wrk"] = {conns: summarize_rounds(rounds) for conns, rounds in running[name]["rounds"].items()}
    return running, authz


def summarize_rounds(rounds):
    """The wrk rounds of one server (or caller) at one concurrency: the round with the median req/s
    stands for them (its latencies are shown), with the median and range of req/s and the totals of
    failures over all rounds."""
    ordered = sorted(rounds, key=lambda r: r["rps"])
    rep = dict(ordered[(len(ordered) - 1) // 2])
    rep["rps_median"] = statistics.median(r["rps"] for r in rounds)
    rep["rps_min"], rep["rps_max"] = ordered[0]["rps"], ordered[-1]["rps"]
    rep["non200_total"] = sum(r["non200"] for r in rounds)
    rep["socket_errors_total"] = sum(
        r["errors"]["connect"] + r["errors"]["read"] + r["errors"]["write"] + r["errors"]["timeout"] for r in rounds
    )
    rep["attempts_total"] = sum(r["attempts"] for r in rounds)
    rep["noise_max"] = max(noise(r) for r in rounds)
    rep["first_bad"] = next(((r["first_non200_status"], r["first_non200_body"]) for r in rounds if r["non200"]), None)
    return rep


def paired_ratios(running, conns, peer):
    """berth's req/s over peer's, round by round."""
    b = {r["round"]: r["rps"] for r in running["berth"]["rounds"][str(conns)]}
    p = {r["round"]: r["rps"] for r in running[peer]["rounds"][str(conns)]}
    return [b[k] / p[k] for k in sorted(b) if k in p and p[k] > 0]


# ---------------------------------------------------------------------------------------------
# Authorization cost (issue 3, section "Benchmark"): the same IAM GetUser, signed by root (never
# evaluated against a policy) and by a user whose 20-statement inline policy allows it in its last
# statement, replayed by wrk in interleaved rounds against the same berth process.


def deploy_policy():
    """A least-privilege deploy policy of 20 statements, within IAM's 2,048-character quota on a
    user's inline policies. Statements 1-19 do not apply to `iam:GetUser` on user/bench-target (the
    9th matches its action but not its resource, the 19th its action and resource but not its
    condition); the 20th allows it, under a condition. A policy is evaluated statement by statement
    to the end (an explicit Deny anywhere would win), so every request walks all 20."""

    def st(action, resource, condition=None, effect="Allow"):
        s = {"Effect": effect, "Action": action, "Resource": resource}
        if condition:
            s["Condition"] = condition
        return s

    region = lambda r: {"StringEquals": {"aws:RequestedRegion": r}}
    statements = [
        st("ecr:GetAuthorizationToken", "*"),
        st("ecr:PutImage", "arn:aws:ecr:*:*:repository/web"),
        st("ecr:BatchGetImage", "arn:aws:ecr:*:*:repository/*", region("eu-west-1")),
        st("ecs:*TaskDefinition", "*", region("us-east-1")),
        st("ecs:UpdateService", "arn:aws:ecs:*:*:service/prod/*"),
        st("ecs:RunTask", "arn:aws:ecs:*:*:task-definition/*"),
        st("ecs:DescribeTasks", "*"),
        st("iam:PassRole", "arn:aws:iam::*:role/ecs-*"),
        st("iam:Get*", "arn:aws:iam::*:role/deploy-*"),
        st("logs:PutLogEvents", "arn:aws:logs:*:*:log-group:/ecs/*"),
        st("s3:PutObject", "arn:aws:s3:::artifacts/*"),
        st("s3:ListBucket", "arn:aws:s3:::artifacts", {"StringLike": {"s3:prefix": "releases/*"}}),
        st("ssm:GetParameter*", "arn:aws:ssm:*:*:parameter/prod/*"),
        st("secretsmanager:Get*", "arn:aws:secretsmanager:*:*:secret:prod/*"),
        st("kms:Decrypt", "*", {"StringLike": {"kms:ViaService": "ssm.*"}}),
        st("elasticloadbalancing:Modify*", "*"),
        st("cloudwatch:PutMetricData", "*"),
        st(["ecr:Delete*", "ecs:Delete*"], "*", effect="Deny"),
        st("iam:GetUser", "arn:aws:iam::*:user/bench-*", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        st("iam:GetUser", f"arn:aws:iam::{ACCOUNT_ID}:user/bench-*", region(REGION)),
    ]
    return {"Version": "2012-10-17", "Statement": statements}


class Caller:
    """One signer of the replayed GetUser: a name for the logs, the berth port, a key pair."""

    def __init__(self, name, label, port, key_id, secret):
        self.name, self.label, self.port, self.key_id, self.secret = name, label, port, key_id, secret

    def request(self, body=AUTHZ_BODY, region=REGION):
        return signed_request(self.port, body, "iam", self.key_id, self.secret, region)


def authz_setup(port, out):
    """Through berth's API with the root key (boto3): the target user, the caller with an access key
    and the 20-statement inline policy, and a control user (see authz_checks). Returns (caller key
    id, secret, control user's (key id, secret), policy document, facts)."""
    import boto3
    import botocore.config

    iam = boto3.client(
        "iam",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )
    policy = deploy_policy()
    doc = json.dumps(policy, indent=2)
    with open(os.path.join(out, "authz-policy.json"), "w") as f:
        f.write(doc + "\n")
    iam.create_user(UserName=AUTHZ_TARGET_USER)
    iam.create_user(UserName=AUTHZ_CALLER_USER)
    key = iam.create_access_key(UserName=AUTHZ_CALLER_USER)["AccessKey"]
    iam.put_user_policy(UserName=AUTHZ_CALLER_USER, PolicyName=AUTHZ_POLICY_NAME, PolicyDocument=doc)
    # The control user (for one check, not measured): the same policy, but the last statement's
    # condition asks for another region, so nothing allows the measured request.
    control_policy = deploy_policy()
    control_policy["Statement"][-1]["Condition"] = {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}
    iam.create_user(UserName=AUTHZ_CONTROL_USER)
    control_key = iam.create_access_key(UserName=AUTHZ_CONTROL_USER)["AccessKey"]
    iam.put_user_policy(UserName=AUTHZ_CONTROL_USER, PolicyName=AUTHZ_POLICY_NAME,
                        PolicyDocument=json.dumps(control_policy, indent=2))
    # Read back: berth stored the whole document, and it is the caller's only policy.
    stored = iam.get_user_policy(UserName=AUTHZ_CALLER_USER, PolicyName=AUTHZ_POLICY_NAME)["PolicyDocument"]
    if isinstance(stored, str):
        stored = json.loads(stored)
    if stored != policy:
        raise RuntimeError("GetUserPolicy did not return the policy that PutUserPolicy stored")
    inline = iam.list_user_policies(UserName=AUTHZ_CALLER_USER)["PolicyNames"]
    attached = iam.list_attached_user_policies(UserName=AUTHZ_CALLER_USER)["AttachedPolicies"]
    if inline != [AUTHZ_POLICY_NAME] or attached:
        raise RuntimeError(f"{AUTHZ_CALLER_USER} has other policies: inline {inline}, attached {attached}")
    facts = {
        "statements": len(policy["Statement"]),
        "size_chars": sum(1 for c in doc if not c.isspace()),
        "conditions": sum(1 for s in policy["Statement"] if "Condition" in s),
        "caller_access_key_id": key["AccessKeyId"],
    }
    control = (control_key["AccessKeyId"], control_key["SecretAccessKey"])
    return key["AccessKeyId"], key["SecretAccessKey"], control, policy, facts


def authz_checks(root, caller, control):
    """Before measuring: both callers get 200 with the target user's name for the replayed request,
    and requests the policy does not allow are denied, so the caller's policy is evaluated (not
    bypassed). Returns the checks as dicts; raises if one fails."""
    want_user = f"<UserName>{AUTHZ_TARGET_USER}</UserName>"
    checks = []

    def check(what, signer, body, region, expect_status, expect_text):
        _, raw = signer.request(body, region)
        status, text = exchange(signer.port, raw)
        ok = status == expect_status and expect_text in text
        checks.append({"what": what, "expect_status": expect_status, "expect_text": expect_text, "status": status,
                       "ok": ok, "body": text[:300]})
        log(f"    check: {what}: HTTP {status}" + ("" if ok else f" (expected {expect_status} {expect_text}): {text[:300]}"))
        if not ok:
            raise RuntimeError(f"authorization check failed: {what}: HTTP {status}: {text[:400]}")

    other = f"Action=GetUser&Version=2010-05-08&UserName={AUTHZ_OTHER_USER}"
    check("root, GetUser bench-target (the measured request)", root, AUTHZ_BODY, REGION, 200, want_user)
    check("bench-caller, GetUser bench-target (the measured request)", caller, AUTHZ_BODY, REGION, 200, want_user)
    check(f"bench-caller, GetUser {AUTHZ_OTHER_USER} (no statement's resource matches)", caller, other, REGION,
          403, "<Code>AccessDenied</Code>")
    check("bench-caller, ListUsers (no statement's action matches)", caller, "Action=ListUsers&Version=2010-05-08",
          REGION, 403, "<Code>AccessDenied</Code>")
    # The last statement's condition: a second user whose policy differs only there (it asks for
    # eu-west-1; berth, like AWS for IAM, sets aws:RequestedRegion to us-east-1) is denied.
    check(f"{AUTHZ_CONTROL_USER} (the same policy, but eu-west-1 in the last statement's condition), GetUser "
          "bench-target", control, AUTHZ_BODY, REGION, 403, "<Code>AccessDenied</Code>")
    return checks


def measure_authz(args, berth, pid, cores, out, durations):
    """Issue 3's measurement against the running berth process (pid): setup, checks, then wrk
    rounds of root-signed and caller-signed GetUser, interleaved (order alternating per round)."""
    res = {"error": None, "rounds": {"root": {}, "caller": {}}}
    try:
        key_id, secret, control, policy, facts = authz_setup(berth.port, out)
        res["policy"], res["facts"] = policy, facts
        log(f"    {AUTHZ_CALLER_USER}: access key {key_id}, inline policy of {facts['statements']} statements "
            f"({facts['size_chars']} characters without whitespace)")
        callers = {
            "root": Caller("berth-getuser-root", "root", berth.port, ACCESS_KEY_ID, SECRET_ACCESS_KEY),
            "caller": Caller("berth-getuser-caller", AUTHZ_CALLER_USER, berth.port, key_id, secret),
        }
        res["checks"] = authz_checks(
            callers["root"], callers["caller"], Caller("berth-getuser-control", AUTHZ_CONTROL_USER, berth.port, *control)
        )

        def scripts():  # signed anew for each concurrency: a signature is valid for 15 minutes
            return {
                who: write_lua(os.path.join(out, f"{c.name}.lua"), c.request()[0], AUTHZ_BODY)
                for who, c in callers.items()
            }

        script = scripts()
        for who, c in callers.items():
            run_wrk(args, c, pid, script[who], 16, durations["warmup"], cores, out, "warmup")
        for conns in args.connections:
            script = scripts()
            for who in callers:
                res["rounds"][who][str(conns)] = []
            for rnd in range(args.rounds):
                order = ["root", "caller"] if rnd % 2 == 0 else ["caller", "root"]
                for who in order:
                    r = measure_wrk(args, callers[who], pid, script[who], conns, durations["measure"], cores, out,
                                    f"round{rnd + 1}")
                    r["round"] = rnd + 1
                    res["rounds"][who][str(conns)].append(r)
        res["wrk"] = {
            who: {conns: summarize_rounds(rounds) for conns, rounds in res["rounds"][who].items()} for who in callers
        }
    except Exception as e:  # reported in RESULTS.md (and as FAIL); the other measurements stand
        res["error"] = f"{type(e).__name__}: {e}"
        log(f"    error in the authorization measurement: {res['error']}")
    return res


def authz_ratios(authz, conns):
    """caller's req/s over root's, round by round; and over all rounds (total requests / total time)."""
    c = {r["round"]: r for r in authz["rounds"]["caller"][str(conns)]}
    r = {x["round"]: x for x in authz["rounds"]["root"][str(conns)]}
    per = [c[k]["rps"] / r[k]["rps"] for k in sorted(c) if k in r and r[k]["rps"] > 0]
    tot = lambda rows: sum(x["requests"] for x in rows) / sum(x["duration_us"] / 1e6 for x in rows)
    overall = tot(c.values()) / tot(r.values())
    return per, overall


# ---------------------------------------------------------------------------------------------
# Report


def sh(argv):
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (cp.stdout + cp.stderr).strip()
    except Exception as e:  # the report says so rather than failing the run
        return f"unknown ({e})"


def machine_info(args):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = status_like("/proc/meminfo", "MemTotal")
    root = args.repo
    dirty = sh(["git", "-C", root, "status", "--porcelain", "--", "crates", "Cargo.toml", "Cargo.lock"])
    from importlib.metadata import version

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "berth_commit": sh(["git", "-C", root, "rev-parse", "--short", "HEAD"]),
        "berth_dirty": bool(dirty) and not dirty.startswith("unknown"),
        "berth_version": sh([args.berth, "--version"]),
        "rustc": sh(["rustc", "--version"]),
        "nginx": sh([args.nginx, "-v"]),
        "wrk": sh([args.wrk, "-v"]).splitlines()[0] if sh([args.wrk, "-v"]) else "unknown",
        "moto": version("moto"),
        "botocore": botocore.__version__,
        "boto3": version("boto3"),
        "python": platform.python_version(),
    }


def status_like(path, field):
    with open(path) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def verdict(ok):
    return "**PASS**" if ok else "**FAIL**"


def stop_summary(stops):
    parts = []
    if stops["clean"]:
        parts.append(f"{stops['clean']}× exit 0")
    if stops["default"]:
        parts.append(f"{stops['default']}× killed by SIGTERM's default action (no handler in place)")
    if stops["ignored"]:
        parts.append(f"**{stops['ignored']}× ignored it** (SIGKILL after {STARTUP_STOP_TIMEOUT_S:.0f} s)")
    if stops["other"]:
        parts.append(f"{stops['other']}× other exit code")
    return ", ".join(parts)


def render_authz(authz, args, durations):
    """Section 4 of RESULTS.md: the authorization measurement (issue 3)."""
    L = ["## 4. Authorization cost: one GetUser, signed by root and by a user with a 20-statement policy", ""]
    facts = authz.get("facts")
    L.append(
        f"The same berth process, after section 3's runs. Both wrk scripts replay IAM `GetUser` with "
        f"`UserName={AUTHZ_TARGET_USER}` (awsQuery, `POST /`, `{AUTHZ_BODY}`, SigV4 service `iam`, region "
        f"`{REGION}`): an operation authorized by the caller's identity policy (GetCallerIdentity never is) and "
        "the same for both callers, with the same answer. **root** (berth's root key) is allowed without a policy; "
        f"**{AUTHZ_CALLER_USER}** signs with its own access key and carries one inline policy (`PutUserPolicy`, "
        f"`{AUTHZ_POLICY_NAME}`) shaped like a least-privilege deploy policy"
        + (f": {facts['statements']} statements ({facts['conditions']} with a Condition, one Deny), "
           f"{facts['size_chars']} characters of IAM's 2,048-character quota on a user's inline policies" if facts else "")
        + ". The first 19 do not apply to the request (the 9th, `iam:Get*` on `role/deploy-*`, matches its action; "
        "the 19th its action and resource but not its `IpAddress` condition); the 20th allows `iam:GetUser` on "
        f"`arn:aws:iam::{ACCOUNT_ID}:user/bench-*` under `StringEquals aws:RequestedRegion {REGION}`. Evaluation "
        "always walks every statement (an explicit Deny anywhere would win). Users, key and policy are created through "
        "berth's API with the root key (boto3), and the policy is read back. "
        f"{args.rounds} interleaved rounds per concurrency (root first in odd rounds, {AUTHZ_CALLER_USER} first in "
        f"even ones), `wrk -t1 -cN -d{durations['measure']}s --latency`, after a {durations['warmup']} s warm-up of "
        "each at -c16; the requests are signed anew for each concurrency. Columns as in section 3; 'CPU/req' is the "
        "server's CPU time per answered request in the median round."
    )
    L.append("")
    if authz.get("checks"):
        L.append("Checks before measuring (each a fresh signed request):")
        L.append("")
        for c in authz["checks"]:
            L.append(f"- {c['what']}: HTTP {c['status']}, expected {c['expect_status']} with `{c['expect_text']}` — "
                     + ("ok" if c["ok"] else f"**failed**: `{c['body'][:200]}`"))
        L.append("")
    if authz.get("error"):
        L.append(f"**Not measured: the measurement stopped with an error:** `{authz['error'][:500]}`. See `bench/out/` "
                 "for the logs.")
        L.append("")
        return L
    labels = {"root": "root", "caller": AUTHZ_CALLER_USER}
    L.append("| caller | conns | req/s (median) | range | p50 | p75 | p90 | p99 | max | non-200 | socket errors "
             "| CPU server / wrk / rest / steal | CPU/req | runs |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ms = lambda us: f"{us / 1000:.2f} ms"
    for conns in args.connections:
        for who in ("root", "caller"):
            w = authz["wrk"][who][str(conns)]
            lat = w["latency_us"]
            L.append(
                f"| {labels[who]} | {conns} | {w['rps_median']:,.0f} | {w['rps_min']:,.0f}–{w['rps_max']:,.0f} "
                f"| {ms(lat['p50'])} | {ms(lat['p75'])} | {ms(lat['p90'])} | {ms(lat['p99'])} | {ms(lat['max'])} "
                f"| {w['non200_total']} | {w['socket_errors_total']} "
                f"| {w['server_cpu_pct']:.0f}% / {w['wrk_cpu_pct']:.0f}% / {w['other_cpu_pct']:.0f}% / {w['steal_pct']:.0f}% "
                f"| {1e6 * w['server_cpu_pct'] / 100 / w['rps']:.1f} µs | {w['attempts_total']} |"
            )
    L.append("")
    for conns in args.connections:
        for who in ("root", "caller"):
            w = authz["wrk"][who][str(conns)]
            if w["first_bad"]:
                L.append(f"- {labels[who]} -c{conns}: {w['non200_total']} non-200 answers; first: HTTP "
                         f"{w['first_bad'][0]} `{w['first_bad'][1][:200]}`")
    L.append("")
    L.append(f"Round by round ({AUTHZ_CALLER_USER}'s req/s over root's; 'overall' is the ratio of all requests answered "
             "over all rounds, each side's total over its total time):")
    L.append("")
    L.append(f"| conns | round | order | root req/s | {AUTHZ_CALLER_USER} req/s | ratio |")
    L.append("|---:|---:|---|---:|---:|---:|")
    for conns in args.connections:
        root = {r["round"]: r for r in authz["rounds"]["root"][str(conns)]}
        caller = {r["round"]: r for r in authz["rounds"]["caller"][str(conns)]}
        for k in sorted(root):
            order = f"root, {AUTHZ_CALLER_USER}" if k % 2 == 1 else f"{AUTHZ_CALLER_USER}, root"
            L.append(f"| {conns} | {k} | {order} | {root[k]['rps']:,.0f} | {caller[k]['rps']:,.0f} "
                     f"| {caller[k]['rps'] / root[k]['rps']:.3f} |")
        per, overall = authz_ratios(authz, conns)
        L.append(f"| {conns} | overall | | | | {overall:.3f} |")
    L.append("")
    L.append("<details><summary>The policy of " + AUTHZ_CALLER_USER + "</summary>")
    L.append("")
    L.append("```json")
    L.append('{"Version": "2012-10-17", "Statement": [')
    st = authz["policy"]["Statement"]
    for i, s in enumerate(st):
        L.append("  " + json.dumps(s) + ("," if i < len(st) - 1 else ""))
    L.append("]}")
    L.append("```")
    L.append("")
    L.append("</details>")
    L.append("")
    return L


def authz_failures(authz, conns):
    """Failed requests of both callers at one concurrency, over all rounds."""
    return sum(
        r["non200"] + r["errors"]["connect"] + r["errors"]["read"] + r["errors"]["write"] + r["errors"]["timeout"]
        + r["errors"]["status"]
        for who in ("root", "caller") for r in authz["rounds"][who][str(conns)]
    )


def render(info, cores, startup, running, authz, spawn_ms, args, durations):
    mib = lambda kib: f"{kib / 1024:.1f} MiB"
    names = ["berth", "moto", "nginx"]
    notes = {
        "berth": "verifies SigV4 and authorizes every request",
        "moto": "moto_server; does **not** verify signatures",
        "nginx": "`return 200` fixed body, `worker_processes 1`",
    }
    L = []
    L.append("# Benchmark results")
    L.append("")
    L.append("Generated by `./bench/run.sh` (run from the repository root); see `bench/README.md` for what is")
    L.append("measured and the caveats. Every number below comes from the one run described here.")
    L.append("")
    L.append("## Run")
    L.append("")
    L.append(f"- date: {info['date']}")
    L.append(f"- command: `{args.command}`")
    L.append(f"- machine: {info['nproc']} CPUs, {info['cpu']}, {info['mem_gib']} GiB RAM, Linux {info['kernel']}")
    if args.prebuilt_note is not None:
        note = f" ({args.prebuilt_note})" if args.prebuilt_note else ""
        L.append(
            f"- berth: prebuilt binary `{args.berth}` (BERTH_BIN){note}, `{info['berth_version']}`; "
            f"the repository's HEAD at run time: `{info['berth_commit']}`"
        )
    else:
        commit = args.build_commit or info["berth_commit"]
        dirty = args.build_dirty == "1" if args.build_commit else info["berth_dirty"]
        dirty_note = " with uncommitted changes under crates/ or Cargo.*" if dirty else ""
        L.append(
            f"- berth: built from the work tree at commit `{commit}`{dirty_note}, `{info['berth_version']}`, "
            f"release profile, {info['rustc']}"
        )
    L.append(f"- nginx: `{info['nginx']}` (Debian package)")
    L.append(f"- wrk: `{info['wrk']}` (Debian package)")
    L.append(f"- moto: {info['moto']} (`moto[server]`, pinned in `bench/requirements.txt`), Python {info['python']}")
    L.append(f"- signer: botocore {info['botocore']} `SigV4Auth`, service `sts` (sections 1–3) and `iam` (section 4), "
             f"region `{REGION}`; boto3 {info['boto3']} for section 4's setup")
    if cores["server"] is not None:
        L.append(
            f"- pinning: each server (and its children) on CPU {cores['server']}, the clients (startup poller, wrk) "
            f"on CPU {cores['client']}; berth's tokio runtime therefore sizes itself to one worker thread"
        )
    else:
        L.append("- pinning: none (fewer than 2 CPUs); servers and clients share the CPUs")
    L.append("")

    L.append("## 1. Startup: spawn to first HTTP 200 for a signed GetCallerIdentity")
    L.append("")
    n = startup["berth"]["n"]
    L.append(
        f"{n} starts each. The clock starts just before `Popen` and stops when the poller (raw sockets, "
        f"one new connection per attempt, retrying every {POLL_INTERVAL_S * 1000:.0f} ms) reads a 200. berth starts "
        f"with an existing data dir (created by an earlier start in the same run). 'port open' is the first accepted "
        f"TCP connection. Spawning and reaping `/bin/true` the same way takes {spawn_ms:.2f} ms (median), "
        f"included in every figure. 'CPU rest / steal': the machine's busy time (/proc/stat) during the phase "
        f"less this script's and the servers' own, and the time the hypervisor stole, in % of one core (a phase "
        f"where the rest exceeded {NOISY_PCT:.0f}% was repeated, at most {NOISY_TRIES} attempts; steal is shown but not "
        f"counted here, since in this mostly idle phase it mostly measures wake-up latency). "
        f"'SIGTERM outcome': each start is stopped with SIGTERM right after its first 200; how it ended."
    )
    L.append("")
    L.append("| server | median | p90 | min | max | port open (median) | CPU rest / steal | attempts | SIGTERM outcome | note |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for name in names:
        s = startup[name]
        L.append(
            f"| {name} | {s['median_ms']:.1f} ms | {s['p90_ms']:.1f} ms | {s['min_ms']:.1f} ms | {s['max_ms']:.1f} ms "
            f"| {s['listen_median_ms']:.1f} ms | {s['other_cpu_pct']:.0f}% / {s['steal_pct']:.0f}% | {s['attempts']} "
            f"| {stop_summary(s['stops'])} | {notes[name]} |"
        )
    L.append("")

    L.append("## 2. Idle memory")
    L.append("")
    L.append("VmRSS from `/proc/PID/status`, summed over the server's process tree, after start + one request + 2 s idle.")
    L.append("")
    L.append("| server | idle RSS | processes | threads | RSS after the wrk runs |")
    L.append("|---|---:|---|---:|---:|")
    for name in names:
        r = running[name]
        procs = ", ".join(f"{p['comm']} {mib(p['rss_kib'])}" for p in r["rss_processes"])
        L.append(f"| {name} | {mib(r['rss_kib'])} | {procs} | {r['threads']} | {mib(r['rss_after_load_kib'])} |")
    L.append("")

    L.append("## 3. Throughput and latency: one pre-signed GetCallerIdentity replayed by wrk")
    L.append("")
    L.append(
        f"`wrk -t1 -cN -d{durations['measure']}s --latency -s <server>.lua`, keep-alive, after a "
        f"{durations['warmup']} s warm-up at -c16. The Lua script sets the method, body and signed headers (Host, "
        "Content-Type, X-Amz-Date, Authorization; signed once per server port) and counts every non-200 answer. "
        "Before measuring, the replayed request was checked to answer 200 with an `<Arn>` on each server. "
        f"The three servers run at once and are measured in {args.rounds} interleaved rounds per concurrency "
        "(order rotated each round), because the host's speed drifts over minutes; req/s is the median over "
        "the rounds with the range, the latencies are those of the median round, failures are summed over "
        "all rounds, and the ratios in the targets are taken round by round. 'CPU' (of the median round) is "
        "in % of one core: the server's process tree, wrk, the rest of the machine (its busy time from "
        "/proc/stat less the server's and wrk's) and the time the hypervisor stole. A run where rest + steal "
        f"exceeded {NOISY_PCT:.0f}% of a core was repeated (at most {NOISY_TRIES} attempts; the least disturbed "
        "counts); 'runs' counts all attempts."
    )
    L.append("")
    L.append("| server | conns | req/s (median) | range | p50 | p75 | p90 | p99 | max | non-200 | socket errors "
             "| CPU server / wrk / rest / steal | runs |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ms = lambda us: f"{us / 1000:.2f} ms"
    for conns in args.connections:
        for name in names:
            w = running[name]["wrk"][str(conns)]
            lat = w["latency_us"]
            L.append(
                f"| {name} | {conns} | {w['rps_median']:,.0f} | {w['rps_min']:,.0f}–{w['rps_max']:,.0f} "
                f"| {ms(lat['p50'])} | {ms(lat['p75'])} | {ms(lat['p90'])} | {ms(lat['p99'])} | {ms(lat['max'])} "
                f"| {w['non200_total']} | {w['socket_errors_total']} "
                f"| {w['server_cpu_pct']:.0f}% / {w['wrk_cpu_pct']:.0f}% / {w['other_cpu_pct']:.0f}% / {w['steal_pct']:.0f}% "
                f"| {w['attempts_total']} |"
            )
    L.append("")
    for conns in args.connections:
        for name in names:
            w = running[name]["wrk"][str(conns)]
            if w["first_bad"]:
                L.append(
                    f"- {name} -c{conns}: {w['non200_total']} non-200 answers; first: HTTP {w['first_bad'][0]} "
                    f"`{w['first_bad'][1][:200]}`"
                )
    L.append("")

    L.extend(render_authz(authz, args, durations))

    noisy = [f"{n} startup ({noise(startup[n], steal=False):.0f}%: {startup[n]['other_cpu_top']})" for n in names
             if noise(startup[n], steal=False) > NOISY_PCT]
    noisy += [f"{n} -c{c} round {r['round']} ({noise(r):.0f}%: {r['other_cpu_top']})"
              for c in args.connections for n in names for r in running[n]["rounds"][str(c)] if noise(r) > NOISY_PCT]
    if not authz.get("error"):
        noisy += [f"GetUser as {who} -c{c} round {r['round']} ({noise(r):.0f}%: {r['other_cpu_top']})"
                  for c in args.connections for who in ("root", "caller") for r in authz["rounds"][who][str(c)]
                  if noise(r) > NOISY_PCT]
    if noisy:
        L.append(f"**Warning: the rest of the machine (in the load runs, with the hypervisor's steal) used more than {NOISY_PCT:.0f}% "
                 f"of a core during these measurements, even at their least disturbed of up to {NOISY_TRIES} "
                 f"attempts:** " + "; ".join(noisy)
                 + ". Those figures are disturbed; run again on a quiet machine.")
    else:
        L.append(f"The rest of the machine (in the load runs, with the hypervisor's steal) used at most {NOISY_PCT:.0f}% of a core "
                 f"during every measurement counted here ({info['other_cpu_before_pct']:.0f}% in the second before "
                 f"the run); a disturbed measurement is repeated, up to {NOISY_TRIES} attempts.")
    L.append("")
    L.append("## Targets (issues 2 and 3, section \"Benchmark\")")
    L.append("")
    L.append("| target | measured | result |")
    L.append("|---|---|---|")
    b = startup["berth"]
    L.append(
        f"| first answer within {TARGET_STARTUP_MS:.0f} ms of start (median of {n}) | median {b['median_ms']:.1f} ms "
        f"| {verdict(b['median_ms'] <= TARGET_STARTUP_MS)} |"
    )
    L.append(
        f"| first answer within {TARGET_STARTUP_MS:.0f} ms of start (p90 of {n}) | p90 {b['p90_ms']:.1f} ms "
        f"| {verdict(b['p90_ms'] <= TARGET_STARTUP_MS)} |"
    )
    rss = running["berth"]["rss_kib"]
    L.append(f"| idle RSS under {TARGET_RSS_MIB:.0f} MiB | {mib(rss)} | {verdict(rss < TARGET_RSS_MIB * 1024)} |")
    for conns in args.connections:
        bw = running["berth"]["wrk"][str(conns)]
        bfail = bw["non200_total"] + sum(
            r["errors"]["status"] + r["errors"]["connect"] + r["errors"]["read"] + r["errors"]["write"]
            + r["errors"]["timeout"]
            for r in running["berth"]["rounds"][str(conns)]
        )
        okf = "" if bfail == 0 else f"; {bfail} berth failures"
        for peer, target in (("nginx", TARGET_VS_NGINX), ("moto", TARGET_VS_MOTO)):
            ratios = paired_ratios(running, conns, peer)
            med = statistics.median(ratios)
            per = ", ".join(f"{x:.2f}" if x < 10 else f"{x:.0f}" for x in ratios)
            shown = f"{med:.2f}×" if med < 10 else f"{med:.0f}×"
            L.append(
                f"| throughput ≥ {target:g}× {peer}, -c{conns} | median {shown} (per round: {per}); "
                f"{bw['rps_median']:,.0f} vs {running[peer]['wrk'][str(conns)]['rps_median']:,.0f} req/s{okf} "
                f"| {verdict(med >= target and bfail == 0)} |"
            )
    for conns in args.connections:
        what = (f"authorization (issue 3): {AUTHZ_CALLER_USER} with a 20-statement policy ≥ {TARGET_AUTHZ_VS_ROOT:g}× "
                f"root, GetUser, -c{conns}")
        if authz.get("error"):
            L.append(f"| {what} | not measured: {authz['error'][:120]} | {verdict(False)} |")
            continue
        per, overall = authz_ratios(authz, conns)
        med = statistics.median(per)
        fails = authz_failures(authz, conns)
        okf = "" if fails == 0 else f"; {fails} failed requests"
        L.append(
            f"| {what} | median {med:.2f}× (per round: {', '.join(f'{x:.2f}' for x in per)}; overall {overall:.2f}×); "
            f"{authz['wrk']['caller'][str(conns)]['rps_median']:,.0f} vs {authz['wrk']['root'][str(conns)]['rps_median']:,.0f} "
            f"req/s{okf} | {verdict(med >= TARGET_AUTHZ_VS_ROOT and fails == 0)} |"
        )
    L.append("")
    obs = []
    bs = startup["berth"]["stops"]
    if bs["ignored"] or bs["default"]:
        what = []
        if bs["ignored"]:
            what.append(f"{bs['ignored']} ignored the signal and kept running (killed after {STARTUP_STOP_TIMEOUT_S:.0f} s)")
        if bs["default"]:
            what.append(f"{bs['default']} died on SIGTERM's default action, without a graceful shutdown")
        obs.append(
            f"berth, stopped with SIGTERM right after its first answer: of {n} starts, " + " and ".join(what)
            + ": a SIGTERM that arrives once berth answers requests is not handled gracefully (not a "
            "startup-time problem, but a shutdown one)."
        )
    for conns in args.connections:
        b, ng = running["berth"]["wrk"][str(conns)], running["nginx"]["wrk"][str(conns)]
        obs.append(
            f"-c{conns} (median rounds): berth used {b['server_cpu_pct']:.0f}% of its core for {b['rps']:,.0f} req/s "
            f"({1e6 * b['server_cpu_pct'] / 100 / b['rps']:.1f} µs of CPU per request); nginx "
            f"{ng['server_cpu_pct']:.0f}% for {ng['rps']:,.0f} ({1e6 * ng['server_cpu_pct'] / 100 / ng['rps']:.1f} µs), "
            f"with wrk at {ng['wrk_cpu_pct']:.0f}% of its core"
            + (" — against nginx, wrk is the bottleneck, so the real ceiling is higher" if ng["wrk_cpu_pct"] >= 90 else "")
            + "."
        )
    if not authz.get("error"):
        for conns in args.connections:
            r, c = authz["wrk"]["root"][str(conns)], authz["wrk"]["caller"][str(conns)]
            ur, uc = 1e6 * r["server_cpu_pct"] / 100 / r["rps"], 1e6 * c["server_cpu_pct"] / 100 / c["rps"]
            obs.append(
                f"GetUser -c{conns} (median rounds): berth spent {ur:.1f} µs of CPU per request signed by root and "
                f"{uc:.1f} µs per request signed by {AUTHZ_CALLER_USER} ({uc - ur:+.1f} µs: the caller's key lookup, "
                f"condition keys and the evaluation of its 20 statements; one round each, so noisy)."
            )
    if obs:
        L.append("## Observations")
        L.append("")
        L.extend(f"- {o}" for o in obs)
        L.append("")
    L.append("## Caveats")
    L.append("")
    L.append("- moto does not verify signatures (it accepts any), so it does less work per request than berth.")
    L.append("- nginx answers a fixed string without parsing the body or checking anything: it is the ceiling of")
    L.append("  this machine's HTTP path, not a peer.")
    L.append("- The machine has 2 CPUs: wrk and the server run side by side, one core each; wrk's own cost limits")
    L.append("  the ceiling it can measure.")
    L.append("- The wrk `response` callback (to count non-200s) makes wrk parse every body, for all three servers.")
    L.append("- The host's speed drifts over minutes (steal time, and contention the guest cannot see): compare")
    L.append("  the ratios of one run, not absolute req/s across runs.")
    L.append("- Raw numbers: `bench/out/results.json`; wrk and server logs: `bench/out/` (not committed).")
    L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--berth", required=True)
    ap.add_argument("--moto", required=True)
    ap.add_argument("--nginx", required=True)
    ap.add_argument("--wrk", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--command", default="./bench/run.sh", help="the command line, for the report")
    ap.add_argument("--prebuilt-note", default=None, help="set when --berth is a prebuilt binary (BERTH_BIN)")
    ap.add_argument("--build-commit", default=None, help="HEAD when berth was built")
    ap.add_argument("--build-dirty", default="0", help="1 if crates/ or Cargo.* had uncommitted changes at build time")
    ap.add_argument("--starts", type=int, default=20)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds per concurrency")
    ap.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",")], default=[16, 64])
    args = ap.parse_args()

    def on_signal(signum, frame):
        stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ncpu = len(os.sched_getaffinity(0))
    if ncpu >= 2:
        allowed = sorted(os.sched_getaffinity(0))
        cores = {"server": allowed[0], "client": allowed[1]}
        os.sched_setaffinity(0, {cores["client"]})
    else:
        cores = {"server": None, "client": None}
    durations = {"warmup": 2, "measure": args.duration}
    os.makedirs(args.out, exist_ok=True)

    _quiet_budget["left_s"] = QUIET_BUDGET_S
    quiet_before = wait_quiet(QUIET_PCT, QUIET_WAIT_S)
    log(f"    the machine used {quiet_before[0]:.0f}% of a core over 1 s before the run {quiet_before[1]}")
    berth, moto, nginx = make_servers(args)
    servers = {"berth": berth, "moto": moto, "nginx": nginx}
    try:
        log("\n==> Startup: spawn to first HTTP 200 (signed GetCallerIdentity)")
        # The first berth start creates the data dir; the measured starts find it existing.
        _, raw = signed_request(berth.port)
        p = spawn(berth.argv, berth.env, os.path.join(args.out, "berth-startup.log"), cores["server"])
        _, _, berth_body = wait_ready(p, berth.port, raw, READY_TIMEOUT_S["berth"], "berth")
        stop(p)
        log(f"    berth: data dir created in {os.path.join(args.out, 'berth-data')}")
        if "<Arn>" not in berth_body:
            raise RuntimeError(f"berth's GetCallerIdentity answer has no <Arn>: {berth_body[:400]}")
        # nginx answers with the very bytes berth answered, so the three send bodies of the same size.
        write_nginx_conf(nginx, berth_body)
        spawn_ms = spawn_baseline(args.starts, cores)
        log(f"    baseline: spawn + reap /bin/true, median {spawn_ms:.2f} ms")
        startup = {}
        for name in ("berth", "moto", "nginx"):
            tries = []
            for attempt in range(1, NOISY_TRIES + 1):
                wait_quiet(QUIET_PCT, QUIET_WAIT_S)
                all0, mach0, t0 = all_cpu_ticks(), machine_ticks(), time.monotonic()
                ours0 = rusage_total()
                r, _ = measure_startup(servers[name], args.starts, cores, args.out)
                elapsed = time.monotonic() - t0
                busy, steal = machine_pct(mach0, machine_ticks(), elapsed)
                ours = 100.0 * (rusage_total() - ours0) / elapsed  # this script and the servers it reaped
                r["other_cpu_pct"], r["steal_pct"] = max(0.0, busy - ours), steal
                _, r["other_cpu_top"] = other_cpu(all0, all_cpu_ticks(), {os.getpid()}, elapsed)
                tries.append(r)
                if noise(r, steal=False) <= NOISY_PCT:
                    break
                log(f"    {name}: startup disturbed ({noise(r, steal=False):.0f}% of a core elsewhere)")
            startup[name] = min(tries, key=lambda r: noise(r, steal=False))
            startup[name]["attempts"] = len(tries)

        log("\n==> Idle RSS, then throughput and latency with wrk")
        running, authz = measure_load(args, {n: servers[n] for n in ("nginx", "berth", "moto")}, cores, args.out,
                                      durations)
    finally:
        stop_all()

    info = machine_info(args)
    info["other_cpu_before_pct"] = quiet_before[0]
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"info": info, "cores": cores, "startup": startup, "running": running, "authz": authz,
                   "spawn_ms": spawn_ms}, f, indent=2)
    md = render(info, cores, startup, running, authz, spawn_ms, args, durations)
    # Sections 5 and 6 are written by ./bench/registry.sh and ./bench/ecs.sh: keep them.
    try:
        with open(args.results) as f:
            old = f.read()
        for name in ("registry-bench", "ecs-bench"):
            begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
            if begin in old and end in old:
                md = md.rstrip("\n") + "\n\n" + old[old.index(begin):old.index(end) + len(end)] + "\n"
    except FileNotFoundError:
        pass
    with open(args.results, "w") as f:
        f.write(md)
    log("\n==> Results (written to bench/RESULTS.md)\n")
    print(md)


if __name__ == "__main__":
    main()
