"""Which constants an idle healthd reads, for link/rodata-order.txt (link/rodata_link.py).

Used by scripts/symbol_order.py, after its callgrind sessions. callgrind sees calls, not
loads: valgrind's lackey prints every load, and one session of the shipped default left
alone (as bench/idle.py leaves it) gives the bytes of `.rodata` it read. The link map that
rodata_link.py wrote beside the binary tells which input section each byte is in; each
section read becomes one line, in the order the sections lie now:

- a Rust constant (`.rodata..Lanon.<module hash>.<N>`, no symbol, a counter that moves with
  any change to the code): `anon SIZE SHA1`, its content, which rodata_link.py looks up in
  the objects it links;
- any other section: the linker script's description of it, e.g. `*(.rodata.cst16)`,
  `*libc.a:C-ctype.o(.rodata)` (an archive's member), with the hashes cargo puts in a
  crate's file names made wildcards, and with the counter fat LTO appends to a lookup
  table's name (`.Lswitch.table.<function>.16230.rel`) made one too.

A session misses a constant only the kernel reads (a buffer given to write(2)) and one read
only for values it did not see; each would cost the 64 KiB window it lies in. So the list
goes on with the rest of what the idle functions address (`order`).
"""
import bisect
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "link"))
from rodata_link import content_key  # noqa: E402  (the key the linker step looks up)

SECONDS = 90  # under lackey: start-up, several check intervals and history commits
VALGRIND_BASE = 0x108000  # where valgrind loads a position-independent executable


def rodata_inputs(map_path):
    """(address, size, file, section) of each input section of `.rodata`, from an lld map."""
    row = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ (\s*)(\S.*)$")
    out, inside = [], False
    with open(map_path) as f:
        for line in f:
            m = row.match(line.rstrip("\n"))
            if not m:
                continue
            address, size, indent, what = m.groups()
            if len(indent) == 0:  # an output section
                inside = what == ".rodata"
            elif inside and len(indent) == 8 and what.endswith(")") and ":(" in what:
                file, _, section = what[:-1].rpartition(":(")
                out.append((int(address, 16), int(size, 16), file, section))
    return sorted(out)


def describe(binary_bytes, file_offset, size, file, section):
    """The list's line for one input section (see the module's text)."""
    if section.startswith(".rodata..Lanon."):
        return content_key(binary_bytes, file_offset, size)
    if file == "<internal>":  # what the linker merged: .rodata.cst16, .rodata.str1.1, …
        return f"*({section})"
    if file.endswith(".rcgu.o"):
        # A lookup table's name ends in a counter fat LTO gives (`.16230`, `.16230.rel`),
        # which moves with the code: the line stands for all of its function's tables.
        counted = re.sub(r"(\.\d+)?(\.rel)?$", "", section)
        table = counted != section or section.startswith(".rodata..Lswitch.table.")
        return f"*.rcgu.o({counted}*)" if table else f"*.rcgu.o({section})"
    m = re.match(r"^(.*)\((.*)\)$", file)
    if m:  # an archive's member: glibc's libc.a(x.o), a crate's libring-<hash>.rlib(<hash>-x.o)
        archive = re.sub(r"-[0-9a-f]{16}\.", "-*.", os.path.basename(m.group(1)))
        member = re.sub(r"^[0-9a-f]{16}-", "*-", m.group(2))
        return f"*{archive}:{member}({section})"
    return f"*{os.path.basename(file)}({section})"


def readelf_rodata(binary):
    """`.rodata`'s address and file offset in BINARY."""
    out = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        words = re.sub(r"^\s*\[\s*\d+\]", "", line).split()
        if words and words[0] == ".rodata":
            return int(words[2], 16), int(words[3], 16), int(words[4], 16)
    raise SystemExit(f"{binary} has no .rodata")


def touched(binary, config, port, ready, seconds=SECONDS):
    """Addresses (link-time) and sizes of the `.rodata` loads of an idle BINARY under lackey."""
    address, _offset, size = readelf_rodata(binary)
    lo, hi = VALGRIND_BASE + address, VALGRIND_BASE + address + size
    # grep drops most of lackey's lines (stack, heap, code) by their first four hex digits.
    prefixes = "|".join(f"{p:04x}" for p in range(lo >> 16, (hi >> 16) + 1))
    read, write = os.pipe()
    cmd = ["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-fd={write}", binary,
           "--log-level", "warn", "run", "--config", config, "--listen", f"127.0.0.1:{port}"]
    p = subprocess.Popen(cmd, env={**os.environ, "GLIBC_TUNABLES": "glibc.malloc.arena_max=1"},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         pass_fds=(write,))
    os.close(write)
    grep = subprocess.Popen(["grep", "-E", f"^ [LM] ({prefixes})[0-9a-f]{{4}},"], stdin=read,
                            stdout=subprocess.PIPE, text=True)
    os.close(read)
    loads = {}

    def collect():  # as lackey writes: a full pipe would stop healthd
        for line in grep.stdout:
            at, _, n = line[3:].partition(",")
            at = int(at, 16)
            if lo <= at < hi:
                loads[at - VALGRIND_BASE] = max(loads.get(at - VALGRIND_BASE, 0), int(n))

    reader = threading.Thread(target=collect)
    reader.start()
    try:
        ready(p)
        maps = open(f"/proc/{p.pid}/maps").read()
        if f"{VALGRIND_BASE:08x}-" not in maps:
            raise SystemExit(f"valgrind did not load {binary} at {VALGRIND_BASE:#x}")
        time.sleep(seconds)
    finally:
        # Killed, not stopped: what only the stop reads does not belong with the idle set.
        p.send_signal(signal.SIGKILL)
        p.wait()
    reader.join()
    grep.wait()
    return loads


def referenced(binary, functions):
    """Link-time addresses that BINARY's `functions` (names) address relative to %rip."""
    spans = []
    for line in subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                               text=True, check=True).stdout.splitlines():
        words = line.split()
        if len(words) == 4 and words[3] in functions:
            spans.append((int(words[0], 16), int(words[1], 16)))
    spans.sort()
    starts = [s[0] for s in spans]
    lo, hi = spans[0][0], max(a + n for a, n in spans)
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={lo}",
                              f"--stop-address={hi}", binary], capture_output=True, text=True,
                             check=True).stdout
    out = set()
    for m in re.finditer(r"(?m)^\s*([0-9a-f]+):.*#\s*([0-9a-f]+)\b", listing):
        at = int(m.group(1), 16)
        i = bisect.bisect_right(starts, at) - 1
        if i >= 0 and at < spans[i][0] + spans[i][1]:
            out.add(int(m.group(2), 16))
    return out


def order(binary, map_path, loads, idle):
    """The lines of link/rodata-order.txt: the sections read, then those the idle functions
    address and the session did not read, each once, in address order."""
    address, offset, _size = readelf_rodata(binary)
    inputs = rodata_inputs(map_path)
    starts = [i[0] for i in inputs]
    with open(binary, "rb") as f:
        data = f.read()

    def sections(addresses):
        found = set()
        for byte in addresses:
            i = bisect.bisect_right(starts, byte) - 1
            if i >= 0 and byte < inputs[i][0] + inputs[i][1]:
                found.add(i)
        return found

    read = sections(b for at, n in loads.items() for b in range(at, at + n))
    # What only some values or only the kernel reads (a separator joined in, a buffer given
    # to write(2)) may not be read in the session: the rest of what the idle code addresses
    # follows, about 50 KB, so that such a read lands next to the block, not far from it.
    addressed = sections(referenced(binary, idle)) - read
    lines = []
    for i in sorted(read) + sorted(addressed):
        start, size, file, section = inputs[i]
        line = describe(data, start - address + offset, size, file, section)
        if line not in lines:
            lines.append(line)
    return lines


def write(binary, out, loads, idle):
    """Write the list to `out`: `loads` from `touched`, `idle` the functions the idle
    default ran (scripts/symbol_order.py)."""
    map_path = os.path.join(os.path.dirname(os.path.realpath(binary)), "healthd.map")
    if not os.path.exists(map_path):
        raise SystemExit(f"no link map at {map_path}: link {binary} with link/rodata_link.py "
                         "(scripts/build-release does)")
    lines = order(binary, map_path, loads, idle)
    with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(out), delete=False) as f:
        f.write("".join(line + "\n" for line in lines))
    os.replace(f.name, out)
    return lines
