"""Figure 8 of bench/bench.py: what the host metrics cost.

- CPU per host-metrics collection: healthd with no check and `[metrics.host] interval =
  "1s"` against the same daemon with `enabled = false`, over the same window; the difference
  divided by the collections. CPU time is read from /proc/PID/task/*/schedstat
  (nanoseconds on CPU, all threads), since utime + stime (10 ms ticks) is too coarse for a
  sub-millisecond figure.
- CPU per /metrics scrape with host metrics and no check, beside node_exporter (default
  collectors), whose every scrape reads the host: both rendering and reading count for it.
"""

import glob
import time


def cpu_ns(pid):
    """Nanoseconds on CPU of every thread of `pid`."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that ended meanwhile
    return total


def window_cpu_ms(b, main_toml, window):
    """CPU milliseconds of a fresh healthd (no check) over `window` seconds after warm-up."""
    h = b.start_healthd("", "healthd-host", extra_main=main_toml)
    time.sleep(2.5)  # the first collection and its 200 ms CPU window
    c0 = cpu_ns(h.pid)
    time.sleep(window)
    c1 = cpu_ns(h.pid)
    h.stop()
    return (c1 - c0) / 1e6


def fig_host(b, R, window):
    b.section("8. host metrics")
    per_collection, on_ms, off_ms = [], [], []
    for _ in range(R):
        on = window_cpu_ms(b, '[metrics.host]\ninterval = "1s"\n', window)
        off = window_cpu_ms(b, "[metrics.host]\nenabled = false\n", window)
        on_ms.append(on)
        off_ms.append(off)
        per_collection.append((on - off) / window)
    b.add("host metrics: CPU per collection", "ms", per_collection, None, "≤ 1 ms", lambda f: f.med(f.h) <= 1.0,
          fmt="{:.3f}",
          note=(f"healthd with no check, interval 1 s, {window} s windows: "
                f"{sorted(on_ms)[len(on_ms) // 2]:.1f} ms CPU with host metrics, "
                f"{sorted(off_ms)[len(off_ms) // 2]:.1f} ms with enabled = false; the difference per collection"))
    node_cpu, ours = [], []
    for _ in range(R):
        node = b.start_node_exporter()
        b.scrape_cost(node.port, node.pid, 0.2)
        c, _, node_size, node_n = b.scrape_cost(node.port, node.pid, window / 2)
        node_cpu.append(c * 1e3)
        node.stop()
        h = b.start_healthd("", "healthd-host-scrape")
        time.sleep(1)
        b.scrape_cost(h.port, h.pid, 0.2)
        c, _, size, n = b.scrape_cost(h.port, h.pid, window / 2)
        ours.append(c * 1e3)
        h.stop()
    b.add("/metrics CPU per scrape, host metrics only", "ms", ours, node_cpu, "≤ 0.1× node_exporter",
          lambda f: f.ratio() <= 0.1, fmt="{:.3f}",
          note=(f"no check configured; {n} scrapes of healthd ({size / 1024:.0f} KiB), {node_n} of "
                f"node_exporter ({node_size / 1024:.0f} KiB) in the last round"))
