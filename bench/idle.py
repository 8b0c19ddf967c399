"""Figure 12 of bench/bench.py: what an idle healthd costs with the default configuration.

healthd runs the embedded default (examples/healthd.toml: CPU, memory and disk checks every
10 s, history in a file, no scrape, no request) and is left alone: after a warm-up, CPU time
is read from /proc/PID/task/*/schedstat (nanoseconds on CPU, all threads) over the window,
then VmRSS and VmHWM from /proc/PID/status, and the resident set split from
/proc/PID/smaps_rollup (anonymous: heap and thread stacks; the rest: mapped binary and
libraries). node_exporter (default collectors) and blackbox_exporter, also idle (no scrape,
no probe), are measured the same way for reference.

Standalone: python3 bench/idle.py --healthd target/release/healthd [--window 30]
"""

import os
import re
import time

from host_metrics import cpu_ns

WARMUP = 3.0


def default_config(tmp):
    """The embedded default with its history file moved into `tmp` (the package's
    /var/lib/healthd may not exist or may belong to an installed healthd)."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "examples", "healthd.toml")) as f:
        text = f.read()
    text = re.sub(r'(?m)^path = ".*"$', f'path = "{tmp}/history.db"', text)
    path = os.path.join(tmp, "healthd.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def memory(pid):
    """VmRSS, VmHWM, anonymous resident memory and threads, in MiB (threads: a count)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
            elif k == "Threads":
                out[k] = int(v)
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == "Anonymous":
                out["anon"] = int(v.split()[0]) / 1024
    return out


def idle(pid, window):
    """CPU ms per second over `window` s after the warm-up, and the memory at its end."""
    time.sleep(WARMUP)
    c0, t0 = cpu_ns(pid), time.monotonic()
    time.sleep(window)
    c1, t1 = cpu_ns(pid), time.monotonic()
    m = memory(pid)
    m["cpu"] = (c1 - c0) / 1e6 / (t1 - t0)
    return m


def fig_idle(b, R, window):
    b.section("12. idle, default configuration")
    ours, peers = [], {"node_exporter": [], "blackbox_exporter": []}
    for r in range(R):
        d = os.path.join(b.TMP, f"idle-{r}")
        os.makedirs(d, exist_ok=True)
        port = b.free_port()
        h = b.Proc(f"healthd-idle-{r}", [b.healthd_bin(), "--log-level", "warn", "run",
                                         "--config", default_config(d),
                                         "--listen", f"127.0.0.1:{port}"], term_twice=True)
        h.port = port
        b.wait_until("healthd /livez", 20,
                     lambda: (h.alive() or b.fail(h)) and b.status_of(port, "/livez") == 200)
        ours.append(idle(h.pid, window))
        h.stop()
        for name, start in (("node_exporter", b.start_node_exporter),
                            ("blackbox_exporter", b.start_blackbox)):
            p = start()
            peers[name].append(idle(p.pid, window))
            p.stop()
    col = lambda ms, k: [m[k] for m in ms]
    last = ours[-1]
    b.add("idle CPU, default config", "ms/s", col(ours, "cpu"), col(peers["node_exporter"], "cpu"),
          "≤ 0.5 ms/s", lambda f: f.med(f.h) <= 0.5, fmt="{:.3f}",
          note=(f"CPU time of all threads over {window:g} s after {WARMUP:g} s of warm-up, no request; "
                f"3 checks every 10 s (the embedded default, history in a file); peer: node_exporter idle; "
                f"blackbox_exporter idle: {b.Fig.med(col(peers['blackbox_exporter'], 'cpu')):.3f} ms/s"))
    b.add("idle RSS (VmRSS), default config", "MiB", col(ours, "VmRSS"), col(peers["node_exporter"], "VmRSS"),
          "≤ 5 MiB", lambda f: f.med(f.h) <= 5.0, fmt="{:.2f}",
          note=(f"at the end of the idle window; healthd's last round: {last['anon']:.1f} MiB anonymous "
                f"(heap, stacks), {last['VmRSS'] - last['anon']:.1f} MiB file-backed, {last['Threads']} threads; "
                f"blackbox_exporter idle: {b.Fig.med(col(peers['blackbox_exporter'], 'VmRSS')):.1f} MiB"))
    b.add("idle peak RSS (VmHWM), default config", "MiB", col(ours, "VmHWM"), col(peers["node_exporter"], "VmHWM"),
          "≤ 5 MiB", lambda f: f.med(f.h) <= 5.0, fmt="{:.2f}",
          note=(f"since start, config loading included; blackbox_exporter idle: "
                f"{b.Fig.med(col(peers['blackbox_exporter'], 'VmHWM')):.1f} MiB"))


def main():
    import argparse
    import shutil
    import signal
    import subprocess
    import tempfile

    ap = argparse.ArgumentParser()
    ap.add_argument("--healthd", required=True)
    ap.add_argument("--window", type=float, default=30)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="healthd-idle-")
    port = 20000 + os.getpid() % 20000
    p = subprocess.Popen([a.healthd, "--log-level", "warn", "run", "--config", default_config(tmp),
                          "--listen", f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL)
    try:
        m = idle(p.pid, a.window)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()))
    finally:
        p.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
