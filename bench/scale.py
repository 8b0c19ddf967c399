"""Figure 11 of bench/bench.py: 100,000 TCP checks every 60 s (1,667 probes/s) on this machine.

Full mode only; bounded: the checks go to one local nginx, the run lasts one warm-up
interval and one measured interval, then healthd is stopped.

- CPU share of one core (utime+stime over the measured interval / wall time);
- peak RSS (VmHWM from start, config loading included) before any /metrics scrape, and after
  the two scrapes that read the lateness histogram;
- runs late by more than 5 s (the histogram bucket under the 10 % mark, 6 s);
- /readyz p99 sampled 20 times/s during the measured interval, beside the p99 of an idle
  healthd (no check) sampled the same way.
"""

import os
import statistics
import tempfile
import time

N = 100_000
PER_FILE = 4_000  # drop-ins stay under the 4 MiB file limit
INTERVAL = 60


def start_many(b, n, port, name):
    """healthd with `n` TCP checks of 127.0.0.1:`port` every 60 s, spread over drop-ins."""
    http_port = b.free_port()
    d = tempfile.mkdtemp(dir=b.TMP, prefix=name + "-")
    probes = os.path.join(d, "probes.d")
    os.makedirs(probes)
    main = os.path.join(d, "healthd.toml")
    with open(main, "w") as f:
        f.write('[server]\nshutdown_delay = "1s"\n')
    for start in range(0, n, PER_FILE):
        with open(os.path.join(probes, f"scale-{start // PER_FILE:03d}.toml"), "w") as f:
            f.write("\n".join(
                f'[[checks]]\nname = "tcp-{i:06d}"\nkind = "tcp"\nhost = "127.0.0.1"\n'
                f'port = {port}\ninterval = "{INTERVAL}s"\ntimeout = "5s"\n'
                for i in range(start, min(n, start + PER_FILE))))
    p = b.Proc(name, [b.healthd_bin(), "--log-level", "error", "run", "--config", main,
                      "--probes-dir", probes, "--listen", f"127.0.0.1:{http_port}"], term_twice=True)
    p.port = http_port
    b.wait_until(f"{name} /livez", 180,
                 lambda: (p.alive() or b.fail(p)) and b.status_of(http_port, "/livez") == 200, 0.2)
    return p


def readyz_p99(b, port, seconds):
    _, _, lat = b.paced_get(port, lambda i: "/readyz", 20, seconds, 1)
    return b.quantile(lat, 0.99) * 1e3


def fig_100k(b, R):
    b.section("11. 100,000 TCP checks every 60 s")
    nginx = b.start_nginx()
    share, hwm, hwm_scraped, late, p99, idle_p99, start_s, rates = [], [], [], [], [], [], [], []
    try:
        for _ in range(R):
            idle = b.start_healthd("", "healthd-idle")
            time.sleep(1)
            idle_p99.append(readyz_p99(b, idle.port, 20))
            idle.stop()

            t0 = time.monotonic()
            h = start_many(b, N, nginx.port, "healthd-100k")
            b.wait_ready(h, timeout=240)
            start_s.append(time.monotonic() - t0)
            time.sleep(INTERVAL + 5)  # past the first runs and one whole interval
            hwm.append(b.status_kib(h.pid, "VmHWM") / 1024)
            m0 = b.metrics_text(h.port)
            c0, w0 = b.cpu_seconds(h.pid), time.monotonic()
            p99.append(readyz_p99(b, h.port, INTERVAL))
            c1, w1 = b.cpu_seconds(h.pid), time.monotonic()
            m1 = b.metrics_text(h.port)
            hwm_scraped.append(b.status_kib(h.pid, "VmHWM") / 1024)
            h.stop()
            share.append((c1 - c0) / (w1 - w0) * 100)
            rates.append((b.runs_total(m1) - b.runs_total(m0)) / (w1 - w0))
            (b0, n0), (b1, n1) = b.lateness(m0), b.lateness(m1)
            late.append((n1 - n0) - (b1.get(5.0, 0) - b0.get(5.0, 0)))
            del m0, m1
    finally:
        nginx.stop()
    b.add("100,000 checks: CPU share of one core", "%", share, None, "≤ 100 %",
          lambda f: f.med(f.h) <= 100, fmt="{:.1f}",
          note=(f"100,000 TCP checks of a local nginx every 60 s; utime+stime over one 60 s "
                f"interval after a warm-up interval; {statistics.median(rates):.0f} runs/s counted "
                f"(1,667 due); ready {statistics.median(start_s):.0f} s after start"))
    b.add("100,000 checks: peak RSS", "MiB", hwm, None, "≤ 400 MiB",
          lambda f: f.med(f.h) <= 400, fmt="{:.1f}",
          note=(f"VmHWM from start (config loading included) before any /metrics scrape; "
                f"after two scrapes of /metrics: {statistics.median(hwm_scraped):.1f} MiB"))
    b.add("100,000 checks: runs late > 5 s", "", late, None, "0",
          lambda f: max(f.h) == 0, fmt="{:.0f}",
          note="from healthd_scheduler_lateness_seconds over the measured interval (5 s bucket; the 10 % mark is 6 s)")
    b.add("100,000 checks: /readyz p99", "ms", p99, idle_p99, "≤ 2× idle",
          lambda f: f.ratio() <= 2, fmt="{:.2f}",
          note="20 requests/s on one keep-alive connection; peer column: the same daemon with no check")
