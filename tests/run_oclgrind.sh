#!/bin/sh
# Runs a program under oclgrind and fails on any report. oclgrind itself exits 0 whatever it finds,
# so the log and stderr are searched: any line it wrote (errors, races, uninitialised values,
# warnings) is a failure. Usage: run_oclgrind.sh LOGDIR OCLGRIND_OPTIONS... -- PROGRAM ARGS...
set -u
logdir=$1; shift
mkdir -p "$logdir"
opts=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do opts="$opts $1"; shift; done
shift
log="$logdir/oclgrind.$$.log"
err="$logdir/stderr.$$.txt"
rm -f "$log"
# oclgrind is the only OpenCL platform in this process, so the default device is its simulator.
# shellcheck disable=SC2086
oclgrind --log "$log" $opts "$@" 2>"$err"
rc=$?
cat "$err" >&2
if [ $rc -ne 0 ]; then echo "program failed under oclgrind (exit $rc)" >&2; exit 1; fi
if [ -s "$log" ]; then echo "oclgrind reported:" >&2; head -50 "$log" >&2; exit 1; fi
if grep -Eiq 'invalid (read|write)|data race|uninitiali[sz]ed|out of bounds|error' "$err"; then
  echo "oclgrind reported problems on stderr" >&2; exit 1
fi
echo "oclgrind: clean"
