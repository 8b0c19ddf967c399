"""Figure 10 of bench/bench.py: the verdicts under a heavy flood.

healthd with 1,000 TCP checks (every 10 s, against nginx) while 1,000 concurrent keep-alive
clients hammer `/health` (500, one wrk) and `/metrics` (500, another wrk) as fast as they are
answered. Meanwhile a prober opens a fresh connection per request, as kubelet does, and asks
`/livez` and `/readyz` in turn every 20 ms: their latency (connect to last byte, measured in
this Python process, on the same loaded machine) and every answer that is not `200 ok`. The
heavy answers are 200 or `503` shed at once (`healthd_http_shed_total`).
"""

import socket
import threading
import time


def probe_once(port, path):
    """Seconds from connect to the end of the answer, and the status code (0: no answer)."""
    t0 = time.perf_counter()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: healthd\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        code = int(head.split(b" ", 2)[1]) if head else 0
        if code == 200 and body != b"ok\n":
            code = -200
    except OSError:
        code = 0
    return time.perf_counter() - t0, code


def shed_counts(b, port):
    st, body = b.http_get(port, "/metrics", timeout=60)
    n = 0.0
    for line in body.decode().splitlines():
        if line.startswith("healthd_http_shed_total{"):
            n += float(line.rsplit(" ", 1)[1])
    return n


def one_round(b, h, D):
    results = {}

    def flood(path):
        results[path] = b.wrk(h.port, path, D, threads=1, conns=500)

    shed0 = shed_counts(b, h.port)
    floods = [threading.Thread(target=flood, args=(p,)) for p in ("/health", "/metrics")]
    for t in floods:
        t.start()
    time.sleep(1)  # let the 1,000 connections open
    lat, bad, n = [], 0, 0
    until = time.monotonic() + D - 2
    while time.monotonic() < until:
        for path in ("/livez", "/readyz"):
            dt, code = probe_once(h.port, path)
            n += 1
            if code != 200:
                bad += 1
            elif path == "/livez":
                lat.append(dt)
        time.sleep(0.02)
    load = b.loadavg()
    for t in floods:
        t.join()
    shed = shed_counts(b, h.port) - shed0
    heavy = results["/health"]["total"] + results["/metrics"]["total"]
    errors = results["/health"]["errors"] + results["/metrics"]["errors"]
    return {"p50": b.quantile(lat, 0.5), "p99": b.quantile(lat, 0.99), "max": max(lat or [0]),
            "bad": bad, "probes": n, "heavy_rps": heavy / D, "shed": shed / max(heavy, 1),
            "errors": errors, "load": load}


def fig_flood(b, R, D):
    b.section("10. verdicts under a 1,000-client /health + /metrics flood")
    nginx = b.start_nginx()
    h = b.start_healthd(b.tcp_checks(1000, nginx.port, "10s", "2s"), "healthd-flood",
                        extra_main="\n[server.limits]\nmax_connections = 4096\n")
    b.wait_ready(h)
    rounds = [one_round(b, h, D) for _ in range(R)]
    h.stop()
    nginx.stop()
    note = (f"1,000 TCP checks @10 s; wrk -t1 -c500 -d{D}s on /health and on /metrics at once; "
            f"/livez and /readyz on fresh connections every 20 ms; loadavg during the rounds: "
            + ", ".join(r["load"] for r in rounds))
    b.add("/livez p50 during the flood", "ms", [r["p50"] * 1e3 for r in rounds], fmt="{:.2f}", note=note)
    b.add("/livez p99 during the flood", "ms", [r["p99"] * 1e3 for r in rounds], None, "< 100 ms",
          lambda f: f.med(f.h) < 100, fmt="{:.2f}",
          note="max: " + ", ".join(f"{r['max'] * 1e3:.1f} ms" for r in rounds))
    b.add("probe answers not `200 ok` during the flood", "", [r["bad"] for r in rounds], None, "0",
          lambda f: max(f.h) == 0, fmt="{:.0f}",
          note="of " + ", ".join(str(r["probes"]) for r in rounds) + " /livez + /readyz requests")
    b.add("heavy answers during the flood (200 or 503 shed)", "req/s", [r["heavy_rps"] for r in rounds],
          fmt="{:.0f}", note="shed share: " + ", ".join(f"{r['shed']:.0%}" for r in rounds)
          + "; wrk socket errors: " + ", ".join(str(r["errors"]) for r in rounds))
