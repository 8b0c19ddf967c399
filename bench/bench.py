#!/usr/bin/env python3
"""healthd benchmark harness: measures healthd against real peers on loopback.

Run through `bench/run` (which builds healthd and installs the peers); see bench/README.md.
Standard library only. Every process it starts is stopped at exit; every loop is bounded in
count and time; all load goes to 127.0.0.1.
"""

import argparse
import atexit
import http.client
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTED = []  # every Proc we started, stopped at exit
TMP = None
ARGS = None


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def section(title):
    log(f"== {title} (loadavg {loadavg()})")
    LOADS.append((title, loadavg()))


LOADS = []

# --------------------------------------------------------------------------- /proc


def cpu_seconds(pid):
    """utime + stime of one process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def tree_cpu_seconds(pid):
    """CPU of a process and its children (nginx master + workers)."""
    total = cpu_seconds(pid)
    for c in children(pid):
        try:
            total += cpu_seconds(c)
        except OSError:
            pass
    return total


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


# --------------------------------------------------------------------------- processes


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Proc:
    def __init__(self, name, argv, term_twice=False):
        self.name = name
        self.term_twice = term_twice
        self.logpath = os.path.join(TMP, f"{name}.log")
        self.logf = open(self.logpath, "ab")
        self.t0 = time.perf_counter()
        self.p = subprocess.Popen(
            argv, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=raise_nofile,
        )
        self.pid = self.p.pid
        STARTED.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.alive():
            try:
                self.p.send_signal(signal.SIGTERM)
                if self.term_twice:  # healthd: the second signal skips the shutdown delay
                    time.sleep(0.05)
                    self.p.send_signal(signal.SIGTERM)
                try:
                    self.p.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    if self.term_twice:
                        self.p.send_signal(signal.SIGTERM)
                        try:
                            self.p.wait(timeout=2)
                        except subprocess.TimeoutExpired:
                            pass
                    if self.alive():
                        self.p.kill()
                        self.p.wait(timeout=5)
            except ProcessLookupError:
                pass
        self.logf.close()
        if self in STARTED:
            STARTED.remove(self)

    def tail(self, n=20):
        try:
            with open(self.logpath, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def stop_all():
    for p in list(reversed(STARTED)):
        try:
            p.stop()
        except Exception as e:  # keep stopping the others
            log(f"stopping {p.name}: {e}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_until(what, timeout, cond, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return True
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def status_of(port, path):
    try:
        return http_get(port, path, timeout=2)[0]
    except (OSError, http.client.HTTPException):
        return None


# --------------------------------------------------------------------------- peers we run


def start_nginx():
    d = os.path.join(TMP, f"nginx-{free_port()}")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
master_process on;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ default_type text/plain; return 200 "ok"; }}
    }}
}}
""")
    p = Proc("nginx", ["nginx", "-e", f"{d}/error.log", "-p", d, "-c", conf])
    p.port = port
    wait_until("nginx", 10, lambda: status_of(port, "/") == 200)
    return p


BLACKBOX_YML = """modules:
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
  dns_a:
    prober: dns
    timeout: 5s
    dns:
      query_name: www.bench.test
      query_type: A
      transport_protocol: udp
  grpc_plain:
    prober: grpc
    timeout: 5s
    grpc:
      tls: false
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""


def start_dnsmasq():
    """A DNS server answering www.bench.test from its own hosts file; never the system's."""
    d = os.path.join(TMP, f"dnsmasq-{free_port()}")
    os.makedirs(d, exist_ok=True)
    hosts = os.path.join(d, "hosts")
    with open(hosts, "w") as f:
        f.write("10.1.2.3 www.bench.test\n")
    port = free_port()
    p = Proc("dnsmasq", ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                         "--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces",
                         "--pid-file=", "--log-facility=/dev/null", "--local=/bench.test/",
                         "--user=root", "--cache-size=1000",
                         "--listen-address=127.0.0.1", f"--port={port}", f"--addn-hosts={hosts}"])
    p.port = port
    wait_until("dnsmasq", 10, lambda: socket.create_connection(("127.0.0.1", port)).close() or True)
    return p


def start_blackbox():
    port = free_port()
    conf = os.path.join(TMP, "blackbox.yml")
    with open(conf, "w") as f:
        f.write(BLACKBOX_YML)
    p = Proc("blackbox", ["prometheus-blackbox-exporter", f"--config.file={conf}",
                          f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"])
    p.port = port
    wait_until("blackbox_exporter", 10, lambda: status_of(port, "/metrics") == 200)
    return p


def start_node_exporter():
    port = free_port()
    p = Proc("node_exporter", ["prometheus-node-exporter",
                               f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"])
    p.port = port
    wait_until("node_exporter", 10, lambda: status_of(port, "/metrics") == 200)
    return p


def start_grpc_server():
    """The reference gRPC health server (Python grpcio-health-checking, from the venv
    scripts/python-venv makes), the whole server SERVING."""
    port = free_port()
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "it",
                          "support", "grpc_health_server.py")
    p = Proc("grpc-server", [ARGS.python, script, "--port", str(port), "--until-killed"])
    p.port = port
    wait_until("gRPC health server", 20,
               lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True)
    return p


def start_peer(mode, port):
    """A TCP peer we control: `hang` accepts and never answers, `accept` accepts and closes."""
    p = Proc(f"peer-{mode}-{port}", [sys.executable, os.path.abspath(__file__), "peer", mode,
                                     str(port)])
    p.port = port
    wait_until(f"{mode} peer", 10, lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True)
    return p


def peer_main(mode, port):
    raise_nofile()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select(timeout=1):
            if key.fileobj is ls:
                try:
                    conn, _ = ls.accept()
                except OSError:
                    continue
                if mode == "accept":
                    conn.close()
                else:
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
            else:
                conn = key.fileobj
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the prober gave up: forget the connection
                    sel.unregister(conn)
                    conn.close()


# --------------------------------------------------------------------------- healthd


def healthd_bin():
    return ARGS.healthd


def tcp_checks(n, port, interval, timeout, prefix="tcp", expect=None, threshold=None):
    out = []
    for i in range(n):
        s = (f'[[checks]]\nname = "{prefix}-{i:05d}"\nkind = "tcp"\nhost = "127.0.0.1"\n'
             f'port = {port}\ninterval = "{interval}"\ntimeout = "{timeout}"\n')
        if expect:
            s += f'expect = "{expect}"\n'
        if threshold:
            s += f"failure_threshold = {threshold}\n"
        out.append(s)
    return "\n".join(out)


def dns_checks(n, port, interval, timeout):
    return "\n".join(
        f'[[checks]]\nname = "dns-{i:05d}"\nkind = "dns"\nserver = "127.0.0.1:{port}"\n'
        f'query_name = "www.bench.test"\ninterval = "{interval}"\ntimeout = "{timeout}"\n'
        for i in range(n))
def grpc_checks(n, port, interval, timeout):
    return "\n".join(
        f'[[checks]]\nname = "grpc-{i:05d}"\nkind = "grpc"\nhost = "127.0.0.1"\nport = {port}\n'
        f'interval = "{interval}"\ntimeout = "{timeout}"\n' for i in range(n))


def http_checks(n, url, interval, timeout):
    return "\n".join(
        f'[[checks]]\nname = "http-{i:05d}"\nkind = "http"\nurl = "{url}"\n'
        f'interval = "{interval}"\ntimeout = "{timeout}"\n' for i in range(n))


SYSTEM_CHECKS = """[[checks]]
name = "cpu"
kind = "cpu"
critical = false

[[checks]]
name = "memory"
kind = "memory"

[[checks]]
name = "disk"
kind = "disk"
mounts = ["/"]
"""


def start_healthd(checks_toml, name="healthd", extra_main=""):
    port = free_port()
    d = tempfile.mkdtemp(dir=TMP, prefix=name + "-")
    os.makedirs(os.path.join(d, "probes.d"))
    main = os.path.join(d, "healthd.toml")
    with open(main, "w") as f:
        f.write('[server]\nshutdown_delay = "1s"\n' + extra_main + "\n")
    with open(os.path.join(d, "probes.d", "bench.toml"), "w") as f:
        f.write(checks_toml)
    p = Proc(name, [healthd_bin(), "--log-level", "error", "run", "--config", main,
                    "--probes-dir", os.path.join(d, "probes.d"), "--listen", f"127.0.0.1:{port}"],
             term_twice=True)
    p.port = port
    try:
        wait_until("healthd /livez", 20, lambda: (p.alive() or fail(p)) and status_of(port, "/livez") == 200)
    except RuntimeError:
        log(p.tail())
        raise
    return p


def fail(p):
    raise RuntimeError(f"{p.name} exited ({p.p.returncode}): {p.tail()}")


def wait_ready(p, timeout=30, want=200):
    wait_until(f"{p.name} /readyz {want}", timeout, lambda: status_of(p.port, "/readyz") == want, 0.1)


def metrics_text(port):
    st, body = http_get(port, "/metrics", timeout=60)
    if st != 200:
        raise RuntimeError(f"/metrics answered {st}")
    return body.decode()


def runs_total(text):
    n = 0.0
    for line in text.splitlines():
        if line.startswith("healthd_check_runs_total{"):
            n += float(line.rsplit(" ", 1)[1])
    return n


def lateness(text):
    """Cumulative lateness buckets {le: count} and the count."""
    buckets, count = {}, 0
    for line in text.splitlines():
        if line.startswith("healthd_scheduler_lateness_seconds_bucket{"):
            le = re.search(r'le="([^"]+)"', line).group(1)
            buckets[float(le)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("healthd_scheduler_lateness_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    return buckets, count


# --------------------------------------------------------------------------- load drivers


def parse_dur(v, unit):
    return float(v) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def wrk_cpu(pid, cpu, port, path, duration):
    """wrk, plus the server's CPU-seconds per request over the run (`cpu` reads them)."""
    c0 = cpu(pid)
    w = wrk(port, path, duration)
    w["cpu_us"] = (cpu(pid) - c0) / max(w["total"], 1) * 1e6
    return w


def wrk(port, path, duration, threads=2, conns=64):
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        lat[q] = parse_dur(m.group(1), m.group(2))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    non2xx = int(m.group(1)) if m else 0
    total = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in m.groups()) if m else 0
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"], "non2xx": non2xx,
            "total": total, "errors": errors}


class FastClient:
    """A minimal keep-alive HTTP/1.1 GET client on a raw socket (http.client costs too much
    CPU per request to drive 1,000 requests/s from Python)."""

    def __init__(self, port, timeout=10):
        self.port, self.timeout, self.s, self.buf = port, timeout, None, b""

    def connect(self):
        self.s = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        if self.s:
            self.s.close()
        self.s = None

    def _fill(self):
        chunk = self.s.recv(262144)
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def _take_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def get(self, path):
        """(status, body)"""
        if self.s is None:
            self.connect()
        self.s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        hdr = {}
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            hdr[k.strip().lower()] = v.strip()
        if b"content-length" in hdr:
            body = self._take(int(hdr[b"content-length"]))
        elif hdr.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while True:
                size = int(self._take_line().split(b";")[0], 16)
                if size == 0:
                    while self._take_line():
                        pass
                    break
                parts.append(self._take(size))
                self._take(2)
            body = b"".join(parts)
        else:
            raise ConnectionError("response without length")
        if hdr.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, body


def drive_main(port, path, rate, duration, threads, expect):
    """Subprocess driver: prints `done ok` and then the latencies."""
    check = (lambda body: expect.encode() in body) if expect else None
    done, ok, lat = _paced(int(port), lambda i: path, float(rate), float(duration),
                           int(threads), check)
    print(done, ok)
    print(" ".join(f"{x:.6f}" for x in lat))


def paced_get(port, path_fn, rate, duration, threads, check=None, procs=None):
    """GET at `rate` requests/s in total for `duration` s; above 200/s the load is spread over
    driver subprocesses (each with `threads` keep-alive connections) so that Python's lock
    does not cap the rate. Requests that fall behind are skipped, never made up.
    Returns (done, ok, latencies)."""
    if procs is None:
        procs = 1 if rate <= 200 else 3
    if procs == 1:
        return _paced(port, path_fn, rate, duration, threads, check)
    path = path_fn(0)
    expect = "probe_success 1" if check is not None else ""
    ps = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "drive", str(port), path,
                            str(rate / procs), str(duration), str(threads), expect],
                           stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    done = ok = 0
    lat = []
    for p in ps:
        out, _ = p.communicate(timeout=duration + 60)
        first, _, rest = out.partition("\n")
        d, o = first.split()
        done += int(d)
        ok += int(o)
        lat += [float(x) for x in rest.split()]
    return done, ok, lat


def _paced(port, path_fn, rate, duration, threads, check=None):
    end = time.monotonic() + duration
    period = threads / rate
    lock = threading.Lock()
    res = {"done": 0, "ok": 0, "lat": []}

    def worker(k):
        conn = FastClient(port)
        nxt = time.monotonic() + k * period / threads
        i = k
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if nxt > now:
                time.sleep(nxt - now)
                if time.monotonic() >= end:
                    break
            nxt += period
            if nxt < time.monotonic() - period:  # behind: skip, do not burst
                nxt = time.monotonic()
            t = time.perf_counter()
            try:
                status, body = conn.get(path_fn(i))
                good = status == 200 and (check is None or check(body))
            except (OSError, ValueError, IndexError):
                conn.close()
                good = False
            dt = time.perf_counter() - t
            i += threads
            with lock:
                res["done"] += 1
                res["ok"] += good
                res["lat"].append(dt)
        conn.close()

    ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(duration + 30)
    return res["done"], res["ok"], res["lat"]


def quantile(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(q * len(xs)))]


# --------------------------------------------------------------------------- results


class Fig:
    """One row: the healthd figure and the peer's, each a list of per-round values."""

    def __init__(self, name, unit, h, p=None, target=None, met=None, fmt="{:.3g}", note=""):
        self.name, self.unit, self.h, self.p = name, unit, h, p
        self.target, self.met, self.fmt, self.note = target, met, fmt, note

    @staticmethod
    def med(xs):
        return statistics.median(xs) if xs else None

    def cell(self, xs):
        if xs is None:
            return "—"
        if isinstance(xs, str):
            return xs
        m = self.med(xs)
        s = self.fmt.format(m) + (f" {self.unit}" if self.unit else "")
        if len(xs) > 1:
            s += f" ({self.fmt.format(min(xs))}–{self.fmt.format(max(xs))})"
        return s

    def ratio(self):
        if not isinstance(self.h, list) or not isinstance(self.p, list) or not self.h or not self.p:
            return None
        pm = self.med(self.p)
        return self.med(self.h) / pm if pm else None

    def row(self):
        r = self.ratio()
        met = "—" if self.met is None else ("yes" if self.met(self) else "NO")
        return [self.name, self.cell(self.h), self.cell(self.p),
                "—" if r is None else f"{r:.2f}×", self.target or "—", met]


FIGS = []


def add(*a, **kw):
    f = Fig(*a, **kw)
    FIGS.append(f)
    log("  " + " | ".join(f.row()))
    return f


def print_table():
    head = ["figure", "healthd", "peer", "ratio", "target", "met?"]
    rows = [f.row() for f in FIGS]
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]
    line = lambda cols: "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(cols)) + " |"
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    notes = [f"- {f.name}: {f.note}" for f in FIGS if f.note]
    text = "\n".join(out)
    if notes:
        text += "\n\nNotes:\n" + "\n".join(notes)
    text += "\n\nLoad average (1/5/15 min) at the start of each section:\n"
    text += "\n".join(f"- {t}: {l}" for t, l in LOADS)
    return text


# --------------------------------------------------------------------------- figures


def fig_verdict(R, D):
    section("1. verdict serving")
    nginx = start_nginx()
    # Each healthd run is paired with an nginx run just before it: this machine's speed
    # changes in spells of a minute or so (both servers read about 6.1 or about 7.6 µs per
    # request, whichever spell they fall in), and a peer measured minutes earlier is not
    # the same machine. (healthd's checks probe nginx meanwhile: about 100 connections a
    # second, a thousandth of nginx's work under wrk.)
    res = {k: [] for k in ("h10", "h100", "h1000", "hang")}
    peer = {k: [] for k in res}

    def paired(key, h):
        for r in range(R):
            peer[key].append(wrk_cpu(nginx.pid, tree_cpu_seconds, nginx.port, "/", D))
            res[key].append(wrk_cpu(h.pid, cpu_seconds, h.port, "/readyz", D))

    h = start_healthd(SYSTEM_CHECKS + tcp_checks(7, nginx.port, "1s", "500ms"), "healthd-10")
    wait_ready(h)
    paired("h10", h)
    h.stop()
    h = start_healthd(tcp_checks(100, nginx.port, "1s", "500ms"), "healthd-100")
    wait_ready(h)
    paired("h100", h)
    h.stop()
    h = start_healthd(tcp_checks(1000, nginx.port, "10s", "2s"), "healthd-1000")
    wait_ready(h)
    paired("h1000", h)
    h.stop()
    hang = start_peer("hang", free_port())
    h = start_healthd(tcp_checks(1000, hang.port, "5s", "2s", expect="never-sent", threshold=1),
                      "healthd-hang")
    wait_ready(h, timeout=30, want=503)  # every check has timed out once
    paired("hang", h)
    h.stop()
    hang.stop()
    nginx.stop()
    for key, label in (("h10", "10 checks"), ("h100", "100 TCP checks @1 s"), ("h1000", "1,000 checks"),
                       ("hang", "1,000 hanging checks")):
        x, n = res[key], peer[key]
        pairs = sorted(a["cpu_us"] / b["cpu_us"] for a, b in zip(x, n))
        codes = "all 503 (unhealthy)" if key == "hang" else "all 200"
        bad = sum(w["non2xx"] for w in x) if key != "hang" else sum(w["total"] - w["non2xx"] for w in x)
        add(f"/readyz req/s, {label}", "", [w["rps"] for w in x], [w["rps"] for w in n],
            "≥ 0.8× nginx", lambda f: f.ratio() >= 0.8, fmt="{:.0f}",
            note=(f"wrk -t2 -c64 -d{D}s --latency; peer = nginx `return 200 \"ok\"`; answers {codes}"
                  f" ({bad} otherwise, {sum(w['errors'] for w in x)} socket errors)"
                  if key != "h10" else f"wrk -t2 -c64 -d{D}s --latency; peer = nginx `return 200 \"ok\"`"))
        add(f"/readyz p50, {label}", "ms", [w["p50"] * 1e3 for w in x],
            [w["p50"] * 1e3 for w in n], fmt="{:.2f}")
        add(f"/readyz p99, {label}", "ms", [w["p99"] * 1e3 for w in x],
            [w["p99"] * 1e3 for w in n], "< 2 ms", lambda f: f.med(f.h) < 2.0, fmt="{:.2f}")
        add(f"/readyz CPU per request, {label}", "µs", [w["cpu_us"] for w in x],
            [w["cpu_us"] for w in n], fmt="{:.1f}",
            note=("server CPU (utime+stime; nginx master and workers) over the wrk run / requests; "
                  if key == "h10" else "")
            + "ratios of the pairs (nginx run just before): " + ", ".join(f"{q:.2f}" for q in pairs))


# Per kind: blackbox_exporter's module, and the share of blackbox's CPU healthd may use.
PROBE_KINDS = {"tcp": ("tcp_connect", 0.25), "http": ("http_2xx", 0.5), "grpc": ("grpc_plain", 0.3),
               "dns": ("dns_a", 0.3)}


def fig_probe_cost(R, D):
    section("2. cost per probe")
    nginx = start_nginx()
    grpc = start_grpc_server()
    target = f"127.0.0.1:{nginx.port}"
    dns = start_dnsmasq()
    wanted = ARGS.kinds.split(",")
    runs = [(k, v, rate) for k, v in PROBE_KINDS.items() if k in wanted
            for rate in ((1000, 100) if k == "tcp" else (1000,))]
    for kind, (module, share), rate in runs:
        # 100 checks: every 100 ms for 1,000 probes/s, every 1 s for 100/s (fixed costs show).
        every, timeout = ("100ms", "90ms") if rate == 1000 else ("1s", "900ms")
        h_cost, b_cost, h_rate, b_rate, b_ok = [], [], [], [], []
        for r in range(R):
            checks = {"tcp": lambda: tcp_checks(100, nginx.port, every, timeout),
                      "http": lambda: http_checks(100, f"http://{target}/", every, timeout),
                      "dns": lambda: dns_checks(100, dns.port, every, timeout),
                      "grpc": lambda: grpc_checks(100, grpc.port, every, timeout)}[kind]()
            h = start_healthd(checks, f"healthd-{kind}-cost")
            wait_ready(h)
            time.sleep(1.5)  # past the first-run burst and the phase reset
            r0 = runs_total(metrics_text(h.port))
            c0, t0 = cpu_seconds(h.pid), time.monotonic()
            time.sleep(D)
            c1, t1 = cpu_seconds(h.pid), time.monotonic()
            r1 = runs_total(metrics_text(h.port))
            h.stop()
            h_cost.append((c1 - c0) / (r1 - r0) * 1000)
            h_rate.append((r1 - r0) / (t1 - t0))

            b = start_blackbox()
            tgt = {"tcp": target, "http": f"http://{target}/", "dns": f"127.0.0.1:{dns.port}",
                   "grpc": f"127.0.0.1:{grpc.port}"}[kind]
            path = f"/probe?module={module}&target={tgt}"
            paced_get(b.port, lambda i: path, rate, 1.0, 8)  # warm-up
            c0 = cpu_seconds(b.pid)
            done, ok, _ = paced_get(b.port, lambda i: path, rate, D, 8,
                                    check=lambda body: b"probe_success 1" in body)
            c1 = cpu_seconds(b.pid)
            b.stop()
            b_cost.append((c1 - c0) / done * 1000)
            b_rate.append(done / D)
            b_ok.append(ok / max(done, 1))
        peer = {"grpc": "the Python grpcio-health-checking server",
                "dns": "a dnsmasq on loopback (A www.bench.test over UDP)"}.get(kind, "nginx")
        at = "" if rate == 1000 else f" at {rate}/s"
        add(f"CPU per 1,000 {kind.upper() if kind != 'grpc' else 'gRPC'} probes{at}", "CPU-s",
            h_cost, b_cost, f"≤ {share}× blackbox",
            lambda f, share=share: f.ratio() <= share, fmt="{:.3f}",
            note=(f"healthd: 100 checks every {every} for {D}s, runs counted from "
                  f"healthd_check_runs_total ({statistics.median(h_rate):.0f} runs/s); blackbox: "
                  f"/probe?module={module} paced at {rate:,}/s "
                  f"from {3 if rate > 200 else 1} driver process(es) × 8 keep-alive connections "
                  f"({statistics.median(b_rate):.0f}/s reached, "
                  f"{min(b_ok) * 100:.1f}% probe_success); target is {peer}; CPU = utime+stime from /proc"))
    dns.stop()
    grpc.stop()
    nginx.stop()


def fig_memory(R, D):
    section("3. memory")
    nginx = start_nginx()
    for n in (10, 1000):
        hw, bw = [], []
        for r in range(R):
            h = start_healthd(tcp_checks(n, nginx.port, "10s", "2s"), f"healthd-mem-{n}")
            wait_ready(h)
            time.sleep(D)
            hw.append(status_kib(h.pid, "VmHWM") / 1024)
            h.stop()
            b = start_blackbox()
            paced_get(b.port, lambda i: f"/probe?module=tcp_connect&target=127.0.0.1:{nginx.port}",
                      n / 10, D + 1.0, 4 if n > 10 else 1)
            bw.append(status_kib(b.pid, "VmHWM") / 1024)
            b.stop()
        add(f"peak RSS, {n:,} TCP checks", "MiB", hw, bw, "≤ 0.5× blackbox",
            lambda f: f.ratio() <= 0.5, fmt="{:.1f}",
            note=(f"VmHWM after start-up and {D}s of running, checks every 10 s "
                  f"({n / 10:g} probes/s); blackbox driven at the same rate for the same time; "
                  "no /metrics scrape before the reading"))
    # HTTP checks: each builds its own client (and TLS verifier), unlike TCP checks.
    hw, bw = [], []
    for r in range(R):
        h = start_healthd(http_checks(1000, f"http://127.0.0.1:{nginx.port}/", "10s", "2s"),
                          "healthd-mem-http")
        wait_ready(h, timeout=60)
        time.sleep(D)
        hw.append(status_kib(h.pid, "VmHWM") / 1024)
        h.stop()
        b = start_blackbox()
        paced_get(b.port, lambda i: f"/probe?module=http_2xx&target=http://127.0.0.1:{nginx.port}/",
                  100, D + 1.0, 4)
        bw.append(status_kib(b.pid, "VmHWM") / 1024)
        b.stop()
    add("peak RSS, 1,000 HTTP checks", "MiB", hw, bw, "≤ 0.5× blackbox",
        lambda f: f.ratio() <= 0.5, fmt="{:.1f}",
        note=f"as above, HTTP checks of nginx every 10 s (100 probes/s) vs blackbox http_2xx at 100/s")
    nginx.stop()
    ne = []
    for r in range(R):
        node = start_node_exporter()
        time.sleep(2)
        ne.append(status_kib(node.pid, "VmHWM") / 1024)
        node.stop()
    return nginx, ne


def fig_scale(R, D, node_idle):
    section("4. scale: 10,000 TCP checks every 10 s")
    nginx = start_nginx()
    share, hwm, hwm_scraped, p50, p99, late_pcts, late_over, rates = [], [], [], [], [], [], [], []
    b_hwm = []
    dist = None
    for r in range(R):
        h = start_healthd(tcp_checks(10000, nginx.port, "10s", "2s"), "healthd-10k")
        wait_ready(h, timeout=60)
        time.sleep(11)  # one full interval after the first runs
        hwm.append(status_kib(h.pid, "VmHWM") / 1024)
        m0 = metrics_text(h.port)
        c0, t0 = cpu_seconds(h.pid), time.monotonic()
        _, _, lat = paced_get(h.port, lambda i: "/readyz", 20, D, 1)
        c1, t1 = cpu_seconds(h.pid), time.monotonic()
        m1 = metrics_text(h.port)
        hwm_scraped.append(status_kib(h.pid, "VmHWM") / 1024)
        h.stop()
        share.append((c1 - c0) / (t1 - t0) * 100)
        rates.append((runs_total(m1) - runs_total(m0)) / (t1 - t0))
        p50.append(quantile(lat, 0.5) * 1e3)
        p99.append(quantile(lat, 0.99) * 1e3)
        (b0, n0), (b1, n1) = lateness(m0), lateness(m1)
        delta = {le: b1[le] - b0.get(le, 0) for le in b1}
        n = n1 - n0
        over = n - delta.get(1.0, 0)
        late_over.append(over)
        dist = (delta, n)
        # the lateness bucket that holds the 50th/99th/100th percentile run
        les = sorted(delta)

        def q_le(q):
            for le in les:
                if delta[le] >= q * n:
                    return le
            return float("inf")
        late_pcts.append((q_le(0.5), q_le(0.99), q_le(1.0)))
        # blackbox at the same rate, same duration
        b = start_blackbox()
        paced_get(b.port, lambda i: f"/probe?module=tcp_connect&target=127.0.0.1:{nginx.port}",
                  1000, D + 11.0, 8)
        b_hwm.append(status_kib(b.pid, "VmHWM") / 1024)
        b.stop()
    nginx.stop()
    add("peak RSS, 10,000 TCP checks", "MiB", hwm, b_hwm, "≤ 0.5× blackbox, ≤ 64 MiB",
        lambda f: f.ratio() <= 0.5 and f.med(f.h) <= 64, fmt="{:.1f}",
        note=(f"VmHWM after start-up and one interval, before any /metrics scrape; "
              f"after two /metrics scrapes of 10,000 checks: "
              f"{statistics.median(hwm_scraped):.1f} MiB; blackbox paced at 1,000 /probe/s"))
    add("peak RSS vs node_exporter idle (10 checks)", "MiB", MEM10, node_idle, fmt="{:.1f}",
        note="healthd with 10 TCP checks vs node_exporter idle (VmHWM 2 s after start)")
    add("10,000 checks: CPU share of one core", "%", share, None, "≤ 25%",
        lambda f: f.med(f.h) <= 25, fmt="{:.1f}",
        note=(f"utime+stime over {D}s / wall; {statistics.median(rates):.0f} runs/s counted; "
              "/readyz sampled 20 times/s meanwhile"))
    add("10,000 checks: /readyz p50 meanwhile", "ms", p50, None, fmt="{:.2f}")
    add("10,000 checks: /readyz p99 meanwhile", "ms", p99, None, "< 2 ms",
        lambda f: f.med(f.h) < 2.0, fmt="{:.2f}",
        note="client-side (a raw-socket keep-alive client in Python), 20 requests/s")
    fmt_le = lambda x: "≤ " + (f"{x * 1e3:g} ms" if x < 1 else f"{x:g} s") if x != float("inf") else "> 10 s"
    add("10,000 checks: runs late > 1 s (10% of interval)", "", late_over, None, "0",
        lambda f: max(f.h) == 0, fmt="{:.0f}",
        note=("lateness (from healthd_scheduler_lateness_seconds over the window): "
              + "; ".join(f"round {i + 1}: p50 {fmt_le(a)}, p99 {fmt_le(b)}, max {fmt_le(c)}"
                          for i, (a, b, c) in enumerate(late_pcts))))


MEM10 = []


# What Prometheus 2.x sends with every scrape (scrape/scrape.go): it prefers OpenMetrics and
# always accepts gzip.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
              "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


def scrape_cost(port, pid, seconds, max_n=5000, headers=None):
    """Sequential scrapes on one keep-alive connection for `seconds` (at most `max_n`):
    (CPU-seconds of the daemon per scrape, median latency, body size on the wire, scrapes)."""
    cpu = cpu_seconds
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat, size = [], 0
    c0 = cpu(pid)
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(lat) < max_n:
        t = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        lat.append(time.perf_counter() - t)
        size = len(body)
    c1 = cpu(pid)
    conn.close()
    return (c1 - c0) / len(lat), statistics.median(lat), size, len(lat)


def fig_scrape(R, N):
    """Scrapes without headers (the issue's figure), then 1,000 checks scraped as Prometheus
    asks (OpenMetrics preferred, gzip), each side by side with node_exporter asked the same."""
    section("5. scrape cost")
    nginx = start_nginx()

    def node_cost(headers):
        cpu, lat = [], []
        for r in range(R):
            node = start_node_exporter()
            scrape_cost(node.port, node.pid, 0.2, headers=headers)
            c, l, size, n = scrape_cost(node.port, node.pid, N, headers=headers)
            cpu.append(c * 1e3)
            lat.append(l * 1e3)
            node.stop()
        return cpu, lat, size, n

    plain = node_cost(None)
    for n, checks, headers, how in (
            (10, SYSTEM_CHECKS + tcp_checks(7, nginx.port, "1s", "500ms"), None, ""),
            (1000, tcp_checks(1000, nginx.port, "10s", "2s"), None, ""),
            (1000, tcp_checks(1000, nginx.port, "10s", "2s"), PROMETHEUS_HEADERS,
             ", as Prometheus asks (gzip)")):
        node_cpu, node_lat, node_size, node_n = node_cost(headers) if headers else plain
        hc, hl = [], []
        for r in range(R):
            h = start_healthd(checks, f"healthd-scrape-{n}")
            wait_ready(h)
            scrape_cost(h.port, h.pid, 0.2, headers=headers)
            c, l, size, h_n = scrape_cost(h.port, h.pid, N, headers=headers)
            hc.append(c * 1e3)
            hl.append(l * 1e3)
            h.stop()
        add(f"/metrics CPU per scrape, {n:,} checks{how}", "ms", hc, node_cpu,
            "≤ 0.1× node_exporter", lambda f: f.ratio() <= 0.1, fmt="{:.3f}",
            note=(f"sequential scrapes on one keep-alive connection for {N} s ({h_n} for healthd, "
                  f"{node_n} for node_exporter in the last round); healthd body "
                  f"{size / 1024:.0f} KiB, node_exporter body {node_size / 1024:.0f} KiB"
                  + (" on the wire; headers: " + "; ".join(f"{k}: {v}" for k, v in headers.items())
                     if headers else "")))
        add(f"/metrics latency, {n:,} checks{how}", "ms", hl, node_lat, fmt="{:.2f}")
    nginx.stop()


def fig_startup(R):
    section("6. start-up")
    nginx = start_nginx()
    d = tempfile.mkdtemp(dir=TMP, prefix="startup-")
    os.makedirs(os.path.join(d, "probes.d"))
    main = os.path.join(d, "healthd.toml")
    with open(main, "w") as f:
        f.write('[server]\nshutdown_delay = "1s"\n')
    with open(os.path.join(d, "probes.d", "bench.toml"), "w") as f:
        f.write(SYSTEM_CHECKS + tcp_checks(7, nginx.port, "1s", "500ms"))
    times = []
    req = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    for r in range(R):
        port = free_port()
        argv = [healthd_bin(), "--log-level", "error", "run", "--config", main, "--probes-dir",
                os.path.join(d, "probes.d"), "--listen", f"127.0.0.1:{port}"]
        p = Proc("healthd-startup", argv, term_twice=True)
        t0 = p.t0
        deadline = t0 + 10
        got = None
        while time.perf_counter() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(req)
                    line = s.recv(64)
                    if line.startswith(b"HTTP/1.1 200"):
                        got = time.perf_counter() - t0
                        break
            except OSError:
                pass
            time.sleep(0.0005)
        p.stop()
        if got is None:
            raise RuntimeError("healthd never answered /livez 200: " + p.tail())
        times.append(got * 1e3)
    nginx.stop()
    add("start-up: exec → first /livez 200", "ms", times, None, "≤ 50 ms",
        lambda f: f.med(f.h) <= 50, fmt="{:.1f}",
        note="10 checks; timed from just before fork/exec, polling every 0.5 ms")
    # The release binary keeps its symbol table (for scripts/symbol-order; never loaded):
    # measured as packaged, stripped.
    stripped = os.path.join(TMP, "healthd.stripped")
    subprocess.run(["strip", "-o", stripped, healthd_bin()], check=True)
    size = os.path.getsize(stripped) / 1024 / 1024
    bb = shutil.which("prometheus-blackbox-exporter")
    bsize = os.path.getsize(os.path.realpath(bb)) / 1024 / 1024
    add("binary size (stripped)", "MiB", [size], [bsize], fmt="{:.1f}",
        note="peer: Debian's prometheus-blackbox-exporter binary (Go)")


def fig_detection(R):
    section("7. detection")
    port = free_port()
    interval, timeout, threshold = 1.0, 0.5, 3
    checks = (f'[[checks]]\nname = "dep"\nkind = "tcp"\nhost = "127.0.0.1"\nport = {port}\n'
              f'interval = "1s"\ntimeout = "500ms"\nfailure_threshold = {threshold}\n'
              f'success_threshold = 1\n')
    peer = start_peer("accept", port)
    h = start_healthd(checks, "healthd-detect")
    wait_ready(h)
    down, up = [], []

    def time_to(want, limit):
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            if status_of(h.port, "/readyz") == want:
                return time.monotonic() - t0
            time.sleep(0.01)
        raise RuntimeError(f"/readyz never turned {want} within {limit}s")

    for r in range(R):
        time.sleep(0.3)
        peer.stop()
        down.append(time_to(503, 20))
        peer = start_peer("accept", port)
        up.append(time_to(200, 20))
    h.stop()
    peer.stop()
    bound_down = (interval + timeout) * threshold
    bound_up = (interval + timeout) * 1
    add("detection: dependency down → /readyz 503", "s", down, None,
        f"≤ {bound_down:g} s", lambda f: max(f.h) <= bound_down, fmt="{:.2f}",
        note=("a TCP listener we stop and restart; interval 1 s, timeout 500 ms, "
              "failure_threshold 3, success_threshold 1; /readyz polled every 10 ms"))
    add("detection: dependency back → /readyz 200", "s", up, None,
        f"≤ {bound_up:g} s", lambda f: max(f.h) <= bound_up, fmt="{:.2f}")


def fig_history(R, D, big):
    """8. The history store's cost: CPU per 1,000 results written, RSS on vs off, disk."""
    section("9. history store")
    nginx = start_nginx()
    on, off = [], []
    for r in range(R):
        for hist, out in ((True, on), (False, off)):
            extra = (f'[history]\npath = "{TMP}/cpu-{r}.db"\n' if hist
                     else "[history]\nenabled = false\n")
            h = start_healthd(tcp_checks(100, nginx.port, "100ms", "90ms"),
                              f"healthd-hist-{'on' if hist else 'off'}", extra)
            wait_ready(h)
            time.sleep(1.5)
            r0 = runs_total(metrics_text(h.port))
            c0 = cpu_seconds(h.pid)
            time.sleep(D)
            c1 = cpu_seconds(h.pid)
            r1 = runs_total(metrics_text(h.port))
            h.stop()
            out.append((c1 - c0) / (r1 - r0) * 1000)
    add("CPU per 1,000 TCP probes, history on (file)", "CPU-s", on, off, "≤ 1.2× history off",
        lambda f: f.ratio() <= 1.2, fmt="{:.3f}",
        note=(f"100 TCP checks every 100 ms for {D}s, history in a file (one commit a second) "
              "vs [history] enabled = false; the peer column is history off; the extra CPU per "
              "1,000 results written is the difference"))
    add("extra CPU per 1,000 results written", "CPU-s",
        [a - b for a, b in zip(on, off)], None, fmt="{:.3f}")
    sizes = {}
    for n in (1000, 10000) if big else (1000,):
        hon, hoff, hmem = [], [], []
        for r in range(R):
            for hist, out in ((True, hon), (False, hoff), (None, hmem)):
                path = f"{TMP}/rss-{n}-{r}.db"
                extra = ("" if hist is None  # the default: history in memory
                         else f'[history]\npath = "{path}"\n' if hist
                         else "[history]\nenabled = false\n")
                h = start_healthd(tcp_checks(n, nginx.port, "10s", "2s"),
                                  f"healthd-hist-rss-{n}", extra)
                wait_ready(h, timeout=120)
                time.sleep(D)
                out.append(status_kib(h.pid, "VmHWM") / 1024)
                h.stop()
                if hist:
                    sizes.setdefault(n, []).append(os.path.getsize(path) / n)
        add(f"peak RSS, {n:,} TCP checks, history on", "MiB", hon, hoff, "≤ 1.1× history off",
            lambda f: f.ratio() <= 1.1, fmt="{:.1f}",
            note=(f"VmHWM after {D}s of checks every 10 s, history in a file vs "
                  "[history] enabled = false (the peer column)"))
        add(f"peak RSS, {n:,} TCP checks, history in memory", "MiB", hmem, hoff, fmt="{:.1f}",
            note="the default (no [history] path) vs [history] enabled = false (the peer column)")
    for n, v in sizes.items():
        add(f"store file per check after {D}s, {n:,} checks", "bytes", v, None, fmt="{:.0f}",
            note="redb file size / checks; the steady state after 400 days is measured by "
                 "`cargo test --test it four_hundred_days -- --nocapture`")
    nginx.stop()


# Every figure's number; `--only` picks some.
FIGURES = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]


def figures_of(only):
    """`--only` as a set of figure numbers: comma-separated ("1,5,12"); without commas a
    known figure number ("12") is that figure, anything else one figure per digit ("15")."""
    if not only:
        return set(FIGURES)
    if "," in only or only in FIGURES:
        picked = {f.strip() for f in only.split(",") if f.strip()}
    else:
        picked = set(only)
    unknown = picked - set(FIGURES)
    if unknown:
        sys.exit(f"--only: no figure {', '.join(sorted(unknown))} (figures: {', '.join(FIGURES)})")
    return picked


def main():
    global TMP, ARGS
    if len(sys.argv) >= 2 and sys.argv[1] == "peer":
        peer_main(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) >= 2 and sys.argv[1] == "drive":
        drive_main(*sys.argv[2:8])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--healthd", required=True)
    ap.add_argument("--only", default=None,
                    help="figures to run: 1,5,12 (or 15 for 1 and 5; a known number such as 12 is that figure)")
    ap.add_argument("--kinds", default="tcp,http,grpc,dns", help="probe kinds of figure 2, e.g. dns")
    ap.add_argument("--python", default=sys.executable,
                    help="a Python with grpcio-health-checking (scripts/python-venv) for figure 2")
    ARGS = ap.parse_args()
    ARGS.only = figures_of(ARGS.only)
    raise_nofile()
    TMP = tempfile.mkdtemp(prefix="healthd-bench-")
    atexit.register(lambda: shutil.rmtree(TMP, ignore_errors=True))
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    q = ARGS.quick
    R = 1 if q else 3
    log(f"{'quick' if q else 'full'} run, {R} round(s) per figure, temp dir {TMP}")
    started = time.monotonic()
    node_idle = []
    try:
        if "1" in ARGS.only:
            fig_verdict(R, 1 if q else 10)
        if "2" in ARGS.only:
            fig_probe_cost(R, 2 if q else 15)
        if "3" in ARGS.only or "4" in ARGS.only:
            _, node_idle = fig_memory(R, 0.5 if q else 10)
            MEM10.extend(FIGS[-3].h)
        if "4" in ARGS.only and not q:
            fig_scale(R, 30, node_idle)
        elif "4" in ARGS.only:
            add("peak RSS vs node_exporter idle (10 checks)", "MiB", MEM10, node_idle, fmt="{:.1f}")
        if "5" in ARGS.only:
            fig_scrape(R, 1 if q else 5)
        if "6" in ARGS.only:
            fig_startup(2 if q else 7)
        if "7" in ARGS.only:
            fig_detection(R)
        if "8" in ARGS.only:
            import host_metrics
            host_metrics.fig_host(sys.modules[__name__], R, 10 if q else 30)
        if "9" in ARGS.only:
            fig_history(R, 5 if q else 30, not q or ARGS.only == {"9"})
        if "12" in ARGS.only:
            import idle
            idle.fig_idle(sys.modules[__name__], R, 10 if q else 30)
        if "11" in ARGS.only and not q:
            import scale
            scale.fig_100k(sys.modules[__name__], 1)
        if "10" in ARGS.only:
            import flood
            flood.fig_flood(sys.modules[__name__], R, 6 if q else 20)
    finally:
        stop_all()
    log(f"done in {time.monotonic() - started:.0f}s")
    print(print_table())


if __name__ == "__main__":
    main()
