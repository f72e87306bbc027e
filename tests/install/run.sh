#!/bin/sh
# Installs the built tree into a temporary prefix, then builds and runs samples/example.c against
# it: with CMake's find_package(clattn) (shared and static targets; the shared one again with
# CLBlast's and clFFT's CMake packages hidden, which it must not need), and with pkg-config
# (shared, found at run time through the rpath; static through clattn_static.pc).
# Usage: run.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -eu
build=$1; src=$2; work=$3
rm -rf "$work"; mkdir -p "$work"
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name 'libclattn.so' -printf '%h\n' | head -1)

echo "== find_package(clattn COMPONENTS static): clattn::clattn and clattn::clattn_static"
cmake -S "$src/tests/install" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
      -DEXAMPLE_SOURCE="$src/samples/example.c" >/dev/null
cmake --build "$work/consumer" >/dev/null
env -u LD_LIBRARY_PATH "$work/consumer/example_cmake"   # CMake records the build-tree rpath
"$work/consumer/example_cmake_static"

echo "== find_package(clattn) with CLBlast's and clFFT's CMake packages hidden: clattn::clattn"
cmake -S "$src/tests/install" -B "$work/consumer_shared" -DCMAKE_PREFIX_PATH="$prefix" \
      -DEXAMPLE_SOURCE="$src/samples/example.c" -DCONSUMER_STATIC=OFF \
      -DCMAKE_DISABLE_FIND_PACKAGE_CLBlast=ON -DCMAKE_DISABLE_FIND_PACKAGE_clFFT=ON >/dev/null
cmake --build "$work/consumer_shared" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/consumer_shared/example_cmake"   # the other way
# ... where asking for the static component is an error that names what is missing.
if cmake -S "$src/tests/install" -B "$work/consumer_nostatic" -DCMAKE_PREFIX_PATH="$prefix" \
         -DEXAMPLE_SOURCE="$src/samples/example.c" -DCONSUMER_STATIC=ON \
         -DCMAKE_DISABLE_FIND_PACKAGE_CLBlast=ON >"$work/nostatic.log" 2>&1; then
  echo "install test: COMPONENTS static configured without CLBlast's package" >&2
  exit 1
fi
grep -q "not found: CLBlast" "$work/nostatic.log" || {
  echo "install test: no message naming CLBlast:" >&2; cat "$work/nostatic.log" >&2; exit 1; }

echo "== pkg-config clattn (shared, rpath)"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkg-config --exists --print-errors clattn clattn_static
# shellcheck disable=SC2046
cc -std=c11 -o "$work/example_pc" "$src/samples/example.c" $(pkg-config --cflags --libs clattn) \
   -Wl,-rpath,"$libdir" -lm
env -u LD_LIBRARY_PATH "$work/example_pc"
# --static lists the private dependencies an archive link needs.
for lib in -lclattn -lclblast -lclFFT -lOpenCL -lpthread -lm; do
  pkg-config --static --libs clattn | tr ' ' '\n' | grep -qx -- "$lib" || {
    echo "install test: pkg-config --static --libs clattn lacks $lib" >&2; exit 1; }
done

echo "== pkg-config --static clattn_static (the archive)"
# shellcheck disable=SC2046
cc -std=c11 -o "$work/example_pc_static" "$src/samples/example.c" \
   $(pkg-config --static --cflags --libs clattn_static) -lm
if ldd "$work/example_pc_static" | grep -q libclattn; then
  echo "install test: the clattn_static link uses the shared library" >&2; exit 1
fi
env -u LD_LIBRARY_PATH "$work/example_pc_static"
echo "install test: ok"
