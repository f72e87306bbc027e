#!/bin/bash
# GPU-design figures of kernels from oclgrind's --inst-counts (DESIGN.md §9, issue 12 §2), for the
# RPE/LSH/routing kernels (stream s-gpuops; softmax has its own script). Runs PROGRAM under
# oclgrind --inst-counts and prints, per kernel (every launch summed):
#   fma      FMA lanes (llvm.fmuladd / fma / mad calls, vector widths counted per lane)
#   glob_B   bytes loaded from __global      loc_B   bytes loaded from __local
#   priv_B   bytes loaded from and stored to private memory (arrays indexed at run time, spills)
#            (vloadN/vstoreN builtin calls counted by their pointer's address space)
#   fma/B    fma per byte of __global + __local loads (a 4x4 register micro-tile: ~0.5)
#   priv/fma private bytes per fma
# Usage: inst_counts_ops.sh [--expect KERNEL MIN_FMA_PER_B MAX_PRIV_PER_FMA]...
#                          [--max-fma KERNEL MAX_FMA]... -- PROGRAM ARGS...
# Each --expect fails the run (exit 1) when KERNEL did not run, or ran below MIN fma/B or above
# MAX priv/fma; each --max-fma when KERNEL did not run or ran more than MAX_FMA FMA lanes (work a
# kernel should skip, e.g. LSH's key tiles outside the buckets). Example (the RPE direct kernels, N 64, M = Dv = 64):
#   CLATTN_RPE_DIRECT_KERNEL=tiled tests/inst_counts_ops.sh -- build/samples/clattn bench rpe \
#       --n 64 --d 64 --dv 64 --variants direct --reps 1
set -u
expects=()
maxfmas=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  if [ "$1" = "--expect" ] && [ $# -ge 4 ]; then expects+=("$2 $3 $4"); shift 4
  elif [ "$1" = "--max-fma" ] && [ $# -ge 3 ]; then maxfmas+=("$2 $3"); shift 3
  else echo "usage: $0 [--expect KERNEL MIN_FMA_PER_B MAX_PRIV_PER_FMA]... [--max-fma KERNEL MAX_FMA]... -- PROGRAM ARGS..." >&2; exit 2; fi
done
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || { echo "$0: no program given" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# oclgrind is the only OpenCL platform in this process; no program cache (a cached binary is fine
# for oclgrind, but keep the run self-contained).
CLATTN_DEVICE= CLATTN_PROGRAM_CACHE=off oclgrind --inst-counts "$@" >"$out" 2>&1
rc=$?
if [ $rc -ne 0 ]; then cat "$out" >&2; echo "$0: program failed under oclgrind (exit $rc)" >&2; exit 1; fi
table=$(awk '
  /^Instructions executed for kernel/ { k = $0; sub(/.*kernel .\047?/, "", k); sub(/\047?:$/, "", k); seen[k] = 1; next }
  k != "" && /^ *[0-9]+ - / {
    n = $1 + 0; line = $0
    if (line ~ /fmuladd|_Z3fma|_Z3mad/) {
      w = 1
      if (match(line, /v[0-9]+f32/)) w = substr(line, RSTART + 1, RLENGTH - 4) + 0
      else if (match(line, /Dv[0-9]+_f/)) w = substr(line, RSTART + 2, RLENGTH - 4) + 0
      fma[k] += n * w
    }
    # vloadN / vstoreN builtins are calls, not load instructions: N elements each, in the pointer
    # address space in the mangled name (U3AS1 global, U3AS2 constant, U3AS3 local, none private).
    if (line ~ /call _Z[0-9]+v(load|store)(_half)?[0-9]+/) {
      nm = line; sub(/.*call _Z[0-9]+v(load|store)(_half)?/, "", nm)
      width = nm + 0; esz = (line ~ /_half/) ? 2 : 4
      bytes = n * width * esz
      if (line ~ /U3AS1|U3AS2/) { if (line ~ /vload/) glob[k] += bytes }
      else if (line ~ /U3AS3/) { if (line ~ /vload/) loc[k] += bytes }
      else priv[k] += bytes
    }
    if (match(line, /\(([0-9]+) bytes\)/)) {
      b = substr(line, RSTART + 1, RLENGTH - 8) + 0
      if (line ~ /load global|load constant/) glob[k] += b
      else if (line ~ /load local/) loc[k] += b
      else if (line ~ /(load|store) private/) priv[k] += b
    }
    next
  }
  /^$/ { k = "" }
  END {
    for (k in seen) {
      f = fma[k] + 0; by = glob[k] + loc[k]
      printf "%s %d %d %d %d %.3f %.3f\n", k, f, glob[k], loc[k], priv[k],
             by ? f / by : 0, f ? priv[k] / f : 0
    }
  }' "$out" | sort)
printf "%-32s %12s %12s %12s %12s %7s %8s\n" kernel fma glob_B loc_B priv_B "fma/B" "priv/fma"
echo "$table" | awk '{ printf "%-32s %12d %12d %12d %12d %7.3f %8.3f\n", $1, $2, $3, $4, $5, $6, $7 }'
fail=0
for e in "${expects[@]}"; do
  read -r kern minr maxp <<<"$e"
  row=$(echo "$table" | awk -v k="$kern" '$1 == k')
  if [ -z "$row" ]; then echo "FAIL: kernel $kern did not run" >&2; fail=1; continue; fi
  if ! echo "$row" | awk -v a="$minr" -v b="$maxp" '{ exit !($6 >= a && $7 <= b) }'; then
    echo "FAIL: $kern: fma/B or priv/fma outside [>= $minr, <= $maxp]: $row" >&2; fail=1
  fi
done
for e in "${maxfmas[@]}"; do
  read -r kern maxf <<<"$e"
  row=$(echo "$table" | awk -v k="$kern" '$1 == k')
  if [ -z "$row" ]; then echo "FAIL: kernel $kern did not run" >&2; fail=1; continue; fi
  if ! echo "$row" | awk -v m="$maxf" '{ exit !($2 <= m) }'; then
    echo "FAIL: $kern: more than $maxf FMA lanes: $row" >&2; fail=1
  fi
done
exit $fail
