#!/usr/bin/env python3
"""The linker of the shipped release binary: `cc`, with `.rodata` laid out by link/rodata-order.txt.

scripts/build-release hands this file to rustc as the linker (`-C linker=…`); rustc calls it
with the arguments it would give `cc`, and it runs `cc` with them and two more: a linker
script (`-T`) that puts the constants an idle daemon reads first in `.rodata`, and a link
map, `target/release/healthd.map`, from which scripts/symbol-order finds the constants.

Why: the kernel maps a binary's pages in 64 KiB windows around each fault. The few KB of
constants an idle daemon reads (config keys, format strings, jump tables, glibc's tables)
lay in 17 of `.rodata`'s 26 windows, and kept 1.1 MB of it resident; gathered, they keep
about 0.3 MB (bench/README.md, "Issue 18, round fourteen").

Rust's constants have no symbols, so the symbol order (build.rs) cannot move them; each is
an input section of its own, named `.rodata..Lanon.<module hash>.<N>` with N a counter that
any change to the code can move. So the list names them by content (`anon SIZE SHA1`),
and this script finds their current names in the object files it links. Other lines are
linker-script input section descriptions, used as they are. A line that matches nothing
costs only its place: the constant stays where the linker puts it by default.
"""
import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER = os.path.join(HERE, "rodata-order.txt")


def elf_sections(path):
    """(name, file offset, size) of each section of an ELF64 little-endian object."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return data, []
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    first = struct.unpack_from("<IIQQQQIIQQ", data, shoff)
    # Over 65,279 sections (the LTO object has about 120,000): the count and the index of
    # the names' section are in section 0's header.
    shnum = shnum or first[5]
    shstrndx = first[6] if shstrndx == 0xFFFF else shstrndx
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
               for i in range(shnum)]
    names_at = headers[shstrndx][4]
    out = []
    for name, kind, _flags, _addr, offset, size, *_ in headers:
        end = data.index(b"\0", names_at + name)
        if kind == 1:  # SHT_PROGBITS
            out.append((data[names_at + name:end].decode(), offset, size))
    return data, out


def content_key(data, offset, size):
    return f"anon {size} {hashlib.sha1(data[offset:offset + size]).hexdigest()[:16]}"


def script(lines, objects):
    """The linker script's `.rodata` rules for the list's `lines`, given the objects linked."""
    wanted = {line for line in lines if line.startswith("anon ")}
    sizes = {int(line.split()[1]) for line in wanted}
    found = {}
    for path in objects:
        data, sections = elf_sections(path)
        for name, offset, size in sections:
            if name.startswith(".rodata..Lanon.") and size in sizes:
                found.setdefault(content_key(data, offset, size), []).append(name)
    rules = []
    for line in lines:
        if line.startswith("anon "):
            rules += [f"    *({name})" for name in found.get(line, [])]
        else:
            rules.append(f"    {line}")
    # tests/it/release_binary.rs reads this line: a stale list finds few of its constants.
    counts = f"/* {len(wanted & found.keys())} of the {len(wanted)} constants listed found */\n"
    return (counts + "SECTIONS\n{\n  .rodata :\n  {\n" + "\n".join(rules)
            + "\n    *(.rodata .rodata.* .gnu.linkonce.r.*)\n  }\n}\n"
            + "INSERT BEFORE .gcc_except_table;\n")


def main():
    args = sys.argv[1:]
    out = args[args.index("-o") + 1]
    beside = os.path.join(os.path.dirname(os.path.dirname(out)), "healthd")  # target/release
    extra = [f"-Wl,-Map={beside}.map"]
    if os.path.exists(ORDER):
        with open(ORDER) as f:
            lines = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        objects = [a for a in args if a.endswith(".o") and os.path.isfile(a)]
        path = beside + ".rodata.ld"
        if os.path.exists(path):
            os.remove(path)
        text = script(lines, objects)
        with open(path, "w") as f:
            f.write(text)
        extra.append("-Wl,-T," + path)
    os.execvp("cc", ["cc", *args, *extra])


if __name__ == "__main__":
    main()
