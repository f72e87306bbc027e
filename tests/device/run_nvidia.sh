#!/bin/bash
# Runs packed test binaries and benchmarks on NVIDIA's OpenCL driver (see prepare.sh).
# Arguments: test binary names, or "bench:<op> <options>" for `clattn bench`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
icd=$(ls /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 /usr/lib64/libnvidia-opencl.so.1 \
      /usr/local/nvidia/lib64/libnvidia-opencl.so.1 2>/dev/null | head -1)
[ -n "$icd" ] || icd=$(find / -name 'libnvidia-opencl.so.1' 2>/dev/null | head -1)
mkdir -p /tmp/icd && echo "$icd" > /tmp/icd/nvidia.icd
export OCL_ICD_VENDORS=/tmp/icd LD_LIBRARY_PATH=$here/lib CLATTN_CACHE_DIR=/tmp/clattn-cache
export CLATTN_DEVICE=NVIDIA
echo "ICD: $icd"
cd "$here/bin"
for t in "$@"; do
  case "$t" in
    test_*) echo "== $t"; timeout 300 "./$t" 2>&1 | grep -E "^\[  (PASSED|FAILED)|ERROR|device:" ;;
    bench:*) echo "== clattn bench ${t#bench:}"; eval timeout 300 ./clattn bench "${t#bench:}" ;;
  esac
done
