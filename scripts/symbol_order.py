"""Run healthd under callgrind and write the functions it ran to a symbol-ordering file.

Usage: python3 scripts/symbol_order.py BINARY OUT   (scripts/symbol-order runs it)

Three sessions on loopback, each ended by SIGTERM (callgrind writes its profile at exit,
and `callgrind_control --dump` one just before the signal): the shipped default config
(history in a file) left alone for IDLE_SECONDS, as bench/idle.py leaves it (only /livez is
asked, until it answers); the same config with every probe endpoint, /health,
/metrics (plain, OpenMetrics, gzip) and the status page asked; and a config (history in
memory) with tcp and http checks against healthd's own listener plus the gRPC health
listener, asked the same. Only functions of BINARY are listed, each once, in four blocks:
those the idle default ran, those the asked default added, those only the third session
added, and last those that ran only after the SIGTERM (the drain, the last commit, the
drops of everything); each block sorted by name. Then the idle default once more, under
lackey, for the constants it reads: link/rodata-order.txt (rodata_order.py).

Why the idle block comes first: the kernel maps code in 64 KiB windows around each fault,
so an idle daemon keeps resident every window holding one function it ran. With the
endpoints' functions sorted in among the idle ones, every window of the block is touched.
The stop's functions are 130 KB that a running daemon never calls.
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

import rodata_order

SESSION_SECONDS = 40  # under callgrind: a few check intervals and history commits
# The idle session runs longer: what an idle daemon runs only now and then (a page split as
# the history file grows, retention every 10 minutes) is part of its steady state too. Left
# out, each such function faults in a 64 KiB window of its own, minutes after start.
IDLE_SECONDS = 660


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


def wait_ready(p, port):
    """Until healthd (under valgrind, process `p`) answers /livez on `port`."""
    deadline = time.monotonic() + 120
    while get(port, "/livez") != 200:
        if p.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"healthd under valgrind did not answer on port {port}")
        time.sleep(1)


def session(binary, out, port, args, env, ask=True, seconds=SESSION_SECONDS):
    """Run BINARY under callgrind; `out`.1 gets what ran before the stop, `out` the stop."""
    cmd = ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}",
           binary, *args]
    # The arena limit healthd would set by executing itself again (src/allocator.rs):
    # given here, it runs on under callgrind instead of leaving it.
    tunables = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=1"}
    p = subprocess.Popen(cmd, env={**os.environ, **tunables, **env}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        wait_ready(p, port)
        end = time.monotonic() + seconds
        asked = [("/livez", {}), ("/readyz", {}), ("/startupz", {}), ("/livez/ping", {}),
                 ("/readyz?verbose", {}), ("/health", {}), ("/metrics", {}),
                 ("/metrics", {"Accept": "application/openmetrics-text;version=1.0.0",
                               "Accept-Encoding": "gzip"}),
                 ("/status", {}), ("/status.json", {}), ("/nope", {})]
        while time.monotonic() < end:
            for path, headers in asked if ask else ():
                get(port, path, headers)
            time.sleep(2)
        # What ran until now, apart from what only the stop runs (SIGTERM's drain, the last
        # commit, every drop): those go last, out of the blocks a running daemon touches.
        # (callgrind_control returns once the dump is written.)
        subprocess.run(["callgrind_control", "--dump=running", str(p.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not os.path.exists(out + ".1"):
            raise SystemExit(f"callgrind did not dump {out}.1")
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
            # Not "0x…" (no symbol), callgrind's own "(below main)", nor its name for a
            # recursive call ("f'2", f being listed already).
            symbol = (name and " " not in name and "'" not in name
                      and not name.startswith("0x"))
            if symbol and ob == mine and name not in seen:
                seen.add(name)
                names.append(name)
    return names


def symbols(binary):
    """BINARY's defined symbols as (address, nm's type letter, name), read once."""
    out = []
    for line in subprocess.run(["nm", "--defined-only", binary], capture_output=True,
                               text=True, check=True).stdout.splitlines():
        words = line.split()
        if len(words) == 3:
            out.append((int(words[0], 16), words[1], words[2]))
    return out


def cpu_variants(table):
    """A function that adds to a set of names every CPU variant of a function it holds.

    Valgrind emulates a CPU without AVX-512, so a library that picks its code by CPU
    (redb's xxh3: `hash128_large_avx512`, `_avx2`, …) runs another variant under callgrind
    than on this machine. Each variant listed would fault in a window of its own.
    """
    simd = re.compile(r"(avx\d*|evex\d*|s?sse\d*|neon)(?=[_E]|$)")

    def key(name):  # the mangled name without its hash, length prefixes and SIMD words
        if not name.startswith(("_ZN", "_R")):
            # glibc's (static build): `__strcmp_evex`, `__strcmp_sse2_unaligned`,
            # `__memmove_avx_unaligned_erms_rtm`, … are one function, picked at start by CPU.
            m = simd.search(name)
            return name[:m.start()] + "SIMD" if m else name
        bare = re.sub(r"\d+(?=[A-Za-z_])", "", re.sub(r"17h[0-9a-f]{16}E$", "", name))
        return simd.sub("SIMD", bare)
    family = {}
    for _, _, name in table:
        k = key(name)
        if "SIMD" in k:
            family.setdefault(k, set()).add(name)

    def add(names):
        out = set(names)
        for n in names:
            out |= family.get(key(n), set())
        return out
    return add


# What every start runs but callgrind does not name or does not see: `_start`; glibc's
# `__libc_start_main` (callgrind's "(below main)"); and, in the static build, the vDSO's set-up
# (valgrind hides the vDSO, so glibc skips it) with the string function it compares names with.
NATIVE_START = {"_start", "frame_dummy", "__libc_start_main", "__libc_start_call_main",
                "_dl_new_object", "_dl_setup_hash", "_dl_add_to_namespace_list",
                "_dl_name_match_p", "check_match", "__strcmp_evex", "__lll_lock_wait_private"}


def join_races(binary, table):
    """A function that adds to a set of names, for each tokio task whose poll it holds, the
    task's JoinHandle and AbortHandle paths that run only when the task is running or done
    on another thread at that moment, and its dealloc (the last reference may go there).

    Which side of a task's end a handle sees depends on which thread gets there first.
    callgrind runs one thread at a time, so its daemon never took these paths; the native
    one takes them now and then, each faulting in a 64 KiB window of its own. A task type's
    functions are found through its vtable (tokio's `raw::Vtable`: poll, schedule, dealloc,
    try_read_output, drop_join_handle_slow, drop_abort_handle, shutdown, in that order), in
    .data.rel.ro, where a static PIE keeps each pointer's link-time address in place.
    """
    at = {address: name for address, kind, name in table if kind in "tTwW"}
    sections = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True,
                              check=True).stdout
    m = re.search(r"\.data\.rel\.ro\s+PROGBITS\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)",
                  sections)
    racy = {}
    if m:
        offset, size = int(m.group(2), 16), int(m.group(3), 16)
        with open(binary, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        words = [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data) - 7, 8)]
        for i, w in enumerate(words[:-6]):
            poll = at.get(w, "")
            if "tokio7runtime4task3raw4poll" not in poll:
                continue
            names = [at.get(x, "") for x in words[i + 2:i + 6]]
            if all("tokio7runtime4task3raw" in n for n in names):
                racy[poll] = set(names)

    def add(names):
        out = set(names)
        for n in names:
            out |= racy.get(n, set())
        return out
    return add


def main():
    binary, out = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        # The shipped default, each session's history file new in tmp (as bench/idle.py does).
        port = free_port()
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "examples", "healthd.toml")) as f:
            shipped = f.read()
        for name in ("idle", "default"):
            config = f"{tmp}/{name}.toml"
            with open(config, "w") as f:
                f.write(re.sub(r'(?m)^path = ".*"$', f'path = "{tmp}/{name}.db"', shipped))
            if name == "idle":  # bench/idle.py's command line, word for word: clap runs
                # other code for other arguments, and so does the environment's config layer.
                session(binary, f"{tmp}/idle.out", port,
                        ["--log-level", "warn", "run", "--config", config,
                         "--listen", f"127.0.0.1:{port}"], {}, ask=False,
                        seconds=IDLE_SECONDS)
            else:
                session(binary, f"{tmp}/default.out", port, ["run", "--config", config],
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
        session(binary, f"{tmp}/probes.out", port, ["run", "--config", config], {})
        # The constants the idle default reads, for link/rodata-order.txt (rodata_order.py).
        port = free_port()
        config = f"{tmp}/rodata.toml"
        with open(config, "w") as f:
            f.write(re.sub(r'(?m)^path = ".*"$', f'path = "{tmp}/rodata.db"', shipped))
        loads = rodata_order.touched(binary, config, port, lambda p: wait_ready(p, port))
        listed = symbols(binary)
        variants = cpu_variants(listed)
        races = join_races(binary, listed)

        def ran(name):  # (before the stop, only in the stop)
            running = variants(functions(f"{tmp}/{name}.out.1", binary))
            return running, variants(functions(f"{tmp}/{name}.out", binary)) - running
        idle, idle_stop = ran("idle")
        idle = races(idle | variants(NATIVE_START))
        default, default_stop = ran("default")
        default = races(default) - idle
        probes, probes_stop = ran("probes")
        probes = races(probes) - idle - default
        stop = (idle_stop | default_stop | probes_stop) - idle - default - probes
    constants = rodata_order.write(binary, os.path.join(os.path.dirname(out), "rodata-order.txt"),
                                   loads, idle)
    # Sorted within each block: the order inside a block hardly matters, and a rerun then
    # changes only the lines of functions that did (callgrind's own order moves from run to
    # run).
    names = sorted(idle) + sorted(default) + sorted(probes) + sorted(stop)
    with open(out, "w") as f:
        f.write("".join(n + "\n" for n in names))
    print(f"[symbol-order] {len(constants)} sections of constants written to "
          f"{os.path.dirname(out)}/rodata-order.txt", file=sys.stderr)
    print(f"[symbol-order] {len(idle)} + {len(default)} + {len(probes)} + {len(stop)} (stop) "
          f"functions written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
