#!/bin/bash
# Instruction counts of softmax attention's GPU kernels under oclgrind (--inst-counts), which
# counts every instruction and the bytes each load and store moves per address space. For each
# kernel run of `PROGRAM counts` (tests/test_softmax_gpu.c: N = 128, D = 64 and 128, the
# register-tiled default "new", then the one-row-per-item kernel "old") it prints
#   FMA lanes per byte loaded from __local + __global memory, and
#   private bytes (loads + stores) per local byte (loads + stores),
# and fails when a "new" run is under 0.5 FMA/byte or its private traffic is over a quarter of its
# local traffic. Usage: inst_counts.sh PROGRAM [MODE [MIN_FMA_PER_BYTE [MAX_PRIVATE_PER_LOCAL]]]
# MODE: counts (default: the new kernel and the old) or counts-new (the new one only, as CI runs it).
set -u
prog=$1
mode=${2:-counts}
min_fpb=${3:-0.5}
max_ppl=${4:-0.25}
out=$(oclgrind --inst-counts "$prog" "$mode" 2>&1)
rc=$?
if [ $rc -ne 0 ]; then echo "$out" | tail -20; echo "program failed under oclgrind (exit $rc)"; exit 1; fi
echo "$out" | python3 -c '
import re, sys
minf, maxp = float(sys.argv[1]), float(sys.argv[2])
runs, cur, tag = [], None, ("?", "?")
for line in sys.stdin:
    m = re.match(r"counts D=(\d+) (\w+)", line)
    if m:
        tag = ("D=" + m.group(1), m.group(2))
        continue
    m = re.search(r"Instructions executed for kernel .(\w+).", line)
    if m:
        cur = dict(kernel=m.group(1), tag=tag, fma=0, lload=0, lstore=0, gload=0, pload=0, pstore=0)
        runs.append(cur)
        continue
    m = re.match(r"\s*(\d+) - (.*)", line)
    if not (m and cur):
        continue
    n, ins = int(m.group(1)), m.group(2)
    lanes = re.search(r"Dv(\d+)_f|\.v(\d+)f32", ins)
    lanes = int(lanes.group(1) or lanes.group(2)) if lanes else 1
    if re.search(r"_Z3fma|llvm\.fmuladd|_Z3mad", ins):
        cur["fma"] += n * lanes
    b = re.search(r"\((\d+) bytes\)", ins)
    b = int(b.group(1)) if b else 0
    for key, pat in (("lload", "load local"), ("lstore", "store local"), ("gload", "load global"),
                     ("pload", "load private"), ("pstore", "store private")):
        if ins.startswith(pat):
            cur[key] += b
bad, new = False, 0
for r in runs:
    lb = r["lload"] + r["gload"]
    fpb = r["fma"] / lb if lb else 0.0
    loc = r["lload"] + r["lstore"]
    ppl = (r["pload"] + r["pstore"]) / loc if loc else 0.0
    print("%-28s %-5s %-3s FMA lanes %9d  local+global load bytes %9d  FMA/byte %.3f  private/local %.3f"
          % (r["kernel"], r["tag"][0], r["tag"][1], r["fma"], lb, fpb, ppl))
    if r["tag"][1] == "new":
        new += 1
        bad |= fpb < minf or ppl > maxp
if new == 0:
    sys.exit("no register-tiled run counted")
if bad:
    sys.exit("FAIL: a register-tiled run is under %g FMA/byte or over %g private/local" % (minf, maxp))
print("inst counts: ok")
' "$min_fpb" "$max_ppl"
