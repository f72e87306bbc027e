#!/bin/bash
# Runs a program under oclgrind and fails on any report. oclgrind itself exits 0 whatever it finds,
# so its log and stderr are searched: any line in the log (errors, races, uninitialised values,
# warnings) is a failure. Usage:
#   run_oclgrind.sh LOGDIR [--waive-kernel NAME] OCLGRIND_OPTIONS... -- PROGRAM ARGS...
# --waive-kernel drops reports located in kernel NAME (used only for a diagnosed false positive;
# see tests/CMakeLists.txt); reports in every other kernel still fail.
set -u
logdir=$1; shift
waive=""
if [ "${1:-}" = "--waive-kernel" ]; then waive=$2; shift 2; fi
mkdir -p "$logdir"
opts=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do opts+=("$1"); shift; done
shift
log="$logdir/oclgrind.$$.log"
err="$logdir/stderr.$$.txt"
rm -f "$log"
# oclgrind is the only OpenCL platform in this process, so the default device is its simulator.
oclgrind --log "$log" "${opts[@]}" "$@" 2>"$err"
rc=$?
cat "$err" >&2
if [ $rc -ne 0 ]; then echo "program failed under oclgrind (exit $rc)" >&2; exit 1; fi
if [ -n "$waive" ] && [ -s "$log" ]; then
  # oclgrind writes one blank-line-separated block per report; keep the blocks of other kernels.
  awk -v k="Kernel: $waive" 'BEGIN { RS=""; ORS="\n\n" } index($0, k) == 0' "$log" > "$log.kept"
  n=$(grep -c "Kernel: $waive" "$log" || true)
  echo "waived $n report(s) located in $waive" >&2
  mv "$log.kept" "$log"
fi
if [ -s "$log" ] && grep -q '[^[:space:]]' "$log"; then
  echo "oclgrind reported:" >&2; head -50 "$log" >&2; exit 1
fi
if grep -Eiq 'invalid (read|write)|data race|uninitiali[sz]ed|out of bounds|error' "$err"; then
  echo "oclgrind reported problems on stderr" >&2; exit 1
fi
echo "oclgrind: clean"
