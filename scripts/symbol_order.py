"""Run healthd under callgrind and write the functions it ran to a symbol-ordering file.

Usage: python3 scripts/symbol_order.py BINARY OUT   (scripts/symbol-order runs it)

Two sessions on loopback, each ended by SIGTERM (callgrind writes its profile at exit):
the shipped default config (history in a file), and a config (history in memory) with tcp and http checks against healthd's own
listener plus the gRPC health listener. Both ask every probe endpoint, /health and
/metrics (plain, OpenMetrics, gzip) and the status page. Only functions of BINARY are
listed, each once: those the shipped default ran, then those only the second session ran,
each block sorted by name.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SESSION_SECONDS = 40  # under callgrind: a few check intervals and history commits


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def session(binary, out, port, args, env):
    cmd = ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}",
           binary, "run", *args]
    # The arena limit healthd would set by executing itself again (src/allocator.rs):
    # given here, it runs on under callgrind instead of leaving it.
    tunables = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=1"}
    p = subprocess.Popen(cmd, env={**os.environ, **tunables, **env}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while get(port, "/livez") != 200:
            if p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"healthd under callgrind did not answer on port {port}")
            time.sleep(1)
        end = time.monotonic() + SESSION_SECONDS
        asked = [("/livez", {}), ("/readyz", {}), ("/startupz", {}), ("/livez/ping", {}),
                 ("/readyz?verbose", {}), ("/health", {}), ("/metrics", {}),
                 ("/metrics", {"Accept": "application/openmetrics-text;version=1.0.0",
                               "Accept-Encoding": "gzip"}),
                 ("/status", {}), ("/status.json", {}), ("/nope", {})]
        while time.monotonic() < end:
            for path, headers in asked:
                get(port, path, headers)
            time.sleep(2)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)  # a second signal exits at once
            p.wait(timeout=60)


def functions(profile, binary):
    """Names of BINARY's functions in a callgrind profile, in order of first mention."""
    names, objects, seen = [], {}, set()
    current_ob = called_ob = None
    ref = re.compile(r"^(ob|cob|fn|cfn)=\((\d+)\)(?: (.*))?$")
    fn_names = {}
    mine = os.path.realpath(binary)
    for line in open(profile, errors="replace"):
        m = ref.match(line.rstrip("\n"))
        if not m:
            continue
        key, num, name = m.groups()
        if key in ("ob", "cob"):
            if name is not None:
                objects[num] = os.path.realpath(name)
            if key == "ob":
                current_ob = objects.get(num)
                called_ob = current_ob
            else:
                called_ob = objects.get(num)
        elif key in ("fn", "cfn"):
            if name is not None:
                fn_names[num] = name
            name = fn_names.get(num)
            ob = current_ob if key == "fn" else called_ob
            if key == "cfn":
                called_ob = current_ob  # a cob= line applies to the next cfn= only
            # Not "0x…" (no symbol) nor callgrind's own "(below main)".
            symbol = name and " " not in name and not name.startswith("0x")
            if symbol and ob == mine and name not in seen:
                seen.add(name)
                names.append(name)
    return names


def main():
    binary, out = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        # The shipped default, its history file moved into tmp (as bench/idle.py does).
        port = free_port()
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "examples", "healthd.toml")) as f:
            text = f.read()
        text = re.sub(r'(?m)^path = ".*"$', f'path = "{tmp}/history.db"', text)
        with open(f"{tmp}/default.toml", "w") as f:
            f.write(text)
        session(binary, f"{tmp}/default.out", port, ["--config", f"{tmp}/default.toml"],
                {"HEALTHD_SERVER__LISTEN": f"127.0.0.1:{port}",
                 "HEALTHD_SERVER__SHUTDOWN_DELAY": "1ms"})
        port, grpc = free_port(), free_port()
        config = f"{tmp}/probes.toml"
        with open(config, "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:{port}"
shutdown_delay = "1ms"

[server.grpc]
listen = "127.0.0.1:{grpc}"

[defaults]
interval = "2s"
timeout = "1s"

[[checks]]
name = "self-tcp"
kind = "tcp"
host = "127.0.0.1"
port = {port}

[[checks]]
name = "self-http"
kind = "http"
url = "http://127.0.0.1:{port}/livez"

[[checks]]
name = "memory"
kind = "memory"
""")
        session(binary, f"{tmp}/probes.out", port, ["--config", config], {})
        default = set(functions(f"{tmp}/default.out", binary))
        probes = set(functions(f"{tmp}/probes.out", binary)) - default
    # Two blocks: what the shipped default runs (the idle daemon touches only that), then
    # what only the probe session added. Sorted within each: the order inside a block
    # hardly matters, and a rerun then changes only the lines of functions that did
    # (callgrind's own order moves from run to run).
    names = sorted(default) + sorted(probes)
    with open(out, "w") as f:
        f.write("".join(n + "\n" for n in names))
    print(f"[symbol-order] {len(default)} + {len(probes)} functions written to {out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
