#!/bin/sh
# One-command set-up for a fresh Debian 12 machine (run as root, or with sudo available):
#   ./setup.sh demo   installs what is missing, builds, lists devices and runs a small benchmark
#   ./setup.sh test   installs what is missing, builds, and runs the whole test suite (also the
#                     sanitizer build); this is what CI runs
set -eu
cd "$(dirname "$0")"
mode=${1:-demo}
jobs=$(nproc 2>/dev/null || echo 2)

pkgs="build-essential cmake pkg-config ocl-icd-opencl-dev opencl-headers pocl-opencl-icd \
libclblast-dev libclfft-dev libcmocka-dev"
[ "$mode" = test ] && pkgs="$pkgs oclgrind mesa-opencl-icd valgrind"
[ "$mode" = test ] && pkgs="$pkgs python3-venv" # the Python package's tests (below)
# Open MPI: clattn_mpi (ring attention across ranks, mpi/) and its tests under mpirun -np 2 / 4
[ "$mode" = test ] && pkgs="$pkgs openmpi-bin libopenmpi-dev"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "== installing:$missing"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

# PoCL's compiled-kernel cache for the tests, shared by build/, build-asan/ and later clean clones
# on this machine (entries are keyed by kernel source, options and device, so a changed kernel is
# rebuilt): the kernels of a run compile once, not once per build tree.
pocl_cache=${CLATTN_TEST_POCL_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/clattn-test/pocl}
mkdir -p "$pocl_cache"

echo "== building (build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLATTN_TEST_POCL_CACHE="$pocl_cache" \
      >/dev/null
cmake --build build -j"$jobs"

case "$mode" in
demo)
  ./build/samples/clattn demo
  ;;
test)
  # A hung test (a driver deadlock) fails after 15 minutes instead of stalling CI.
  # PoCL's compiled-kernel cache and clattn's program cache live in the build tree, so repeated
  # runs skip the ~1 s kernel builds.
  ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900
  echo "== sanitizer build (build-asan/): AddressSanitizer + UBSan, device-free and small device tests"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCLATTN_SANITIZE=ON \
        -DCLATTN_BUILD_SAMPLES=OFF -DCLATTN_TEST_POCL_CACHE="$pocl_cache" >/dev/null
  cmake --build build-asan -j"$jobs"
  # Pin the ICD loader to PoCL alone and suppress only the drivers' own leaks (tests/lsan.supp).
  # The tests set their own ASAN_OPTIONS (tests/CMakeLists.txt), with intercept_tls_get_addr=0:
  # without it GCC 12's LeakSanitizer tracer crashed at exit of device suites at random ("Tracer
  # caught signal 11" after every case passed). A failed entry still gets one retry; an
  # AddressSanitizer/UBSan report or a real leak is deterministic and fails both runs.
  # Two entries at a time: the sanitized host code (references, staging) is serial, so the second
  # core is otherwise idle for most of this stage.
  OCL_ICD_VENDORS=/etc/OpenCL/vendors/pocl.icd \
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
  LSAN_OPTIONS=suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -L sanitize -j"$jobs" --timeout 900 --repeat until-pass:2
  ;;
*)
  echo "usage: $0 demo|test" >&2
  exit 2
  ;;
esac

# The Python package (python/): its pytest suite runs after every C suite above.
if [ "$mode" = test ]; then
  echo "== Python package (python/): pytest on PoCL against build/libclattn.so"
  # A venv in build/ with numpy and pytest (required) and matplotlib, pyopencl (their tests are
  # skipped without them); the package runs from python/src on the library built above.
  [ -x build/pyvenv/bin/python ] || python3 -m venv build/pyvenv
  build/pyvenv/bin/python -m pip install -q --disable-pip-version-check numpy pytest
  build/pyvenv/bin/python -m pip install -q --disable-pip-version-check matplotlib pyopencl ||
    echo "== warning: matplotlib/pyopencl not installed: their tests are skipped"
  CLATTN_LIBRARY="$(pwd)/build/libclattn.so" PYTHONPATH="$(pwd)/python/src" \
  CLATTN_DEVICE="Portable Computing Language" POCL_CACHE_DIR="$pocl_cache" \
  CLATTN_CACHE_DIR="$(pwd)/build/cache/clattn" \
    build/pyvenv/bin/python -m pytest -q python/tests
fi
