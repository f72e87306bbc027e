#!/bin/bash
# Packs the host-built test binaries, the CLI and the Debian libraries they load (CLBlast, clFFT,
# cmocka, the ICD loader) into build-gpu/, for a machine with a GPU driver but without those
# packages (e.g. the lent NVIDIA device machine). Run after ./setup.sh test (or a build in build/).
# Then, on that machine: build-gpu/run_nvidia.sh test_linear test_softmax ... "bench:linear --n 4096"
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/build-gpu
mkdir -p "$out/bin" "$out/lib"
cp "$root"/build/tests/test_* "$root/build/samples/clattn" "$out/bin/"
for l in libclblast.so.1 libclFFT.so.2 libcmocka.so.0 libOpenCL.so.1; do
  cp -L "/usr/lib/x86_64-linux-gnu/$l" "$out/lib/"
done
cp "$root/tests/device/run_nvidia.sh" "$out/"
echo "packed $(du -sh "$out" | cut -f1) into $out"
