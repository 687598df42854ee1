#!/usr/bin/env python3
"""Static throughput estimates of the aarch64 row-kernel loops (no aarch64 hardware needed).

Disassembles an aarch64 binary (`aarch64-linux-gnu-objdump`), finds every backward branch
(a loop) inside the functions whose demangled names contain one of the given patterns, and
runs `llvm-mca` on each loop body (branches and compares dropped) for a few CPU models,
printing cycles per iteration with the body's size, its `f16`/`bf16` widening instructions
and its pointer increments (bytes per iteration, from which elements per iteration follow).

These are predictions of a scheduling model, not measurements: they ignore memory, branch
mispredictions and the front end. `docs/runtime-performance.md` says how they were used.

Usage (the row tests built for aarch64 as in `.ci/cross-arch.sh`):
    cargo test --release --target aarch64-unknown-linux-gnu -p argen-cpu --test rows --no-run
    python3 tools/aarch64_loop_mca.py target/aarch64-unknown-linux-gnu/release/deps/rows-<hash> \
        rows::neon:: 'RowKernels>::candidates' portable_ scan::candidates
"""

import re
import subprocess
import sys
import tempfile

MODELS = ("cortex-a57", "neoverse-n2")
ITERATIONS = 1000


def functions(binary):
    """Demangled function name -> [(address, instruction text)]."""
    out = subprocess.run(
        ["aarch64-linux-gnu-objdump", "-d", "--no-show-raw-insn", "-C", binary],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    funcs, name = {}, None
    for line in out.splitlines():
        m = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
        if m:
            name = m.group(2)
            funcs[name] = []
            continue
        m = re.match(r"\s*([0-9a-f]+):\t(.*)", line)
        if name and m:
            text = re.sub(r"\s*//.*", "", m.group(2)).strip()
            funcs[name].append((int(m.group(1), 16), text))
    return funcs


BRANCH = re.compile(r"^(b\.\w+|b|cbnz|cbz|tbnz|tbz)\s+(?:\w+, (?:#\w+, )?)?([0-9a-f]+)\b")


def loops(insns):
    """(start, end, body) of every backward branch."""
    for addr, text in insns:
        m = BRANCH.match(text)
        if m and int(m.group(2), 16) < addr:
            start = int(m.group(2), 16)
            yield start, addr, [t for a, t in insns if start <= a <= addr]


def mca(body, cpu):
    """llvm-mca's total cycles for ITERATIONS iterations, divided back per iteration."""
    kept = [t for t in body if not BRANCH.match(t) and not re.match(r"^(cmp|cmn)\s", t)]
    with tempfile.NamedTemporaryFile("w", suffix=".s") as f:
        f.write("\n".join(kept) + "\n")
        f.flush()
        out = subprocess.run(
            ["llvm-mca-15", "-mtriple=aarch64", f"-mcpu={cpu}", f"-iterations={ITERATIONS}", f.name],
            capture_output=True,
            text=True,
        ).stdout
    m = re.search(r"Total Cycles:\s+(\d+)", out)
    return int(m.group(1)) / ITERATIONS if m else float("nan")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    funcs = functions(sys.argv[1])
    for name, insns in funcs.items():
        if not any(p in name for p in sys.argv[2:]):
            continue
        for start, end, body in loops(insns):
            vec = sum(1 for t in body if re.search(r"\bv\d+\.", t))
            if len(body) < 10:
                continue
            incs = [
                t
                for t in body
                if re.match(r"^add\s+x\d+, x\d+, #0x[0-9a-f]+$", t) or re.search(r"\], #\d+$", t)
            ]
            cycles = "  ".join(f"{cpu} {mca(body, cpu):6.2f}" for cpu in MODELS)
            widen = sum(1 for t in body if re.match(r"^(fcvtl2?|shll2?|ushll2?)\s", t))
            print(f"{name[:80]}\n  loop {start:x}-{end:x}: {len(body)} insns ({vec} vector, "
                  f"{widen} widening); cycles/iteration: {cycles}\n  increments: {'; '.join(incs)}")


if __name__ == "__main__":
    main()
